//! The SSE parser on any bytes, fed whole and in two pieces: never a panic, the same events
//! either way, and no event larger than the limit.
#![no_main]

use candor_target::sse::SseParser;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fn events(pieces: &[&[u8]]) -> Option<Vec<candor_target::sse::Event>> {
    let mut parser = SseParser::new(LIMIT);
    let mut out = Vec::new();
    for piece in pieces {
        out.extend(parser.push(piece).ok()?);
    }
    out.extend(parser.finish().ok()?);
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let at = (cut as usize * bytes.len()) / 255;
    let whole = events(&[bytes]);
    let split = events(&[&bytes[..at], &bytes[at..]]);
    assert_eq!(whole, split);
    if let Some(events) = whole {
        assert!(events.iter().all(|e| e.data.len() <= LIMIT));
    }
});
