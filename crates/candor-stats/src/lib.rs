//! Statistics for candor's figures: Wilson and paired score intervals, bootstraps, tests and the
//! analysis of a run ([`analysis`]).
//!
//! Shares of candid / evasive / refused are taken over the model answers a judge scored (whole
//! or cut off at the token limit); what the provider blocked is counted apart, and again in the
//! "censored anywhere" measure, because it says something about the provider, not about what
//! the model would say.

pub mod analysis;
pub mod bootstrap;
pub mod correction;
pub mod paired;
mod tests_stat;

use serde::Serialize;

pub use bootstrap::{cluster_bootstrap, cluster_bootstrap_many, paired_bootstrap};
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
    paired::wilson_share(k.min(n) as f64, n as f64, z)
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
