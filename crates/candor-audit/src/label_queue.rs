//! The label queue: which answer a labeller sees next (the dashboard's, and any other front
//! end's).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use candor_core::{Compliance, Outcome};
use candor_store::{for_each_page, Store, StoreError, READ_PAGE};

/// How the queue picks the next answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A fixed scramble of the run's answers.
    #[default]
    Random,
    /// The (language, topic) with the fewest labels first, so that every stratum gets labels.
    Stratified,
    /// Only answers to which two judges gave different compliance labels (or a panel split).
    Disagreement,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Random, Mode::Stratified, Mode::Disagreement];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Random => "random",
            Mode::Stratified => "stratified",
            Mode::Disagreement => "disagreement",
        }
    }

    pub fn parse(text: Option<&str>) -> Result<Mode, String> {
        match text.filter(|t| !t.is_empty()) {
            None => Ok(Mode::Random),
            Some(t) => Mode::ALL
                .into_iter()
                .find(|m| m.as_str() == t)
                .ok_or_else(|| format!("no queue '{t}': random, stratified or disagreement")),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mode::Random => "random",
            Mode::Stratified => "stratified by language and topic",
            Mode::Disagreement => "where judges disagree",
        }
    }
}

/// An answer that can be labelled, with its stratum.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: i64,
    pub lang: Arc<str>,
    pub topic: Arc<str>,
    pub disputed: bool,
}

/// The answers of a run a person can label (model answers, not failures), read a page at a
/// time; `disputed` is read only for the disagreement queue, from every judge of the run.
pub fn candidates(store: &dyn Store, run: i64, mode: Mode) -> Result<Vec<Candidate>, StoreError> {
    let judges = store.run_judges(run)?;
    let first = judges.first().cloned().unwrap_or_default();
    let mut strings = crate::figures::Strings::default();
    // Per answer, a bit for each compliance label some judge gave it.
    let mut labels_given: HashMap<i64, u8> = HashMap::new();
    let mut split = HashSet::new();
    let mut note = |id: i64, c: Option<Compliance>, rule: Option<&str>| {
        if let Some(c) = c {
            *labels_given.entry(id).or_default() |= 1 << c as u8;
        }
        // A panel whose majority overruled a dissent.
        if rule == Some("P2") {
            split.insert(id);
        }
    };
    let mut out = Vec::new();
    for_each_page(
        |after| store.judged_rows_after(run, &first, after, READ_PAGE),
        |r| r.response_id,
        |page| {
            for r in page {
                if !matches!(r.outcome, Outcome::Ok | Outcome::Truncated) {
                    continue;
                }
                if mode == Mode::Disagreement {
                    note(r.response_id, r.compliance, r.rule.as_deref());
                }
                out.push(Candidate {
                    id: r.response_id,
                    lang: strings.get(r.lang),
                    topic: strings.get(r.topic),
                    disputed: false,
                });
            }
            Ok(())
        },
    )?;
    if mode == Mode::Disagreement {
        for judge in judges.iter().skip(1) {
            for_each_page(
                |after| store.judged_rows_after(run, judge, after, READ_PAGE),
                |r| r.response_id,
                |page| {
                    for r in page {
                        note(r.response_id, r.compliance, r.rule.as_deref());
                    }
                    Ok(())
                },
            )?;
        }
        for c in &mut out {
            c.disputed = split.contains(&c.id)
                || labels_given.get(&c.id).is_some_and(|m| m.count_ones() > 1);
        }
    }
    Ok(out)
}

/// A fixed scramble of ids: the queue mixes targets and languages, and two labellers meet the
/// same answers, so that their agreement can be measured.
fn scramble(id: i64) -> i64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as i64)
}

