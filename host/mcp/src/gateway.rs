//! The gateway: upstream MCP servers as tool sources for agents.
//!
//! [`Gateway`] implements the engine's [`ToolServers`]: an agent's
//! `mcp-servers` resolve to its tools (after the annotation policy and the
//! operator's filters), and each call goes through one shared connection per
//! server, made on first use and made again after the server went away. The
//! engine gates, logs and claims the calls like any tool's; here they are
//! checked against the server's input schema, bounded by `call-timeout`, and
//! their results mapped to tool content and cut to `max-result-bytes`.

use crate::client::{ChangeWatch, Upstream, UpstreamError, UpstreamTool};
use crate::oauth::Login;
use crate::oauth::Subject;
use futures_util::future::BoxFuture;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tack_config::{Delegation, McpServerConfig};
use tack_engine::remote::{
    Asker, AuthorizationNeeded, CompletedAuthorization, RemoteEntry, RemoteError, RemoteTool,
    ToolServers,
};
use tack_runtime::{Annotations, CallContext, Content, ToolDescriptor};
use tack_secrets::Secrets;
use tokio::sync::Mutex;

/// The host's upstream MCP servers, connected on demand. Cheap to clone (the
/// clones share the connections).
#[derive(Clone)]
pub struct Gateway {
    servers: Arc<BTreeMap<String, Server>>,
    secrets: Option<Secrets>,
    /// Tool-list changes announced by any server.
    changes: ChangeWatch,
    /// Where browsers come back to after a user authorizes tack
    /// (`PUBLIC-URL/v1/mcp-oauth/callback`), when this gateway runs in a host
    /// that serves it.
    callback: Option<String>,
    /// Users' authorizations in progress, by their OAuth `state`.
    logins: Arc<Mutex<HashMap<String, PendingLogin>>>,
}

/// A user's authorization of tack with a server, and the calls waiting for
/// it.
struct PendingLogin {
    server: String,
    user: String,
    login: Login,
    /// (session id, call id)
    waiters: Vec<(String, String)>,
}

/// The path browsers come back to after authorizing tack with an upstream
/// server, on the host's public address.
pub const CALLBACK_PATH: &str = "/v1/mcp-oauth/callback";

struct Server {
    config: McpServerConfig,
    /// The live connections: the host's (`None`), shared by every call, and
    /// for a per-user server one per user with that user's token.
    live: Mutex<HashMap<Option<String>, Arc<Upstream>>>,
}

impl Gateway {
    /// A gateway to the servers of the host configuration (none is started
    /// yet), taking the credentials they name from `secrets`.
    pub fn new(servers: &BTreeMap<String, McpServerConfig>, secrets: Option<Secrets>) -> Gateway {
        Gateway {
            servers: Arc::new(
                servers
                    .iter()
                    .map(|(name, config)| {
                        let server = Server {
                            config: config.clone(),
                            live: Mutex::new(HashMap::new()),
                        };
                        (name.clone(), server)
                    })
                    .collect(),
            ),
            secrets,
            changes: ChangeWatch::default(),
            callback: None,
            logins: Arc::default(),
        }
    }

    /// This gateway, starting users' authorizations (per-user servers) with
    /// browsers sent back to `public_base` + [`CALLBACK_PATH`].
    pub fn with_callback(mut self, public_base: &str) -> Gateway {
        self.callback = Some(format!(
            "{}{CALLBACK_PATH}",
            public_base.trim_end_matches('/')
        ));
        self
    }

    /// Whether server `name` takes each user's own token.
    fn per_user(&self, name: &str) -> bool {
        self.server(name).is_ok_and(|s| {
            s.config
                .oauth
                .as_ref()
                .is_some_and(|o| o.delegation == Delegation::PerUser)
        })
    }

