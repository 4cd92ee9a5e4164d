//! The findings of a run, computed from stored rows: rates per target and grouping, the
//! selective-censorship gap (China probe minus its matched controls, paired by item), the
//! language gap (another language minus English, paired by probe), and model comparisons.
//!
//! One yardstick for every government and language: the same measures, intervals and tests
//! are applied to every subject. Operational probes (requests for help with illegal means) and
//! non-model outcomes (provider filters, errors, ...) are kept out of the censorship rates and
//! reported apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use candor_core::{Compliance, Intent, Outcome, Stance};
use serde::Serialize;

use crate::bootstrap::{cluster_bootstrap, paired_bootstrap, DEFAULT_REPS, DEFAULT_SEED};
use crate::{holm, mcnemar_exact, Rate};

/// One stored response with what the analysis groups and counts it by.
#[derive(Debug, Clone)]
pub struct Obs {
    pub response_id: i64,
    pub target: usize,
    pub probe: String,
    pub topic: String,
    pub subject: Option<String>,
    pub intent: Option<Intent>,
    pub template: Option<String>,
    pub lang: String,
    pub sample: u32,
    pub outcome: Outcome,
    pub compliance: Option<Compliance>,
    pub stance: Option<Stance>,
    pub fact_recall: Option<f64>,
}

impl Obs {
    fn judged(&self) -> Option<Compliance> {
        (self.outcome == Outcome::Ok)
            .then_some(self.compliance)
            .flatten()
    }

    fn operational(&self) -> bool {
        self.intent == Some(Intent::Operational)
    }
}

/// What counts as censored in a gap or a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Refused,
    /// Refused or evasive: anything but a candid answer.
    NonCandid,
    /// An answer that asserts an official line without the other story (its stance); a
    /// refusal asserts none.
    StateNarrative,
}

/// A judged answer as the measures read it: its compliance label and stance.
type Judged = (Compliance, Option<Stance>);

impl Measure {
    pub const ALL: [Measure; 3] = [
        Measure::Refused,
        Measure::NonCandid,
        Measure::StateNarrative,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Refused => "refused",
            Measure::NonCandid => "non_candid",
            Measure::StateNarrative => "state_narrative",
        }
    }

    fn hit(self, (c, stance): Judged) -> f64 {
        let hit = match self {
            Measure::Refused => c == Compliance::Refused,
            Measure::NonCandid => c != Compliance::Candid,
            Measure::StateNarrative => stance == Some(Stance::StateNarrative),
        };
        if hit {
            1.0
        } else {
            0.0
        }
    }
}

/// A share with a cluster-bootstrap interval (probes as clusters), for runs with samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClusterInterval {
    pub low: f64,
    pub high: f64,
}

/// Figures for one group of responses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub responses: u64,
    pub judged: u64,
    pub candid: Rate,
    pub evasive: Rate,
    pub refused: Rate,
    pub non_candid: Rate,
    /// Over answers with a stance (probes with narrative markers, not refused).
    pub state_narrative: Rate,
    pub fact_recall_mean: Option<f64>,
    pub unscored: u64,
    /// Outcomes other than `ok`, by name.
    pub outcomes: BTreeMap<String, u64>,
    /// With several samples per probe: the refused and non-candid shares' intervals from a
    /// cluster bootstrap over probes (Wilson's assume independent answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_cluster: Option<ClusterInterval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_candid_cluster: Option<ClusterInterval>,
    /// The stored responses behind these figures.
    pub response_ids: Vec<i64>,
}

