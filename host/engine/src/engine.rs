//! The engine: sessions, their logs and runners, and the operations the API
//! offers (agents, sessions, messages, approval decisions, answers, interrupts).

use crate::components::{ComponentSource, ResolvedAgent, Resolver};
use crate::error::EngineError;
use crate::events::{EventData, LoggedEvent, Status, Verdict};
use crate::log::{Entry, SessionLog, logged};
use crate::principal::Principal;
use crate::redact::redact;
use crate::state::SessionState;
use crate::trace::{TraceRecord, trace};
use futures_util::FutureExt;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tack_agent::AgentSpec;
use tack_config::HostConfig;
use tack_runtime::Runtime;
use tack_store::{AgentRecord, NewEvent, SessionRecord, SessionStatus, Store};
use tokio::sync::{Notify, broadcast};

/// Retries of model calls.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// First backoff; doubled per attempt.
    pub base_delay: Duration,
    /// Longest wait between attempts (a provider's `retry-after` included).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// A piece of streamed model text, for live subscribers only (not logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// Run id.
    pub run_id: String,
    /// The text.
    pub text: String,
    /// Sequence number of the event logged just before the text was generated
    /// (the step's `model_request`): a stream sends the text after that event and
    /// before any event logged after it.
    pub after: u64,
}

/// Live events a subscriber may fall behind by before it reads from the store
/// instead (`RecvError::Lagged`); also the streamed text deltas kept for a slow one.
const LIVE_BUFFER: usize = 128;
/// Sessions loaded before the first sweep of unused ones.
const MIN_SWEEP_AT: usize = 256;

/// One session's live part: its log (and the state folded from it), its
/// subscribers, and its runner.
pub struct SessionHandle {
    /// Session id.
    pub id: String,
    /// Agent name.
    pub agent: String,
    /// Agent version.
    pub agent_version: u32,
    /// The user (token name) who created it, whose calls run on its behalf
    /// (`None` for sessions from before tack recorded owners).
    pub owner: Option<String>,
    /// Held while the session's state is read or its log written, so the
    /// state, the log and the broadcast agree on order.
    pub(crate) log: tokio::sync::Mutex<SessionLog>,
    pub(crate) events: broadcast::Sender<Arc<LoggedEvent>>,
    pub(crate) deltas: broadcast::Sender<Delta>,
    pub(crate) running: AtomicBool,
    pub(crate) cancel: Notify,
    /// The engine's clock, for grant checks made with only the handle.
    pub(crate) clock: Arc<dyn crate::Clock>,
}

pub(crate) struct Inner {
    pub(crate) host: Arc<HostConfig>,
    pub(crate) store: Store,
    pub(crate) resolver: Resolver,
    pub(crate) retry: RetryPolicy,
    pub(crate) clock: Arc<dyn crate::Clock>,
    sessions: Mutex<HashMap<String, Arc<SessionHandle>>>,
    /// Loaded sessions at which the next sweep of unused ones runs.
    sweep_at: AtomicUsize,
    /// Resolved agents, each with the tool servers' revision it was resolved
    /// at.
    agents: tokio::sync::Mutex<HashMap<(String, u32), Resolved>>,
    direct: Arc<crate::direct::DirectApprovals>,
    /// Calls waiting in-process: for the answer to a question they put
    /// (session, question id), or a program's call for its approval
    /// (session, approval id) -> where the answer (or word of the
    /// decision) goes.
    answers: Mutex<HashMap<(String, String), tokio::sync::oneshot::Sender<String>>>,
}

/// An agent as resolved, and the tool servers' revision it was resolved at.
type Resolved = (Arc<ResolvedAgent>, u64);