    /// `None` if `user` holds a token for per-user server `name`; else the
    /// address where the user authorizes tack, the call (`session`, `call`)
    /// waiting for that. One authorization per user and server is in
    /// progress at a time; later calls wait for the same one.
    async fn authorization(
        &self,
        name: &str,
        user: &str,
        waiter: (String, String),
    ) -> Result<Option<AuthorizationNeeded>, UpstreamError> {
        let server = self.server(name)?;
        // A live connection of this user's already carries the token: no
        // need to read the store on every call.
        let key = Some(user.to_string());
        if server
            .live
            .lock()
            .await
            .get(&key)
            .is_some_and(|u| !u.is_closed())
        {
            return Ok(None);
        }
        let config = &server.config;
        let unusable = |message: String| UpstreamError::Config {
            server: name.to_string(),
            message,
        };
        let secrets = self.secrets.as_ref().ok_or_else(|| {
            unusable(
                "users' tokens are sealed in the store, and this host has no master key \
                 (set TACK_MASTER_KEY)"
                    .into(),
            )
        })?;
        let sealed = crate::oauth::credential_name(name, Subject::User(user));
        let held = secrets
            .reveal(&sealed)
            .await
            .map_err(|e| unusable(format!("user tokens cannot be read: {e}")))?;
        if held.is_some() {
            return Ok(None);
        }
        let callback = self.callback.as_ref().ok_or_else(|| {
            unusable(
                "its calls carry each user's own token, and this process serves no address \
                 to come back to after authorizing (run the agent on `tack serve`)"
                    .into(),
            )
        })?;
        let mut logins = self.logins.lock().await;
        if let Some(p) = logins
            .values_mut()
            .find(|p| p.server == name && p.user == user)
        {
            p.waiters.push(waiter);
            return Ok(Some(AuthorizationNeeded {
                server: name.to_string(),
                user: user.to_string(),
                url: p.login.url().to_string(),
            }));
        }
        let login = Login::begin(
            name,
            config,
            Some(secrets),
            Subject::User(user),
            callback,
            None,
        )
        .await?;
        let state = login
            .state()
            .ok_or_else(|| unusable("the authorization address carries no `state`".into()))?;
        let url = login.url().to_string();
        logins.insert(
            state,
            PendingLogin {
                server: name.to_string(),
                user: user.to_string(),
                login,
                waiters: vec![waiter],
            },
        );
        Ok(Some(AuthorizationNeeded {
            server: name.to_string(),
            user: user.to_string(),
            url,
        }))
    }

    /// The connection to server `name` for `user` (`None`: the host's), made
    /// now if there is none or the last one ended.
    async fn upstream(
        &self,
        name: &str,
        user: Option<&str>,
    ) -> Result<Arc<Upstream>, UpstreamError> {
        let server = self.server(name)?;
        let mut live = server.live.lock().await;
        let key = user.map(str::to_string);
        if let Some(u) = live.get(&key).filter(|u| !u.is_closed()) {
            return Ok(u.clone());
        }
        live.remove(&key);
        let subject = match user {
            None => Subject::Host,
            Some(u) => Subject::User(u),
        };
        let u = Arc::new(
            Upstream::connect_watched(
                name,
                &server.config,
                self.secrets.as_ref(),
                self.changes.clone(),
                subject,
            )
            .await?,
        );
        live.insert(key, u.clone());
        Ok(u)
    }

    /// Whose connection a call by `principal` to server `name` uses: the
    /// caller's own for a per-user server (a call without a caller is
    /// refused), else the host's.
    fn caller<'p>(
        &self,
        name: &str,
        principal: Option<&'p str>,
    ) -> Result<Option<&'p str>, UpstreamError> {
        let per_user = self
            .server(name)?
            .config
            .oauth
            .as_ref()
            .is_some_and(|o| o.delegation == Delegation::PerUser);
        match (per_user, principal) {
            (false, _) => Ok(None),
            (true, Some(p)) => Ok(Some(p)),
            (true, None) => Err(UpstreamError::Authorization {
                server: name.to_string(),
                challenge: None,
                message: "its calls carry each user's own token, and this call has no user".into(),
            }),
        }
    }

    fn server(&self, name: &str) -> Result<&Server, UpstreamError> {
        self.servers.get(name).ok_or_else(|| UpstreamError::Config {
            server: name.to_string(),
            message: "no such server in the host configuration".into(),
        })
    }

    /// Drop the connection to `name` if it is `failed` (a later call connects
    /// again).
    async fn forget(&self, name: &str, failed: &Arc<Upstream>) {
        if let Ok(server) = self.server(name) {
            server
                .live
                .lock()
                .await
                .retain(|_, u| !Arc::ptr_eq(u, failed));
        }
    }

    /// The tools server `name` offers agents, after its filters.
    pub async fn offered(&self, name: &str) -> Result<Vec<UpstreamTool>, UpstreamError> {
        let config = &self.server(name)?.config;
        // A per-user server's list comes through the host's own login: the
        // tools are the same for every user.
        let upstream = self.upstream(name, None).await?;
        let tools = upstream.tools().await?;
        Ok(tools
            .into_iter()
            .filter(|t| config.offers(&t.tool.name, t.destructive, t.read_only))
            .collect())
    }
}

