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
    /// The `data:` lines so far, joined with `\n` (kept allocated between events).
    data: String,
    /// Whether a `data:` line has been seen since the last dispatch.
    has_data: bool,
}

/// Bytes as text: borrowed when valid UTF-8 (the usual case), else with
/// replacement characters.
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl Parser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next chunk; returns the events it completed. Each byte is looked
    /// at once, and the unfinished tail is kept for the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let _ = self.feed_with(chunk, |event, data| {
            events.push(Event {
                event: event.to_string(),
                data: data.to_string(),
            });
            Ok::<bool, std::convert::Infallible>(false)
        });
        events
    }

    /// Feed the next chunk, handing each completed event's name and data to
    /// `on_event` (borrowed: nothing is copied per event) until it returns
    /// `Ok(true)` (stop). Returns whether it stopped.
    pub fn feed_with<E>(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(&str, &str) -> Result<bool, E>,
    ) -> Result<bool, E> {
        // Lines are read straight from `chunk` unless an unfinished line from the
        // last chunk has to be joined to it first.
        let mut joined = std::mem::take(&mut self.buffer);
        let bytes: &[u8] = if joined.is_empty() {
            chunk
        } else {
            joined.extend_from_slice(chunk);
            &joined
        };
        let mut start = 0;
        let mut stopped = false;
        while let Some(at) = memchr::memchr2(b'\n', b'\r', &bytes[start..]) {
            let end = start + at;
            // A `\r` at the very end may be the first half of `\r\n`: wait for more.
            if bytes[end] == b'\r' && end + 1 == bytes.len() {
                break;
            }
            let skip = if bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line = &bytes[start..end];
            start = end + skip;
            if self.line(line, &mut on_event)? {
                stopped = true;
                break;
            }
        }
        let tail = bytes.len() - start;
        if joined.is_empty() {
            self.buffer.extend_from_slice(&chunk[start..]);
        } else {
            joined.drain(..joined.len() - tail);
            self.buffer = joined;
        }
        Ok(stopped)
    }

    /// The event left when the stream ends without a final blank line, if any.
    pub fn finish(&mut self) -> Option<Event> {
        let mut out = None;
        let _ = self.finish_with(|event, data| {
            out = Some(Event {
                event: event.to_string(),
                data: data.to_string(),
            });
            Ok::<bool, std::convert::Infallible>(true)
        });
        out
    }

    /// [`finish`](Self::finish), handing the last event to `on_event`.
    pub fn finish_with<E>(
        &mut self,
        mut on_event: impl FnMut(&str, &str) -> Result<bool, E>,
    ) -> Result<bool, E> {
        let rest = std::mem::take(&mut self.buffer);
        // What is left is one unfinished line (a final `\r` ends it).
        let rest = rest.strip_suffix(b"\r").unwrap_or(&rest);
        if !rest.is_empty() && self.line(rest, &mut on_event)? {
            return Ok(true);
        }
        self.line(b"", &mut on_event)
    }

    /// Take one line; a blank one dispatches the event so far to `on_event`.
    fn line<E>(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(&str, &str) -> Result<bool, E>,
    ) -> Result<bool, E> {
        if line.is_empty() {
            let event = self.event.take();
            if !std::mem::take(&mut self.has_data) {
                return Ok(false);
            }
            let stop = on_event(event.as_deref().unwrap_or("message"), &self.data);
            self.data.clear();
            return stop;
        }
        if line[0] == b':' {
            return Ok(false);
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match field {
            b"event" => self.event = Some(text(value).into_owned()),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                self.data.push_str(&text(value));
            }
            _ => {}
        }
        Ok(false)
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
            return parser.finish_with(|_, data| on_data(data));
        };
        if parser.feed_with(&chunk, |_, data| on_data(data))? {
            return Ok(true);
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

    #[test]
    fn lone_carriage_returns_invalid_utf8_and_a_final_carriage_return() {
        let mut p = Parser::new();
        let mut got = p.feed(b"data: caf\xc3\xa9\rdata: \xff!\r\r");
        got.extend(p.feed(b"data: last\r"));
        got.extend(p.finish());
        assert_eq!(
            got,
            vec![
                Event {
                    event: "message".into(),
                    data: "caf\u{e9}\n\u{fffd}!".into()
                },
                Event {
                    event: "message".into(),
                    data: "last".into()
                },
            ]
        );
    }

    #[test]
    fn feed_with_stops_when_asked_and_keeps_the_rest() {
        let mut p = Parser::new();
        let mut seen = Vec::new();
        let stopped = p
            .feed_with(b"event: x\ndata: 1\n\ndata: 2\n\ndata: 3", |e, d| {
                seen.push(format!("{e}={d}"));
                Ok::<_, ()>(d == "1")
            })
            .unwrap();
        assert!(stopped);
        assert_eq!(seen, ["x=1"]);
        // Nothing after the stop was lost: the next feed goes on from there.
        let rest = p.feed(b"\n\n");
        assert_eq!(
            rest.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["2", "3"]
        );
        assert_eq!(p.finish(), None);
    }
}
