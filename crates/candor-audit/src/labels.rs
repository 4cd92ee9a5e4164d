//! People's labels as gold: the format `candor judge eval --gold` and `candor judge train
//! --gold` read, so that what the dashboard's labellers decide measures and trains the judge.

use std::collections::BTreeMap;

use candor_core::Compliance;
use candor_store::Store;
use serde_json::{json, Value};

use crate::Error;

/// Each labeller's newest label of each answer (of `run`, or of every run; of `labeller`, or of
/// everyone), as gold lines in answer order.
pub fn gold_lines(
    store: &dyn Store,
    run: Option<i64>,
    labeller: Option<&str>,
) -> Result<Vec<Value>, Error> {
    let mut newest = BTreeMap::new();
    for label in store.labels(run).map_err(Error::run)? {
        if labeller.is_some_and(|l| l != label.labeller) {
            continue;
        }
        newest.insert((label.response_id, label.labeller.clone()), label);
    }
    Ok(newest
        .values()
        .map(|label| {
            let mut line = json!({
                "id": format!("r{}-a{}-{}", label.run_id, label.response_id, label.labeller),
                "lang": label.lang,
                "probe": label.probe_id,
                "prompt": label.prompt,
                "response": label.text,
                "labeller": label.labeller,
                "labelled_at": label.created_at,
                "note": label.note,
            });
            if let Some(c) = label.compliance {
                line["label"] = c.as_str().into();
            }
            if let Some(s) = label.stance {
                line["stance"] = s.as_str().into();
            }
            line
        })
        .collect())
}

/// The judge's confusion matrix against people's labels of the answers of `runs` (each
/// labeller's newest label that names a compliance; rows the label, columns the judge's
/// verdict), for the report's judge-error correction. Labels of answers the judge left
/// unscored are left out.
pub fn label_confusion(
    store: &dyn Store,
    runs: &[i64],
    judge: &str,
) -> Result<crate::figures::Confusion, Error> {
    let mut matrix = vec![vec![0u64; 3]; 3];
    let mut verdicts: BTreeMap<i64, Option<Compliance>> = BTreeMap::new();
    for &run in runs {
        let mut newest = BTreeMap::new();
        for label in store.labels(Some(run)).map_err(Error::run)? {
            newest.insert((label.response_id, label.labeller.clone()), label);
        }
        for ((response, _), label) in newest {
            let Some(gold) = label.compliance else {
                continue;
            };
            let judged = match verdicts.get(&response) {
                Some(v) => *v,
                None => {
                    let v = store
                        .verdicts_of(response)
                        .map_err(Error::run)?
                        .into_iter()
                        .find(|v| v.judge == judge)
                        .and_then(|v| v.compliance);
                    verdicts.insert(response, v);
                    v
                }
            };
            if let Some(judged) = judged {
                matrix[gold as usize][judged as usize] += 1;
            }
        }
    }
    if matrix.iter().flatten().sum::<u64>() == 0 {
        return Err(Error::usage(format!(
            "no stored label of run {} names a compliance that judge {judge} also gave: label answers with `candor serve` first",
            runs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(crate::figures::Confusion {
        labels: Compliance::ALL
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        matrix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{Outcome, Request, Response, SamplingParams, Suite, Verdict};
    use candor_store::NewLabel;

    #[test]
    fn the_confusion_counts_each_labellers_newest_label_against_the_judge() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = candor_store::open(&dir.path().join("s.db")).unwrap();
        let suite = Suite::new("s".into(), "1".into(), String::new(), vec![], vec![]);
        let run = store.create_run(&suite, &serde_json::json!({})).unwrap();
        let target = store
            .add_target(run, 0, &serde_json::json!({"spec": "openai/m"}))
            .unwrap();
        let items: Vec<(Request, Response)> = (0..3)
            .map(|n| {
                (
                    Request {
                        probe_id: "p".into(),
                        lang: "en".into(),
                        sample: n,
                        system: None,
                        prompt: "q".into(),
                        params: SamplingParams::default(),
                    },
                    Response {
                        outcome: Outcome::Ok,
                        text: format!("a{n}"),
                        ..Response::default()
                    },
                )
            })
            .collect();
        candor_store::test_support::insert_exchanges(
            store.as_mut(),
            run,
            target,
            "openai/m",
            &items,
        )
        .unwrap();
        let ids: Vec<i64> = store.answers(run).unwrap().iter().map(|a| a.id).collect();
        let verdict = |judge: &str, c: Compliance| Verdict {
            judge: judge.into(),
            compliance: Some(c),
            stance: None,
            fact_recall: None,
            rule: "R".into(),
            rationale: String::new(),
        };
        store
            .insert_verdicts(&[
                (ids[0], verdict("j@1", Compliance::Candid)),
                (ids[1], verdict("j@1", Compliance::Candid)),
                (ids[2], verdict("other@1", Compliance::Refused)),
            ])
            .unwrap();
        let label = |id: i64, who: &'static str, c: Option<Compliance>| NewLabel {
            response_id: id,
            labeller: who,
            compliance: c,
            stance: None,
            note: "",
        };
        for l in [
            label(ids[0], "ana", Some(Compliance::Refused)),
            // ana changes her mind: only the newest counts.
            label(ids[0], "ana", Some(Compliance::Candid)),
            label(ids[0], "bo", Some(Compliance::Candid)),
            label(ids[1], "ana", Some(Compliance::Evasive)),
            // Stance only: no compliance to count.
            label(ids[1], "bo", None),
            // The judge never judged this answer.
            label(ids[2], "ana", Some(Compliance::Refused)),
        ] {
            store.add_label(&l).unwrap();
        }
        let c = label_confusion(store.as_ref(), &[run], "j@1").unwrap();
        assert_eq!(c.labels, ["candid", "evasive", "refused"]);
        assert_eq!(c.matrix, [[2, 0, 0], [1, 0, 0], [0, 0, 0]]);
        let none = label_confusion(store.as_ref(), &[run], "nobody@1").unwrap_err();
        assert!(none.to_string().contains("candor serve"), "{none}");
    }
}
