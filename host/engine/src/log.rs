//! A session's log as the engine writes it: the state folded from it, and the
//! one way events reach it.
//!
//! [`SessionLog`] owns a session's [`SessionState`] and the events applied to
//! it but not written yet. [`append`](SessionLog::append) writes an [`Entry`]
//! (after anything carried) in one store transaction, applies it and sends it
//! to subscribers; [`carry`](SessionLog::carry) applies an entry now and writes
//! it with the next append when the run's very next step starts with one (a
//! model call's `model_request`, a run's `run_finished`): one write instead of
//! two, and nothing happens outside the host in between.
//!
//! Invariants: the state runs ahead of the log only by carried events, which
//! every append writes first; they never wait across a model call, a tool call
//! or a wait for people. A failed write, or a log that moved under its runner
//! (something else appended), reloads the state from the log.

use crate::error::EngineError;
use crate::events::{EventData, LoggedEvent};
use crate::state::{Next, SessionState};
use serde_json::Value;
use std::sync::Arc;
use tack_store::{NewEvent, SessionStatus, Store};
use tokio::sync::broadcast;

/// One event to log: its public form and, where that is redacted, the host's
/// unredacted copy (kept in the store's private column, folded into the state,
/// never served).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) public: EventData,
    pub(crate) private: Option<EventData>,
}

impl Pending {
    /// The form the state folds.
    fn folded(&self) -> &EventData {
        self.private.as_ref().unwrap_or(&self.public)
    }
}

/// Events that land together, and what else their transaction records.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    events: Vec<Pending>,
    /// The session's stored status, when no `status_changed` among the events
    /// says it (a message queued on an idle session).
    status: Option<SessionStatus>,
    /// A tool call's idempotency key and result record, closed with the events.
    finished_call: Option<(String, Value)>,
}

impl Entry {
    /// An entry of one event.
    pub(crate) fn one(event: EventData) -> Entry {
        Entry::default().and(event)
    }

    /// And `event`.
    pub(crate) fn and(self, event: EventData) -> Entry {
        self.and_private(event, None)
    }

    /// And `event`, whose unredacted copy is `private` (if it differs).
    pub(crate) fn and_private(mut self, event: EventData, private: Option<EventData>) -> Entry {
        self.events.push(Pending {
            public: event,
            private,
        });
        self
    }

    /// And these events.
    pub(crate) fn and_all(mut self, events: impl IntoIterator<Item = Pending>) -> Entry {
        self.events.extend(events);
        self
    }

    /// Store `status` as the session's status in the same transaction.
    pub(crate) fn with_status(mut self, status: SessionStatus) -> Entry {
        self.status = Some(status);
        self
    }

    /// Close tool call `key`'s idempotency record with `record` in the same
    /// transaction.
    pub(crate) fn closing(mut self, key: Option<(&str, &Value)>) -> Entry {
        self.finished_call = key.map(|(k, r)| (k.to_string(), r.clone()));
        self
    }
}

/// The last `status_changed` among `events`, as the store's status column.
fn last_status<'a>(events: impl DoubleEndedIterator<Item = &'a Pending>) -> Option<SessionStatus> {
    events.rev().find_map(|p| match &p.public {
        EventData::StatusChanged { status } => Some((*status).into()),
        _ => None,
    })
}

/// A session's state and the events applied to it but not written yet.
pub(crate) struct SessionLog {
    id: String,
    store: Store,
    live: broadcast::Sender<Arc<LoggedEvent>>,
    state: SessionState,
    /// Carried events, each with the sequence number it was applied with.
    carried: Vec<(Pending, u64)>,
    /// The carried events' call record.
    carried_call: Option<(String, Value)>,
}

impl std::ops::Deref for SessionLog {
    type Target = SessionState;

    fn deref(&self) -> &SessionState {
        &self.state
    }
}

/// A stored event as logged, and the unredacted copy of its payload if it has one.
pub(crate) fn logged(
    e: &tack_store::Event,
) -> Result<(LoggedEvent, Option<EventData>), EngineError> {
    let corrupt = |err: serde_json::Error| {
        EngineError::Store(tack_store::StoreError::Corrupt {
            what: format!("event {}", e.id),
            message: err.to_string(),
        })
    };
    let data = EventData::from_stored(&e.kind, &e.data).map_err(corrupt)?;
    let private = e
        .private
        .as_ref()
        .map(|p| EventData::from_stored(&e.kind, p))
        .transpose()
        .map_err(corrupt)?;
    Ok((
        LoggedEvent {
            id: e.id.clone(),
            seq: e.seq,
            created_ms: e.created_ms,
            data,
        },
        private,
    ))
}

/// Session `id`'s state, folded from its log (unredacted copies where kept).
async fn fold(store: &Store, id: &str) -> Result<SessionState, EngineError> {
    let mut state = SessionState::default();
    let mut after = 0;
    loop {
        let batch = store.events(id, after, 1000).await?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            let (public, private) = logged(e)?;
            after = e.seq;
            state.apply(&LoggedEvent {
                data: private.unwrap_or(public.data),
                ..public
            });
        }
    }
    Ok(state)
}

impl SessionLog {
    /// Session `id`'s log, read from the store; new events go to `live`.
    pub(crate) async fn load(
        id: &str,
        store: Store,
        live: broadcast::Sender<Arc<LoggedEvent>>,
    ) -> Result<SessionLog, EngineError> {
        let state = fold(&store, id).await?;
        Ok(SessionLog::with_state(id, store, live, state))
    }

    /// A log whose state is `state` (already folded: a new session's first event).
    pub(crate) fn with_state(
        id: &str,
        store: Store,
        live: broadcast::Sender<Arc<LoggedEvent>>,
        state: SessionState,
    ) -> SessionLog {
        SessionLog {
            id: id.to_string(),
            store,
            live,
            state,
            carried: Vec::new(),
            carried_call: None,
        }
    }

