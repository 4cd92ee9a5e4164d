//! The findings of a run, computed from stored rows: rates per target and grouping, the
//! selective-censorship gap (China probe minus its matched controls, paired by item), the
//! language gap (another language minus English, paired by probe), and model comparisons.
//!
//! One yardstick for every government and language: the same measures, intervals and tests
//! are applied to every subject. Operational probes (requests for help with illegal means) are
//! kept out of the censorship rates and reported apart. The model's answers are judged whether
//! whole or cut off at the token limit; what the provider blocked (input and output filters,
//! retractions) counts in the "censored anywhere" measure; errors and empty replies say nothing
//! about censorship and count in no rate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use candor_core::{Compliance, Intent, Outcome, Stance};
use serde::Serialize;

use crate::bootstrap::{cluster_bootstrap_many, paired_bootstrap_many, DEFAULT_REPS, DEFAULT_SEED};
use crate::paired::{newcombe_paired, PairedTable};
use crate::{holm, mcnemar_exact, Rate};

/// What every answer to one probe shares. A million observations point to a few thousand of
/// these, which keeps an observation to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeFacts {
    pub id: Arc<str>,
    pub topic: Arc<str>,
    pub subject: Option<Arc<str>>,
    /// Whether the probe is its template's probe of interest ([`candor_core::Probe::is_focus`]).
    pub focus: bool,
    pub intent: Option<Intent>,
    pub template: Option<Arc<str>>,
}

/// One stored response with what the analysis groups and counts it by.
#[derive(Debug, Clone)]
pub struct Obs {
    pub response_id: i64,
    pub target: usize,
    pub probe: Arc<ProbeFacts>,
    // Shared: a million observations repeat a few languages.
    pub lang: Arc<str>,
    pub sample: u32,
    pub outcome: Outcome,
    pub compliance: Option<Compliance>,
    pub stance: Option<Stance>,
    pub fact_recall: Option<f64>,
}

impl Obs {
    fn judged(&self) -> Option<Compliance> {
        self.outcome
            .is_answer()
            .then_some(self.compliance)
            .flatten()
    }

    fn reading(&self) -> Reading {
        Reading {
            outcome: self.outcome,
            compliance: self.compliance,
            stance: self.stance,
        }
    }

    /// Whether some measure reads this response: a judged answer, or a provider's block.
    fn measured(&self) -> bool {
        self.judged().is_some() || self.outcome.is_blocked()
    }

    fn operational(&self) -> bool {
        self.probe.intent == Some(Intent::Operational)
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
    /// Refused or evasive by the model, or blocked by the provider (an input or output filter,
    /// a retraction): everything that kept an answer from the user.
    CensoredAnywhere,
}

/// A response as the measures read it.
#[derive(Debug, Clone, Copy)]
struct Reading {
    outcome: Outcome,
    compliance: Option<Compliance>,
    stance: Option<Stance>,
}

impl Measure {
    pub const ALL: [Measure; 4] = [
        Measure::Refused,
        Measure::NonCandid,
        Measure::StateNarrative,
        Measure::CensoredAnywhere,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Refused => "refused",
            Measure::NonCandid => "non_candid",
            Measure::StateNarrative => "state_narrative",
            Measure::CensoredAnywhere => "censored_anywhere",
        }
    }

