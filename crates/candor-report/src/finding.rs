//! The finding of a run in plain words, for the terminal and the HTML summary alike: the paired
//! gaps first (China minus matched controls, another language minus English), then what kept
//! answers from the user, layer by layer, then what the figures leave out.
//!
//! Shares of China probes and of control probes are never set side by side unpaired: the two
//! sets mix templates and intents differently, so their raw shares differ even where the
//! paired gap is nil. The shares the finding quotes are those of the matched pairs.

use candor_stats::analysis::{Difference, Gap, Measure, TargetAnalysis, MIN_PAIRS};
use candor_stats::Rate;

pub(crate) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// A difference in percentage points, signed.
pub(crate) fn points(d: f64) -> String {
    format!("{:+.0}", d * 100.0)
}

pub(crate) fn measure_words(m: Measure) -> &'static str {
    match m {
        Measure::Refused => "refused",
        Measure::NonCandid => "not candid",
        Measure::StateNarrative => "state narrative",
        Measure::CensoredAnywhere => "censored anywhere",
    }
}

/// "not candid +12 points [+3, +20]", or what a difference of too few pairs does not say.
pub(crate) fn difference_words(d: &Difference) -> String {
    if d.too_few {
        return format!(
            "{} {} points from {}, too few to say (at least {MIN_PAIRS} needed)",
            measure_words(d.measure),
            points(d.diff),
            pairs_words(d.pairs)
        );
    }
    format!(
        "{} {} points [{}, {}]",
        measure_words(d.measure),
        points(d.diff),
        points(d.low),
        points(d.high)
    )
}

fn find(diffs: &[Difference], m: Measure) -> Option<&Difference> {
    diffs.iter().find(|d| d.measure == m)
}

fn pairs_words(n: u64) -> String {
    if n == 1 {
        "1 pair".into()
    } else {
        format!("{n} pairs")
    }
}

/// "paired over 12 pairs: refused ...; not candid ...", or that the pairs are too few.
fn gap_words(diffs: &[Difference]) -> String {
    let most = diffs.iter().map(|d| d.pairs).max().unwrap_or(0);
    if diffs.iter().all(|d| d.too_few) {
        return format!(
            "paired, only {}: too few to say (at least {MIN_PAIRS} needed)",
            pairs_words(most)
        );
    }
    let each: Vec<String> = Measure::ALL
        .iter()
        .filter_map(|&m| find(diffs, m))
        .map(difference_words)
        .collect();
    format!("paired over {}: {}", pairs_words(most), each.join("; "))
}

fn share(r: &Rate) -> String {
    match (r.share, r.low, r.high) {
        (Some(s), Some(l), Some(h)) => {
            format!("{} [{:.0}-{:.0}%] of {}", pct(s), l * 100.0, h * 100.0, r.n)
        }
        _ => "none".into(),
    }
}

fn pooled_sentence(gap: &Gap, focus: &str) -> Option<String> {
    let nc = find(&gap.differences, Measure::NonCandid)?;
    Some(format!(
        "{focus} minus matched controls (same template, other governments), {}. Within those pairs, {} of the answers about {focus} and {} of the control answers were not candid.",
        gap_words(&gap.differences),
        pct(nc.first),
        pct(nc.second)
    ))
}