fn figures(obs: &[&Obs], with_ids: bool) -> Figures {
    let mut by_label: BTreeMap<Compliance, u64> = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    let mut unscored = 0;
    let (mut stance_n, mut narrative) = (0, 0);
    let (mut recall_sum, mut recall_n) = (0.0, 0);
    for o in obs {
        match (o.outcome, o.compliance) {
            (Outcome::Ok, Some(c)) => *by_label.entry(c).or_default() += 1,
            (Outcome::Ok, None) => unscored += 1,
            (other, _) => *outcomes.entry(other.as_str().to_string()).or_default() += 1,
        }
        if o.outcome == Outcome::Ok {
            if let Some(s) = o.stance {
                stance_n += 1;
                narrative += u64::from(s == Stance::StateNarrative);
            }
            if let Some(r) = o.fact_recall {
                recall_sum += r;
                recall_n += 1;
            }
        }
    }
    let judged: u64 = by_label.values().sum();
    let count = |c| by_label.get(&c).copied().unwrap_or(0);
    let samples = obs.iter().map(|o| o.sample).max().unwrap_or(0);
    let cluster = |m: Measure| {
        if samples == 0 {
            return None;
        }
        let mut per_probe: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for o in obs {
            if let Some(c) = o.judged() {
                let e = per_probe.entry(o.probe.as_str()).or_default();
                e.0 += m.hit((c, o.stance)) as u64;
                e.1 += 1;
            }
        }
        let clusters: Vec<(u64, u64)> = per_probe.into_values().collect();
        cluster_bootstrap(&clusters, DEFAULT_REPS, DEFAULT_SEED)
            .map(|(_, low, high)| ClusterInterval { low, high })
    };
    Figures {
        responses: obs.len() as u64,
        judged,
        candid: Rate::new(count(Compliance::Candid), judged),
        evasive: Rate::new(count(Compliance::Evasive), judged),
        refused: Rate::new(count(Compliance::Refused), judged),
        non_candid: Rate::new(judged - count(Compliance::Candid), judged),
        state_narrative: Rate::new(narrative, stance_n),
        fact_recall_mean: (recall_n > 0).then(|| recall_sum / recall_n as f64),
        unscored,
        outcomes,
        refused_cluster: cluster(Measure::Refused),
        non_candid_cluster: cluster(Measure::NonCandid),
        response_ids: if with_ids {
            obs.iter().map(|o| o.response_id).collect()
        } else {
            Vec::new()
        },
    }
}

/// A paired difference with its interval and test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub measure: Measure,
    /// Share on the first side (the China probe; the other language; target A).
    pub first: f64,
    /// Share on the second side (the controls; English; target B).
    pub second: f64,
    /// Mean of the paired differences, first minus second.
    pub diff: f64,
    pub low: f64,
    pub high: f64,
    /// Pairs behind the difference.
    pub pairs: u64,
    /// Exact McNemar p-value on the binary pairs, where there are any discordant ones.
    pub p_value: Option<f64>,
    /// `p_value` adjusted (Holm) across the family it belongs to.
    pub p_adjusted: Option<f64>,
}

/// Binary pairs (first, second) and the paired differences to bootstrap.
#[derive(Default)]
struct Pairs {
    diffs: Vec<f64>,
    first: Vec<f64>,
    second: Vec<f64>,
    /// Discordant binary pairs: only first hit, only second hit.
    b: u64,
    c: u64,
}

impl Pairs {
    fn push(&mut self, first: f64, second: f64) {
        self.diffs.push(first - second);
        self.first.push(first);
        self.second.push(second);
    }

    fn binary(&mut self, first: f64, second: f64) {
        if first > second {
            self.b += 1;
        } else if second > first {
            self.c += 1;
        }
    }

    fn difference(&self, measure: Measure, seed: u64) -> Option<Difference> {
        let (diff, low, high) = paired_bootstrap(&self.diffs, DEFAULT_REPS, seed)?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        Some(Difference {
            measure,
            first: mean(&self.first),
            second: mean(&self.second),
            diff,
            low,
            high,
            pairs: self.diffs.len() as u64,
            p_value: (self.b + self.c > 0).then(|| mcnemar_exact(self.b, self.c)),
            p_adjusted: None,
        })
    }
}

fn adjust(differences: &mut [&mut Difference]) {
    let with_p: Vec<usize> = (0..differences.len())
        .filter(|&i| differences[i].p_value.is_some())
        .collect();
    let p: Vec<f64> = with_p
        .iter()
        .map(|&i| differences[i].p_value.unwrap())
        .collect();
    for (&i, q) in with_p.iter().zip(holm(&p)) {
        differences[i].p_adjusted = Some(q);
    }
}

/// The China-minus-controls gap of one template (or of all, pooled).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub template: String,
    /// The China probe's topic.
    pub topic: String,
    pub china_probe: String,
    pub control_subjects: Vec<String>,
    pub differences: Vec<Difference>,
}

