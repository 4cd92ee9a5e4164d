//! The engine on tiny random-weight GGUF files the tests write: what must hold whatever the
//! weights (caching, batching, stopping, provenance), never the text itself.

// The lock serialises whole tests, awaits included: model tests share the CPU.
#![allow(clippy::await_holding_lock)]

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::{Content, Value};
use candor_core::{Outcome, Request, SamplingParams, TargetSpec};
use candor_local::engine::{Engine, Finish, Sampling};
use candor_local::model::{row, Model};
use candor_local::testing::{write_tiny_gguf, write_tiny_gguf_with, Tiny};
use candor_local::{LocalOptions, LocalTarget};
use candor_target::Target;
use sha2::{Digest, Sha256};

/// Model tests share the CPU: one at a time keeps each fast and their timings honest.
static SERIAL: Mutex<()> = Mutex::new(());

fn tiny(dir: &Path, kind: Tiny) -> PathBuf {
    let path = dir.join(format!("tiny-{kind:?}.gguf"));
    write_tiny_gguf(&path, kind, 42).unwrap();
    path
}

fn model(path: &Path) -> Model {
    let mut reader = BufReader::new(File::open(path).unwrap());
    let content = Content::read(&mut reader).unwrap();
    Model::load(&content, &mut reader).unwrap()
}

/// Feeds `a` token by token in one batch with `b` (cycled); the last logits of each.
fn token_by_token_with(m: &Model, a: &[u32], b: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let mut ca = m.new_cache(2, 64).unwrap();
    let mut cb = m.new_cache(2, 64).unwrap();
    m.prefill(&a[..1], &mut ca).unwrap();
    m.prefill(b, &mut cb).unwrap();
    let mut last = (Vec::new(), Vec::new());
    for (i, &t) in a.iter().enumerate().skip(1) {
        let logits = m
            .decode(&[t, b[i % b.len()]], &mut [&mut ca, &mut cb])
            .unwrap();
        last = (
            logits.get(0).unwrap().to_vec1::<f32>().unwrap(),
            logits.get(1).unwrap().to_vec1::<f32>().unwrap(),
        );
    }
    assert_eq!(ca.len, a.len());
    last
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_prompt_fed_at_once_or_token_by_token_in_a_batch_gives_the_same_logits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // Gemma3's sliding window (4) is shorter than the sequence: both paths must apply it.
    for kind in [Tiny::Qwen2, Tiny::Llama, Tiny::Gemma3] {
        // Exact f32 products: any difference is the caching, positions or masks, not rounding.
        let m = model(&tiny(dir.path(), kind)).exact().unwrap();
        let a: Vec<u32> = vec![5, 77, 200, 31, 9, 140, 260, 12];
        let b: Vec<u32> = vec![88, 3, 45];

        let mut whole = m.new_cache(4, 64).unwrap();
        let at_once = row(&m.prefill(&a, &mut whole).unwrap()).unwrap();

        // Sequence a token by token, decoded in one batch with b, which is at other positions;
        // the caches start too small and must grow on the way.
        let (last, batched_b) = token_by_token_with(&m, &a, &b);
        let diff = max_diff(&at_once, &last);
        assert!(diff < 1e-4, "{kind:?}: logits differ by {diff}");

        // b's own logits do not depend on a being in the batch.
        let mut alone = m.new_cache(8, 64).unwrap();
        let mut seq: Vec<u32> = b.clone();
        for i in 1..a.len() {
            seq.push(b[i % b.len()]);
        }
        let reference = row(&m.prefill(&seq, &mut alone).unwrap()).unwrap();
        let diff = max_diff(&reference, &batched_b);
        assert!(diff < 1e-4, "{kind:?}: batched b differs by {diff}");
        // The quantised kernels round activations to 8 bits, differently for one row, a
        // decoding batch and a prompt, and random weights amplify it: close, not equal (a
        // wrong position or cache is off by the whole scale).
        let q = model(&tiny(dir.path(), kind));
        let mut whole = q.new_cache(4, 64).unwrap();
        let quantised = row(&q.prefill(&a, &mut whole).unwrap()).unwrap();
        let (stepwise, _) = token_by_token_with(&q, &a, &b);
        let diff = max_diff(&quantised, &stepwise);
        assert!(diff < 0.3, "{kind:?}: quantised paths differ by {diff}");
        // A sequence may not outgrow its limit.
        let mut small = m.new_cache(2, 4).unwrap();
        assert!(m.prefill(&a, &mut small).is_err());
    }
}

