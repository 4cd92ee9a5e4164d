//! Exact McNemar test and corrections for testing many topics at once.

/// Two-sided exact McNemar test on discordant pairs: `b` pairs where only the first is 1, `c`
/// where only the second is. The p-value is twice the binomial(b + c, 1/2) tail at min(b, c),
/// capped at 1.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Sum the tail in log space: n can reach the tens of thousands.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Holm's step-down adjustment: controls the family-wise error rate.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini-Hochberg step-up adjustment: controls the false discovery rate.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 1.0;
    for (r, &i) in order.iter().enumerate() {
        let rank = (m - r) as f64;
        running = running.min(p[i] * m as f64 / rank);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values computed by hand with Python's math.comb (exact binomial sums) and
    /// the textbook step-down and step-up formulas.
    #[test]
    fn mcnemar_matches_exact_binomial_sums() {
        let cases = [
            (10, 2, 0.038_574_218_75),
            (5, 5, 1.0),
            (0, 6, 0.031_25),
            (3, 0, 0.25),
            (25, 10, 0.016_673_847_800_120_71),
        ];
        for (b, c, p) in cases {
            assert!(
                (mcnemar_exact(b, c) - p).abs() < 1e-12,
                "{b},{c}: {}",
                mcnemar_exact(b, c)
            );
        }
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert!(mcnemar_exact(20_000, 19_000) < 1e-6);
    }

    #[test]
    fn holm_and_bh_match_hand_computation() {
        let p = [0.01, 0.04, 0.03, 0.20];
        let h = holm(&p);
        for (a, b) in h.iter().zip([0.04, 0.09, 0.09, 0.2]) {
            assert!((a - b).abs() < 1e-12, "{h:?}");
        }
        let q = benjamini_hochberg(&p);
        for (a, b) in q.iter().zip([
            0.04,
            0.053_333_333_333_333_34,
            0.053_333_333_333_333_34,
            0.2,
        ]) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
        assert!(holm(&[]).is_empty());
    }
}
