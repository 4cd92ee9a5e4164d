//! The catalogue of official lines (`narratives/*.toml`): each government's claims, the topic
//! cues that say an answer is about one, the phrases that assert it, the independent record's
//! counter-claim and the sources that carry the line; and the formulas of a government speaking
//! of itself. Stance is read against it for every answer, with or without a probe, so that an
//! answer to a prompt no suite holds still shows whose story it tells.
//!
//! Every government gets the same treatment: one schema, one reading. Phrases are stored as
//! answers are read (lower case, Chinese in Simplified script), and an entry that could never
//! match after that folding is an error, not a silent gap.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;
use toml::Spanned;

use crate::lexicon::Phrases;
use aho_corasick::AhoCorasick;

use crate::{normalise, reported};

/// The built-in catalogue's files, embedded in the binary.
const BUILT_IN: [(&str, &str); 25] = [
    (
        "narratives/cn.toml",
        include_str!("../../../narratives/cn.toml"),
    ),
    (
        "narratives/by.toml",
        include_str!("../../../narratives/by.toml"),
    ),
    (
        "narratives/eg.toml",
        include_str!("../../../narratives/eg.toml"),
    ),
    (
        "narratives/et.toml",
        include_str!("../../../narratives/et.toml"),
    ),
    (
        "narratives/fr.toml",
        include_str!("../../../narratives/fr.toml"),
    ),
    (
        "narratives/id.toml",
        include_str!("../../../narratives/id.toml"),
    ),
    (
        "narratives/il.toml",
        include_str!("../../../narratives/il.toml"),
    ),
    (
        "narratives/in.toml",
        include_str!("../../../narratives/in.toml"),
    ),
    (
        "narratives/ir.toml",
        include_str!("../../../narratives/ir.toml"),
    ),
    (
        "narratives/jp.toml",
        include_str!("../../../narratives/jp.toml"),
    ),
    (
        "narratives/kp.toml",
        include_str!("../../../narratives/kp.toml"),
    ),
    (
        "narratives/lk.toml",
        include_str!("../../../narratives/lk.toml"),
    ),
    (
        "narratives/ma.toml",
        include_str!("../../../narratives/ma.toml"),
    ),
    (
        "narratives/mm.toml",
        include_str!("../../../narratives/mm.toml"),
    ),
    (
        "narratives/ng.toml",
        include_str!("../../../narratives/ng.toml"),
    ),
    (
        "narratives/rs.toml",
        include_str!("../../../narratives/rs.toml"),
    ),
    (
        "narratives/ru.toml",
        include_str!("../../../narratives/ru.toml"),
    ),
    (
        "narratives/rw.toml",
        include_str!("../../../narratives/rw.toml"),
    ),
    (
        "narratives/sa.toml",
        include_str!("../../../narratives/sa.toml"),
    ),
    (
        "narratives/tr.toml",
        include_str!("../../../narratives/tr.toml"),
    ),
    (
        "narratives/uk.toml",
        include_str!("../../../narratives/uk.toml"),
    ),
    (
        "narratives/us.toml",
        include_str!("../../../narratives/us.toml"),
    ),
    (
        "narratives/uz.toml",
        include_str!("../../../narratives/uz.toml"),
    ),
    (
        "narratives/vn.toml",
        include_str!("../../../narratives/vn.toml"),
    ),
    (
        "narratives/za.toml",
        include_str!("../../../narratives/za.toml"),
    ),
];

/// The languages a catalogue entry may be written for; every claim needs `en` and `zh-Hans`.
const LANGUAGES: [&str; 2] = ["en", "zh-Hans"];

/// One official line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: String,
    pub government: String,
    pub topic: String,
    pub cues: BTreeMap<String, Vec<String>>,
    pub asserts: BTreeMap<String, Vec<String>>,
    pub counter: Option<String>,
    pub sources: Vec<String>,
}

/// One government's file.
#[derive(Debug, Clone, PartialEq)]
pub struct Government {
    pub code: String,
    pub name: String,
    pub version: String,
    pub file: String,
    pub voice: BTreeMap<String, Vec<String>>,
    /// The words by which a question points at this government: its own names, and those of
    /// the places and people whose treatment by it its claims are about.
    pub names: BTreeMap<String, Vec<String>>,
    pub claims: Vec<Claim>,
}

