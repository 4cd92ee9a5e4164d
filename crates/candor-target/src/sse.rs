//! A server-sent events parser that takes bytes as they arrive, in pieces of any size.
//!
//! It is strict about memory (a line or event over the limit is an error, not a growing buffer)
//! and lenient about form (CR, LF or CRLF line ends; a last event without its blank line is
//! still delivered at the end of the stream), because providers differ.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, where one was sent (Anthropic names every event; OpenAI none).
    pub event: Option<String>,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("stream event larger than {0} bytes")]
    TooLarge(usize),
}

/// Events of one megabyte are far beyond any chat delta; the limit only stops a broken or
/// hostile stream from exhausting memory.
pub const DEFAULT_MAX_EVENT: usize = 1 << 20;

pub struct SseParser {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    event: Option<String>,
    /// The previous byte was a CR, so a LF that follows ends nothing.
    after_cr: bool,
    max_event: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT)
    }
}

impl SseParser {
    pub fn new(max_event: usize) -> SseParser {
        SseParser {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            event: None,
            after_cr: false,
            max_event,
        }
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, SseError> {
        let mut events = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut events)?;
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= self.max_event {
                        return Err(SseError::TooLarge(self.max_event));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(events)
    }

    /// Ends the stream: a pending line and event are delivered.
    pub fn finish(&mut self) -> Result<Vec<Event>, SseError> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events)?;
        }
        self.dispatch(&mut events);
        Ok(events)
    }

    fn end_line(&mut self, events: &mut Vec<Event>) -> Result<(), SseError> {
        if self.line.is_empty() {
            self.dispatch(events);
            return Ok(());
        }
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max_event {
                    return Err(SseError::TooLarge(self.max_event));
                }
            }
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, events: &mut Vec<Event>) {
        if self.has_data {
            events.push(Event {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
            self.has_data = false;
        } else {
            self.event = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(bytes: &[u8]) -> Vec<Event> {
        let mut p = SseParser::default();
        let mut out = p.push(bytes).unwrap();
        out.extend(p.finish().unwrap());
        out
    }

    #[test]
    fn parses_openai_and_anthropic_shapes() {
        let text = b"data: {\"a\":1}\n\n: keep-alive\n\nevent: message_stop\r\ndata: {}\r\n\r\ndata: [DONE]\n\n";
        let events = parse_all(text);
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0],
            Event {
                event: None,
                data: "{\"a\":1}".into()
            }
        );
        assert_eq!(events[1].event.as_deref(), Some("message_stop"));
        assert_eq!(events[2].data, "[DONE]");
    }

    #[test]
    fn joins_multi_line_data_and_delivers_a_last_event_without_blank_line() {
        let events = parse_all(b"data: one\ndata:two\n\ndata: tail");
        assert_eq!(events[0].data, "one\ntwo");
        assert_eq!(events[1].data, "tail");
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_not_growth() {
        let mut p = SseParser::new(16);
        assert_eq!(p.push(&[b'x'; 64]), Err(SseError::TooLarge(16)));
        let mut p = SseParser::new(16);
        assert!(p.push(b"data: 0123456789\ndata: 0123456789\n").is_err());
    }

    proptest! {
        /// Splitting a stream anywhere gives the same events as reading it whole.
        #[test]
        fn chunking_does_not_change_events(
            lines in proptest::collection::vec("(data|event|id|:)?:? ?[a-z{}\\[\\]\"0-9 ]{0,12}", 0..20),
            ends in proptest::collection::vec(prop_oneof!["\n", "\r\n", "\r", "\n\n"], 20),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let mut text = Vec::new();
            for (line, end) in lines.iter().zip(ends.iter().cycle()) {
                text.extend_from_slice(line.as_bytes());
                text.extend_from_slice(end.as_bytes());
            }
            let whole = parse_all(&text);
            let mut p = SseParser::default();
            let mut pieces = Vec::new();
            let mut at = 0;
            let mut cuts = cuts.clone();
            cuts.sort();
            for cut in cuts.into_iter().map(|c| c.min(text.len())) {
                if cut >= at {
                    pieces.extend(p.push(&text[at..cut]).unwrap());
                    at = cut;
                }
            }
            pieces.extend(p.push(&text[at..]).unwrap());
            pieces.extend(p.finish().unwrap());
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut p = SseParser::new(256);
            let _ = p.push(&bytes);
            let _ = p.finish();
        }
    }
}
