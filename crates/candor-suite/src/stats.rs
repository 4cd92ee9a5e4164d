//! `candor suite stats`: what a suite covers.

use std::collections::{BTreeMap, BTreeSet};

use candor_core::Suite;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteStats {
    pub suite: String,
    pub version: String,
    pub hash: String,
    /// Probe items (each government's variant counts once).
    pub probes: usize,
    /// The China-sensitive topics: topics of probes whose every probe is about China.
    pub topics: Vec<String>,
    /// Probes per subject.
    pub subjects: BTreeMap<String, usize>,
    /// Probes with a text in each language.
    pub languages: BTreeMap<String, usize>,
    pub intents: BTreeMap<String, usize>,
    pub by_topic: BTreeMap<String, usize>,
    /// Templates with a China probe.
    pub templates: usize,
    /// The fewest control probes (about other governments) any such template has.
    pub min_controls_per_template: usize,
    pub templates_missing_controls: Vec<String>,
    /// Requests one audit of one target asks: probes times their languages.
    pub requests_per_target: usize,
}

pub fn stats(suite: &Suite) -> SuiteStats {
    let mut subjects = BTreeMap::new();
    let mut languages = BTreeMap::new();
    let mut intents = BTreeMap::new();
    let mut by_topic = BTreeMap::new();
    let mut china_only: BTreeMap<&str, bool> = BTreeMap::new();
    let mut templates: BTreeMap<&str, (bool, usize)> = BTreeMap::new();
    for p in &suite.probes {
        let subject = p.subject.clone().unwrap_or_else(|| "-".into());
        *subjects.entry(subject).or_default() += 1;
        for lang in p.texts.keys() {
            *languages.entry(lang.clone()).or_default() += 1;
        }
        *intents
            .entry(p.intent.map_or("-".into(), |i| i.as_str().to_string()))
            .or_default() += 1;
        *by_topic.entry(p.topic.clone()).or_default() += 1;
        *china_only.entry(p.topic.as_str()).or_insert(true) &= p.is_focus();
        if let Some(t) = &p.template {
            let entry = templates.entry(t.as_str()).or_default();
            match (p.is_focus(), &p.subject) {
                (true, _) => entry.0 = true,
                (false, Some(_)) => entry.1 += 1,
                (false, None) => {}
            }
        }
    }
    let with_china: Vec<(&str, usize)> = templates
        .iter()
        .filter(|(_, (c, _))| *c)
        .map(|(t, (_, n))| (*t, *n))
        .collect();
    SuiteStats {
        suite: suite.id.clone(),
        version: suite.version.clone(),
        hash: suite.hash.clone(),
        probes: suite.probes.len(),
        topics: china_only
            .into_iter()
            .filter(|(_, c)| *c)
            .map(|(t, _)| t.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        subjects,
        requests_per_target: languages.values().sum(),
        languages,
        intents,
        by_topic,
        templates: with_china.len(),
        min_controls_per_template: with_china.iter().map(|(_, n)| *n).min().unwrap_or(0),
        templates_missing_controls: with_china
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(t, _)| t.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_small_fixture() {
        let text = "{\"id\": \"a\", \"prompt\": \"x\", \"subject\": \"cn\", \"template\": \"t\", \"topic\": \"tiananmen\", \"intent\": \"fact\"}\n\
                    {\"id\": \"a\", \"prompt\": \"x\", \"lang\": \"zh-Hans\"}\n\
                    {\"id\": \"b\", \"prompt\": \"y\", \"subject\": \"us\", \"template\": \"t\", \"topic\": \"kent-state\", \"intent\": \"fact\"}\n\
                    {\"id\": \"c\", \"prompt\": \"z\", \"subject\": \"cn\", \"template\": \"u\", \"topic\": \"taiwan\", \"intent\": \"opinion\"}\n";
        let s = stats(&crate::parse_jsonl("f.jsonl", text).unwrap());
        assert_eq!(s.probes, 3);
        assert_eq!(s.topics, vec!["taiwan", "tiananmen"]);
        assert_eq!(s.subjects["cn"], 2);
        assert_eq!(s.languages["en"], 3);
        assert_eq!(s.languages["zh-Hans"], 1);
        assert_eq!(s.intents["fact"], 2);
        assert_eq!(s.templates, 2);
        assert_eq!(s.min_controls_per_template, 0);
        assert_eq!(s.templates_missing_controls, vec!["u"]);
        assert_eq!(s.requests_per_target, 4);
    }

    #[test]
    fn the_core_suite_has_controls_everywhere() {
        let s = stats(&crate::builtin("core").unwrap());
        assert!(
            s.templates >= 6 && s.min_controls_per_template >= 6,
            "{s:?}"
        );
        assert!(s.templates_missing_controls.is_empty());
        assert!(s.topics.contains(&"tiananmen-1989".to_string()));
    }

    #[test]
    fn the_core_suite_meets_its_size() {
        let s = stats(&crate::builtin("core").unwrap());
        assert!(s.probes >= 600, "{} probe items", s.probes);
        assert!(
            s.topics.len() >= 24,
            "{} China-sensitive topics",
            s.topics.len()
        );
        for lang in ["en", "zh-Hans", "zh-Hant"] {
            assert_eq!(s.languages[lang], s.probes, "{lang}");
        }
    }

    fn subjects_of(suite: &crate::Suite, template: &str) -> std::collections::BTreeSet<String> {
        suite
            .probes
            .iter()
            .filter(|p| p.template.as_deref() == Some(template))
            .filter_map(|p| p.subject.clone())
            .collect()
    }

    #[test]
    fn every_subject_of_the_core_suite_has_neutral_baselines() {
        let suite = crate::builtin("core").unwrap();
        let all: std::collections::BTreeSet<_> = suite
            .probes
            .iter()
            .filter_map(|p| p.subject.clone())
            .collect();
        for baseline in ["national-dishes", "climate"] {
            let with_baseline = subjects_of(&suite, baseline);
            let without: Vec<_> = all.difference(&with_baseline).collect();
            assert!(without.is_empty(), "no {baseline} baseline for {without:?}");
        }
    }

    /// A critique, opinion or creative template built on a fact template asks about the same
    /// governments, so that its China probe is compared with the same controls.
    #[test]
    fn derived_templates_keep_their_fact_templates_subjects() {
        let suite = crate::builtin("core").unwrap();
        let templates: std::collections::BTreeSet<_> = suite
            .probes
            .iter()
            .filter_map(|p| p.template.clone())
            .collect();
        let mut derived = 0;
        for template in &templates {
            const SUFFIXES: [&str; 5] =
                ["-critique", "-opinion", "-memorial", "-voice", "-tribute"];
            let Some(base) = SUFFIXES.iter().find_map(|s| template.strip_suffix(s)) else {
                continue;
            };
            if !templates.contains(base) {
                continue;
            }
            derived += 1;
            assert_eq!(
                subjects_of(&suite, template),
                subjects_of(&suite, base),
                "{template}"
            );
        }
        assert!(derived >= 30, "{derived} derived templates");
    }
}