impl ToolServers for Gateway {
    fn revision(&self) -> u64 {
        self.changes.count()
    }

    fn complete_authorization<'a>(
        &'a self,
        callback_url: &'a str,
    ) -> BoxFuture<'a, Result<CompletedAuthorization, RemoteError>> {
        Box::pin(async move {
            let state = url::Url::parse(callback_url).ok().and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned())
            });
            let pending = match state {
                Some(state) => self.logins.lock().await.remove(&state),
                None => None,
            };
            let Some(p) = pending else {
                return Err(RemoteError::new(
                    "not_found",
                    "no authorization of this host is waiting for this address (it was \
                     finished already, or the host restarted since it began: the waiting \
                     run shows a new address)",
                ));
            };
            let failed = p
                .login
                .finish(callback_url)
                .await
                .err()
                .map(|e| e.to_string());
            Ok(CompletedAuthorization {
                server: p.server,
                user: p.user,
                waiters: p.waiters,
                failed,
            })
        })
    }

    fn tools<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<RemoteEntry>, RemoteError>> {
        Box::pin(async move {
            let tools = self.offered(name).await.map_err(remote_error)?;
            let config = &self.server(name).map_err(remote_error)?.config;
            let max_result = config
                .max_result_bytes
                .unwrap_or(McpServerConfig::MAX_RESULT_BYTES);
            Ok(tools
                .into_iter()
                .map(|t| {
                    let descriptor = descriptor(&t);
                    let validator = match jsonschema::validator_for(&descriptor.input_schema) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            tracing::warn!(
                                "MCP server `{name}`: the input schema of `{}` does not \
                                 compile ({e}); its arguments are checked only to be an object",
                                t.tool.name
                            );
                            None
                        }
                    };
                    RemoteEntry {
                        destructive: t.destructive,
                        tool: Arc::new(GatewayTool {
                            gateway: self.clone(),
                            server: name.to_string(),
                            tool: t.tool.name.to_string(),
                            validator,
                            max_result,
                        }),
                        descriptor,
                    }
                })
                .collect())
        })
    }
}

/// A tool as the engine describes it: the server's own name, description and
/// schemas, with the effective flags as annotations.
fn descriptor(t: &UpstreamTool) -> ToolDescriptor {
    let hints = t.tool.annotations.clone().unwrap_or_default();
    ToolDescriptor {
        name: t.tool.name.to_string(),
        description: t
            .tool
            .description
            .as_deref()
            .unwrap_or_default()
            .to_string(),
        input_schema: Value::Object((*t.tool.input_schema).clone()),
        output_schema: t
            .tool
            .output_schema
            .as_ref()
            .map(|s| Value::Object((**s).clone())),
        annotations: Annotations {
            destructive: t.destructive,
            read_only: t.read_only,
            idempotent: hints.idempotent_hint.unwrap_or(false),
            open_world: hints.open_world_hint.unwrap_or(true),
        },
    }
}