/// The next answer for a labeller who has labelled `mine` (`anyone`: labelled by anyone), and
/// how many the queue still holds for them. Answers no one has labelled come first.
pub fn next(
    candidates: &[Candidate],
    mine: &HashSet<i64>,
    anyone: &HashSet<i64>,
    mode: Mode,
) -> (Option<i64>, usize) {
    let open: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !mine.contains(&c.id) && (mode != Mode::Disagreement || c.disputed))
        .collect();
    let first = |among: &mut dyn Iterator<Item = &&Candidate>| {
        among
            .min_by_key(|c| (anyone.contains(&c.id), scramble(c.id)))
            .map(|c| c.id)
    };
    let chosen = match mode {
        Mode::Random | Mode::Disagreement => first(&mut open.iter()),
        Mode::Stratified => {
            let mut labelled: BTreeMap<(&str, &str), usize> = BTreeMap::new();
            for c in candidates {
                *labelled.entry((&c.lang, &c.topic)).or_default() +=
                    usize::from(anyone.contains(&c.id));
            }
            let stratum = open
                .iter()
                .map(|c| (&*c.lang, &*c.topic))
                .min_by_key(|s| (labelled[s], *s));
            stratum.and_then(|s| first(&mut open.iter().filter(|c| (&*c.lang, &*c.topic) == s)))
        }
    };
    (chosen, open.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: i64, lang: &str, topic: &str, disputed: bool) -> Candidate {
        Candidate {
            id,
            lang: lang.into(),
            topic: topic.into(),
            disputed,
        }
    }

    #[test]
    fn the_stratified_queue_goes_to_the_stratum_with_fewest_labels() {
        let cs: Vec<Candidate> = (0..30)
            .map(|i| {
                let lang = if i % 3 == 0 { "zh-Hans" } else { "en" };
                let topic = if i % 2 == 0 { "taiwan" } else { "tibet" };
                candidate(i, lang, topic, false)
            })
            .collect();
        let mut anyone = HashSet::new();
        let mut mine = HashSet::new();
        let mut seen = BTreeMap::new();
        // Four strata, eight answers labelled one after another: two from each.
        for _ in 0..8 {
            let (id, _) = next(&cs, &mine, &anyone, Mode::Stratified);
            let c = &cs[id.unwrap() as usize];
            *seen.entry((c.lang.clone(), c.topic.clone())).or_insert(0) += 1;
            mine.insert(c.id);
            anyone.insert(c.id);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen.values().all(|&n| n == 2), "{seen:?}");
    }

    #[test]
    fn the_disagreement_queue_holds_only_disputed_answers_and_counts_them() {
        let cs = vec![
            candidate(1, "en", "t", false),
            candidate(2, "en", "t", true),
            candidate(3, "en", "t", true),
        ];
        let none = HashSet::new();
        let (id, left) = next(&cs, &none, &none, Mode::Disagreement);
        assert!(matches!(id, Some(2 | 3)));
        assert_eq!(left, 2);
        let mine = HashSet::from([2, 3]);
        assert_eq!(next(&cs, &mine, &mine, Mode::Disagreement), (None, 0));
        // The random queue still has the undisputed one.
        assert_eq!(next(&cs, &mine, &mine, Mode::Random), (Some(1), 1));
    }

    #[test]
    fn answers_someone_else_labelled_come_after_unlabelled_ones() {
        let cs: Vec<Candidate> = (0..5).map(|i| candidate(i, "en", "t", false)).collect();
        let anyone: HashSet<i64> = [0, 1, 2, 3].into();
        assert_eq!(
            next(&cs, &HashSet::new(), &anyone, Mode::Random),
            (Some(4), 5)
        );
    }

    #[test]
    fn a_mode_is_read_by_name_and_a_wrong_one_is_refused() {
        assert_eq!(Mode::parse(None), Ok(Mode::Random));
        assert_eq!(Mode::parse(Some("stratified")), Ok(Mode::Stratified));
        assert!(Mode::parse(Some("nope"))
            .unwrap_err()
            .contains("disagreement"));
    }
}