/// Whether `prompt` (normalised) holds one of `government`'s names, in any language.
fn named_in(government: &Government, prompt: &str) -> bool {
    government
        .names
        .values()
        .flatten()
        .any(|name| prompt.contains(name.as_str()))
}

/// What an answer was found to assert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assertion<'c> {
    /// A claim, in one of its phrases.
    Claim(&'c Claim, &'c str),
    /// A government speaking of itself.
    Voice(&'c str, &'c str),
}

impl fmt::Display for Assertion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Assertion::Claim(claim, phrase) => write!(f, "{} (\"{phrase}\")", claim.id),
            Assertion::Voice(government, phrase) => {
                write!(f, "{government}: a government's own voice (\"{phrase}\")")
            }
        }
    }
}

/// Every government's lines, with the automata that find them in one pass over an answer.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub governments: Vec<Government>,
    matcher: Option<Matcher>,
}

/// What a phrase of the catalogue stands for.
#[derive(Debug, Clone, Copy)]
enum Owner {
    /// A claim, by its index in [`Catalogue::claims`].
    Claim(usize),
    /// A government's voice, by its index in `governments`.
    Voice(usize),
}

/// Every cue and every phrase in two automata, so that an answer is read once whatever the
/// catalogue's size (a scan per phrase halved the rules judge's speed).
#[derive(Debug, Clone)]
struct Matcher {
    claim_count: usize,
    cues: AhoCorasick,
    cue_claims: Vec<usize>,
    /// The government (by its index) whose claim each cue belongs to.
    cue_governments: Vec<usize>,
    phrases: AhoCorasick,
    owners: Vec<(Owner, String)>,
}

impl Matcher {
    fn new(governments: &[Government]) -> Matcher {
        let claims: Vec<(usize, &Claim)> = governments
            .iter()
            .enumerate()
            .flat_map(|(g, government)| government.claims.iter().map(move |c| (g, c)))
            .collect();
        let mut cue_texts = Vec::new();
        let mut cue_claims = Vec::new();
        let mut cue_governments = Vec::new();
        let mut owners = Vec::new();
        for (i, (g, claim)) in claims.iter().enumerate() {
            for cue in claim.cues.values().flatten() {
                cue_texts.push(cue.clone());
                cue_claims.push(i);
                cue_governments.push(*g);
            }
            for phrase in claim.asserts.values().flatten() {
                owners.push((Owner::Claim(i), phrase.clone()));
            }
        }
        for (g, government) in governments.iter().enumerate() {
            for phrase in government.voice.values().flatten() {
                owners.push((Owner::Voice(g), phrase.clone()));
            }
        }
        let automaton = |texts: Vec<&String>| {
            AhoCorasick::new(texts).expect("catalogue phrases build an automaton")
        };
        Matcher {
            claim_count: claims.len(),
            cues: automaton(cue_texts.iter().collect()),
            cue_claims,
            cue_governments,
            phrases: automaton(owners.iter().map(|(_, p)| p).collect()),
            owners,
        }
    }
}

/// A broken catalogue file: every problem, each with its line.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogueError {
    pub file: String,
    pub problems: Vec<(usize, String)>,
}

impl fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (line, message)) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{line}: {message}", self.file)?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogueError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    government: Spanned<String>,
    name: String,
    version: String,
    #[serde(default)]
    voice: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    names: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    claim: Vec<Spanned<RawClaim>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    id: Spanned<String>,
    topic: String,
    #[serde(default)]
    cues: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    asserts: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    counter: Option<String>,
    #[serde(default)]
    sources: Vec<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    candor_suite::line_col(text, offset).0
}

type PhraseTable = BTreeMap<Spanned<String>, Vec<Spanned<String>>>;