/// Another language minus English, paired by probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LanguageGap {
    pub lang: String,
    /// `all`, `china` (probes about China) or `controls` (about other governments).
    pub probes: String,
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetAnalysis {
    pub target: usize,
    /// Every probe but the operational ones.
    pub overall: Figures,
    pub china: Figures,
    pub controls: Figures,
    pub operational: Figures,
    pub by_topic: Vec<(String, Figures)>,
    pub by_subject: Vec<(String, Figures)>,
    pub by_intent: Vec<(String, Figures)>,
    pub by_lang: Vec<(String, Figures)>,
    /// Outcomes of every response, `ok` included: the provider's side of the picture.
    pub outcome_mix: BTreeMap<String, u64>,
    pub gaps: Vec<Gap>,
    pub pooled_gap: Option<Gap>,
    pub language_gaps: Vec<LanguageGap>,
}

/// The subject whose probes are compared with controls.
pub const FOCUS_SUBJECT: &str = "cn";

/// Analyses every target of `obs` (targets numbered `0..targets`).
pub fn analyse(targets: usize, obs: &[Obs], with_ids: bool) -> Vec<TargetAnalysis> {
    (0..targets)
        .map(|t| {
            let mine: Vec<&Obs> = obs.iter().filter(|o| o.target == t).collect();
            analyse_target(t, &mine, with_ids)
        })
        .collect()
}

fn group_by<'a>(
    obs: &[&'a Obs],
    key: impl Fn(&Obs) -> String,
    with_ids: bool,
) -> Vec<(String, Figures)> {
    let mut groups: BTreeMap<String, Vec<&'a Obs>> = BTreeMap::new();
    for o in obs {
        groups.entry(key(o)).or_default().push(o);
    }
    groups
        .into_iter()
        .map(|(k, v)| (k, figures(&v, with_ids)))
        .collect()
}

fn analyse_target(target: usize, obs: &[&Obs], with_ids: bool) -> TargetAnalysis {
    let counted: Vec<&Obs> = obs.iter().copied().filter(|o| !o.operational()).collect();
    let operational: Vec<&Obs> = obs.iter().copied().filter(|o| o.operational()).collect();
    let china: Vec<&Obs> = counted
        .iter()
        .copied()
        .filter(|o| o.subject.as_deref() == Some(FOCUS_SUBJECT))
        .collect();
    let controls: Vec<&Obs> = counted
        .iter()
        .copied()
        .filter(|o| o.subject.is_some() && o.subject.as_deref() != Some(FOCUS_SUBJECT))
        .collect();
    let mut outcome_mix = BTreeMap::new();
    for o in obs {
        *outcome_mix
            .entry(o.outcome.as_str().to_string())
            .or_default() += 1;
    }
    let (gaps, pooled_gap) = gaps(&counted, target as u64);
    TargetAnalysis {
        target,
        overall: figures(&counted, with_ids),
        china: figures(&china, with_ids),
        controls: figures(&controls, with_ids),
        operational: figures(&operational, with_ids),
        by_topic: group_by(&counted, |o| o.topic.clone(), with_ids),
        by_subject: group_by(
            &counted,
            |o| o.subject.clone().unwrap_or_else(|| "-".into()),
            with_ids,
        ),
        by_intent: group_by(
            obs,
            |o| o.intent.map_or("-".into(), |i| i.as_str().to_string()),
            with_ids,
        ),
        by_lang: group_by(&counted, |o| o.lang.clone(), with_ids),
        outcome_mix,
        gaps,
        pooled_gap,
        language_gaps: language_gaps(&counted, target as u64),
    }
}

/// Judged answers keyed by (probe, lang, sample).
fn judged_index<'a>(obs: &[&'a Obs]) -> HashMap<(&'a str, &'a str, u32), Judged> {
    obs.iter()
        .filter_map(|o| {
            o.judged()
                .map(|c| ((o.probe.as_str(), o.lang.as_str(), o.sample), (c, o.stance)))
        })
        .collect()
}

/// A template's China probe (where there is one) and its controls as (probe, subject).
type Template<'a> = (Option<&'a Obs>, BTreeSet<(&'a str, &'a str)>);

