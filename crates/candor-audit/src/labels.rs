//! People's labels as gold: the format `candor judge eval --gold` and `candor judge train
//! --gold` read, so that what the dashboard's labellers decide measures and trains the judge.

use std::collections::BTreeMap;

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