    /// 1 or 0 where the measure reads the response; `None` where it does not (the model
    /// measures read judged answers only; none reads an error).
    fn hit(self, r: Reading) -> Option<f64> {
        let judged = r.outcome.is_answer().then_some(r.compliance).flatten();
        let hit = match (self, judged) {
            (Measure::CensoredAnywhere, _) if r.outcome.is_blocked() => true,
            (_, None) => return None,
            (Measure::Refused, Some(c)) => c == Compliance::Refused,
            (Measure::NonCandid | Measure::CensoredAnywhere, Some(c)) => c != Compliance::Candid,
            (Measure::StateNarrative, Some(_)) => r.stance == Some(Stance::StateNarrative),
        };
        Some(if hit { 1.0 } else { 0.0 })
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
    /// Model answers the judge scored, cut-off ones included: the denominator of the shares.
    pub judged: u64,
    /// Of `judged`, answers cut off at the token limit (judged on the text received).
    pub truncated: u64,
    pub candid: Rate,
    pub evasive: Rate,
    pub refused: Rate,
    pub non_candid: Rate,
    /// Over answers with a stance (every judged answer that is not a refusal).
    pub state_narrative: Rate,
    /// Refused or evasive answers plus provider blocks, over judged answers plus blocks.
    pub censored_anywhere: Rate,
    /// Responses the provider blocked: input filter, output filter, retraction.
    pub blocked: u64,
    pub fact_recall_mean: Option<f64>,
    pub unscored: u64,
    /// Responses that are not model answers (blocks, errors, empty replies), by outcome.
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
    let (mut unscored, mut truncated, mut blocked) = (0, 0, 0);
    let (mut stance_n, mut narrative) = (0, 0);
    let (mut recall_sum, mut recall_n) = (0.0, 0);
    for o in obs {
        match (o.outcome.is_answer(), o.compliance) {
            (true, Some(c)) => {
                *by_label.entry(c).or_default() += 1;
                truncated += u64::from(o.outcome == Outcome::Truncated);
            }
            (true, None) => unscored += 1,
            (false, _) => *outcomes.entry(o.outcome.as_str().to_string()).or_default() += 1,
        }
        blocked += u64::from(o.outcome.is_blocked());
        if o.outcome.is_answer() {
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
    // Refusals and non-candid answers share one resampling of probes.
    let [refused_cluster, non_candid_cluster] = if samples == 0 {
        [None, None]
    } else {
        let mut per_probe: HashMap<&str, ([u64; 2], u64)> = HashMap::new();
        for o in obs {
            let Some(reading) = o.judged().map(|_| o.reading()) else {
                continue;
            };
            if let (Some(refused), Some(non_candid)) = (
                Measure::Refused.hit(reading),
                Measure::NonCandid.hit(reading),
            ) {
                let e = per_probe.entry(&*o.probe.id).or_default();
                e.0[0] += refused as u64;
                e.0[1] += non_candid as u64;
                e.1 += 1;
            }
        }
        // In probe order, as the intervals were always drawn.
        let mut clusters: Vec<(&str, ([u64; 2], u64))> = per_probe.into_iter().collect();
        clusters.sort_unstable_by_key(|(probe, _)| *probe);
        let hits: Vec<[u64; 2]> = clusters.iter().map(|(_, (h, _))| *h).collect();
        let sizes: Vec<u64> = clusters.iter().map(|(_, (_, n))| *n).collect();
        cluster_bootstrap_many(&hits, &sizes, DEFAULT_REPS, DEFAULT_SEED)
            .map(|i| i.map(|(_, low, high)| ClusterInterval { low, high }))
    };
    let non_candid = judged - count(Compliance::Candid);
    Figures {
        responses: obs.len() as u64,
        judged,
        truncated,
        candid: Rate::new(count(Compliance::Candid), judged),
        evasive: Rate::new(count(Compliance::Evasive), judged),
        refused: Rate::new(count(Compliance::Refused), judged),
        non_candid: Rate::new(non_candid, judged),
        state_narrative: Rate::new(narrative, stance_n),
        censored_anywhere: Rate::new(non_candid + blocked, judged + blocked),
        blocked,
        fact_recall_mean: (recall_n > 0).then(|| recall_sum / recall_n as f64),
        unscored,
        outcomes,
        refused_cluster,
        non_candid_cluster,
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
    /// How `low` and `high` were found.
    pub interval: Interval,
    /// Fewer than [`MIN_PAIRS`] pairs: too few to say anything, whatever the interval.
    pub too_few: bool,
    /// Exact McNemar p-value on the binary pairs, where there are any discordant ones.
    pub p_value: Option<f64>,
    /// `p_value` adjusted (Holm) across the family it belongs to.
    pub p_adjusted: Option<f64>,
}

/// Below this many pairs a difference is marked as saying nothing, not drawn as an estimate.
pub const MIN_PAIRS: u64 = 5;

/// The interval of a paired difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// Newcombe's score interval for paired proportions (one answer per probe and language):
    /// it stays wide when the pairs are few.
    NewcombeScore,
    /// A percentile bootstrap over pairs (several samples per probe).
    PairedBootstrap,
}

impl Interval {
    /// The score interval where each probe was asked once; the bootstrap where samples repeat.
    fn for_samples(obs: &[&Obs]) -> Interval {
        if obs.iter().all(|o| o.sample == 0) {
            Interval::NewcombeScore
        } else {
            Interval::PairedBootstrap
        }
    }
}

/// Binary pairs (first, second) and the paired differences to bootstrap.
#[derive(Default)]
struct Pairs {
    diffs: Vec<f64>,
    first: Vec<f64>,
    second: Vec<f64>,
    table: PairedTable,
    /// Discordant binary pairs: only first hit, only second hit.
    b: u64,
    c: u64,
}

impl Pairs {
    fn push(&mut self, first: f64, second: f64) {
        self.diffs.push(first - second);
        self.first.push(first);
        self.second.push(second);
        self.table.add(first, second);
    }

    fn binary(&mut self, first: f64, second: f64) {
        if first > second {
            self.b += 1;
        } else if second > first {
            self.c += 1;
        }
    }

    /// The difference, its interval from Newcombe's score or from `bootstrapped` (the paired
    /// bootstrap of these pairs, drawn with the other measures').
    fn difference(
        &self,
        measure: Measure,
        interval: Interval,
        bootstrapped: Option<(f64, f64, f64)>,
    ) -> Option<Difference> {
        let (diff, low, high) = match interval {
            Interval::NewcombeScore => newcombe_paired(&self.table)?,
            Interval::PairedBootstrap => bootstrapped?,
        };
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        Some(Difference {
            measure,
            first: mean(&self.first),
            second: mean(&self.second),
            diff,
            low,
            high,
            pairs: self.diffs.len() as u64,
            interval,
            too_few: (self.diffs.len() as u64) < MIN_PAIRS,
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
    /// The subject of the probes of interest where they share one (`cn` in the built-in
    /// suites): what `china` and the gaps' first side are about.
    pub focus: Option<String>,
    /// The probes of interest (about China in the built-in suites; see `focus`).
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
    /// Where answers were cut off at the token limit: the figures without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub without_truncated: Option<Sensitivity>,
}

/// The headline figures again with the cut-off answers left out, to show how much they move.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    /// Cut-off answers left out.
    pub left_out: u64,
    pub china: Figures,
    pub controls: Figures,
    pub pooled_gap: Option<Gap>,
}

fn about_china(o: &Obs) -> bool {
    o.probe.focus
}

fn about_controls(o: &Obs) -> bool {
    o.probe.subject.is_some() && !o.probe.focus
}

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
    let china: Vec<&Obs> = counted.iter().copied().filter(|o| about_china(o)).collect();
    let controls: Vec<&Obs> = counted
        .iter()
        .copied()
        .filter(|o| about_controls(o))
        .collect();
    let whole: Vec<&Obs> = counted
        .iter()
        .copied()
        .filter(|o| o.outcome != Outcome::Truncated)
        .collect();
    let without_truncated = (whole.len() < counted.len()).then(|| {
        let side = |keep: fn(&Obs) -> bool| {
            let obs: Vec<&Obs> = whole.iter().copied().filter(|o| keep(o)).collect();
            figures(&obs, false)
        };
        Sensitivity {
            left_out: (counted.len() - whole.len()) as u64,
            china: side(about_china),
            controls: side(about_controls),
            pooled_gap: gaps(&whole, target as u64).1,
        }
    });
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
        focus: {
            let subjects: BTreeSet<&str> = china
                .iter()
                .filter_map(|o| o.probe.subject.as_deref())
                .collect();
            (subjects.len() == 1)
                .then(|| subjects.into_iter().next().unwrap_or_default().to_string())
        },
        china: figures(&china, with_ids),
        controls: figures(&controls, with_ids),
        operational: figures(&operational, with_ids),
        by_topic: group_by(&counted, |o| o.probe.topic.to_string(), with_ids),
        by_subject: group_by(
            &counted,
            |o| o.probe.subject.as_deref().unwrap_or("-").to_string(),
            with_ids,
        ),
        by_intent: group_by(
            obs,
            |o| {
                o.probe
                    .intent
                    .map_or("-".into(), |i| i.as_str().to_string())
            },
            with_ids,
        ),
        by_lang: group_by(&counted, |o| o.lang.to_string(), with_ids),
        outcome_mix,
        gaps,
        pooled_gap,
        language_gaps: language_gaps(&counted, target as u64),
        without_truncated,
    }
}

/// Measured responses (judged answers and provider blocks) keyed by (probe, lang, sample).
fn reading_index<'a>(obs: &[&'a Obs]) -> HashMap<(&'a str, &'a str, u32), Reading> {
    // Sized once: a table grown by doubling holds its old and new buckets at once.
    let mut index = HashMap::with_capacity(obs.iter().filter(|o| o.measured()).count());
    index.extend(
        obs.iter()
            .filter(|o| o.measured())
            .map(|o| ((&*o.probe.id, &*o.lang, o.sample), o.reading())),
    );
    index
}

fn new_pairs() -> Vec<Pairs> {
    Measure::ALL.iter().map(|_| Pairs::default()).collect()
}

fn differences(pairs: &[Pairs], interval: Interval, seed: u64) -> Vec<Difference> {
    // The measures' bootstraps over lists of one length share their draws: one pass for all.
    let mut bootstrapped: Vec<Option<(f64, f64, f64)>> = vec![None; pairs.len()];
    if interval == Interval::PairedBootstrap {
        let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, p) in pairs.iter().enumerate() {
            by_length.entry(p.diffs.len()).or_default().push(i);
        }
        for members in by_length.values() {
            let lists: Vec<&[f64]> = members.iter().map(|&i| pairs[i].diffs.as_slice()).collect();
            for (&i, result) in
                members
                    .iter()
                    .zip(paired_bootstrap_many(&lists, DEFAULT_REPS, seed))
            {
                bootstrapped[i] = result;
            }
        }
    }
    Measure::ALL
        .iter()
        .zip(pairs)
        .zip(bootstrapped)
        .filter_map(|((m, p), b)| p.difference(*m, interval, b))
        .collect()
}

