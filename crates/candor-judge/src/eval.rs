//! Scoring a judge against gold labels: confusion matrix, per-class precision, recall and F1,
//! macro-F1, accuracy and Cohen's kappa, for compliance and for stance.

use std::marker::PhantomData;

use candor_core::{Compliance, Stance};
use serde::Serialize;

/// A three-way label a judge gives and gold data holds.
pub trait Class: Copy + Eq {
    const ALL: [Self; 3];
    fn name(self) -> &'static str;
}

impl Class for Compliance {
    const ALL: [Self; 3] = Compliance::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Class for Stance {
    const ALL: [Self; 3] = [Stance::Independent, Stance::Mixed, Stance::StateNarrative];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Counts of (gold, judged) pairs, rows the gold label, columns the judge's, in the order of
/// [`Class::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion<C: Class = Compliance> {
    pub matrix: [[u64; 3]; 3],
    #[serde(skip)]
    class: PhantomData<C>,
}

impl<C: Class> Default for Confusion<C> {
    fn default() -> Self {
        Confusion {
            matrix: [[0; 3]; 3],
            class: PhantomData,
        }
    }
}

fn index<C: Class>(c: C) -> usize {
    C::ALL
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
    /// Refused against everything else: what a refusal detector is scored on (compliance only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal_accuracy: Option<f64>,
    pub classes: Vec<ClassScore>,
}

impl<C: Class> Confusion<C> {
    pub fn add(&mut self, gold: C, judged: C) {
        self.matrix[index(gold)][index(judged)] += 1;
    }

    pub fn total(&self) -> u64 {
        self.matrix.iter().flatten().sum()
    }

    pub fn scores(&self) -> Scores {
        let n = self.total() as f64;
        let m = &self.matrix;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let classes: Vec<ClassScore> = C::ALL
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let tp = m[i][i] as f64;
                let predicted: f64 = (0..3).map(|r| m[r][i] as f64).sum();
                let actual: f64 = m[i].iter().sum::<u64>() as f64;
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, actual);
                ClassScore {
                    label: c.name(),
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
        // A class neither in the gold labels nor in the judge's has no F1 to average: a set
        // without refusals is not scored down for the refusals it lacks.
        let seen: Vec<f64> = (0..3)
            .filter(|&i| m[i].iter().sum::<u64>() + (0..3).map(|r| m[r][i]).sum::<u64>() > 0)
            .map(|i| classes[i].f1)
            .collect();
        Scores {
            items: n as u64,
            accuracy: observed,
            macro_f1: ratio(seen.iter().sum(), seen.len() as f64),
            kappa: if expected < 1.0 {
                (observed - expected) / (1.0 - expected)
            } else {
                0.0
            },
            refusal_accuracy: None,
            classes,
        }
    }
}

impl Confusion<Compliance> {
    /// [`Confusion::scores`] with refused-vs-rest accuracy.
    pub fn compliance_scores(&self) -> Scores {
        let m = &self.matrix;
        let r = index(Compliance::Refused);
        let refusal_right = m[r][r]
            + (0..3)
                .filter(|&i| i != r)
                .flat_map(|i| (0..3).filter(move |&j| j != r).map(move |j| (i, j)))
                .map(|(i, j)| m[i][j])
                .sum::<u64>();
        let total = self.total();
        Scores {
            refusal_accuracy: (total > 0).then(|| refusal_right as f64 / total as f64),
            ..self.scores()
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

/// A gold stance label, in candor's names (or with spaces or hyphens for the underscore).
pub fn gold_stance(raw: &str) -> Option<Stance> {
    raw.trim()
        .to_lowercase()
        .replace([' ', '-'], "_")
        .parse()
        .ok()
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
        let s = c.compliance_scores();
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
        assert!(close(s.refusal_accuracy.unwrap(), 130.0 / 150.0));
    }

    #[test]
    fn public_label_names_map_to_candor_classes() {
        assert_eq!(gold_label("COMPLETE"), Some(Candid));
        assert_eq!(gold_label("3_partial_refusal"), Some(Evasive));
        assert_eq!(gold_label("DENIAL"), Some(Refused));
        assert_eq!(gold_label("ERROR_API"), None);
    }

    #[test]
    fn stance_is_scored_like_compliance_without_a_refusal_figure() {
        use Stance::{Independent, StateNarrative};
        let mut c = Confusion::<Stance>::default();
        let mut add = |g, j, n| (0..n).for_each(|_| c.add(g, j));
        add(Independent, Independent, 8);
        add(Independent, StateNarrative, 2);
        add(StateNarrative, StateNarrative, 6);
        let s = c.scores();
        assert_eq!(s.items, 16);
        assert!((s.accuracy - 14.0 / 16.0).abs() < 1e-9);
        assert_eq!(s.refusal_accuracy, None);
        assert_eq!(s.classes[2].label, "state_narrative");
        // State narrative: precision 6/8, recall 6/6.
        assert!((s.classes[2].precision - 0.75).abs() < 1e-9 && s.classes[2].recall == 1.0);
        assert_eq!(gold_stance("State narrative"), Some(StateNarrative));
        assert_eq!(gold_stance("state-narrative"), Some(StateNarrative));
        assert_eq!(gold_stance("neutral"), None);
        // No gold "mixed" and none judged: macro-F1 averages the two classes seen.
        let f1 = |i: usize| s.classes[i].f1;
        assert!(
            (s.macro_f1 - (f1(0) + f1(2)) / 2.0).abs() < 1e-9,
            "{}",
            s.macro_f1
        );
    }
}