/// The agent engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// What the engine is built from.
pub struct EngineConfig {
    /// Host configuration.
    pub host: HostConfig,
    /// Plugin runtime.
    pub runtime: Runtime,
    /// Durable store.
    pub store: Store,
    /// Secrets (for model credentials), if a master key is set.
    pub secrets: Option<tack_secrets::Secrets>,
    /// Where components come from.
    pub components: Arc<dyn ComponentSource>,
    /// How agents' `mcp-servers` are reached (the host's MCP gateway); `None`:
    /// an agent that names one does not resolve.
    pub tool_servers: Option<Arc<dyn crate::remote::ToolServers>>,
    /// Model call retries.
    pub retry: RetryPolicy,
    /// The clock session grants expire by ([`SystemClock`](crate::SystemClock)
    /// outside tests).
    pub clock: Arc<dyn crate::Clock>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unload the sessions nobody uses: no runner, no subscriber, no other holder of
/// the handle, and nothing to do (no open run, so no pending approval or
/// question, and no queued message). The log holds everything; a later
/// [`Engine::handle`] loads the session again. Holding the sessions lock while
/// checking is what makes this safe: a handle is only ever handed out under it.
fn sweep(sessions: &mut HashMap<String, Arc<SessionHandle>>) {
    sessions.retain(|_, h| {
        Arc::strong_count(h) > 1
            || h.running.load(Ordering::SeqCst)
            || h.events.receiver_count() > 0
            || h.deltas.receiver_count() > 0
            || match h.log.try_lock() {
                Ok(state) => {
                    state.run.is_some() || !matches!(state.next(), crate::state::Next::Idle)
                }
                Err(_) => true,
            }
    });
}

impl Engine {
    /// An engine over `config`. Call [`resume`](Self::resume) once at start.
    pub fn new(config: EngineConfig) -> Engine {
        let host = Arc::new(config.host);
        Engine {
            inner: Arc::new(Inner {
                resolver: Resolver::new(
                    config.runtime,
                    config.components,
                    host.clone(),
                    config.secrets,
                )
                .with_tool_servers(config.tool_servers),
                host,
                store: config.store,
                retry: config.retry,
                clock: config.clock,
                sessions: Mutex::default(),
                sweep_at: AtomicUsize::new(MIN_SWEEP_AT),
                agents: tokio::sync::Mutex::default(),
                direct: Arc::default(),
                answers: Mutex::default(),
            }),
        }
    }

    /// Approvals of calls from outside a run (MCP clients), pending in this
    /// process.
    pub fn direct_approvals(&self) -> &Arc<crate::direct::DirectApprovals> {
        &self.inner.direct
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The host configuration.
    pub fn host(&self) -> &HostConfig {
        &self.inner.host
    }

    /// How this host reaches MCP servers (its gateway), if it does.
    pub fn tool_servers(&self) -> Option<&Arc<dyn crate::remote::ToolServers>> {
        self.inner.resolver.tool_servers()
    }

    /// The tools of the host's toolset `name`, resolved and verified (what
    /// `/mcp/{toolset}` serves).
    pub async fn toolset(
        &self,
        name: &str,
    ) -> Result<Vec<crate::components::ToolEntry>, EngineError> {
        self.inner.resolver.toolset(name).await
    }

    /// Register an agent file (YAML) as published by `by`; an unchanged file
    /// keeps its version. The first publisher of a name owns it: a later
    /// version comes from its owner or an admin
    /// ([`Principal::may_publish`]).
    pub async fn register_agent(
        &self,
        yaml: &str,
        by: &Principal,
    ) -> Result<AgentRecord, EngineError> {
        let spec = AgentSpec::parse(yaml)?;
        spec.validate(&*self.inner.host)?;
        let value = serde_json::to_value(&spec).map_err(|e| EngineError::Invalid(e.to_string()))?;
        let owner = self.inner.store.claim_agent(&spec.name, &by.name).await?;
        if !by.may_publish(owner.as_deref()) {
            let name = &spec.name;
            return Err(EngineError::Forbidden(match owner {
                Some(owner) => format!(
                    "agent `{name}` belongs to `{owner}`; only its owner or an admin may publish a \
                     version of it. Publish under another name, or ask an admin"
                ),
                None => format!(
                    "agent `{name}` was registered before tack recorded owners; an admin may \
                     publish it, or give it an owner with PUT /v1/agents/{name}/owner"
                ),
            }));
        }
        Ok(self.inner.store.put_agent(&spec.name, &value).await?)
    }

    /// Session `id`, if `who` reaches it ([`Principal::reaches_session`]); a
    /// session `who` does not reach is not found, exactly as one that does not
    /// exist, so its id tells nothing.
    pub async fn session(&self, id: &str, who: &Principal) -> Result<SessionRecord, EngineError> {
        self.inner
            .store
            .session(id)
            .await?
            .filter(|s| who.reaches_session(s.owner.as_deref()))
            .ok_or_else(|| EngineError::NotFound(format!("no session `{id}`")))
    }

    /// The agent `name` at `version` (latest when `None`), resolved and cached.
    pub(crate) async fn agent(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Arc<ResolvedAgent>, EngineError> {
        let revision = self.tool_servers().map_or(0, |s| s.revision());
        let mut agents = self.inner.agents.lock().await;
        // An agent with upstream tools is resolved again after a server
        // announced a change to its tool list.
        if let Some((a, at)) = agents.get(&(name.to_string(), version))
            && (*at == revision || !a.uses_remote_tools())
        {
            return Ok(a.clone());
        }
        let record = self
            .inner
            .store
            .agent(name, Some(version))
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!("agent `{name}` v{version} is not registered"))
            })?;
        let spec: AgentSpec = serde_json::from_value(record.spec).map_err(|e| {
            EngineError::Store(tack_store::StoreError::Corrupt {
                what: format!("agent {name} v{version}"),
                message: e.to_string(),
            })
        })?;
        let resolved = Arc::new(self.inner.resolver.resolve(spec, version).await?);
        agents.insert((name.to_string(), version), (resolved.clone(), revision));
        Ok(resolved)
    }