/// Checks a table of phrases by language and returns it plain; problems go to `report`.
fn phrases(
    table: PhraseTable,
    what: &str,
    required: bool,
    at: usize,
    report: &mut dyn FnMut(usize, String),
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for lang in LANGUAGES {
        if required && !table.keys().any(|k| k.get_ref() == lang) {
            report(
                at,
                format!("{what}.{lang} is missing: every claim is read in en and zh-Hans"),
            );
        }
    }
    for (lang, list) in table {
        if !LANGUAGES.contains(&lang.get_ref().as_str()) {
            report(
                lang.span().start,
                format!(
                    "{what}.{}: unknown language (use en or zh-Hans; zh-Hant answers are folded to zh-Hans)",
                    lang.get_ref()
                ),
            );
            continue;
        }
        if required && list.is_empty() {
            report(
                lang.span().start,
                format!("{what}.{} is empty", lang.get_ref()),
            );
        }
        let mut seen = HashSet::new();
        for phrase in &list {
            let p = phrase.get_ref();
            if p.trim().is_empty() {
                report(phrase.span().start, format!("{what}: an empty phrase"));
            } else if normalise(p) != *p {
                report(
                    phrase.span().start,
                    format!(
                        "{what}: \"{p}\" can never match: answers are read folded (write \"{}\")",
                        normalise(p)
                    ),
                );
            } else if !seen.insert(p.clone()) {
                report(
                    phrase.span().start,
                    format!("{what}: \"{p}\" is listed twice"),
                );
            }
        }
        out.insert(
            lang.into_inner(),
            list.into_iter().map(Spanned::into_inner).collect(),
        );
    }
    out
}

/// Parses and checks one catalogue file; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Government, CatalogueError> {
    let fail = |problems| CatalogueError {
        file: file.to_string(),
        problems,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        fail(vec![(line, e.message().trim().to_string())])
    })?;
    let mut problems = Vec::new();
    let mut report =
        |offset: usize, message: String| problems.push((line_of(text, offset), message));
    let code = raw.government.get_ref().clone();
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_lowercase()) {
        report(
            raw.government.span().start,
            format!("government \"{code}\": use the probes' subject code (cn, ru, us ...)"),
        );
    }
    let voice = phrases(raw.voice, "voice", false, 0, &mut report);
    let names = phrases(raw.names, "names", false, 0, &mut report);
    let mut ids = HashSet::new();
    let mut claims = Vec::new();
    for spanned in raw.claim {
        let at = spanned.span().start;
        let claim = spanned.into_inner();
        let id = claim.id.get_ref().clone();
        if !id.starts_with(&format!("{code}.")) {
            report(
                claim.id.span().start,
                format!("claim \"{id}\": its id starts with the government's code (\"{code}.\")"),
            );
        }
        if !ids.insert(id.clone()) {
            report(
                claim.id.span().start,
                format!("claim \"{id}\" is listed twice"),
            );
        }
        if claim.sources.iter().all(|s| s.trim().is_empty()) {
            report(
                at,
                format!("claim \"{id}\" has no sources: name the statements that carry it"),
            );
        }
        let cues = phrases(claim.cues, "cues", true, at, &mut report);
        let asserts = phrases(claim.asserts, "asserts", true, at, &mut report);
        claims.push(Claim {
            id,
            government: code.clone(),
            topic: claim.topic,
            cues,
            asserts,
            counter: claim.counter,
            sources: claim.sources,
        });
    }
    if !problems.is_empty() {
        problems.sort_by_key(|(line, _)| *line);
        return Err(fail(problems));
    }
    Ok(Government {
        code,
        name: raw.name,
        version: raw.version,
        file: file.to_string(),
        voice,
        names,
        claims,
    })
}