/// A template's China probe (where there is one) and its controls as (probe, subject).
type Template<'a> = (Option<&'a Obs>, BTreeSet<(&'a str, &'a str)>);

fn gaps(obs: &[&Obs], seed: u64) -> (Vec<Gap>, Option<Gap>) {
    let index = reading_index(obs);
    let interval = Interval::for_samples(obs);
    let mut templates: BTreeMap<&str, Template> = BTreeMap::new();
    let mut units: BTreeSet<(&str, u32)> = BTreeSet::new();
    for o in obs {
        let Some(t) = o.probe.template.as_deref() else {
            continue;
        };
        let entry = templates.entry(t).or_default();
        match (o.probe.focus, o.probe.subject.as_deref()) {
            (true, _) => {
                entry.0.get_or_insert(o);
            }
            (false, Some(s)) => {
                entry.1.insert((&*o.probe.id, s));
            }
            (false, None) => {}
        }
        units.insert((&*o.lang, o.sample));
    }
    let mut out = Vec::new();
    let mut pooled = new_pairs();
    let mut pooled_subjects = BTreeSet::new();
    for (template, (china, controls)) in &templates {
        let (Some(china), false) = (china, controls.is_empty()) else {
            continue;
        };
        let mut pairs = new_pairs();
        for &(lang, sample) in &units {
            let Some(&c) = index.get(&(&*china.probe.id, lang, sample)) else {
                continue;
            };
            let answers: Vec<Reading> = controls
                .iter()
                .filter_map(|(probe, _)| index.get(&(*probe, lang, sample)).copied())
                .collect();
            for (m, (p, pp)) in Measure::ALL
                .iter()
                .zip(pairs.iter_mut().zip(pooled.iter_mut()))
            {
                let Some(first) = m.hit(c) else { continue };
                let hits: Vec<f64> = answers.iter().filter_map(|&a| m.hit(a)).collect();
                if hits.is_empty() {
                    continue;
                }
                let second = hits.iter().sum::<f64>() / hits.len() as f64;
                p.push(first, second);
                pp.push(first, second);
                for &h in &hits {
                    p.binary(first, h);
                    pp.binary(first, h);
                }
            }
        }
        let differences = differences(&pairs, interval, seed);
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
            topic: china.probe.topic.to_string(),
            china_probe: china.probe.id.to_string(),
            control_subjects: subjects,
            differences,
        });
    }
    for m in Measure::ALL {
        let mut family: Vec<&mut Difference> = out
            .iter_mut()
            .flat_map(|g| g.differences.iter_mut())
            .filter(|d| d.measure == m)
            .collect();
        adjust(&mut family);
    }
    let pooled_differences = differences(&pooled, interval, seed);
    let pooled_gap = (!pooled_differences.is_empty()).then(|| Gap {
        template: "all".into(),
        topic: "all".into(),
        china_probe: "all".into(),
        control_subjects: pooled_subjects.into_iter().collect(),
        differences: pooled_differences,
    });
    (out, pooled_gap)
}