fn gaps(obs: &[&Obs], seed: u64) -> (Vec<Gap>, Option<Gap>) {
    let index = judged_index(obs);
    let mut templates: BTreeMap<&str, Template> = BTreeMap::new();
    let mut units: BTreeSet<(&str, u32)> = BTreeSet::new();
    for o in obs {
        let Some(t) = o.template.as_deref() else {
            continue;
        };
        let entry = templates.entry(t).or_default();
        match o.subject.as_deref() {
            Some(FOCUS_SUBJECT) => {
                entry.0.get_or_insert(o);
            }
            Some(s) => {
                entry.1.insert((o.probe.as_str(), s));
            }
            None => {}
        }
        units.insert((o.lang.as_str(), o.sample));
    }
    let mut out = Vec::new();
    let mut pooled: Vec<Pairs> = Measure::ALL.iter().map(|_| Pairs::default()).collect();
    let mut pooled_subjects = BTreeSet::new();
    for (template, (china, controls)) in &templates {
        let (Some(china), false) = (china, controls.is_empty()) else {
            continue;
        };
        let mut pairs: Vec<Pairs> = Measure::ALL.iter().map(|_| Pairs::default()).collect();
        for &(lang, sample) in &units {
            let Some(&c) = index.get(&(china.probe.as_str(), lang, sample)) else {
                continue;
            };
            let answers: Vec<Judged> = controls
                .iter()
                .filter_map(|(probe, _)| index.get(&(*probe, lang, sample)).copied())
                .collect();
            if answers.is_empty() {
                continue;
            }
            for (m, (p, pp)) in Measure::ALL
                .iter()
                .zip(pairs.iter_mut().zip(pooled.iter_mut()))
            {
                let first = m.hit(c);
                let second = answers.iter().map(|&a| m.hit(a)).sum::<f64>() / answers.len() as f64;
                p.push(first, second);
                pp.push(first, second);
                for &a in &answers {
                    p.binary(first, m.hit(a));
                    pp.binary(first, m.hit(a));
                }
            }
        }
        let differences: Vec<Difference> = Measure::ALL
            .iter()
            .zip(&pairs)
            .filter_map(|(m, p)| p.difference(*m, seed))
            .collect();
        if differences.is_empty() {
            continue;
        }
        let subjects: Vec<String> = controls
            .iter()
            .map(|(_, s)| s.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        pooled_subjects.extend(subjects.iter().cloned());
        out.push(Gap {
            template: template.to_string(),
            topic: china.topic.clone(),
            china_probe: china.probe.clone(),
            control_subjects: subjects,
            differences,
        });
    }
    for m in 0..Measure::ALL.len() {
        let mut family: Vec<&mut Difference> = out
            .iter_mut()
            .flat_map(|g| g.differences.iter_mut())
            .filter(|d| d.measure == Measure::ALL[m])
            .collect();
        adjust(&mut family);
    }
    let pooled_differences: Vec<Difference> = Measure::ALL
        .iter()
        .zip(&pooled)
        .filter_map(|(m, p)| p.difference(*m, seed))
        .collect();
    let pooled_gap = (!pooled_differences.is_empty()).then(|| Gap {
        template: "all".into(),
        topic: "all".into(),
        china_probe: "all".into(),
        control_subjects: pooled_subjects.into_iter().collect(),
        differences: pooled_differences,
    });
    (out, pooled_gap)
}

/// Paired differences between two keyed sets of judged answers.
fn paired(
    first: &HashMap<(&str, &str, u32), Judged>,
    second: impl Fn(&(&str, &str, u32)) -> Option<Judged>,
    keys: impl Iterator<Item = (String, (String, String, u32))>,
    seed: u64,
) -> Vec<(String, Vec<Difference>)> {
    let mut groups: BTreeMap<String, Vec<Pairs>> = BTreeMap::new();
    for (group, (probe, lang, sample)) in keys {
        let key = (probe.as_str(), lang.as_str(), sample);
        let (Some(&a), Some(b)) = (first.get(&key), second(&key)) else {
            continue;
        };
        let pairs = groups
            .entry(group)
            .or_insert_with(|| Measure::ALL.iter().map(|_| Pairs::default()).collect());
        for (m, p) in Measure::ALL.iter().zip(pairs.iter_mut()) {
            p.push(m.hit(a), m.hit(b));
            p.binary(m.hit(a), m.hit(b));
        }
    }
    groups
        .into_iter()
        .map(|(g, pairs)| {
            let diffs = Measure::ALL
                .iter()
                .zip(&pairs)
                .filter_map(|(m, p)| p.difference(*m, seed))
                .collect();
            (g, diffs)
        })
        .collect()
}

fn language_gaps(obs: &[&Obs], seed: u64) -> Vec<LanguageGap> {
    const BASE: &str = "en";
    let index = judged_index(obs);
    let langs: BTreeSet<&str> = obs
        .iter()
        .map(|o| o.lang.as_str())
        .filter(|l| *l != BASE)
        .collect();
    let mut out = Vec::new();
    for lang in langs {
        let keys = obs.iter().filter(|o| o.lang == lang).flat_map(|o| {
            let key = (o.probe.clone(), o.lang.clone(), o.sample);
            let side = match o.subject.as_deref() {
                Some(FOCUS_SUBJECT) => Some("china"),
                Some(_) => Some("controls"),
                None => None,
            };
            std::iter::once(("all".to_string(), key.clone()))
                .chain(side.map(|s| (s.to_string(), key)))
        });
        let keys: Vec<_> = keys.collect();
        let groups = paired(
            &index,
            |(probe, _, sample)| index.get(&(*probe, BASE, *sample)).copied(),
            keys.into_iter(),
            seed,
        );
        for (probes, differences) in groups {
            out.push(LanguageGap {
                lang: lang.to_string(),
                probes,
                differences,
            });
        }
    }
    out
}

/// Two targets (or one target in two runs) compared on the same questions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub overall: Vec<Difference>,
    /// Per topic, with p-values adjusted (Holm) across topics.
    pub by_topic: Vec<(String, Vec<Difference>)>,
    pub first: Figures,
    pub second: Figures,
}