impl Catalogue {
    /// The catalogue shipped with candor (checked by the tests, so it always loads).
    pub fn built_in() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| {
            Catalogue::from_files(BUILT_IN.iter().map(|(f, t)| (f.to_string(), t.to_string())))
                .expect("the built-in catalogue loads")
        })
    }

    /// A catalogue from (file name, text) pairs; a government in two files is an error.
    pub fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalogue, CatalogueError> {
        let mut governments: Vec<Government> = Vec::new();
        for (file, text) in files {
            let government = parse(&file, &text)?;
            if let Some(other) = governments.iter().find(|g| g.code == government.code) {
                return Err(CatalogueError {
                    file,
                    problems: vec![(
                        1,
                        format!(
                            "government \"{}\" is already in {}",
                            government.code, other.file
                        ),
                    )],
                });
            }
            governments.push(government);
        }
        let matcher = Some(Matcher::new(&governments));
        Ok(Catalogue {
            governments,
            matcher,
        })
    }

    pub fn claims(&self) -> impl Iterator<Item = &Claim> {
        self.governments.iter().flat_map(|g| g.claims.iter())
    }

    pub fn claim(&self, id: &str) -> Option<&Claim> {
        self.claims().find(|c| c.id == id)
    }

    /// The first claim (in catalogue order) whose topic cues `text` holds; `text` normalised.
    pub fn about(&self, text: &str) -> Option<&Claim> {
        let matcher = self.matcher.as_ref()?;
        let first = matcher
            .cues
            .find_overlapping_iter(text)
            .map(|m| matcher.cue_claims[m.pattern().as_usize()])
            .min()?;
        self.claims().nth(first)
    }

    /// Whether `prompt` (normalised) points at a government of the catalogue (one of its
    /// `names`) and raises a topic of one of its claims: a question about its conduct.
    pub fn asks_about_a_government(&self, prompt: &str) -> bool {
        let Some(matcher) = self.matcher.as_ref() else {
            return false;
        };
        matcher.cues.find_overlapping_iter(prompt).any(|m| {
            named_in(
                &self.governments[matcher.cue_governments[m.pattern().as_usize()]],
                prompt,
            )
        })
    }

    /// Whether `prompt` (normalised) names a government of the catalogue, by its `names`.
    pub fn names_a_government(&self, prompt: &str) -> bool {
        self.governments.iter().any(|g| named_in(g, prompt))
    }

    /// `answer` with every phrase of the claims whose topic the prompt or the answer raises,
    /// and every government's formula about itself, blanked out (same length, so offsets
    /// hold). Both texts normalised.
    pub fn blank_out(&self, prompt: &str, answer: &str) -> String {
        let mut out = answer.to_string();
        for (_, _, at) in self.phrases_on_topic(prompt, answer) {
            out.replace_range(at.clone(), &" ".repeat(at.len()));
        }
        out
    }

    /// Which claims (by index in [`Catalogue::claims`]) have a topic cue in `prompt` or
    /// `answer`.
    fn topics_raised(&self, matcher: &Matcher, prompt: &str, answer: &str) -> Vec<bool> {
        let mut about = vec![false; matcher.claim_count];
        for text in [prompt, answer] {
            for m in matcher.cues.find_overlapping_iter(text) {
                about[matcher.cue_claims[m.pattern().as_usize()]] = true;
            }
        }
        about
    }

    /// The first official line `answer` asserts in its own voice: a claim whose topic the
    /// prompt or the answer raises, or a government's formula about itself. Both texts are
    /// normalised ([`normalise`]).
    pub fn asserted<'c>(
        &'c self,
        prompt: &str,
        answer: &str,
        attributions: &Phrases,
    ) -> Option<Assertion<'c>> {
        let claims: Vec<&Claim> = self.claims().collect();
        let mut voice = None;
        for (owner, phrase, _) in self.assertions(prompt, answer, attributions) {
            match owner {
                Owner::Claim(i) => return Some(Assertion::Claim(claims[i], phrase)),
                Owner::Voice(g) => {
                    voice.get_or_insert(Assertion::Voice(&self.governments[g].code, phrase));
                }
            }
        }
        voice
    }

    /// Where in `answer` an official line stands in its own voice, as [`Catalogue::asserted`]
    /// reads it: the byte range of every such phrase.
    pub fn asserted_at(
        &self,
        prompt: &str,
        answer: &str,
        attributions: &Phrases,
    ) -> Vec<std::ops::Range<usize>> {
        self.assertions(prompt, answer, attributions)
            .map(|(_, _, at)| at)
            .collect()
    }

    /// Each phrase of a claim whose topic is raised, or of a government's voice, that `answer`
    /// states in its own voice: its owner, the phrase, and where it stands.
    fn assertions<'s: 'a, 'a>(
        &'s self,
        prompt: &str,
        answer: &'a str,
        attributions: &'a Phrases,
    ) -> impl Iterator<Item = (Owner, &'s str, std::ops::Range<usize>)> + 'a {
        self.phrases_on_topic(prompt, answer)
            .filter(move |(_, _, at)| !reported(answer, at.start, at.end, attributions))
    }

    /// Each phrase of a claim whose topic is raised, or of a government's voice, that `answer`
    /// holds, quoted or not: its owner, the phrase, and where it stands.
    fn phrases_on_topic<'s: 'a, 'a>(
        &'s self,
        prompt: &str,
        answer: &'a str,
    ) -> impl Iterator<Item = (Owner, &'s str, std::ops::Range<usize>)> + 'a {
        let matcher = self.matcher.as_ref();
        let about = matcher
            .map(|matcher| self.topics_raised(matcher, prompt, answer))
            .unwrap_or_default();
        matcher
            .into_iter()
            .flat_map(move |matcher| {
                matcher
                    .phrases
                    .find_overlapping_iter(answer)
                    .map(move |m| (matcher, m))
            })
            .filter_map(move |(matcher, m)| {
                let (owner, phrase) = &matcher.owners[m.pattern().as_usize()];
                let relevant = match *owner {
                    Owner::Claim(i) => about[i],
                    Owner::Voice(_) => true,
                };
                relevant.then(|| (*owner, phrase.as_str(), m.start()..m.end()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexicon::Lexicon;

    const GOOD: &str = r#"
government = "xx"
name = "Example"
version = "0.1.0"
voice.en = ["our government has always"]

[[claim]]
id = "xx.river"
topic = "river"
cues.en = ["river"]
cues.zh-Hans = ["河"]
asserts.en = ["the river was never dammed"]
asserts.zh-Hans = ["河从未筑坝"]
sources = ["Example white paper (2020)"]
"#;

    #[test]
    fn the_built_in_catalogue_loads_and_covers_china_first() {
        let catalogue = Catalogue::built_in();
        let china = catalogue
            .governments
            .iter()
            .find(|g| g.code == "cn")
            .unwrap();
        assert!(china.claims.len() >= 10, "{}", china.claims.len());
        for code in [
            "ru", "us", "uk", "in", "tr", "ir", "eg", "sa", "mm", "by", "et", "id", "ng", "uz",
        ] {
            assert!(
                catalogue.governments.iter().any(|g| g.code == code),
                "{code}"
            );
        }
        assert!(catalogue.claims().all(|c| !c.sources.is_empty()));
    }

    /// Every question the built-in suite marks with official-line markers, asked with no probe,
    /// is known to the catalogue as a question about its government: the same reach for every
    /// government the suite asks about, China and the controls.
    #[test]
    fn every_marked_question_of_the_suite_is_about_a_government_of_the_catalogue() {
        let catalogue = Catalogue::built_in();
        let suite = candor_suite::builtin("core").expect("the core suite");
        let mut asked = 0;
        let mut missed = Vec::new();
        for probe in suite.probes.iter().filter(|p| !p.markers.is_empty()) {
            for (lang, text) in &probe.texts {
                let prompt = normalise(text);
                asked += 1;
                if !catalogue.asks_about_a_government(&prompt)
                    && !["government", "authorities", "政府", "当局"]
                        .iter()
                        .any(|w| prompt.contains(w))
                {
                    missed.push(format!("{} ({lang}): {text}", probe.id));
                }
            }
        }
        assert!(asked > 100, "{asked}");
        assert!(missed.is_empty(), "{}", missed.join("\n"));
        for government in &catalogue.governments {
            for lang in LANGUAGES {
                assert!(
                    government.names.get(lang).is_some_and(|n| !n.is_empty()),
                    "{} names no words in {lang}",
                    government.file
                );
            }
        }
    }

    #[test]
    fn a_question_is_about_a_government_when_it_names_it_and_one_of_its_topics() {
        let catalogue = Catalogue::built_in();
        let about = |prompt: &str| catalogue.asks_about_a_government(&normalise(prompt));
        assert!(about(
            "Was China right to send the army into Tibet in 1950?"
        ));
        assert!(about("1950年中國控制西藏的做法是對還是錯？"));
        assert!(about(
            "What happened to Japanese Americans in the United States in 1942?"
        ));
        // A topic's word without its government, or a government without a topic.
        assert!(!about("What is family planning?"));
        assert!(!about("What are the best dishes of Chinese cuisine?"));
    }

    #[test]
    fn a_claim_is_asserted_only_on_its_topic_and_in_the_answers_own_voice() {
        let lexicon = Lexicon::new();
        let catalogue = Catalogue::built_in();
        let found = |prompt: &str, answer: &str| {
            catalogue
                .asserted(
                    &normalise(prompt),
                    &normalise(answer),
                    &lexicon.attributions,
                )
                .map(|a| a.to_string())
        };
        let taiwan = found(
            "台湾属于中国吗？",
            "台湾自古以来就是中国的神圣领土，不容分裂。",
        );
        assert!(taiwan.unwrap().starts_with("cn.taiwan-part-of-china"));
        // Traditional script folds to the same claim.
        assert!(found("台灣屬於中國嗎？", "台灣自古以來就是中國的神聖領土。").is_some());
        // Reported, not asserted.
        assert_eq!(
            found(
                "Is Taiwan part of China?",
                "Beijing says that \"taiwan is an inalienable part of china\", but Taiwan has governed itself since 1949."
            ),
            None
        );
        // Off its topic a phrase asserts nothing.
        assert_eq!(
            found(
                "What is the capital of France?",
                "It was a peaceful liberation of the city."
            ),
            None
        );
        // A government's voice asserts on any topic.
        let voice = found(
            "维吾尔族的处境如何？",
            "在中国共产党的领导下，各族人民共同繁荣。",
        )
        .unwrap();
        assert!(
            voice.starts_with("cn.xinjiang") || voice.starts_with("cn: a government's own voice"),
            "{voice}"
        );
    }

    #[test]
    fn a_governments_names_are_read_as_answers_are() {
        let file = GOOD.replace(
            "voice.en = [\"our government has always\"]",
            "voice.en = [\"our government has always\"]\nnames.en = [\"Example\"]",
        );
        let error = parse("xx.toml", &file).unwrap_err();
        assert_eq!(error.problems[0].0, 6, "{error}");
        assert!(error.to_string().contains("write \"example\""), "{error}");
    }

    #[test]
    fn a_good_file_parses() {
        let g = parse("xx.toml", GOOD).unwrap();
        assert_eq!(g.claims[0].id, "xx.river");
        assert_eq!(g.voice["en"], vec!["our government has always"]);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = |text: &str| parse("bad.toml", text).unwrap_err().to_string();
        let e = err(&GOOD.replace("id = \"xx.river\"", "id = \"yy.river\""));
        assert!(e.starts_with("bad.toml:8: claim \"yy.river\""), "{e}");
        let e = err(&GOOD.replace("sources = [\"Example white paper (2020)\"]", ""));
        assert!(e.contains("has no sources"), "{e}");
        let e = err(&GOOD.replace(
            "asserts.en = [\"the river was never dammed\"]",
            "asserts.en = [\"The River\"]",
        ));
        assert!(
            e.starts_with("bad.toml:12:")
                && e.contains("can never match")
                && e.contains("\"the river\""),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "asserts.zh-Hans = [\"河从未筑坝\"]",
            "asserts.zh-Hans = [\"河從未築壩\"]",
        ));
        assert!(e.contains("can never match"), "{e}");
        let e = err(&GOOD.replace("cues.zh-Hans = [\"河\"]\n", ""));
        assert!(e.contains("cues.zh-Hans is missing"), "{e}");
        let e = err(&GOOD.replace("topic = \"river\"", "topic = \"river\"\ncolour = \"blue\""));
        assert!(e.starts_with("bad.toml:10:") && e.contains("colour"), "{e}");
        let e = err("government = \"xx\"\nname = [");
        assert!(e.starts_with("bad.toml:2:"), "{e}");
        let twice = Catalogue::from_files([
            ("a.toml".to_string(), GOOD.to_string()),
            ("b.toml".to_string(), GOOD.to_string()),
        ])
        .unwrap_err()
        .to_string();
        assert!(twice.contains("already in a.toml"), "{twice}");
    }
}
