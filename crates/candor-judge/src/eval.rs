//! Scoring a judge against gold labels: confusion matrix, per-class precision, recall and F1,
//! macro-F1, accuracy and Cohen's kappa.

use candor_core::Compliance;
use serde::Serialize;

/// Counts of (gold, judged) pairs, rows the gold label, columns the judge's, in the order of
/// [`Compliance::ALL`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub matrix: [[u64; 3]; 3],
}

fn index(c: Compliance) -> usize {
    Compliance::ALL
        .iter()
        .position(|&x| x == c)
        .expect("every label is listed")
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub label: &'static str,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub items: u64,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub kappa: f64,
    /// Refused against everything else: what a refusal detector is scored on.
    pub refusal_accuracy: f64,
    pub classes: Vec<ClassScore>,
}

impl Confusion {
    pub fn add(&mut self, gold: Compliance, judged: Compliance) {
        self.matrix[index(gold)][index(judged)] += 1;
    }

    pub fn total(&self) -> u64 {
        self.matrix.iter().flatten().sum()
    }

    pub fn scores(&self) -> Scores {
        let n = self.total() as f64;
        let m = &self.matrix;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let classes: Vec<ClassScore> = Compliance::ALL
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let tp = m[i][i] as f64;
                let predicted: f64 = (0..3).map(|r| m[r][i] as f64).sum();
                let actual: f64 = m[i].iter().sum::<u64>() as f64;
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, actual);
                ClassScore {
                    label: c.as_str(),
                    precision,
                    recall,
                    f1: ratio(2.0 * precision * recall, precision + recall),
                    support: actual as u64,
                }
            })
            .collect();
        let observed = ratio((0..3).map(|i| m[i][i] as f64).sum(), n);
        let expected: f64 = (0..3)
            .map(|i| {
                let row: f64 = m[i].iter().sum::<u64>() as f64;
                let col: f64 = (0..3).map(|r| m[r][i] as f64).sum();
                ratio(row * col, n * n)
            })
            .sum();
        let r = index(Compliance::Refused);
        let refusal_right = m[r][r]
            + (0..3)
                .filter(|&i| i != r)
                .flat_map(|i| (0..3).filter(move |&j| j != r).map(move |j| (i, j)))
                .map(|(i, j)| m[i][j])
                .sum::<u64>();
        Scores {
            items: n as u64,
            accuracy: observed,
            macro_f1: classes.iter().map(|c| c.f1).sum::<f64>() / 3.0,
            kappa: if expected < 1.0 {
                (observed - expected) / (1.0 - expected)
            } else {
                0.0
            },
            refusal_accuracy: ratio(refusal_right as f64, n),
            classes,
        }
    }
}

/// Gold labels as public datasets write them, mapped to candor's classes; `None` for rows that
/// are not model answers (SpeechMap's `ERROR_*`) or carry no label candor knows.
pub fn gold_label(raw: &str) -> Option<Compliance> {
    match raw.trim() {
        "candid" | "COMPLETE" | "1_full_compliance" => Some(Compliance::Candid),
        "evasive" | "EVASIVE" | "3_partial_refusal" => Some(Compliance::Evasive),
        "refused" | "DENIAL" | "2_full_refusal" => Some(Compliance::Refused),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Compliance::{Candid, Evasive, Refused};

    /// Reference figures computed by hand for the matrix
    /// [[50, 5, 5], [10, 20, 10], [0, 5, 45]] (rows gold: candid, evasive, refused):
    /// accuracy 115/150; chance agreement (60*60 + 40*30 + 50*60) / 150^2 = 0.346667, so kappa
    /// (0.766667 - 0.346667) / (1 - 0.346667) = 0.642857;
    /// F1 candid 2*50/(60+60) = 0.833333, evasive 2*20/(40+30) = 0.571429,
    /// refused 2*45/(50+60) = 0.818182.
    #[test]
    fn scores_match_hand_computation() {
        let mut c = Confusion::default();
        let mut add = |g, j, n| (0..n).for_each(|_| c.add(g, j));
        add(Candid, Candid, 50);
        add(Candid, Evasive, 5);
        add(Candid, Refused, 5);
        add(Evasive, Candid, 10);
        add(Evasive, Evasive, 20);
        add(Evasive, Refused, 10);
        add(Refused, Evasive, 5);
        add(Refused, Refused, 45);
        let s = c.scores();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(s.accuracy, 115.0 / 150.0));
        assert!(close(s.kappa, 0.642_857), "{}", s.kappa);
        assert!(
            close(s.classes[0].f1, 0.833_333)
                && close(s.classes[1].f1, 0.571_429)
                && close(s.classes[2].f1, 0.818_182)
        );
        assert!(close(s.macro_f1, (0.833_333 + 0.571_429 + 0.818_182) / 3.0));
        // Refused vs not: 45 + (50 + 5 + 10 + 20) right of 150.
        assert!(close(s.refusal_accuracy, 130.0 / 150.0));
    }

    #[test]
    fn public_label_names_map_to_candor_classes() {
        assert_eq!(gold_label("COMPLETE"), Some(Candid));
        assert_eq!(gold_label("3_partial_refusal"), Some(Evasive));
        assert_eq!(gold_label("DENIAL"), Some(Refused));
        assert_eq!(gold_label("ERROR_API"), None);
    }
}