fn remote_error(e: UpstreamError) -> RemoteError {
    let code = match &e {
        UpstreamError::Timeout { .. } => "timeout",
        UpstreamError::Gone { .. } | UpstreamError::Connect { .. } => "unavailable",
        UpstreamError::Config { .. } | UpstreamError::Request { .. } => "protocol",
        UpstreamError::Authorization { .. } => "unauthorized",
    };
    RemoteError::new(code, e.to_string())
}

/// One tool of an upstream server, called through the gateway's connection.
struct GatewayTool {
    gateway: Gateway,
    server: String,
    tool: String,
    validator: Option<jsonschema::Validator>,
    max_result: usize,
}

impl RemoteTool for GatewayTool {
    fn authorization<'a>(
        &'a self,
        ctx: &'a CallContext,
    ) -> BoxFuture<'a, Result<Option<AuthorizationNeeded>, RemoteError>> {
        Box::pin(async move {
            // Without a user the call itself fails, saying so.
            let (true, Some(user), Some(session)) = (
                self.gateway.per_user(&self.server),
                ctx.principal.as_deref(),
                ctx.session_id.as_deref(),
            ) else {
                return Ok(None);
            };
            self.gateway
                .authorization(
                    &self.server,
                    user,
                    (session.to_string(), ctx.call_id.clone()),
                )
                .await
                .map_err(remote_error)
        })
    }

    fn check_arguments(&self, arguments: &Value) -> Result<(), RemoteError> {
        let invalid = |detail: String| {
            RemoteError::new(
                "invalid_arguments",
                format!(
                    "the arguments do not fit the input schema of `{}` (MCP server `{}`): {detail}",
                    self.tool, self.server
                ),
            )
        };
        if !arguments.is_object() {
            return Err(invalid("they must be a JSON object".into()));
        }
        let Some(v) = &self.validator else {
            return Ok(());
        };
        let errors: Vec<String> = v
            .iter_errors(arguments)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(invalid(errors.join("; ")))
        }
    }

    fn call<'a>(
        &'a self,
        arguments: &'a Value,
        ctx: &'a CallContext,
        asker: Arc<dyn Asker>,
    ) -> BoxFuture<'a, Result<Vec<Content>, RemoteError>> {
        Box::pin(async move {
            let user = self
                .gateway
                .caller(&self.server, ctx.principal.as_deref())
                .map_err(remote_error)?;
            let upstream = self
                .gateway
                .upstream(&self.server, user)
                .await
                .map_err(remote_error)?;
            let outcome = match upstream
                .call_tool(&self.tool, arguments.clone(), asker)
                .await
            {
                Ok(r) => parts(r, self.max_result),
                Err(e) => {
                    if e.is_connection_lost() || upstream.is_closed() {
                        self.gateway.forget(&self.server, &upstream).await;
                    }
                    Err(remote_error(e))
                }
            };
            // A tool the server no longer lists (servers answer with a
            // JSON-RPC error or a tool error): say so, beside what the
            // server's error says.
            if let Err(e) = &outcome
                && matches!(e.code, "protocol" | "tool_error")
                && let Ok(tools) = upstream.tools().await
                && !tools.iter().any(|t| t.tool.name == self.tool)
            {
                return Err(RemoteError::new(
                    "not_found",
                    format!(
                        "MCP server `{}` no longer offers `{}` (its tool list changed since \
                         this run began; the next run sees the new list): {}",
                        self.server, self.tool, e.message
                    ),
                ));
            }
            outcome
        })
    }
}

