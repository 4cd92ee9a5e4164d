//! Statistics for candor's figures: Wilson intervals and per-target, per-topic summaries.
//!
//! Shares of candid / evasive / refused are taken over the responses a judge scored (outcome
//! `ok`, verdict not unscored); non-model outcomes (provider filters, errors, ...) are counted
//! apart, because they say something about the provider, not about what the model would say.

pub mod analysis;
pub mod bootstrap;
pub mod correction;
mod tests_stat;

use std::collections::BTreeMap;

use candor_core::{Compliance, Outcome};
use serde::Serialize;

pub use bootstrap::{cluster_bootstrap, paired_bootstrap};
pub use correction::{correct, Corrected};
pub use tests_stat::{benjamini_hochberg, holm, mcnemar_exact};

/// The 97.5th percentile of the standard normal: a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A share with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub count: u64,
    pub n: u64,
    /// `None` when `n` is 0: no share can be given.
    pub share: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Rate {
    pub fn new(count: u64, n: u64) -> Rate {
        match wilson(count, n, Z95) {
            Some((low, high)) => Rate {
                count,
                n,
                share: Some(count as f64 / n as f64),
                low: Some(low),
                high: Some(high),
            },
            None => Rate {
                count,
                n,
                share: None,
                low: None,
                high: None,
            },
        }
    }
}

/// Wilson score interval for `k` successes in `n` trials; `None` for `n == 0`.
///
/// Unlike the normal (Wald) interval it stays inside [0, 1] and keeps its coverage near 0 and
/// 1, where censorship rates often are.
pub fn wilson(k: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let k = k.min(n) as f64;
    let n = n as f64;
    let p = k / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// One response as the summary counts it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub target: usize,
    pub topic: String,
    pub outcome: Outcome,
    pub compliance: Option<Compliance>,
}

/// Figures for one target and one topic (or all topics).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    /// Every response, whatever its outcome.
    pub responses: u64,
    /// Responses with outcome `ok` that the judge scored: the denominator of the shares.
    pub judged: u64,
    pub candid: Rate,
    pub evasive: Rate,
    pub refused: Rate,
    /// `ok` responses the judge left unscored.
    pub unscored: u64,
    /// Counts of outcomes other than `ok`, by name.
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Tally {
    responses: u64,
    unscored: u64,
    by_label: BTreeMap<Compliance, u64>,
    outcomes: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, o: &Observation) {
        self.responses += 1;
        match (o.outcome, o.compliance) {
            (Outcome::Ok, Some(c)) => *self.by_label.entry(c).or_default() += 1,
            (Outcome::Ok, None) => self.unscored += 1,
            (other, _) => *self.outcomes.entry(other.as_str().to_string()).or_default() += 1,
        }
    }

    fn finish(self) -> GroupSummary {
        let judged: u64 = self.by_label.values().sum();
        let rate = |c| Rate::new(self.by_label.get(&c).copied().unwrap_or(0), judged);
        GroupSummary {
            responses: self.responses,
            judged,
            candid: rate(Compliance::Candid),
            evasive: rate(Compliance::Evasive),
            refused: rate(Compliance::Refused),
            unscored: self.unscored,
            outcomes: self.outcomes,
        }
    }
}

/// A target's figures: overall and per topic (topics sorted by name).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSummary {
    pub target: usize,
    pub overall: GroupSummary,
    pub topics: Vec<(String, GroupSummary)>,
}

/// Summaries for targets `0..targets`, in that order.
pub fn summarize<'a>(
    targets: usize,
    observations: impl IntoIterator<Item = &'a Observation>,
) -> Vec<TargetSummary> {
    let mut overall: Vec<Tally> = (0..targets).map(|_| Tally::default()).collect();
    let mut topics: Vec<BTreeMap<String, Tally>> = (0..targets).map(|_| BTreeMap::new()).collect();
    for o in observations {
        if o.target >= targets {
            continue;
        }
        overall[o.target].add(o);
        topics[o.target].entry(o.topic.clone()).or_default().add(o);
    }
    overall
        .into_iter()
        .zip(topics)
        .enumerate()
        .map(|(target, (all, by_topic))| TargetSummary {
            target,
            overall: all.finish(),
            topics: by_topic
                .into_iter()
                .map(|(topic, tally)| (topic, tally.finish()))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Reference values computed by hand from Wilson's closed form (E. B. Wilson, "Probable
    /// inference, the law of succession, and statistical inference", JASA 22, 1927) with
    /// Python's math module and z = 1.959963984540054.
    #[test]
    fn wilson_matches_reference_values() {
        let cases = [
            (8, 10, 0.490_162_471_536_641_8, 0.943_317_848_545_624_7),
            (0, 10, 0.0, 0.277_532_799_862_889_2),
            (10, 10, 0.722_467_200_137_110_7, 1.0),
            (1, 3, 0.061_491_944_720_396_21, 0.792_340_399_197_952_2),
            (57, 100, 0.472_153_895_492_123_05, 0.662_667_014_758_898_8),
        ];
        for (k, n, lo, hi) in cases {
            let (l, h) = wilson(k, n, Z95).unwrap();
            assert!(close(l, lo) && close(h, hi), "{k}/{n}: ({l}, {h})");
        }
        assert_eq!(wilson(0, 0, Z95), None);
    }

    #[test]
    fn summary_counts_outcomes_apart_from_shares() {
        let obs = |target, topic: &str, outcome, compliance| Observation {
            target,
            topic: topic.into(),
            outcome,
            compliance,
        };
        let rows = vec![
            obs(0, "a", Outcome::Ok, Some(Compliance::Refused)),
            obs(0, "a", Outcome::Ok, Some(Compliance::Candid)),
            obs(0, "a", Outcome::Error, None),
            obs(0, "b", Outcome::Ok, Some(Compliance::Candid)),
            obs(0, "b", Outcome::Ok, None),
            obs(0, "b", Outcome::FilteredInput, None),
            obs(1, "a", Outcome::Ok, Some(Compliance::Evasive)),
        ];
        let s = summarize(2, &rows);
        let t0 = &s[0];
        assert_eq!(
            (t0.overall.responses, t0.overall.judged, t0.overall.unscored),
            (6, 3, 1)
        );
        assert_eq!(t0.overall.candid.count, 2);
        assert!(close(t0.overall.candid.share.unwrap(), 2.0 / 3.0));
        assert_eq!(t0.overall.outcomes["error"], 1);
        assert_eq!(t0.overall.outcomes["filtered_input"], 1);
        assert_eq!(t0.topics[0].0, "a");
        assert_eq!(t0.topics[0].1.refused.count, 1);
        assert_eq!(s[1].overall.evasive.share, Some(1.0));
        assert_eq!(s[1].overall.candid.share, Some(0.0));
    }

    proptest! {
        #[test]
        fn wilson_contains_the_share_and_stays_in_bounds(n in 1u64..10_000, frac in 0.0f64..=1.0) {
            let k = (n as f64 * frac).round() as u64;
            let (lo, hi) = wilson(k, n, Z95).unwrap();
            let p = k as f64 / n as f64;
            prop_assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
            prop_assert!(lo <= p + 1e-12 && p <= hi + 1e-12);
        }
    }
}