    /// Create a session for `agent` (`name` or `name@version`) and start its
    /// first run with `input`.
    pub async fn create_session(
        &self,
        agent: &str,
        input: &str,
        by: &Principal,
    ) -> Result<SessionRecord, EngineError> {
        let (name, version) = match agent.split_once('@') {
            Some((n, v)) => (
                n,
                Some(v.trim_start_matches('v').parse::<u32>().map_err(|_| {
                    EngineError::Invalid(format!(
                        "`{agent}`: the version after @ must be a number (agent versions are 1, 2, …)"
                    ))
                })?),
            ),
            None => (agent, None),
        };
        let version = match version {
            Some(v) => v,
            None => self
                .inner
                .store
                .latest_agent_version(name)
                .await?
                .ok_or_else(|| {
                    EngineError::NotFound(format!(
                        "agent `{name}` is not registered; create it with POST /v1/agents"
                    ))
                })?,
        };
        // Resolve before creating anything: a broken agent fails here, cleanly
        // (and a resolved agent is kept, so this reads nothing the next time).
        let agent = self.agent(name, version).await.map_err(|e| match e {
            EngineError::NotFound(_) => {
                EngineError::NotFound(format!("agent `{name}` has no version {version}"))
            }
            other => other,
        })?;
        if input.trim().is_empty() {
            return Err(EngineError::Invalid("`input` must not be empty".into()));
        }
        self.check_message_size("input", input)?;
        let cap = self.inner.host.limits.sessions_per_user;
        if let Some(owner) = by.session_owner_scope()
            && self.inner.store.count_sessions(owner).await? >= cap
        {
            return Err(EngineError::Quota(format!(
                "token `{owner}` owns {cap} sessions, the most this host allows a user \
                 (`sessions-per-user` in [limits]); ask an operator to raise it"
            )));
        }
        // The session and its first message in one write, `queued` from the
        // start; its handle starts from that one event (no log to read back).
        let message = EventData::UserMessage {
            text: input.to_string(),
            by: by.name.clone(),
        };
        let data = message.to_json();
        let first = NewEvent {
            kind: message.kind(),
            data: &data,
            private: None,
        };
        let (session, stored) = self
            .inner
            .store
            .create_session_with(
                &agent.spec.name,
                agent.version,
                &by.name,
                first,
                SessionStatus::Queued,
            )
            .await?;
        let mut state = SessionState::default();
        state.apply(&LoggedEvent {
            id: stored.id,
            seq: stored.seq,
            created_ms: stored.created_ms,
            data: message,
        });
        let live = broadcast::channel(LIVE_BUFFER).0;
        let log =
            SessionLog::with_state(&session.id, self.inner.store.clone(), live.clone(), state);
        let handle = self.insert_handle(&session, live, log);
        self.kick(handle);
        Ok(session)
    }