/// A call's result as tool content: `structuredContent` as one JSON part when
/// there is one (its text blocks are the same data, by the specification's
/// advice), else each text block as text; other blocks are described, not
/// passed on. An `isError` result is the tool's error, with its text. The
/// whole is cut to `max` bytes of text.
fn parts(r: CallToolResult, max: usize) -> Result<Vec<Content>, RemoteError> {
    let blocks: Vec<String> = r
        .content
        .iter()
        .filter(|b| !(r.structured_content.is_some() && matches!(b, ContentBlock::Text(_))))
        .map(describe_block)
        .collect();
    if r.is_error == Some(true) {
        let mut text = blocks.join(
            "
",
        );
        if let Some(v) = &r.structured_content {
            text = format!(
                "{v}
{text}"
            )
            .trim_end()
            .to_string();
        }
        if text.is_empty() {
            text = "the tool reported an error and said nothing more".into();
        }
        return Err(RemoteError::new("tool_error", cut(text, max)));
    }
    let mut parts: Vec<Content> = Vec::new();
    if let Some(v) = r.structured_content {
        parts.push(Content::Json(v));
    }
    parts.extend(blocks.into_iter().map(Content::Text));
    let size: usize = parts
        .iter()
        .map(|p| match p {
            Content::Text(t) => t.len(),
            Content::Json(v) => v.to_string().len(),
        })
        .sum();
    if size <= max {
        return Ok(parts);
    }
    let text = parts
        .iter()
        .map(|p| match p {
            Content::Text(t) => t.clone(),
            Content::Json(v) => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join(
            "
",
        );
    Ok(vec![Content::Text(cut(text, max))])
}

/// `text` cut to at most `max` bytes (on a character boundary), with a note
/// saying how much there was.
fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}
[cut: the result was {} bytes; this server's max-result-bytes is {max}]",
        &text[..end],
        text.len()
    )
}

/// A content block as text for the model.
fn describe_block(b: &ContentBlock) -> String {
    match b {
        ContentBlock::Text(t) => t.text.clone(),
        ContentBlock::Image(i) => format!(
            "[image content: {}, {} bytes of base64, not shown]",
            i.mime_type,
            i.data.len()
        ),
        ContentBlock::Audio(a) => format!(
            "[audio content: {}, {} bytes of base64, not shown]",
            a.mime_type,
            a.data.len()
        ),
        ContentBlock::Resource(r) => match &r.resource {
            ResourceContents::TextResourceContents { uri, text, .. } => {
                format!(
                    "[resource {uri}]
{text}"
                )
            }
            ResourceContents::BlobResourceContents { uri, mime_type, .. } => format!(
                "[resource {uri}: binary{}, not shown]",
                mime_type
                    .as_deref()
                    .map(|m| format!(" {m}"))
                    .unwrap_or_default()
            ),
            _ => "[a resource of a kind tack does not know, not shown]".into(),
        },
        ContentBlock::ResourceLink(l) => format!("[resource link: {} ({})]", l.uri, l.name),
        _ => "[content of a kind tack does not know, not shown]".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(blocks: Vec<ContentBlock>, structured: Option<Value>, error: bool) -> CallToolResult {
        let mut r = if error {
            CallToolResult::error(blocks)
        } else {
            CallToolResult::success(blocks)
        };
        r.structured_content = structured;
        r
    }

    #[test]
    fn structured_content_is_one_json_part_and_its_text_twin_is_dropped() {
        let v = serde_json::json!({"balance": 120});
        let r = result(
            vec![ContentBlock::text(v.to_string()), ContentBlock::text("x")],
            Some(v.clone()),
            false,
        );
        assert_eq!(parts(r, 1 << 20).unwrap(), [Content::Json(v)]);
        let r = result(
            vec![ContentBlock::text("a"), ContentBlock::text("b")],
            None,
            false,
        );
        assert_eq!(
            parts(r, 1 << 20).unwrap(),
            [Content::Text("a".into()), Content::Text("b".into())]
        );
    }

    #[test]
    fn an_error_result_is_the_tools_error_with_its_text() {
        let r = result(vec![ContentBlock::text("no such order")], None, true);
        let e = parts(r, 1 << 20).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("tool_error", "no such order")
        );
    }

    #[test]
    fn a_result_over_the_limit_is_cut_on_a_character_boundary_and_says_so() {
        let r = result(vec![ContentBlock::text("é".repeat(100))], None, false);
        let [Content::Text(t)] = &parts(r, 51).unwrap()[..] else {
            panic!("one text part")
        };
        let (kept, note) = t.split_once('\n').unwrap();
        assert_eq!(kept, "é".repeat(25));
        assert_eq!(
            note,
            "[cut: the result was 200 bytes; this server's max-result-bytes is 51]"
        );
    }
}
