//! Provider bodies, streamed or not, from OpenAI-compatible and Anthropic servers: never a
//! panic, and always a consistent response.
#![no_main]

use candor_core::Outcome;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let provider = if selector & 1 == 0 { "openai" } else { "anthropic" };
    let stream = selector & 2 != 0;
    let status = [200u16, 400, 403, 429, 500, 503][(selector as usize >> 2) % 6];
    let body = String::from_utf8_lossy(body);
    let r = candor_target::classify_body(provider, status, &body, stream).expect("known provider");
    assert_eq!(r.http_status, Some(status));
    assert!(r.outcome != Outcome::Ok || !r.text.trim().is_empty());
    assert!(r.outcome == Outcome::Ok || r.error.is_some());
});
