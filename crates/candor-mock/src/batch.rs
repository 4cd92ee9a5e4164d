//! The providers' batch APIs, enough for candor's `batch submit` and `batch fetch`: OpenAI's
//! Files and Batches endpoints and Anthropic's Message Batches. Each request of a batch is
//! answered as the live endpoint answers it (same script, same log), when the batch is created;
//! a batch reads as in progress the first time it is looked at and ended after that.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{answer, refused_key, Api, Shared};

/// A batch: its object when ended, its results (Anthropic's; OpenAI's are a file), and how
/// many times it has been looked at.
type Batch = (Value, Vec<u8>, u32);

#[derive(Default)]
pub(crate) struct Batches {
    files: Mutex<HashMap<String, Vec<u8>>>,
    batches: Mutex<HashMap<String, Batch>>,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/files", post(upload))
        .route("/v1/files/{id}/content", get(file_content))
        .route("/v1/batches", post(create_openai))
        .route("/v1/batches/{id}", get(look_openai))
        .route("/v1/messages/batches", post(create_anthropic))
        .route("/v1/messages/batches/{id}", get(look_anthropic))
        .route("/v1/messages/batches/{id}/results", get(anthropic_results))
}

fn next_id(shared: &Shared, prefix: &str) -> String {
    format!("{prefix}{}", shared.counter.fetch_add(1, Ordering::Relaxed))
}

fn not_found(what: &str) -> Response {
    let error =
        json!({"error": {"message": format!("no such {what}"), "type": "invalid_request_error"}});
    (StatusCode::NOT_FOUND, Json(error)).into_response()
}

fn bad(message: String) -> Response {
    let error = json!({"error": {"message": message, "type": "invalid_request_error"}});
    (StatusCode::BAD_REQUEST, Json(error)).into_response()
}

/// One request answered as the live endpoint would: its status and body.
async fn answer_one(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: &Value,
    api: Api,
) -> (u16, Value) {
    let response = answer(shared.clone(), headers.clone(), body.to_string(), api).await;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

async fn upload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if let Some(refusal) = refused_key(&shared.script, &headers, Api::OpenAi) {
        return refusal;
    }
    let (mut purpose, mut content) = (None, None);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                let Ok(bytes) = field.bytes().await else {
                    return bad("an unreadable form field".into());
                };
                match name.as_str() {
                    "purpose" => purpose = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "file" => content = Some(bytes.to_vec()),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return bad(format!("not a multipart form: {e}")),
        }
    }
    let (Some(purpose), Some(content)) = (purpose, content) else {
        return bad("a file upload needs the fields purpose and file".into());
    };
    let id = next_id(&shared, "file-");
    let bytes = content.len();
    shared
        .batches
        .files
        .lock()
        .unwrap()
        .insert(id.clone(), content);
    Json(json!({"id": id, "object": "file", "bytes": bytes, "purpose": purpose})).into_response()
}

async fn file_content(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match shared.batches.files.lock().unwrap().get(&id) {
        Some(bytes) => bytes.clone().into_response(),
        None => not_found("file"),
    }
}

async fn create_openai(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(asked): Json<Value>,
) -> Response {
    let Some(input) = asked["input_file_id"].as_str() else {
        return bad("input_file_id is required".into());
    };
    if asked["endpoint"] != "/v1/chat/completions" {
        return bad(format!("unsupported endpoint {}", asked["endpoint"]));
    }
    let Some(content) = shared.batches.files.lock().unwrap().get(input).cloned() else {
        return not_found("file");
    };
    let mut output = Vec::new();
    let (mut completed, mut failed) = (0, 0);
    for (i, line) in String::from_utf8_lossy(&content).lines().enumerate() {
        let Ok(request) = serde_json::from_str::<Value>(line) else {
            return bad(format!("line {} of the input file is not JSON", i + 1));
        };
        let (status, body) = answer_one(&shared, &headers, &request["body"], Api::OpenAi).await;
        if status == 200 {
            completed += 1
        } else {
            failed += 1
        }
        let result = json!({"id": format!("batch_req_{i}"), "custom_id": request["custom_id"],
            "response": {"status_code": status, "request_id": format!("req_{i}"), "body": body}, "error": null});
        output.extend(result.to_string().into_bytes());
        output.push(b'\n');
    }
    let output_id = next_id(&shared, "file-");
    shared
        .batches
        .files
        .lock()
        .unwrap()
        .insert(output_id.clone(), output);
    let id = next_id(&shared, "batch_");
    let batch = json!({"id": id, "object": "batch", "endpoint": "/v1/chat/completions",
        "input_file_id": input, "completion_window": asked["completion_window"], "status": "in_progress",
        "output_file_id": output_id, "error_file_id": null,
        "request_counts": {"total": completed + failed, "completed": completed, "failed": failed}});
    shared
        .batches
        .batches
        .lock()
        .unwrap()
        .insert(id, (batch.clone(), Vec::new(), 0));
    let mut shown = batch;
    shown["status"] = json!("validating");
    shown["output_file_id"] = Value::Null;
    Json(shown).into_response()
}

/// A batch's object: in progress the first time it is looked at, ended after.
fn look(shared: &Shared, id: &str, ended: impl Fn(&mut Value)) -> Option<Value> {
    let mut batches = shared.batches.batches.lock().unwrap();
    let (batch, _, looks) = batches.get_mut(id)?;
    *looks += 1;
    let mut shown = batch.clone();
    if *looks > 1 {
        ended(&mut shown);
    }
    Some(shown)
}

async fn look_openai(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match look(&shared, &id, |b| b["status"] = json!("completed")) {
        Some(mut shown) => {
            if shown["status"] != "completed" {
                shown["output_file_id"] = Value::Null;
            }
            Json(shown).into_response()
        }
        None => not_found("batch"),
    }
}

async fn create_anthropic(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(asked): Json<Value>,
) -> Response {
    if let Some(refusal) = refused_key(&shared.script, &headers, Api::Anthropic) {
        return refusal;
    }
    let Some(requests) = asked["requests"].as_array() else {
        return bad("requests is required".into());
    };
    let mut results = Vec::new();
    for request in requests {
        let (status, body) =
            answer_one(&shared, &headers, &request["params"], Api::Anthropic).await;
        let result = if status == 200 {
            json!({"type": "succeeded", "message": body})
        } else {
            json!({"type": "errored", "error": body})
        };
        let line = json!({"custom_id": request["custom_id"], "result": result});
        results.extend(line.to_string().into_bytes());
        results.push(b'\n');
    }
    let id = next_id(&shared, "msgbatch_");
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let batch = json!({"id": id, "type": "message_batch", "processing_status": "in_progress",
        "request_counts": {"processing": requests.len(), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        "results_url": format!("http://{host}/v1/messages/batches/{id}/results")});
    shared
        .batches
        .batches
        .lock()
        .unwrap()
        .insert(id, (batch.clone(), results, 0));
    let mut shown = batch;
    shown["results_url"] = Value::Null;
    Json(shown).into_response()
}

async fn look_anthropic(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match look(&shared, &id, |b| b["processing_status"] = json!("ended")) {
        Some(mut shown) => {
            if shown["processing_status"] != "ended" {
                shown["results_url"] = Value::Null;
            }
            Json(shown).into_response()
        }
        None => not_found("message batch"),
    }
}

async fn anthropic_results(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match shared.batches.batches.lock().unwrap().get(&id) {
        Some((_, results, looks)) if *looks > 1 => results.clone().into_response(),
        Some(_) => bad("the batch has not ended".into()),
        None => not_found("message batch"),
    }
}
