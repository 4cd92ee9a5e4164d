//! A score interval for the difference between two proportions measured on the same units
//! (Newcombe 1998, method 10): the Wilson intervals of the two shares, joined through the
//! correlation of the pairs. Unlike a bootstrap over pairs it stays wide when the pairs are few:
//! two identical pairs give no bootstrap width at all, but a wide score interval.

use crate::Z95;

/// The paired 2 x 2 table, in units that may be fractional: a China answer weighed against k
/// control answers adds 1/k to a cell per control.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairedTable {
    /// Both sides hit.
    pub both: f64,
    /// Only the first side hit.
    pub first_only: f64,
    /// Only the second side hit.
    pub second_only: f64,
    pub neither: f64,
}

impl PairedTable {
    /// Adds one pair; `first` and `second` are shares in [0, 1] (a side of several answers
    /// counts by its share).
    pub fn add(&mut self, first: f64, second: f64) {
        self.both += first * second;
        self.first_only += first * (1.0 - second);
        self.second_only += (1.0 - first) * second;
        self.neither += (1.0 - first) * (1.0 - second);
    }

    pub fn n(&self) -> f64 {
        self.both + self.first_only + self.second_only + self.neither
    }
}

/// Wilson score interval for a share `k / n` where the counts may be fractional.
pub fn wilson_share(k: f64, n: f64, z: f64) -> Option<(f64, f64)> {
    if n <= 0.0 {
        return None;
    }
    let p = (k / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The first share minus the second with its 95% interval (Newcombe's method 10); `None` for
/// an empty table.
pub fn newcombe_paired(t: &PairedTable) -> Option<(f64, f64, f64)> {
    let n = t.n();
    let first = t.both + t.first_only;
    let second = t.both + t.second_only;
    let (l1, u1) = wilson_share(first, n, Z95)?;
    let (l2, u2) = wilson_share(second, n, Z95)?;
    let (p1, p2) = (first / n, second / n);
    // The correlation of the pairs, a positive one shrunk by n/2 as Newcombe does (it keeps
    // the interval from narrowing too far); 0 where a margin is empty.
    let margins = (t.both + t.first_only)
        * (t.second_only + t.neither)
        * (t.both + t.second_only)
        * (t.first_only + t.neither);
    let cross = t.both * t.neither - t.first_only * t.second_only;
    let cross = if cross > 0.0 {
        (cross - n / 2.0).max(0.0)
    } else {
        cross
    };
    let phi = if margins > 0.0 {
        cross / margins.sqrt()
    } else {
        0.0
    };
    let diff = p1 - p2;
    let down = ((p1 - l1).powi(2) - 2.0 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2).powi(2))
        .max(0.0)
        .sqrt();
    let up = ((u1 - p1).powi(2) - 2.0 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2).powi(2))
        .max(0.0)
        .sqrt();
    Some((diff, (diff - down).max(-1.0), (diff + up).min(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(both: f64, first_only: f64, second_only: f64, neither: f64) -> PairedTable {
        PairedTable {
            both,
            first_only,
            second_only,
            neither,
        }
    }

    /// Newcombe, R. G. (1998). Improved confidence intervals for the difference between
    /// binomial proportions based on paired data. Statistics in Medicine 17, 2635-2650,
    /// Table II, method 10 (95% intervals to four decimals).
    #[test]
    fn matches_newcombes_worked_examples() {
        for (t, low, high) in [
            (table(36.0, 12.0, 2.0, 0.0), 0.0569, 0.3404),
            (table(18.0, 12.0, 2.0, 18.0), 0.0562, 0.3290),
        ] {
            let (diff, l, h) = newcombe_paired(&t).unwrap();
            assert!((diff - 0.2).abs() < 1e-12);
            assert!((l - low).abs() < 5e-5, "{t:?}: low {l}");
            assert!((h - high).abs() < 5e-5, "{t:?}: high {h}");
        }
        let (diff, l, h) = newcombe_paired(&table(53.0, 0.0, 0.0, 1.0)).unwrap();
        assert_eq!(diff, 0.0);
        assert!(
            (l + 0.0729).abs() < 5e-5 && (h - 0.0729).abs() < 5e-5,
            "{l} {h}"
        );
    }

    #[test]
    fn two_identical_pairs_leave_the_interval_wide() {
        let mut t = PairedTable::default();
        t.add(1.0, 0.0);
        t.add(1.0, 0.0);
        let (diff, low, high) = newcombe_paired(&t).unwrap();
        assert_eq!(diff, 1.0);
        assert!(low < 0.35 && high == 1.0, "[{low}, {high}]");
        assert!(newcombe_paired(&PairedTable::default()).is_none());
    }

    #[test]
    fn a_side_of_several_answers_counts_by_its_share() {
        let mut t = PairedTable::default();
        t.add(1.0, 0.5);
        assert_eq!(t, table(0.5, 0.5, 0.0, 0.0));
        assert!((t.n() - 1.0).abs() < 1e-12);
    }
}
