//! `GET /v1/sessions/{id}/stream`: the session's log as server-sent events.
//!
//! Each logged event is sent with `id:` (its ULID), `event:` (its type) and
//! `data:` (the event as JSON). A client that reconnects with `Last-Event-ID`
//! (or `?after=SEQ`) gets everything after it, then live events, with nothing
//! lost and nothing twice: the stream subscribes before it reads the log and
//! skips live events it has already sent. Streamed model text arrives as
//! `text_delta` events without an id (live only, not logged; the full text is
//! in `model_response`).

use crate::auth::Need;
use crate::error::ApiError;
use crate::routes::{AppState, principal};
use axum::extract::{Path, Query, State};
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

    /// The next event to send: the backlog first, then live events; anything at
    /// or below the last sequence number sent is skipped.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if e.seq > self.sent {
                    self.sent = e.seq;
                    return Some(sse_event(&e));
                }
                continue;
            }
            tokio::select! {
                biased;
                r = self.events.recv() => match r {
                    Ok(e) if e.seq > self.sent => {
                        self.sent = e.seq;
                        return Some(sse_event(&e));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        if self.catch_up().await.is_err() {
                            return None;
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
                d = self.deltas.recv() => match d {
                    Ok(d) => {
                        return Some(
                            Event::default()
                                .event("text_delta")
                                .data(json!({"run_id": d.run_id, "text": d.text}).to_string()),
                        );
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(session): Path<String>,
    Query(after): Query<After>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal(&state, &headers, Need::Any).await?;
    let engine = state.engine.clone();
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
    };
    let s = stream::unfold(
        cursor,
        |mut c| async move { c.next().await.map(|e| (Ok(e), c)) },
    );
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