    /// Log a user message; an idle session is marked `queued` in the store in
    /// the same breath, so a host that dies before the run starts finds it again
    /// without replaying every idle session's log.
    async fn queue_message(
        &self,
        h: &SessionHandle,
        text: &str,
        by: &Principal,
    ) -> Result<LoggedEvent, EngineError> {
        let mut log = h.log.lock().await;
        let entry = Entry::one(EventData::UserMessage {
            text: text.to_string(),
            by: by.name.clone(),
        });
        let entry = match log.status {
            None | Some(Status::Idle) => entry.with_status(SessionStatus::Queued),
            _ => entry,
        };
        Ok(log.append(entry).await?.remove(0))
    }

    /// The live handle of session `id`, loading its log on first use.
    pub async fn handle(&self, id: &str) -> Result<Arc<SessionHandle>, EngineError> {
        if let Some(h) = self.inner.sessions.lock().expect("sessions lock").get(id) {
            return Ok(h.clone());
        }
        let record = self
            .inner
            .store
            .session(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no session `{id}`")))?;
        let live = broadcast::channel(LIVE_BUFFER).0;
        let log = SessionLog::load(id, self.inner.store.clone(), live.clone()).await?;
        Ok(self.insert_handle(&record, live, log))
    }

    /// The handle of session `record` with `log` (whose events go to `live`),
    /// unless another was loaded meanwhile (then that one); unused ones are
    /// swept as the map grows.
    fn insert_handle(
        &self,
        record: &SessionRecord,
        live: broadcast::Sender<Arc<LoggedEvent>>,
        log: SessionLog,
    ) -> Arc<SessionHandle> {
        let handle = Arc::new(SessionHandle {
            id: record.id.clone(),
            agent: record.agent.clone(),
            agent_version: record.agent_version,
            owner: record.owner.clone(),
            log: tokio::sync::Mutex::new(log),
            events: live,
            deltas: broadcast::channel(LIVE_BUFFER).0,
            running: AtomicBool::new(false),
            cancel: Notify::new(),
            clock: self.inner.clock.clone(),
        });
        let mut sessions = self.inner.sessions.lock().expect("sessions lock");
        let handle = sessions.entry(record.id.clone()).or_insert(handle).clone();
        if sessions.len() >= self.inner.sweep_at.load(Ordering::Relaxed) {
            sweep(&mut sessions);
            self.inner
                .sweep_at
                .store((sessions.len() * 2).max(MIN_SWEEP_AT), Ordering::Relaxed);
        }
        handle
    }

    /// Start the session's runner unless one runs.
    pub(crate) fn kick(&self, h: Arc<SessionHandle>) {
        if h.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                // A panic in the runner (a bug) must not leave the session marked
                // as running with nobody driving it: end the run as an error.
                let driven = AssertUnwindSafe(crate::runner::drive(&engine, &h))
                    .catch_unwind()
                    .await;
                if let Err(panic) = &driven {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    tracing::error!(session = %h.id, "the runner panicked: {what}");
                    crate::runner::recover(&engine, &h, &what).await;
                } else if let Ok(Err(e)) = driven {
                    tracing::error!(session = %h.id, "the run stopped: {e}");
                    let error = EventData::Error {
                        run_id: None,
                        error_type: "host".into(),
                        message: e.to_string(),
                    };
                    let _ = h.log.lock().await.append_one(error).await;
                }
                h.running.store(false, Ordering::SeqCst);
                // Work may have arrived between the runner's last look and now.
                let more = crate::runner::has_work(&**h.log.lock().await);
                if !more || h.running.swap(true, Ordering::SeqCst) {
                    break;
                }
            }
        });
    }

    /// The sessions this host has loaded.
    fn loaded(&self) -> Vec<Arc<SessionHandle>> {
        self.inner
            .sessions
            .lock()
            .expect("sessions lock")
            .values()
            .cloned()
            .collect()
    }

    /// How many sessions are loaded in memory now (sessions with an open run,
    /// a runner or a subscriber, and recently used ones; idle sessions are
    /// unloaded as more are loaded).
    pub fn loaded_sessions(&self) -> usize {
        self.inner.sessions.lock().expect("sessions lock").len()
    }

    /// Pick up every session that was mid-run (or had a message queued) when the
    /// host stopped. Idle sessions are not read.
    pub async fn resume(&self) -> Result<usize, EngineError> {
        let mut n = 0;
        for status in [
            SessionStatus::Running,
            SessionStatus::WaitingApproval,
            SessionStatus::WaitingInput,
            SessionStatus::Queued,
        ] {
            for s in self.inner.store.sessions_with_status(status).await? {
                let h = self.handle(&s.id).await?;
                {
                    let mut log = h.log.lock().await;
                    if !crate::runner::has_work(&log) && log.run.is_none() {
                        continue;
                    }
                    if let Some(run) = &log.run
                        && status == SessionStatus::Running
                    {
                        let run_id = run.run_id.clone();
                        log.append_one(EventData::RunResumed { run_id }).await?;
                    }
                    // Authorizations in progress lived in the host that
                    // stopped: those calls ask again, with a new address.
                    for (run_id, call_id, server) in log.awaiting_auth() {
                        log.append_one(EventData::McpAuthCompleted {
                            run_id,
                            call_id,
                            server,
                            authorized: false,
                        })
                        .await?;
                    }
                }
                self.kick(h);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether `text`, given as `field`, fits the host's `max-message-bytes`.
    fn check_message_size(&self, field: &str, text: &str) -> Result<(), EngineError> {
        let most = self.inner.host.limits.max_message_bytes;
        if text.len() > most {
            return Err(EngineError::Invalid(format!(
                "`{field}` is {} bytes; this host takes at most {most} \
                 (`max-message-bytes` in [limits])",
                text.len()
            )));
        }
        Ok(())
    }

    /// A user message: queued, and run after the current run (if any).
    pub async fn post_message(
        &self,
        session: &str,
        text: &str,
        by: &Principal,
    ) -> Result<LoggedEvent, EngineError> {
        if text.trim().is_empty() {
            return Err(EngineError::Invalid("`text` must not be empty".into()));
        }
        self.check_message_size("text", text)?;
        let h = self.handle(session).await?;
        let e = self.queue_message(&h, text, by).await?;
        self.kick(h);
        Ok(e)
    }

    /// An approver's decision on pending approval `approval_id`.
    pub async fn decide(
        &self,
        session: &str,
        approval_id: &str,
        by: &Principal,
        verdict: Verdict,
        reason: Option<String>,
        arguments: Option<Value>,
    ) -> Result<LoggedEvent, EngineError> {
        let h = self.handle(session).await?;
        let mut log = h.log.lock().await;
        let approval = log.approval(approval_id).cloned().ok_or_else(|| {
            EngineError::NotFound(format!(
                "session `{session}` has no approval `{approval_id}`; list pending ones with GET /v1/approvals"
            ))
        })?;
        if let Some(d) = approval.decided {
            return Err(EngineError::Conflict(format!(
                "approval `{approval_id}` was already decided ({d:?}); a decision cannot be changed",
            )));
        }
        if approval.closed {
            return Err(EngineError::Conflict(format!(
                "approval `{approval_id}` belongs to a run that ended before it was decided \
                 (interrupted, out of time or failed): nothing waits for it. Send a new message \
                 to start another run"
            )));
        }
        if !by.may_approve(&approval.approvers) {
            return Err(EngineError::Forbidden(format!(
                "the `{}` role may not decide approval `{approval_id}`; it needs one of: {}",
                by.role,
                approval.approvers.join(", ")
            )));
        }
        let run_id = log
            .run
            .as_ref()
            .map(|r| r.run_id.clone())
            .unwrap_or_default();
        let arguments = crate::approval::decided_arguments(verdict, arguments)?;
        // Edited arguments must fit the tool before the approval is spent on
        // them: a misfit is refused and the approval stays pending.
        if let Some(edited) = &arguments {
            let agent = self.agent(&h.agent, h.agent_version).await?;
            let entry = agent
                .tools
                .iter()
                .chain(agent.skills.iter().flat_map(|k| k.tools.iter()))
                .find(|t| t.name == approval.tool && t.plugin == approval.plugin);
            if let Some(entry) = entry {
                crate::approval::check_edit(entry, edited, approval_id).await?;
            }
        }
        let grant_expires_ms = match (verdict, approval.scope) {
            (Verdict::Approve | Verdict::Edit, crate::events::Scope::Session) => Some(
                self.inner.clock.now_ms() + approval.grant_ttl_s.unwrap_or(15 * 60) as i64 * 1000,
            ),
            _ => None,
        };
        let private = EventData::ApprovalDecided {
            run_id: run_id.clone(),
            approval_id: approval_id.to_string(),
            call_id: approval.call_id.clone(),
            decision: verdict,
            by: by.name.clone(),
            role: by.role.to_string(),
            reason: reason.clone(),
            arguments: arguments.clone(),
            grant_expires_ms,
        };
        let public = EventData::ApprovalDecided {
            run_id,
            approval_id: approval_id.to_string(),
            call_id: approval.call_id.clone(),
            decision: verdict,
            by: by.name.clone(),
            role: by.role.to_string(),
            reason,
            arguments: arguments.as_ref().map(|a| redact(a, &approval.redacted)),
            grant_expires_ms,
        };
        let private = (private != public).then_some(private);
        let e = log
            .append(Entry::default().and_private(public, private))
            .await?
            .remove(0);
        drop(log);
        // A program's call waiting for it reads the decision from the log.
        self.wake(session, approval_id, String::new());
        self.kick(h);
        Ok(e)
    }

    /// The user's answer to an `ask_user` question.
    pub async fn answer(
        &self,
        session: &str,
        question_id: &str,
        answer: &str,
        by: &Principal,
    ) -> Result<LoggedEvent, EngineError> {
        self.check_message_size("answer", answer)?;
        let h = self.handle(session).await?;
        let mut log = h.log.lock().await;
        let mid_call = log.open_tool_question(question_id);
        if log.open_question(question_id).is_none() && !mid_call {
            return Err(EngineError::NotFound(format!(
                "session `{session}` has no open question `{question_id}`"
            )));
        }
        let e = log
            .append_one(EventData::UserAnswer {
                question_id: question_id.to_string(),
                answer: answer.to_string(),
                by: by.name.clone(),
            })
            .await?;
        drop(log);
        if mid_call {
            self.wake(session, question_id, answer.to_string());
        } else {
            self.kick(h);
        }
        Ok(e)
    }

    /// Finish a user's authorization with an upstream MCP server, from the
    /// address the user's browser was sent back to; the calls that waited for
    /// it go on. Returns the server and the user.
    pub async fn complete_mcp_authorization(
        &self,
        callback_url: &str,
    ) -> Result<(String, String), EngineError> {
        let servers = self
            .tool_servers()
            .ok_or_else(|| EngineError::NotFound("this host reaches no MCP servers".into()))?;
        let done = servers
            .complete_authorization(callback_url)
            .await
            .map_err(|e| match e.code {
                "not_found" => EngineError::NotFound(e.message),
                _ => EngineError::Invalid(e.message),
            })?;
        for (session, call) in &done.waiters {
            let Ok(h) = self.handle(session).await else {
                continue;
            };
            let mut log = h.log.lock().await;
            let waiting = log.awaiting_auth().into_iter().find(|(_, c, _)| c == call);
            if let Some((run_id, call_id, server)) = waiting {
                log.append_one(EventData::McpAuthCompleted {
                    run_id,
                    call_id,
                    server,
                    authorized: done.failed.is_none(),
                })
                .await?;
                drop(log);
                self.kick(h);
            }
        }
        match done.failed {
            None => Ok((done.server, done.user)),
            Some(why) => Err(EngineError::Invalid(why)),
        }
    }

    /// Where the answer to question `question_id` of `session`, put by a
    /// tool mid-call, will arrive.
    pub(crate) fn expect_answer(
        &self,
        session: &str,
        question_id: &str,
    ) -> tokio::sync::oneshot::Receiver<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .answers
            .lock()
            .expect("answers lock")
            .insert((session.to_string(), question_id.to_string()), tx);
        rx
    }

    /// Hand `payload` to whatever waits in-process on `key` of `session`.
    fn wake(&self, session: &str, key: &str, payload: String) {
        let waiting = self
            .inner
            .answers
            .lock()
            .expect("answers lock")
            .remove(&(session.to_string(), key.to_string()));
        if let Some(tx) = waiting {
            let _ = tx.send(payload);
        }
    }

    /// Stop waiting for that answer.
    pub(crate) fn forget_answer(&self, session: &str, question_id: &str) {
        self.inner
            .answers
            .lock()
            .expect("answers lock")
            .remove(&(session.to_string(), question_id.to_string()));
    }

    /// Stop the session's current run.
    pub async fn interrupt(
        &self,
        session: &str,
        by: &Principal,
    ) -> Result<LoggedEvent, EngineError> {
        let h = self.handle(session).await?;
        let e = {
            let mut log = h.log.lock().await;
            if log.run.is_none() {
                return Err(EngineError::Conflict(format!(
                    "session `{session}` has no run in progress"
                )));
            }
            log.append_one(EventData::Interrupt {
                by: by.name.clone(),
            })
            .await?
        };
        h.cancel.notify_waiters();
        self.kick(h);
        Ok(e)
    }

    /// Events of `session` after `after`, at most `limit` (as served: redacted).
    pub async fn events(
        &self,
        session: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>, EngineError> {
        let events = self.inner.store.events(session, after, limit).await?;
        // Every session's log starts with its first message: only an empty answer
        // needs a look at whether the session exists.
        if events.is_empty() && self.inner.store.session(session).await?.is_none() {
            return Err(EngineError::NotFound(format!("no session `{session}`")));
        }
        events.iter().map(|e| logged(e).map(|(l, _)| l)).collect()
    }

    /// Live events and text deltas of `session`.
    pub async fn subscribe(
        &self,
        session: &str,
    ) -> Result<
        (
            broadcast::Receiver<Arc<LoggedEvent>>,
            broadcast::Receiver<Delta>,
        ),
        EngineError,
    > {
        let h = self.handle(session).await?;
        Ok((h.events.subscribe(), h.deltas.subscribe()))
    }

    /// The trace records of run `run_id` of `session`.
    pub async fn trace(
        &self,
        session: &str,
        run_id: &str,
    ) -> Result<Vec<TraceRecord>, EngineError> {
        let record = self
            .inner
            .store
            .session(session)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no session `{session}`")))?;
        let events = self.events(session, 0, u32::MAX).await?;
        let records = trace(&record.agent, run_id, &events);
        if records.is_empty()
            && !events
                .iter()
                .any(|e| matches!(&e.data, EventData::RunStarted { run_id: r, .. } if r == run_id))
        {
            return Err(EngineError::NotFound(format!(
                "session `{session}` has no run `{run_id}`"
            )));
        }
        Ok(records)
    }

    /// Pending approvals across the live sessions this host knows (those loaded
    /// since start, which includes every resumed one).
    pub async fn pending_approvals(&self) -> Vec<(String, LoggedEvent)> {
        let handles = self.loaded();
        let mut out = Vec::new();
        for h in handles {
            let pending: Vec<String> = {
                let log = h.log.lock().await;
                log.pending_approvals().map(|a| a.id.clone()).collect()
            };
            if pending.is_empty() {
                continue;
            }
            if let Ok(events) = self.events(&h.id, 0, u32::MAX).await {
                for e in events {
                    if let EventData::ApprovalRequired { approval_id, .. } = &e.data
                        && pending.contains(approval_id)
                    {
                        out.push((h.id.clone(), e));
                    }
                }
            }
        }
        out
    }

    /// Whether `status` is the session's current one (for tests and the CLI).
    pub async fn status(&self, session: &str) -> Result<Option<Status>, EngineError> {
        let h = self.handle(session).await?;
        Ok(h.log.lock().await.status)
    }
}

impl Engine {
    /// The session holding approval `approval_id`, among the sessions this host
    /// has loaded (every session with a pending approval is loaded at start).
    pub async fn session_of_approval(
        &self,
        approval_id: &str,
    ) -> Result<Option<String>, EngineError> {
        let handles = self.loaded();
        for h in handles {
            if h.log.lock().await.approval(approval_id).is_some() {
                return Ok(Some(h.id.clone()));
            }
        }
        Ok(None)
    }
}