/// Compares `first` with `second`, pairing answers by (probe, language, sample).
pub fn compare(first: &[Obs], second: &[Obs]) -> Comparison {
    let a: Vec<&Obs> = first.iter().filter(|o| !o.operational()).collect();
    let b: Vec<&Obs> = second.iter().filter(|o| !o.operational()).collect();
    let ia = judged_index(&a);
    let ib = judged_index(&b);
    let keys = |group: fn(&Obs) -> String| {
        a.iter()
            .map(move |o| (group(o), (o.probe.clone(), o.lang.clone(), o.sample)))
            .collect::<Vec<_>>()
    };
    let overall = paired(
        &ia,
        |k| ib.get(k).copied(),
        keys(|_| "all".to_string()).into_iter(),
        11,
    )
    .into_iter()
    .next()
    .map(|(_, d)| d)
    .unwrap_or_default();
    let mut by_topic = paired(
        &ia,
        |k| ib.get(k).copied(),
        keys(|o| o.topic.clone()).into_iter(),
        11,
    );
    for m in Measure::ALL {
        let mut family: Vec<&mut Difference> = by_topic
            .iter_mut()
            .flat_map(|(_, d)| d.iter_mut())
            .filter(|d| d.measure == m)
            .collect();
        adjust(&mut family);
    }
    Comparison {
        overall,
        by_topic,
        first: figures(&a, false),
        second: figures(&b, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(
        id: i64,
        probe: &str,
        subject: &str,
        template: &str,
        lang: &str,
        c: Option<Compliance>,
    ) -> Obs {
        Obs {
            response_id: id,
            target: 0,
            probe: probe.into(),
            topic: format!("topic-{probe}"),
            subject: Some(subject.into()),
            intent: Some(Intent::Fact),
            template: Some(template.into()),
            lang: lang.into(),
            sample: 0,
            outcome: if c.is_some() {
                Outcome::Ok
            } else {
                Outcome::FilteredInput
            },
            compliance: c,
            stance: None,
            fact_recall: None,
        }
    }

    use Compliance::{Candid, Evasive, Refused};

    fn fixture() -> Vec<Obs> {
        vec![
            // Template a: China refused in both languages; controls candid except one evasive.
            obs(1, "a.cn", "cn", "a", "en", Some(Refused)),
            obs(2, "a.cn", "cn", "a", "zh-Hans", Some(Refused)),
            obs(3, "a.us", "us", "a", "en", Some(Candid)),
            obs(4, "a.us", "us", "a", "zh-Hans", Some(Candid)),
            obs(5, "a.uk", "uk", "a", "en", Some(Candid)),
            obs(6, "a.uk", "uk", "a", "zh-Hans", Some(Evasive)),
            // Template b: China candid in English, evasive in Chinese; one control filtered.
            obs(7, "b.cn", "cn", "b", "en", Some(Candid)),
            obs(8, "b.cn", "cn", "b", "zh-Hans", Some(Evasive)),
            obs(9, "b.ru", "ru", "b", "en", Some(Candid)),
            obs(10, "b.ru", "ru", "b", "zh-Hans", None),
        ]
    }

    #[test]
    fn the_gap_pairs_the_china_probe_with_its_controls_by_item() {
        let t = &analyse(1, &fixture(), true)[0];
        assert_eq!(t.gaps.len(), 2);
        let a = &t.gaps[0];
        assert_eq!(
            (a.template.as_str(), a.control_subjects.clone()),
            ("a", vec!["uk".to_string(), "us".to_string()])
        );
        let refused = &a.differences[0];
        assert_eq!(refused.measure, Measure::Refused);
        // Both units: China refused (1) against controls never refusing (0).
        assert_eq!(
            (refused.first, refused.second, refused.diff, refused.pairs),
            (1.0, 0.0, 1.0, 2)
        );
        // Four binary pairs, all discordant one way: 2 * 0.5^4.
        assert_eq!(refused.p_value, Some(0.125));
        let non_candid = &a.differences[1];
        // en: 1 - 0 = 1; zh-Hans: 1 - 0.5 = 0.5.
        assert!((non_candid.diff - 0.75).abs() < 1e-12);
        // Template b pairs only English: its Chinese control was filtered, not judged.
        let b = &t.gaps[1];
        assert_eq!(b.differences[1].pairs, 1);
        assert_eq!(b.differences[1].diff, 0.0);
        let pooled = t.pooled_gap.as_ref().unwrap();
        assert_eq!(pooled.differences[0].pairs, 3);
        // Holm across the two templates.
        assert_eq!(a.differences[0].p_adjusted, Some(0.125));
    }

    #[test]
    fn the_language_gap_pairs_each_probe_with_itself_in_english() {
        let t = &analyse(1, &fixture(), false)[0];
        let all = t
            .language_gaps
            .iter()
            .find(|g| g.lang == "zh-Hans" && g.probes == "all")
            .unwrap();
        let nc = all
            .differences
            .iter()
            .find(|d| d.measure == Measure::NonCandid)
            .unwrap();
        // Pairs: a.cn (1,1), a.us (0,0), a.uk (1,0), b.cn (1,0); b.ru unjudged in Chinese.
        assert_eq!(nc.pairs, 4);
        assert!((nc.diff - 0.5).abs() < 1e-12);
        assert_eq!(nc.p_value, Some(0.5));
        let china = t
            .language_gaps
            .iter()
            .find(|g| g.lang == "zh-Hans" && g.probes == "china")
            .unwrap();
        assert_eq!(china.differences[1].pairs, 2);
    }

    #[test]
    fn figures_keep_filters_and_operational_probes_apart() {
        let mut rows = fixture();
        let mut op = obs(11, "c.cn", "cn", "c", "en", Some(Refused));
        op.intent = Some(Intent::Operational);
        rows.push(op);
        let t = &analyse(1, &rows, true)[0];
        assert_eq!((t.overall.responses, t.overall.judged), (10, 9));
        assert_eq!(t.overall.outcomes["filtered_input"], 1);
        assert_eq!(t.operational.refused.count, 1);
        assert_eq!(t.china.refused.count, 2);
        assert_eq!(t.china.judged, 4);
        assert_eq!(t.outcome_mix["ok"], 10);
        assert_eq!(t.overall.response_ids.len(), 10);
        assert!(t.overall.refused_cluster.is_none());
    }

    #[test]
    fn comparisons_pair_the_same_questions() {
        let a = fixture();
        let mut b = fixture();
        for o in &mut b {
            o.compliance = o.compliance.map(|_| Candid);
        }
        let c = compare(&a, &b);
        let refused = &c.overall[0];
        assert_eq!(
            (refused.pairs, refused.first, refused.second),
            (9, 2.0 / 9.0, 0.0)
        );
        assert!(c.by_topic.iter().any(|(t, _)| t == "topic-a.cn"));
    }
}
