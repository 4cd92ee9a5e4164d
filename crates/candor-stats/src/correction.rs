//! Judge-error correction: turning the shares a judge reports into estimates of the true
//! shares, given how that judge errs on a gold set, with the uncertainty of both in the
//! interval.
//!
//! With `M[i][j]` the chance that the judge says class `j` when the truth is `i` (estimated
//! from the gold confusion matrix) and `q` the shares observed, the true shares `p` solve
//! `Mᵀ p = q`; with two classes this is the Rogan-Gladen estimator. The estimate is projected
//! onto valid shares, and its interval comes from a parametric bootstrap that redraws both the
//! gold matrix (row by row) and the observed counts.

use crate::bootstrap::multinomial;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Corrected {
    pub share: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
}

fn row_probs(row: &[u64]) -> Option<Vec<f64>> {
    let n: u64 = row.iter().sum();
    (n > 0).then(|| row.iter().map(|&c| c as f64 / n as f64).collect())
}

/// Solves `Mᵀ p = q` by Gaussian elimination with partial pivoting; `None` when the judge
/// cannot tell the classes apart (a singular matrix).
fn solve_transposed(m: &[Vec<f64>], q: &[f64]) -> Option<Vec<f64>> {
    let k = q.len();
    let mut a: Vec<Vec<f64>> = (0..k)
        .map(|r| {
            let mut row: Vec<f64> = (0..k).map(|c| m[c][r]).collect();
            row.push(q[r]);
            row
        })
        .collect();
    for col in 0..k {
        let pivot = (col..k).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-9 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (cell, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *cell -= f * p;
                }
            }
        }
    }
    Some((0..k).map(|r| a[r][k] / a[r][r]).collect())
}

/// Clips negative shares and renormalises: estimates outside the simplex are noise.
fn project(p: Vec<f64>) -> Vec<f64> {
    let clipped: Vec<f64> = p.into_iter().map(|x| x.max(0.0)).collect();
    let total: f64 = clipped.iter().sum();
    if total <= 0.0 {
        return vec![1.0 / clipped.len() as f64; clipped.len()];
    }
    clipped.into_iter().map(|x| x / total).collect()
}

fn estimate(confusion: &[Vec<f64>], observed: &[f64]) -> Option<Vec<f64>> {
    solve_transposed(confusion, observed).map(project)
}

/// Corrected shares with 95% intervals. `observed` counts per class as the judge labelled them;
/// `confusion[i][j]` gold items of true class `i` the judge labelled `j`.
pub fn correct(
    observed: &[u64],
    confusion: &[Vec<u64>],
    reps: usize,
    seed: u64,
) -> Option<Corrected> {
    let k = observed.len();
    if confusion.len() != k || confusion.iter().any(|r| r.len() != k) {
        return None;
    }
    let n: u64 = observed.iter().sum();
    if n == 0 {
        return None;
    }
    let m: Vec<Vec<f64>> = confusion
        .iter()
        .map(|r| row_probs(r))
        .collect::<Option<_>>()?;
    let q: Vec<f64> = observed.iter().map(|&c| c as f64 / n as f64).collect();
    let share = estimate(&m, &q)?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(reps); k];
    for _ in 0..reps {
        let m_star: Vec<Vec<f64>> = confusion
            .iter()
            .zip(&m)
            .map(|(row, probs)| {
                let total = row.iter().sum();
                let drawn = multinomial(&mut rng, total, probs);
                drawn.iter().map(|&c| c as f64 / total as f64).collect()
            })
            .collect();
        let q_star: Vec<f64> = multinomial(&mut rng, n, &q)
            .iter()
            .map(|&c| c as f64 / n as f64)
            .collect();
        if let Some(p) = estimate(&m_star, &q_star) {
            for (d, v) in draws.iter_mut().zip(p) {
                d.push(v);
            }
        }
    }
    if draws[0].len() < reps / 2 {
        return None;
    }
    let (mut low, mut high) = (Vec::with_capacity(k), Vec::with_capacity(k));
    for mut d in draws {
        d.sort_by(f64::total_cmp);
        let last = (d.len() - 1) as f64;
        low.push(d[(0.025 * last).round() as usize]);
        high.push(d[(0.975 * last).round() as usize]);
    }
    Some(Corrected { share, low, high })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes: the Rogan-Gladen estimate (q + spec - 1) / (sens + spec - 1), computed by
    /// hand: q = 0.30, sensitivity 0.90, specificity 0.95 give 0.294117647...
    #[test]
    fn two_classes_give_rogan_gladen() {
        let confusion = vec![vec![90, 10], vec![5, 95]];
        let c = correct(&[300, 700], &confusion, 500, 3).unwrap();
        assert!(
            (c.share[0] - 0.294_117_647_058_823_5).abs() < 1e-12,
            "{c:?}"
        );
        assert!(c.low[0] < c.share[0] && c.share[0] < c.high[0]);
    }

    /// Three classes: observed shares made by hand from true shares (0.5, 0.3, 0.2) through a
    /// known matrix come back as those true shares.
    #[test]
    fn three_classes_invert_a_known_matrix() {
        let confusion = vec![vec![900, 80, 20], vec![100, 800, 100], vec![50, 50, 900]];
        // q = Mᵀ p = (0.49, 0.29, 0.22)
        let c = correct(&[4900, 2900, 2200], &confusion, 400, 9).unwrap();
        for (got, want) in c.share.iter().zip([0.5, 0.3, 0.2]) {
            assert!((got - want).abs() < 1e-9, "{c:?}");
        }
        for i in 0..3 {
            assert!(c.low[i] <= c.share[i] && c.share[i] <= c.high[i]);
        }
    }

    #[test]
    fn a_judge_that_cannot_tell_classes_apart_gives_nothing() {
        let confusion = vec![vec![50, 50], vec![50, 50]];
        assert_eq!(correct(&[10, 10], &confusion, 100, 1), None);
        assert_eq!(correct(&[0, 0], &[vec![1, 0], vec![0, 1]], 100, 1), None);
    }
}
