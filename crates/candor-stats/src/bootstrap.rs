//! Percentile bootstraps with a fixed seed, so that a report is the same every time it is
//! rendered from the same rows.

/// Replicates used unless told otherwise; the percentile ends of 2,000 replicates move by well
/// under a point between seeds for the sample sizes of an audit.
pub const DEFAULT_REPS: usize = 2_000;
pub const DEFAULT_SEED: u64 = 0x00C4_7D0E;

fn percentile_interval(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let last = (values.len() - 1) as f64;
    let at = |q: f64| values[(q * last).round() as usize];
    (at(0.025), at(0.975))
}

/// The share sum(k) / sum(n) over clusters (a probe's several samples form one cluster), with
/// a 95% interval from resampling whole clusters, which keeps the samples' correlation.
pub fn cluster_bootstrap(
    clusters: &[(u64, u64)],
    reps: usize,
    seed: u64,
) -> Option<(f64, f64, f64)> {
    let (k, n) = clusters.iter().fold((0, 0), |(k, n), c| (k + c.0, n + c.1));
    if n == 0 || reps == 0 {
        return None;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let shares = (0..reps)
        .map(|_| {
            let (mut k, mut n) = (0u64, 0u64);
            for _ in 0..clusters.len() {
                let c = clusters[rng.usize(..clusters.len())];
                k += c.0;
                n += c.1;
            }
            if n == 0 {
                0.0
            } else {
                k as f64 / n as f64
            }
        })
        .collect();
    let (low, high) = percentile_interval(shares);
    Some((k as f64 / n as f64, low, high))
}

/// [`cluster_bootstrap`] of several measures over the same clusters at once: `hits[c][m]` is
/// cluster `c`'s count for measure `m`, `sizes[c]` its size. One resampling serves every
/// measure, so each result is exactly what `cluster_bootstrap` gives alone with that seed, at
/// the cost of one.
pub fn cluster_bootstrap_many<const M: usize>(
    hits: &[[u64; M]],
    sizes: &[u64],
    reps: usize,
    seed: u64,
) -> [Option<(f64, f64, f64)>; M] {
    let n: u64 = sizes.iter().sum();
    if n == 0 || reps == 0 || hits.len() != sizes.len() {
        return [None; M];
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut shares: [Vec<f64>; M] = std::array::from_fn(|_| Vec::with_capacity(reps));
    for _ in 0..reps {
        let (mut k, mut n) = ([0u64; M], 0u64);
        for _ in 0..sizes.len() {
            let c = rng.usize(..sizes.len());
            for (k, h) in k.iter_mut().zip(&hits[c]) {
                *k += h;
            }
            n += sizes[c];
        }
        for (share, k) in shares.iter_mut().zip(k) {
            share.push(if n == 0 { 0.0 } else { k as f64 / n as f64 });
        }
    }
    let mut shares = shares.into_iter();
    std::array::from_fn(|m| {
        let k: u64 = hits.iter().map(|h| h[m]).sum();
        let (low, high) = percentile_interval(shares.next().expect("one per measure"));
        Some((k as f64 / n as f64, low, high))
    })
}

/// The mean of paired differences with a 95% interval from resampling pairs.
pub fn paired_bootstrap(diffs: &[f64], reps: usize, seed: u64) -> Option<(f64, f64, f64)> {
    if diffs.is_empty() || reps == 0 {
        return None;
    }
    let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
    let mut rng = fastrand::Rng::with_seed(seed);
    let means = (0..reps)
        .map(|_| {
            (0..diffs.len())
                .map(|_| diffs[rng.usize(..diffs.len())])
                .sum::<f64>()
                / diffs.len() as f64
        })
        .collect();
    let (low, high) = percentile_interval(means);
    Some((mean, low, high))
}

/// A binomial draw: exact for small `n`, normal approximation beyond.
pub(crate) fn binomial(rng: &mut fastrand::Rng, n: u64, p: f64) -> u64 {
    let p = p.clamp(0.0, 1.0);
    if n <= 64 {
        return (0..n).filter(|_| rng.f64() < p).count() as u64;
    }
    let mean = n as f64 * p;
    let sd = (mean * (1.0 - p)).sqrt();
    // Box-Muller.
    let z = (-2.0 * (1.0 - rng.f64()).ln()).sqrt() * (2.0 * std::f64::consts::PI * rng.f64()).cos();
    (mean + sd * z).round().clamp(0.0, n as f64) as u64
}

/// A multinomial draw of `n` items over `probs`, by successive binomials.
pub(crate) fn multinomial(rng: &mut fastrand::Rng, n: u64, probs: &[f64]) -> Vec<u64> {
    let mut left = n;
    let mut mass = 1.0;
    let mut out = Vec::with_capacity(probs.len());
    for (i, &p) in probs.iter().enumerate() {
        let draw = if i + 1 == probs.len() || mass <= 0.0 {
            left
        } else {
            binomial(rng, left, p / mass)
        };
        out.push(draw);
        left -= draw;
        mass -= p;
    }
    out
}

/// [`paired_bootstrap`] of several lists of the same length at once: the replicates draw the
/// same indices for every list (they depend only on the seed and the length), so each result
/// is exactly what `paired_bootstrap` gives alone, for the cost of one draw.
pub fn paired_bootstrap_many(
    lists: &[&[f64]],
    reps: usize,
    seed: u64,
) -> Vec<Option<(f64, f64, f64)>> {
    let len = lists.first().map_or(0, |l| l.len());
    if len == 0 || reps == 0 || lists.iter().any(|l| l.len() != len) {
        return lists
            .iter()
            .map(|l| paired_bootstrap(l, reps, seed))
            .collect();
    }
    let means = match lists.len() {
        1 => replicate_means::<1>(lists, reps, seed),
        2 => replicate_means::<2>(lists, reps, seed),
        3 => replicate_means::<3>(lists, reps, seed),
        4 => replicate_means::<4>(lists, reps, seed),
        _ => replicate_means_any(lists, reps, seed),
    };
    lists
        .iter()
        .zip(means)
        .map(|(list, means)| {
            let mean = list.iter().sum::<f64>() / len as f64;
            let (low, high) = percentile_interval(means);
            Some((mean, low, high))
        })
        .collect()
}

/// Draws below which the replicates run on one thread: spawning costs more than it saves.
const PARALLEL_DRAWS: usize = 4_000_000;

/// The replicates' means of `K` lists. The lists are laid side by side, so that each draw
/// reads one cache line instead of one per list; the sums add in the same order as
/// [`replicate_means_any`], so the results are the same to the bit. Large resamplings are
/// shared among the cores (see [`replicate_means_in`]).
fn replicate_means<const K: usize>(lists: &[&[f64]], reps: usize, seed: u64) -> Vec<Vec<f64>> {
    let len = lists[0].len();
    let chunks = match reps.saturating_mul(len) >= PARALLEL_DRAWS {
        true => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        false => 1,
    };
    replicate_means_in::<K>(lists, reps, seed, chunks, draw_step())
}

/// How far one draw moves the generator's state. The generator is a counter stepped by a
/// constant, so a later replicate's starting state can be computed without drawing; this
/// reads the step rather than assume it.
fn draw_step() -> u64 {
    let mut rng = fastrand::Rng::with_seed(0);
    rng.u64(..);
    rng.get_seed()
}

/// The replicates split into `chunks` runs of consecutive replicates, each on its own thread,
/// each starting from the state the one sequential generator would have reached there
/// (`step` per draw). A draw that took more than one step (a rejected sample) would put a
/// chunk off: each chunk's start is checked against where the previous one ended, and a chunk
/// that started elsewhere is drawn again from the right state. The result is always that of
/// one generator drawing every replicate in order.
fn replicate_means_in<const K: usize>(
    lists: &[&[f64]],
    reps: usize,
    seed: u64,
    chunks: usize,
    step: u64,
) -> Vec<Vec<f64>> {
    let len = lists[0].len();
    let rows: Vec<[f64; K]> = (0..len)
        .map(|i| std::array::from_fn(|k| lists[k][i]))
        .collect();
    let chunks = chunks.clamp(1, reps.max(1));
    let bounds: Vec<(usize, usize)> = (0..chunks)
        .map(|c| (reps * c / chunks, reps * (c + 1) / chunks))
        .collect();
    let predicted = |first: usize| seed.wrapping_add(step.wrapping_mul((first * len) as u64));
    let draw = |(first, last): (usize, usize), start: u64| {
        let mut rng = fastrand::Rng::with_seed(start);
        let mut means = Vec::with_capacity(last - first);
        for _ in first..last {
            let mut sums = [0f64; K];
            for _ in 0..len {
                let row = &rows[rng.usize(..len)];
                for k in 0..K {
                    sums[k] += row[k];
                }
            }
            means.push(sums.map(|sum| sum / len as f64));
        }
        (start, means, rng.get_seed())
    };
    let mut drawn: Vec<(u64, Vec<[f64; K]>, u64)> = match chunks {
        1 => vec![draw(bounds[0], seed)],
        _ => std::thread::scope(|scope| {
            let handles: Vec<_> = bounds
                .iter()
                .enumerate()
                .map(|(c, &b)| {
                    let start = if c == 0 { seed } else { predicted(b.0) };
                    scope.spawn(move || draw(b, start))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a bootstrap thread does not panic"))
                .collect()
        }),
    };
    for c in 1..drawn.len() {
        let reached = drawn[c - 1].2;
        if drawn[c].0 != reached {
            drawn[c] = draw(bounds[c], reached);
        }
    }
    let mut means: Vec<Vec<f64>> = (0..K).map(|_| Vec::with_capacity(reps)).collect();
    for (_, chunk, _) in drawn {
        for replicate in chunk {
            for (m, value) in means.iter_mut().zip(replicate) {
                m.push(value);
            }
        }
    }
    means
}

/// The replicates' means of any number of lists of the same length.
fn replicate_means_any(lists: &[&[f64]], reps: usize, seed: u64) -> Vec<Vec<f64>> {
    let len = lists[0].len();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut means: Vec<Vec<f64>> = lists.iter().map(|_| Vec::with_capacity(reps)).collect();
    let mut sums = vec![0f64; lists.len()];
    for _ in 0..reps {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for _ in 0..len {
            let i = rng.usize(..len);
            for (sum, list) in sums.iter_mut().zip(lists) {
                *sum += list[i];
            }
        }
        for (m, sum) in means.iter_mut().zip(&sums) {
            m.push(sum / len as f64);
        }
    }
    means
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bootstraps_are_reproducible_and_centred() {
        let clusters: Vec<(u64, u64)> = (0..40)
            .map(|i| (if i % 4 == 0 { 3 } else { 0 }, 3))
            .collect();
        let a = cluster_bootstrap(&clusters, 1000, 7).unwrap();
        assert_eq!(a, cluster_bootstrap(&clusters, 1000, 7).unwrap());
        assert!((a.0 - 0.25).abs() < 1e-12);
        assert!(a.1 < 0.25 && a.2 > 0.25 && a.1 > 0.05 && a.2 < 0.5, "{a:?}");
        // Whole clusters move together: the interval is wider than Wilson's on 120 answers.
        let (wl, wh) = crate::wilson(30, 120, crate::Z95).unwrap();
        assert!(a.2 - a.1 > wh - wl);
        let d = paired_bootstrap(&[1.0, 1.0, 0.0, 1.0, 0.5], 1000, 1).unwrap();
        assert!((d.0 - 0.7).abs() < 1e-12 && d.1 <= 0.7 && d.2 >= 0.7);
        assert_eq!(cluster_bootstrap(&[], 10, 1), None);
        assert_eq!(paired_bootstrap(&[], 10, 1), None);
    }

    #[test]
    fn replicates_shared_among_threads_are_those_of_one_generator() {
        let mut rng = fastrand::Rng::with_seed(3);
        let a: Vec<f64> = (0..997).map(|_| rng.f64() - 0.5).collect();
        let b: Vec<f64> = (0..997).map(|_| f64::from(rng.u8(..3)) - 1.0).collect();
        let lists: [&[f64]; 2] = [&a, &b];
        let one = replicate_means_in::<2>(&lists, 301, 11, 1, draw_step());
        for chunks in [2, 3, 8] {
            assert_eq!(
                replicate_means_in::<2>(&lists, 301, 11, chunks, draw_step()),
                one
            );
        }
        // The prediction holds for this generator: no chunk needs drawing again.
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..997 * 75 {
            rng.usize(..997);
        }
        let step = draw_step().wrapping_mul(997 * 75);
        assert_eq!(rng.get_seed(), 11u64.wrapping_add(step));
        // A wrong prediction of where a chunk starts is caught and drawn again.
        assert_eq!(replicate_means_in::<2>(&lists, 301, 11, 4, 12_345), one);
        // And the whole agrees with the single list's own bootstrap.
        let alone = paired_bootstrap(&a, 301, 11).unwrap();
        let many = paired_bootstrap_many(&lists, 301, 11);
        assert_eq!(many[0], Some(alone));
    }

    proptest! {
        #[test]
        fn multinomial_draws_sum_to_n(n in 0u64..5_000, seed in any::<u64>(), a in 0.0f64..1.0) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let draw = multinomial(&mut rng, n, &[a / 2.0, a / 2.0, 1.0 - a]);
            prop_assert_eq!(draw.iter().sum::<u64>(), n);
        }

        #[test]
        fn one_resampling_for_many_measures_gives_each_measures_own_interval(
            clusters in proptest::collection::vec((0u64..5, 0u64..5, 1u64..6), 1..40),
            seed in any::<u64>(),
        ) {
            let clusters: Vec<(u64, u64, u64)> = clusters
                .into_iter()
                .map(|(a, b, n)| (a.min(n), b.min(n), n))
                .collect();
            let hits: Vec<[u64; 2]> = clusters.iter().map(|c| [c.0, c.1]).collect();
            let sizes: Vec<u64> = clusters.iter().map(|c| c.2).collect();
            let [first, second] = cluster_bootstrap_many(&hits, &sizes, 300, seed);
            let alone = |pick: fn(&(u64, u64, u64)) -> u64| {
                let one: Vec<(u64, u64)> = clusters.iter().map(|c| (pick(c), c.2)).collect();
                cluster_bootstrap(&one, 300, seed)
            };
            prop_assert_eq!(first, alone(|c| c.0));
            prop_assert_eq!(second, alone(|c| c.1));
        }

        #[test]
        fn paired_lists_of_one_length_share_their_draws_and_keep_their_intervals(
            rows in proptest::collection::vec(proptest::collection::vec(-1.0f64..1.0, 6), 0..50),
            lists in 1usize..=6,
            seed in any::<u64>(),
        ) {
            // One to four lists take the side-by-side path, more the general one.
            let columns: Vec<Vec<f64>> = (0..lists).map(|k| rows.iter().map(|r| r[k]).collect()).collect();
            let refs: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
            let together = paired_bootstrap_many(&refs, 200, seed);
            for (column, result) in columns.iter().zip(together) {
                prop_assert_eq!(result, paired_bootstrap(column, 200, seed));
            }
        }

        #[test]
        fn intervals_contain_the_estimate(diffs in proptest::collection::vec(-1.0f64..1.0, 1..60), seed in any::<u64>()) {
            let (mean, low, high) = paired_bootstrap(&diffs, 200, seed).unwrap();
            prop_assert!(low <= high);
            prop_assert!(low >= -1.0 && high <= 1.0);
            prop_assert!(low <= mean + 1e-9 || diffs.len() == 1);
        }
    }
}