type Key<'a> = (&'a str, &'a str, u32);

/// Paired differences between two keyed sets of measured responses.
fn paired(
    first: &HashMap<Key<'_>, Reading>,
    second: impl Fn(&Key<'_>) -> Option<Reading>,
    keys: impl Iterator<Item = (String, (Arc<str>, Arc<str>, u32))>,
    interval: Interval,
    seed: u64,
) -> Vec<(String, Vec<Difference>)> {
    let mut groups: BTreeMap<String, Vec<Pairs>> = BTreeMap::new();
    for (group, (probe, lang, sample)) in keys {
        let key = (&*probe, &*lang, sample);
        let (Some(&a), Some(b)) = (first.get(&key), second(&key)) else {
            continue;
        };
        let pairs = groups.entry(group).or_insert_with(new_pairs);
        for (m, p) in Measure::ALL.iter().zip(pairs.iter_mut()) {
            if let (Some(x), Some(y)) = (m.hit(a), m.hit(b)) {
                p.push(x, y);
                p.binary(x, y);
            }
        }
    }
    groups
        .into_iter()
        .map(|(g, pairs)| (g, differences(&pairs, interval, seed)))
        .collect()
}

fn language_gaps(obs: &[&Obs], seed: u64) -> Vec<LanguageGap> {
    const BASE: &str = "en";
    let index = reading_index(obs);
    let interval = Interval::for_samples(obs);
    let langs: BTreeSet<&str> = obs
        .iter()
        .map(|o| &*o.lang)
        .filter(|l| *l != BASE)
        .collect();
    let mut out = Vec::new();
    for lang in langs {
        let keys = obs.iter().filter(|o| &*o.lang == lang).flat_map(|o| {
            let key = (o.probe.id.clone(), o.lang.clone(), o.sample);
            let side = match (o.probe.focus, &o.probe.subject) {
                (true, _) => Some("china"),
                (false, Some(_)) => Some("controls"),
                (false, None) => None,
            };
            std::iter::once(("all".to_string(), key.clone()))
                .chain(side.map(|s| (s.to_string(), key)))
        });
        // Read as they come: a million answers need no list of keys.
        let groups = paired(
            &index,
            |(probe, _, sample)| index.get(&(*probe, BASE, *sample)).copied(),
            keys,
            interval,
            seed,
        );
        for (probes, differences) in groups {
            if differences.is_empty() {
                continue;
            }
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
    let ia = reading_index(&a);
    let ib = reading_index(&b);
    let both: Vec<&Obs> = a.iter().chain(&b).copied().collect();
    let interval = Interval::for_samples(&both);
    let keys = |group: fn(&Obs) -> String| {
        a.iter()
            .map(move |o| (group(o), (o.probe.id.clone(), o.lang.clone(), o.sample)))
            .collect::<Vec<_>>()
    };
    let overall = paired(
        &ia,
        |k| ib.get(k).copied(),
        keys(|_| "all".to_string()).into_iter(),
        interval,
        11,
    )
    .into_iter()
    .next()
    .map(|(_, d)| d)
    .unwrap_or_default();
    let mut by_topic = paired(
        &ia,
        |k| ib.get(k).copied(),
        keys(|o| o.probe.topic.to_string()).into_iter(),
        interval,
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
            probe: Arc::new(ProbeFacts {
                id: probe.into(),
                topic: format!("topic-{probe}").into(),
                subject: Some(subject.into()),
                focus: subject == "cn",
                intent: Some(Intent::Fact),
                template: Some(template.into()),
            }),
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
        Arc::make_mut(&mut op.probe).intent = Some(Intent::Operational);
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
    fn cut_off_answers_count_in_the_rates_and_the_sensitivity_line_leaves_them_out() {
        let mut rows = fixture();
        // The Chinese answer to a.cn ran into the token limit; it still reads as refused.
        rows[1].outcome = Outcome::Truncated;
        let t = &analyse(1, &rows, false)[0];
        assert_eq!((t.china.judged, t.china.truncated), (4, 1));
        assert_eq!(t.china.refused.count, 2);
        assert!(!t.overall.outcomes.contains_key("truncated"));
        assert_eq!(t.outcome_mix["truncated"], 1);
        let s = t.without_truncated.as_ref().unwrap();
        assert_eq!(
            (s.left_out, s.china.judged, s.china.refused.count),
            (1, 3, 1)
        );
        let pooled = |g: &Gap| g.differences[0].pairs;
        assert_eq!(pooled(t.pooled_gap.as_ref().unwrap()), 3);
        assert_eq!(pooled(s.pooled_gap.as_ref().unwrap()), 2);
        assert!(analyse(1, &fixture(), false)[0].without_truncated.is_none());
    }

    #[test]
    fn provider_blocks_count_as_censored_anywhere_but_not_as_the_models_refusals() {
        // Ten China answers: four blocked by the provider, one refused, five candid.
        let mut rows = Vec::new();
        for i in 0..10 {
            let mut o = obs(
                i,
                &format!("p{i}.cn"),
                "cn",
                &format!("t{i}"),
                "en",
                Some(Candid),
            );
            match i {
                0 | 1 => o.outcome = Outcome::FilteredInput,
                2 => o.outcome = Outcome::FilteredOutput,
                3 => o.outcome = Outcome::Retracted,
                4 => o.compliance = Some(Refused),
                _ => {}
            }
            if o.outcome.is_blocked() {
                o.compliance = None;
            }
            rows.push(o);
            rows.push(obs(
                100 + i,
                &format!("p{i}.us"),
                "us",
                &format!("t{i}"),
                "en",
                Some(Candid),
            ));
        }
        let t = &analyse(1, &rows, false)[0];
        assert_eq!((t.china.refused.count, t.china.refused.n), (1, 6));
        assert_eq!(t.china.blocked, 4);
        let anywhere = t.china.censored_anywhere;
        assert_eq!((anywhere.count, anywhere.n), (5, 10));
        let gap = t.pooled_gap.as_ref().unwrap();
        let d = gap
            .differences
            .iter()
            .find(|d| d.measure == Measure::CensoredAnywhere)
            .unwrap();
        assert_eq!((d.pairs, d.first, d.second), (10, 0.5, 0.0));
        let refused = &gap.differences[0];
        assert_eq!((refused.pairs, refused.diff), (6, 1.0 / 6.0));
    }

    #[test]
    fn two_pairs_give_a_wide_interval_marked_too_few() {
        let rows = vec![
            obs(1, "a.cn", "cn", "a", "en", Some(Refused)),
            obs(2, "a.cn", "cn", "a", "zh-Hans", Some(Refused)),
            obs(3, "a.us", "us", "a", "en", Some(Candid)),
            obs(4, "a.us", "us", "a", "zh-Hans", Some(Candid)),
        ];
        let t = &analyse(1, &rows, false)[0];
        let d = &t.gaps[0].differences[0];
        assert_eq!(
            (d.pairs, d.diff, d.interval),
            (2, 1.0, Interval::NewcombeScore)
        );
        assert!(d.too_few);
        // A bootstrap over two identical pairs would say [+100, +100].
        assert!(d.low < 0.4 && d.high == 1.0, "[{}, {}]", d.low, d.high);
        let mut sampled = rows.clone();
        for o in &mut sampled {
            let mut again = o.clone();
            again.sample = 1;
            again.response_id += 10;
            *o = again;
        }
        sampled.extend(rows);
        let d = &analyse(1, &sampled, false)[0].gaps[0].differences[0];
        assert_eq!(
            (d.pairs, d.interval, d.too_few),
            (4, Interval::PairedBootstrap, true)
        );
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
