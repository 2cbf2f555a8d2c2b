//! `GET /v1/sessions/{id}/stream`: the session's log as server-sent events.
//!
//! Each logged event is sent with `id:` (its ULID), `event:` (its type) and
//! `data:` (the event as JSON). A client that reconnects with `Last-Event-ID`
//! (or `?after=SEQ`) gets everything after it, then live events, with nothing
//! lost and nothing twice: the stream subscribes before it reads the log and
//! skips live events it has already sent. Streamed model text arrives as
//! `text_delta` events without an id (live only, not logged; the full text is
//! in `model_response`).

use crate::auth::{AnyRole, Session};
use crate::error::ApiError;
use crate::routes::AppState;
use axum::extract::{Query, State};
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

struct Cursor {
    engine: Engine,
    session: String,
    sent: u64,
    backlog: VecDeque<LoggedEvent>,
    events: broadcast::Receiver<Arc<LoggedEvent>>,
    deltas: broadcast::Receiver<Delta>,
    /// A text delta that arrived before the event logged just before it was
    /// sent; it goes out right after that event.
    held: Option<Delta>,
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
    /// After a lag on the live channel: queue everything logged after what was sent.
    async fn catch_up(&mut self) -> Result<(), ApiError> {
        let mut from = self.backlog.back().map(|e| e.seq).unwrap_or(self.sent);
        loop {
            let batch = self.engine.events(&self.session, from, 500).await?;
            let n = batch.len();
            if let Some(last) = batch.last() {
                from = last.seq;
            }
            self.backlog.extend(batch);
            if n < 500 {
                return Ok(());
            }
        }
    }

    /// The next event to send: the backlog first, then live events and text
    /// deltas in the order they happened; anything at or below the last sequence
    /// number sent is skipped.
    ///
    /// A delta is sent only after the event logged just before it (its `after`),
    /// and deltas are read before events, so a step's streamed text always lies
    /// between its `model_request` and its `model_response`.
    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if e.seq > self.sent {
                    self.sent = e.seq;
                    return Some(Item::logged(&e));
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
                    Err(RecvError::Lagged(_)) => {
                        if self.catch_up().await.is_err() {
                            return None;
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

pub(crate) async fn stream(
    State(state): State<AppState>,
    Session { session, .. }: Session<AnyRole>,
    headers: HeaderMap,
    Query(after): Query<After>,
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
                    "Last-Event-ID `{id}` is not an event of session `{session}`; reconnect without it to replay the whole log"
                ))
            })?,
        None => after.after.unwrap_or(0),
    };
    // Subscribe first, then read the log: an event appended in between is
    // both in the log and on the channel, and the cursor sends it once.
    let (events, deltas) = engine.subscribe(&session).await?;
    let backlog: VecDeque<LoggedEvent> = {
        let mut all = VecDeque::new();
        let mut from = start;
        loop {
            let batch = engine.events(&session, from, 500).await?;
            let n = batch.len();
            if let Some(last) = batch.last() {
                from = last.seq;
            }
            all.extend(batch);
            if n < 500 {
                break;
            }
        }
        all
    };
    let cursor = Cursor {
        engine,
        session,
        sent: start,
        backlog,
        events,
        deltas,
        held: None,
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
            backlog: VecDeque::new(),
            events,
            deltas,
            held: None,
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
