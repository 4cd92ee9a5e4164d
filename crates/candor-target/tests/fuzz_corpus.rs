//! Replays the fuzzers' kept corpora (fuzz/corpus) as ordinary tests, so that every input that
//! once found new behaviour is checked on every CI run, without a nightly toolchain.

use std::path::PathBuf;

use candor_core::Outcome;
use candor_target::sse::SseParser;

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| std::fs::read(f.unwrap().path()).unwrap())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() > 10,
        "{} holds {} inputs",
        dir.display(),
        inputs.len()
    );
    inputs
}

#[test]
fn provider_body_corpus_reads_consistently() {
    for data in corpus("provider_body") {
        let Some((&selector, body)) = data.split_first() else {
            continue;
        };
        let provider = if selector & 1 == 0 {
            "openai"
        } else {
            "anthropic"
        };
        let status = [200u16, 400, 403, 429, 500, 503][(selector as usize >> 2) % 6];
        let body = String::from_utf8_lossy(body);
        let r = candor_target::classify_body(provider, status, &body, selector & 2 != 0).unwrap();
        assert!(r.outcome != Outcome::Ok || !r.text.trim().is_empty());
        assert!(r.outcome == Outcome::Ok || r.error.is_some());
    }
}

#[test]
fn sse_corpus_parses_the_same_in_pieces() {
    for data in corpus("sse_parser") {
        let Some((&cut, bytes)) = data.split_first() else {
            continue;
        };
        let at = (cut as usize * bytes.len()) / 255;
        let run = |pieces: &[&[u8]]| {
            let mut p = SseParser::new(4096);
            let mut out = Vec::new();
            for piece in pieces {
                out.extend(p.push(piece).ok()?);
            }
            out.extend(p.finish().ok()?);
            Some(out)
        };
        assert_eq!(run(&[bytes]), run(&[&bytes[..at], &bytes[at..]]));
    }
}
