//! Server-sent events, parsed incrementally as the body arrives.
//!
//! Follows the HTML event-stream rules that providers rely on: lines end with
//! `\n`, `\r\n` or `\r`; `data:` lines of one event are joined with `\n`; a blank
//! line dispatches; `:` lines are comments; one space after the colon is dropped.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` name (`message` when none was given).
    pub event: String,
    /// The joined `data:` lines.
    pub data: String,
}

/// An incremental parser: feed it chunks, take events out.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes after the last complete line.
    buffer: Vec<u8>,
    event: Option<String>,
    /// The `data:` lines so far, joined with `\n` (`None`: no `data:` line yet).
    data: Option<String>,
}

impl Parser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next chunk; returns the events it completed. Each byte is looked
    /// at once, and the unfinished tail is kept for the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(at) = buffer[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = start + at;
            // A `\r` at the very end may be the first half of `\r\n`: wait for more.
            if buffer[end] == b'\r' && end + 1 == buffer.len() {
                break;
            }
            let skip = if buffer[end] == b'\r' && buffer.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            if let Some(e) = self.line(&String::from_utf8_lossy(&buffer[start..end])) {
                events.push(e);
            }
            start = end + skip;
        }
        buffer.drain(..start);
        self.buffer = buffer;
        events
    }

    /// The event left when the stream ends without a final blank line, if any.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty()
            && let Some(e) = self.line(&String::from_utf8_lossy(&rest))
        {
            return Some(e);
        }
        self.line("")
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let Some(data) = self.data.take() else {
                self.event = None;
                return None;
            };
            return Some(Event {
                event: self.event.take().unwrap_or_else(|| "message".into()),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

/// Feed `response`'s body through a [`Parser`], handing each event's data to
/// `on_data` until it says the stream is complete (`Ok(true)`) or the body ends.
/// Returns whether `on_data` saw the end.
pub fn drain<E: From<crate::http::Failure>>(
    response: &mut crate::http::OpenResponse,
    mut on_data: impl FnMut(&str) -> Result<bool, E>,
) -> Result<bool, E> {
    let mut parser = Parser::new();
    loop {
        let chunk = response
            .next_chunk()
            .map_err(|e| E::from(crate::http::Failure::from_transport(&e)))?;
        let Some(chunk) = chunk else {
            return match parser.finish() {
                Some(event) => on_data(&event.data),
                None => Ok(false),
            };
        };
        for event in parser.feed(&chunk) {
            if on_data(&event.data)? {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut p = Parser::new();
        let mut got = p.feed(b"event: a\r");
        got.extend(p.feed(b"\ndata: {\"x\":"));
        got.extend(p.feed(b"1}\r\n\r\n: comment\ndata: one\ndata:two\n\n"));
        got.extend(p.feed(b"data: [DONE]"));
        got.extend(p.finish());
        assert_eq!(
            got,
            vec![
                Event {
                    event: "a".into(),
                    data: "{\"x\":1}".into()
                },
                Event {
                    event: "message".into(),
                    data: "one\ntwo".into()
                },
                Event {
                    event: "message".into(),
                    data: "[DONE]".into()
                },
            ]
        );
    }
}