fn engine(path: &Path, slots: usize) -> Engine {
    let loaded = candor_local::load(path).unwrap();
    Engine::start(loaded.model, Arc::new(loaded.tokenizer), 2, slots).unwrap()
}

const GREEDY: Sampling = Sampling {
    temperature: None,
    top_p: None,
    seed: 0,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_requests_get_the_answers_they_get_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = tiny(dir.path(), Tiny::Qwen2);
    let prompts: Vec<Vec<u32>> = (0..5u32)
        .map(|i| (0..(3 + i * 2)).map(|j| (i * 31 + j * 7) % 256).collect())
        .collect();
    let alone = engine(&path, 1);
    let mut expected = Vec::new();
    for p in &prompts {
        expected.push(alone.generate(p.clone(), 12, GREEDY).await.unwrap());
    }
    // Five requests, three slots: all are answered, each as it was alone.
    let batched = engine(&path, 3);
    let answers = futures::future::join_all(
        prompts
            .iter()
            .map(|p| batched.generate(p.clone(), 12, GREEDY)),
    )
    .await;
    for (got, want) in answers.into_iter().zip(&expected) {
        let got = got.unwrap();
        assert_eq!(got.prompt_tokens, want.prompt_tokens);
        // Greedy decoding of random weights can meet near-ties that float order breaks
        // differently; most tokens must still agree.
        let same = got
            .tokens
            .iter()
            .zip(&want.tokens)
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            same >= 4 || got.tokens == want.tokens,
            "{:?} vs {:?}",
            got.tokens,
            want.tokens
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_stops_at_the_budget_and_bad_prompts_are_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&tiny(dir.path(), Tiny::Llama), 2);
    let g = e.generate(vec![1, 2, 3], 7, GREEDY).await.unwrap();
    match g.finish {
        Finish::Length => assert_eq!(g.tokens.len(), 7),
        Finish::Stop => assert!(g.tokens.len() < 7),
    }
    // Same seed, same draw.
    let warm = Sampling {
        temperature: Some(0.9),
        top_p: Some(0.95),
        seed: 11,
    };
    let first = e.generate(vec![4, 5, 6], 10, warm.clone()).await.unwrap();
    let again = e.generate(vec![4, 5, 6], 10, warm).await.unwrap();
    assert_eq!(first.tokens, again.tokens);
    assert!(e
        .generate(vec![], 5, GREEDY)
        .await
        .unwrap_err()
        .contains("empty"));
    let too_long = vec![1u32; 600];
    assert!(e
        .generate(too_long, 5, GREEDY)
        .await
        .unwrap_err()
        .contains("context"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_target_answers_through_the_chat_template_and_records_its_provenance() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = tiny(dir.path(), Tiny::Qwen2);
    let spec: TargetSpec = format!("local/{}", path.display()).parse().unwrap();
    let options = LocalOptions {
        threads: 2,
        slots: 4,
        pull: false,
    };
    let target = LocalTarget::open(&spec, &options).unwrap();
    let request = Request {
        probe_id: "p".into(),
        lang: "en".into(),
        sample: 0,
        system: Some("Answer briefly.".into()),
        prompt: "What happened in the square?".into(),
        params: SamplingParams {
            max_tokens: Some(6),
            ..SamplingParams::default()
        },
    };
    let response = target.send(&request).await;
    assert!(
        matches!(
            response.outcome,
            Outcome::Ok | Outcome::Truncated | Outcome::Empty
        ),
        "{response:?}"
    );
    let raw: serde_json::Value =
        serde_json::from_str(response.raw_body.as_deref().unwrap()).unwrap();
    let prompt = raw["prompt"].as_str().unwrap();
    assert!(
        prompt.starts_with("<|im_start|>system\nAnswer briefly.<|im_end|>"),
        "{prompt}"
    );
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
    assert!(raw["completion_tokens"].as_u64().unwrap() <= 6);
    if response.outcome == Outcome::Truncated {
        assert_eq!(response.finish_reason.as_deref(), Some("length"));
    }
    let engine = target.provenance().engine.as_ref().unwrap();
    let sha = format!("{:x}", Sha256::digest(std::fs::read(&path).unwrap()));
    assert_eq!(engine["weights_sha256"], sha);
    assert_eq!(engine["architecture"], "qwen2");
    assert_eq!(engine["tokenizer"], "gpt2/qwen2");
    assert!(engine["quantisation"].as_str().unwrap().contains("Q5_0"));
    assert_eq!(engine["batch_slots"], 4);
    assert!(!target.retries());
}

#[test]
fn a_sentencepiece_vocabulary_merges_by_score_and_spells_the_rest_in_bytes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let loaded = candor_local::load(&tiny(dir.path(), Tiny::Gemma3)).unwrap();
    let t = &loaded.tokenizer;
    let id = |s: &str| t.token_id(s).unwrap();
    // "the" is not a piece but "he" is; " the" is; "ü" is no piece: its two UTF-8 bytes.
    assert_eq!(
        t.encode("the the ü", true),
        [
            id("<bos>"),
            id("t"),
            id("he"),
            id("▁the"),
            id("▁"),
            id("<0xC3>"),
            id("<0xBC>")
        ]
    );
    assert_eq!(t.decode(&t.encode("the the ü", true)), "the the ü");
    assert!(t
        .encode("<start_of_turn>a", false)
        .starts_with(&[id("<start_of_turn>")]));
    assert!(t.end_of_generation.contains(&id("<eos>")));
    // No chat template: the prompt is the text itself.
    assert_eq!(loaded.template.render(None, "Q?").unwrap(), "Q?");
}

#[test]
fn files_the_engine_cannot_read_faithfully_are_refused_with_the_reason() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.gguf");
    let options = LocalOptions {
        threads: 1,
        slots: 1,
        pull: false,
    };
    let open = |path: &Path| {
        let spec: TargetSpec = format!("local/{}", path.display()).parse().unwrap();
        LocalTarget::open(&spec, &options)
            .err()
            .unwrap()
            .to_string()
    };
    write_tiny_gguf_with(
        &path,
        Tiny::Qwen2,
        1,
        &[("tokenizer.ggml.pre", Value::String("mystery".into()))],
    )
    .unwrap();
    let e = open(&path);
    assert!(e.contains("pre-tokenizer `mystery`"), "{e}");
    write_tiny_gguf_with(
        &path,
        Tiny::Qwen2,
        1,
        &[("general.architecture", Value::String("mamba".into()))],
    )
    .unwrap();
    let e = open(&path);
    assert!(e.contains("architecture `mamba`"), "{e}");
    std::fs::write(&path, b"GGUF but not really").unwrap();
    let e = open(&path);
    assert!(e.contains("not a usable GGUF"), "{e}");
    let e = open(&dir.path().join("missing.gguf"));
    assert!(e.contains("no such GGUF file"), "{e}");
    let spec: TargetSpec = "local/no-such-alias".parse().unwrap();
    let e = LocalTarget::open(&spec, &options)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no-such-alias"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_does_not_depend_on_what_decodes_beside_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    for kind in [Tiny::Qwen2, Tiny::Llama] {
        let path = tiny(dir.path(), kind);
        let prompts: Vec<Vec<u32>> = (0..6u32)
            .map(|i| (0..(2 + i * 3)).map(|j| (i * 17 + j * 11) % 256).collect())
            .collect();
        let run = |slots| {
            let e = engine(&path, slots);
            let prompts = prompts.clone();
            async move {
                let answers = futures::future::join_all(
                    prompts.into_iter().map(|p| e.generate(p, 10, GREEDY)),
                )
                .await;
                answers
                    .into_iter()
                    .map(|g| g.unwrap().tokens)
                    .collect::<Vec<_>>()
            }
        };
        // Batches of two and of six see different neighbours at every step; the same greedy
        // answers must come out, token for token.
        assert_eq!(run(2).await, run(6).await, "{kind:?}");
    }
}
