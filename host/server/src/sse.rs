//! `GET /v1/sessions/{id}/stream`: the session's log as server-sent events.
//!
//! Each logged event is sent with `id:` (its ULID), `event:` (its type) and
//! `data:` (the event as JSON). A client that reconnects with `Last-Event-ID`
//! (or `?after=SEQ`) gets everything after it, then live events, with nothing
//! lost and nothing twice: the stream subscribes before it reads the log and
//! skips live events it has already sent. The log is read a page at a time as
//! the client takes events, so a stream holds one page, however long the log;
//! live events are shared (`Arc`) by every stream of the session. Streams are
//! counted per session and per token against the host's `[limits]`. Streamed
//! model text arrives as `text_delta` events without an id (live only, not
//! logged; the full text is in `model_response`).

use crate::auth::{AnyRole, Session};
use crate::error::ApiError;
use crate::extract::Params;
use crate::routes::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tack_engine::{Delta, Engine, LoggedEvent};
use tokio::sync::broadcast::{self, error::RecvError};

#[derive(Deserialize)]
pub(crate) struct After {
    after: Option<u64>,
}

/// Events read from the log at a time, at first and at most. A stream holds one
/// page of the log, however long the log is; pages shrink while their events
/// are large and grow while they are small, so a page stays near
/// [`PAGE_BYTES`] (or is one event).
const FIRST_PAGE: u32 = 4;
const MOST_PAGE: u32 = 64;
/// The size a page of the log aims at, in bytes of event JSON.
const PAGE_BYTES: usize = 128 * 1024;

struct Cursor {
    engine: Engine,
    session: String,
    sent: u64,
    /// Events read from the log and not yet sent.
    page: VecDeque<LoggedEvent>,
    /// Whether the log may hold events after `sent` that the live channel will
    /// not deliver: at the start (the backlog) and after a lag.
    reading_log: bool,
    /// How many events the next page of the log asks for.
    page_size: u32,
    events: broadcast::Receiver<Arc<LoggedEvent>>,
    deltas: broadcast::Receiver<Delta>,
    /// A text delta that arrived before the event logged just before it was
    /// sent; it goes out right after that event.
    held: Option<Delta>,
    /// This stream's place in the quotas, given back when it ends.
    _slot: Option<crate::quota::StreamSlot>,
}

/// What a cursor sends next.
#[derive(Debug)]
enum Item {
    /// A logged event (its sequence number, and the event to send).
    Logged(#[allow(dead_code, reason = "read by the tests")] u64, Event),
    /// Streamed model text.
    Text(Delta),
}

impl Item {
    fn logged(e: &LoggedEvent) -> Item {
        Item::Logged(e.seq, sse_event(e))
    }

    fn into_event(self) -> Event {
        match self {
            Item::Logged(_, e) => e,
            Item::Text(d) => Event::default()
                .event("text_delta")
                .data(json!({"run_id": d.run_id, "text": d.text}).to_string()),
        }
    }
}

fn sse_event(e: &LoggedEvent) -> Event {
    Event::default()
        .id(e.id.clone())
        .event(e.data.kind())
        .data(serde_json::to_string(e).unwrap_or_default())
}

impl Cursor {
    /// The next page of the log after what was sent; the log has been read to
    /// its end when a page comes back short.
    async fn read_page(&mut self) -> Result<(), ApiError> {
        let asked = self.page_size;
        let batch = self.engine.events(&self.session, self.sent, asked).await?;
        self.reading_log = batch.len() == asked as usize;
        let bytes: usize = batch.iter().map(LoggedEvent::json_len).sum();
        self.page_size = if bytes > 2 * PAGE_BYTES {
            (asked / 2).max(1)
        } else if bytes < PAGE_BYTES / 2 {
            (asked * 2).min(MOST_PAGE)
        } else {
            asked
        };
        self.page.extend(batch);
        Ok(())
    }