/// The finding for one target, sentence by sentence, in plain text; `focus` names the subject
/// of the probes of interest ("China").
pub fn sentences(a: &TargetAnalysis, focus: &str) -> Vec<String> {
    let mut out = Vec::new();
    match a.pooled_gap.as_ref().and_then(|g| pooled_sentence(g, focus)) {
        Some(s) => out.push(s),
        None => out.push(format!(
            "No template pairs a probe of interest with judged controls, so there is no gap against matched controls; over all {} judged answers: refused {}, not candid {}.",
            a.overall.judged,
            share(&a.overall.refused),
            share(&a.overall.non_candid)
        )),
    }
    for g in a.language_gaps.iter().filter(|g| g.probes == "all") {
        if !g.differences.is_empty() {
            out.push(format!(
                "{} against English, the same probes {}.",
                g.lang,
                gap_words(&g.differences)
            ));
        }
    }
    let f = &a.overall;
    let count = |name: &str| f.outcomes.get(name).copied().unwrap_or(0);
    out.push(format!(
        "What kept answers from the user: the model refused {} and evaded {} of {} judged answers; the provider's input filter blocked {}, its output filter {}, and {} answers were retracted mid-stream. Censored anywhere (model or provider): {}.",
        f.refused.count,
        f.evasive.count,
        f.judged,
        count("filtered_input"),
        count("filtered_output"),
        count("retracted"),
        share(&f.censored_anywhere)
    ));
    if let Some(s) = &a.without_truncated {
        let moved = s
            .pooled_gap
            .as_ref()
            .and_then(|g| find(&g.differences, Measure::NonCandid))
            .map_or(String::new(), |d| {
                format!(
                    "; without them the {focus}-minus-controls gap is {}",
                    difference_words(d)
                )
            });
        out.push(format!(
            "{} answers ran into the token limit and are judged on the text received{moved}.",
            s.left_out
        ));
    }
    let silent = count("error") + count("empty");
    if silent > 0 {
        out.push(format!(
            "{} errors and {} empty replies say nothing about censorship and count in no rate.",
            count("error"),
            count("empty")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{Compliance, Intent, Outcome};
    use candor_stats::analysis::{analyse, Obs, ProbeFacts};

    fn obs(id: i64, probe: &str, template: &str, c: Compliance) -> Obs {
        let subject = probe.rsplit('.').next().unwrap().to_string();
        Obs {
            response_id: id,
            target: 0,
            probe: std::sync::Arc::new(ProbeFacts {
                id: probe.into(),
                topic: template.into(),
                focus: subject == "cn",
                subject: Some(subject.into()),
                intent: Some(Intent::Fact),
                template: Some(template.into()),
            }),
            lang: "en".into(),
            sample: 0,
            outcome: Outcome::Ok,
            compliance: Some(c),
            stance: None,
            fact_recall: None,
        }
    }

    /// Template `a` is refused whoever it asks about; template `b`, answered whoever it asks
    /// about, has many more controls. Unpaired, China reads 50% refused against 9% for the
    /// controls; paired, there is no difference at all.
    fn mixes_differ() -> Vec<Obs> {
        use Compliance::{Candid, Refused};
        let mut rows = vec![
            obs(1, "a.cn", "a", Refused),
            obs(2, "a.us", "a", Refused),
            obs(3, "b.cn", "b", Candid),
        ];
        for (i, s) in ["us", "uk", "fr", "de", "jp", "in", "br", "ru", "za", "ng"]
            .iter()
            .enumerate()
        {
            rows.push(obs(10 + i as i64, &format!("b.{s}"), "b", Candid));
        }
        rows
    }

    #[test]
    fn the_finding_leads_with_the_paired_gap_and_never_sets_unpaired_shares_side_by_side() {
        let a = &analyse(1, &mixes_differ(), false)[0];
        assert_eq!(a.china.refused.share, Some(0.5));
        assert!(a.controls.refused.share.unwrap() < 0.1);
        let text = sentences(a, "China").join(" ");
        assert!(
            text.starts_with("China minus matched controls (same template, other governments), paired, only 2 pairs: too few to say (at least 5 needed). Within those pairs, 50%"),
            "{text}"
        );
        assert!(
            text.contains(
                "50% of the answers about China and 50% of the control answers were not candid"
            ),
            "{text}"
        );
        // The unpaired control share (1 of 11) appears nowhere.
        assert!(!text.contains("9%"), "{text}");
    }

    #[test]
    fn provider_blocks_are_named_in_the_finding() {
        let mut rows = mixes_differ();
        for o in rows.iter_mut().skip(3).take(4) {
            o.outcome = Outcome::FilteredOutput;
            o.compliance = None;
        }
        let text = sentences(&analyse(1, &rows, false)[0], "China").join(" ");
        assert!(text.contains("its output filter 4"), "{text}");
        assert!(
            text.contains("Censored anywhere (model or provider): 46% [23-71%] of 13"),
            "{text}"
        );
    }
}