    /// Write `entry` (after any carried events) in one store transaction, in
    /// order; then apply it and send it to subscribers. The session's stored
    /// status follows the entry's status, else its last `status_changed`, else
    /// the carried events' last one. Returns the entry's events as logged.
    pub(crate) async fn append(&mut self, entry: Entry) -> Result<Vec<LoggedEvent>, EngineError> {
        self.write_clashing_record(&entry).await?;
        self.write(entry).await
    }

    /// [`append`](Self::append) one event.
    pub(crate) async fn append_one(
        &mut self,
        event: EventData,
    ) -> Result<LoggedEvent, EngineError> {
        let mut logged = self.append(Entry::one(event)).await?;
        Ok(logged.remove(0))
    }

    /// Apply `entry` now and write it with the next append, when the run's next
    /// step starts with one (a model call, or the run's end); otherwise write
    /// it at once. A crash in between loses it as a crash just before writing
    /// it would (the step is done again from the log).
    pub(crate) async fn carry(&mut self, entry: Entry) -> Result<(), EngineError> {
        self.write_clashing_record(&entry).await?;
        let created_ms = crate::engine::now_ms();
        for pending in entry.events {
            let seq = self.state.last_seq + 1;
            self.state.apply(&LoggedEvent {
                id: String::new(),
                seq,
                created_ms,
                data: pending.folded().clone(),
            });
            self.carried.push((pending, seq));
        }
        if entry.finished_call.is_some() {
            self.carried_call = entry.finished_call;
        }
        if matches!(self.state.next(), Next::ModelCall | Next::Finish(..)) {
            return Ok(());
        }
        self.flush().await
    }

    /// Write whatever is carried.
    pub(crate) async fn flush(&mut self) -> Result<(), EngineError> {
        if self.carried.is_empty() && self.carried_call.is_none() {
            return Ok(());
        }
        self.write(Entry::default()).await.map(drop)
    }

    /// Write the carried events alone when they close a call record and
    /// `entry` closes another: one record per transaction.
    async fn write_clashing_record(&mut self, entry: &Entry) -> Result<(), EngineError> {
        if entry.finished_call.is_some() && self.carried_call.is_some() {
            self.flush().await?;
        }
        Ok(())
    }

    /// The carried events, then `entry`, in one store transaction; then apply
    /// `entry` (the carried ones already are) and send all to subscribers.
    async fn write(&mut self, entry: Entry) -> Result<Vec<LoggedEvent>, EngineError> {
        let carried = std::mem::take(&mut self.carried);
        let carried_call = self.carried_call.take();
        let status = entry
            .status
            .or_else(|| last_status(entry.events.iter()))
            .or_else(|| last_status(carried.iter().map(|(p, _)| p)));
        let finished_call = entry
            .finished_call
            .as_ref()
            .or(carried_call.as_ref())
            .map(|(key, record)| (key.as_str(), record));
        let text: Vec<(&'static str, String, Option<String>)> = carried
            .iter()
            .map(|(p, _)| p)
            .chain(&entry.events)
            .map(|p| {
                (
                    p.public.kind(),
                    p.public.to_json(),
                    p.private.as_ref().map(EventData::to_json),
                )
            })
            .collect();
        let new: Vec<NewEvent<'_>> = text
            .iter()
            .map(|(kind, data, private)| NewEvent {
                kind,
                data,
                private: private.as_deref(),
            })
            .collect();
        let stored = match self
            .store
            .append_batch(&self.id, &new, status, finished_call)
            .await
        {
            Ok(stored) => stored,
            Err(e) => {
                if !carried.is_empty() {
                    // The state holds events the log does not: start over from the log.
                    self.reload().await;
                }
                return Err(e.into());
            }
        };
        let mut stored = stored.into_iter();
        let mut diverged = false;
        for ((pending, seq), stored) in carried.into_iter().zip(&mut stored) {
            diverged |= stored.seq != seq;
            self.send(LoggedEvent {
                id: stored.id,
                seq: stored.seq,
                created_ms: stored.created_ms,
                data: pending.public,
            });
        }
        let mut logged = Vec::with_capacity(entry.events.len());
        for (pending, stored) in entry.events.into_iter().zip(stored) {
            let event = LoggedEvent {
                id: stored.id,
                seq: stored.seq,
                created_ms: stored.created_ms,
                data: pending.public,
            };
            // The state folds the unredacted copy when there is one.
            match pending.private {
                Some(data) => self.state.apply(&LoggedEvent {
                    id: event.id.clone(),
                    seq: event.seq,
                    created_ms: event.created_ms,
                    data,
                }),
                None => self.state.apply(&event),
            }
            if self.live.receiver_count() > 0 {
                let _ = self.live.send(Arc::new(event.clone()));
            }
            logged.push(event);
        }
        if diverged {
            // Something else appended to this session's log: the carried
            // events were applied with the wrong sequence numbers.
            tracing::error!(session = %self.id, "the session's log moved under its runner; reloading it");
            self.reload().await;
        }
        Ok(logged)
    }

    /// Tell subscribers (they share one copy; with none, none is made).
    fn send(&self, event: LoggedEvent) {
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(Arc::new(event));
        }
    }

    /// Rebuild the state from the session's log (after a write that failed or
    /// landed elsewhere than the state expected). On failure the state is left
    /// as it is, and the error is logged.
    pub(crate) async fn reload(&mut self) {
        match fold(&self.store, &self.id).await {
            Ok(fresh) => self.state = fresh,
            Err(e) => {
                tracing::error!(session = %self.id, "reloading the session from its log failed: {e}")
            }
        }
    }
}