    /// The next event to send: the log after what was sent first, a page at a
    /// time as the client takes them, then live events and text deltas in the
    /// order they happened; anything at or below the last sequence number sent
    /// is skipped.
    ///
    /// A delta is sent only after the event logged just before it (its `after`),
    /// and deltas are read before events, so a step's streamed text always lies
    /// between its `model_request` and its `model_response`.
    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(e) = self.page.pop_front() {
                if e.seq > self.sent {
                    self.sent = e.seq;
                    return Some(Item::logged(&e));
                }
                continue;
            }
            if self.reading_log {
                if self.read_page().await.is_err() {
                    return None;
                }
                continue;
            }
            if self.held.as_ref().is_some_and(|d| d.after <= self.sent) {
                return self.held.take().map(Item::Text);
            }
            tokio::select! {
                biased;
                d = self.deltas.recv(), if self.held.is_none() => match d {
                    Ok(d) if d.after <= self.sent => return Some(Item::Text(d)),
                    Ok(d) => self.held = Some(d),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
                r = self.events.recv() => match r {
                    Ok(e) if e.seq > self.sent => {
                        self.sent = e.seq;
                        return Some(Item::logged(&e));
                    }
                    Ok(_) => {}
                    // Events went past unseen: they are in the log.
                    Err(RecvError::Lagged(_)) => self.reading_log = true,
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

pub(crate) async fn stream(
    State(state): State<AppState>,
    Session { who, session, .. }: Session<AnyRole>,
    headers: HeaderMap,
    Params(after): Params<After>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let engine = state.engine.clone();
    let session = session.id;
    let start = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        Some(id) => engine
            .store()
            .event_seq(&session, id)
            .await?
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Last-Event-ID `{}` is not an event of session `{session}`; reconnect without it to replay the whole log",
                    crate::error::clip(id)
                ))
            })?,
        None => after.after.unwrap_or(0),
    };
    let slot = state.quotas.open_stream(&session, &who.name)?;
    // Subscribe first, then read the log: an event appended in between is
    // both in the log and on the channel, and the cursor sends it once.
    let (events, deltas) = engine.subscribe(&session).await?;
    let cursor = Cursor {
        engine,
        session,
        sent: start,
        page: VecDeque::new(),
        reading_log: true,
        page_size: FIRST_PAGE,
        events,
        deltas,
        held: None,
        _slot: Some(slot),
    };
    let s = stream::unfold(cursor, |mut c| async move {
        c.next().await.map(|i| (Ok(i.into_event()), c))
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The engine tests' harness (a real engine on a scripted model).
#[cfg(test)]
#[path = "../../engine/tests/common/mod.rs"]
mod common;

#[cfg(test)]
mod tests {
    use super::*;
    use tack_engine::{EventData, Status};

    /// Whatever order the cursor finds them in, a step's streamed text goes out
    /// after the event logged before it and before any event logged after it.
    #[tokio::test]
    async fn text_goes_between_the_events_logged_around_it() {
        let h = common::Harness::start("scenarios:\n  - steps:\n      - text: hi\n").await;
        let (events_tx, events) = broadcast::channel(16);
        let (deltas_tx, deltas) = broadcast::channel(16);
        let mut cursor = Cursor {
            engine: h.engine.clone(),
            session: "s".into(),
            sent: 4,
            page: VecDeque::new(),
            reading_log: false,
            page_size: FIRST_PAGE,
            events,
            deltas,
            held: None,
            _slot: None,
        };
        let event = |seq| {
            Arc::new(LoggedEvent {
                id: format!("e{seq}"),
                seq,
                created_ms: 0,
                data: EventData::StatusChanged {
                    status: Status::Running,
                },
            })
        };
        let text = |after, text: &str| Delta {
            run_id: "r".into(),
            text: text.into(),
            after,
        };
        // All of this happens before the cursor looks: a model request (5), its
        // text, its response (6) and the next request (7) with its text.
        events_tx.send(event(5)).unwrap();
        deltas_tx.send(text(5, "a")).unwrap();
        deltas_tx.send(text(5, "b")).unwrap();
        events_tx.send(event(6)).unwrap();
        events_tx.send(event(7)).unwrap();
        deltas_tx.send(text(7, "c")).unwrap();
        let mut order = Vec::new();
        for _ in 0..6 {
            order.push(match cursor.next().await.unwrap() {
                Item::Logged(seq, _) => seq.to_string(),
                Item::Text(d) => d.text,
            });
        }
        assert_eq!(order, ["5", "a", "b", "6", "7", "c"]);
    }
}
