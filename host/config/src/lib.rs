//! The host configuration, one TOML file (`--config`, `TACK_CONFIG`):
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! public-url = "https://tack.example.com"   # default: http://LISTEN (browsers come back here)
//! storage = "sqlite://tack.db"          # or postgres://user@host/db
//! code-runner = "tack/code-js@0.1.0"    # the component code-mode programs run in (the default)
//!
//! [models.demo]                         # the model catalog
//! adapter = "tack/openai-chat@0.1.0"    # a model-adapter component
//! endpoint = "http://127.0.0.1:9000/v1"
//! model = "gpt-4o-mini"                 # the provider's id (default: the catalog name)
//! credential = "OPENAI_API_KEY"         # a secret name (`tack secret set`), never a value
//! credential-header = "authorization"   # default; sent as `Bearer <secret>` (Anthropic: x-api-key)
//! input-usd-per-mtok = 0.15
//! output-usd-per-mtok = 0.60
//!
//! [tools."tack/payments"]               # central flags and grant, by repository
//! destructive = ["issue_refund"]
//! read-only = ["read_balance"]
//! grant = { dirs = ["/var/lib/tack/payments:/state"], wall-clock = true }
//!
//! [approval-policies.refunds-over-100]
//! component = "tack/refund-policy-gate@0.1.0"   # or: tools = ["issue_refund"]
//! approver-role = "approver"
//! scope = "call"                        # or "session"
//! grant-ttl = "15m"
//! redact = ["account"]
//!
//! [toolsets.support]                   # tools `tack mcp serve support` offers MCP clients
//! tools = ["tack/jq@0.1.0"]             # tool plugins (flags and grants from [tools.*])
//!
//! [mcp-servers.payments]               # an upstream MCP server (stdio, or url = "…")
//! command = "tack"
//! args = ["mcp", "serve", "support"]
//! env = ["TACK_CONFIG"]                 # passed through; nothing else of the host's
//! trust-annotations = false             # the default: unlisted tools count as destructive
//! read-only = ["read_balance"]
//!
//! [limits]                             # host-wide limits and quotas (defaults shown)
//! connections = 1024                    # API connections served at once
//! header-timeout = "10s"                # to send a request's headers (or the next one)
//! requests-per-minute = 1200            # per token (0: unlimited)
//! max-message-bytes = 65536             # a session's input or a user message
//! sessions-per-user = 10000             # sessions one `user` token may own
//! streams-per-session = 16              # live event streams open on one session
//! streams-per-token = 64                # live event streams open by one token
//! agent-max-steps = 200                 # caps on every agent's `limits`: a file
//! agent-timeout = "1h"                  # asking more is refused, one asking
//! # agent-max-tokens, agent-max-cost-usd  # nothing gets the cap
//!
//! # and the registry part: default-registry, [registries.*], [trust.*]
//! ```
//!
//! Unknown keys are refused with their path; model entries must not carry
//! credential values (only secret names).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tack_capability::{Grant, HumanDuration};
use tack_distribution::DistributionConfig;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong, naming the key.
    pub message: String,
}

/// One model in the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelEntry {
    /// The model-adapter component (a registry reference with a version).
    pub adapter: String,
    /// The provider's base URL.
    pub endpoint: String,
    /// The provider's model id (default: the catalog name).
    pub model: Option<String>,
    /// The name of the secret holding the credential.
    pub credential: Option<String>,
    /// The header the host puts the credential in (default `authorization`,
    /// sent as `Bearer <secret>`; any other header gets the bare secret, e.g.
    /// `x-api-key` for Anthropic).
    pub credential_header: Option<String>,
    /// Price per million input tokens, in US dollars.
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    /// Price per million output tokens, in US dollars.
    #[serde(default)]
    pub output_usd_per_mtok: f64,
}

impl ModelEntry {
    /// The cost in US dollars of `input` and `output` tokens.
    pub fn cost_usd(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_usd_per_mtok + output as f64 * self.output_usd_per_mtok) / 1e6
    }
}

/// Central settings of one plugin (by repository): flags that override what the
/// plugin says about its tools, and the sandbox grant its calls get.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolSettings {
    /// Tools treated as destructive whatever their annotations say.
    #[serde(default)]
    pub destructive: Vec<String>,
    /// Tools treated as read-only.
    #[serde(default)]
    pub read_only: Vec<String>,
    /// The grant every call of this plugin gets.
    #[serde(default)]
    pub grant: Grant,
}

/// How long an approval covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalScope {
    /// This call only.
    Call,
    /// The same tool for the rest of the session.
    Session,
}

/// An approval policy as the host configuration defines it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApprovalPolicyConfig {
    /// A policy component deciding per call (a registry reference with a version).
    pub component: Option<String>,
    /// Tools that always need approval (by tool name; `*destructive` for every
    /// destructive tool).
    #[serde(default)]
    pub tools: Vec<String>,
    /// The role that may approve.
    #[serde(default = "approver")]
    pub approver_role: String,
    /// What one approval covers.
    #[serde(default = "per_call")]
    pub scope: ApprovalScope,
    /// How long a session-scoped approval lasts.
    pub grant_ttl: Option<HumanDuration>,
    /// Argument names the approver does not see (and no event shows).
    #[serde(default)]
    pub redact: Vec<String>,
}

fn approver() -> String {
    "approver".into()
}

fn per_call() -> ApprovalScope {
    ApprovalScope::Call
}

/// An upstream MCP server the host connects to (`[mcp-servers.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct McpServerConfig {
    /// Start the server as this program, speaking MCP on its stdio.
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables passed through from the host's environment, by
    /// name; the child gets these (and `PATH`, `HOME`) and nothing else.
    #[serde(default)]
    pub env: Vec<String>,
    /// Environment variables of a stdio server set from the host's secrets:
    /// variable name = secret name (`GITHUB_TOKEN = "GITHUB_PAT"`).
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    /// Reach the server over streamable HTTP at this URL.
    pub url: Option<String>,
    /// Send `Authorization: Bearer <value>` with every HTTP request, the value
    /// being this secret's.
    pub bearer_secret: Option<String>,
    /// Headers sent with every HTTP request, each set from a secret: header
    /// name = secret name (`X-Api-Key = "ZENDESK_KEY"`).
    #[serde(default)]
    pub secret_headers: BTreeMap<String, String>,
    /// Headers sent with every HTTP request, as written (not for credentials:
    /// use `secret-headers`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whether the server's own tool annotations are believed (otherwise a
    /// tool counts as destructive unless `read-only` lists it).
    #[serde(default)]
    pub trust_annotations: bool,
    /// Tools treated as destructive whatever the server says.
    #[serde(default)]
    pub destructive: Vec<String>,
    /// Tools treated as read-only whatever the server says.
    #[serde(default)]
    pub read_only: Vec<String>,
    /// How long connecting (and the handshake) may take.
    pub connect_timeout: Option<HumanDuration>,
    /// How long one call may take.
    pub call_timeout: Option<HumanDuration>,
    /// Largest result, in bytes of text, a call may hand to a model; a longer
    /// one is cut to this size with a note saying so.
    pub max_result_bytes: Option<usize>,
    /// Only these tools are offered (names, or the groups `@read-only` and
    /// `@destructive`, judged after the flags above); unset: all.
    pub enable_tools: Option<Vec<String>>,
    /// These tools are never offered (names or groups), whatever
    /// `enable-tools` says.
    #[serde(default)]
    pub disable_tools: Vec<String>,
    /// Reach the server with OAuth 2.1 tokens (`[mcp-servers.NAME.oauth]`;
    /// HTTP servers only).
    pub oauth: Option<McpOAuthConfig>,
    /// Let the server sample a model (`sampling/createMessage`) during a
    /// run's call: this catalog model answers, billed to the run. Unset:
    /// sampling requests are refused.
    pub sampling_model: Option<String>,
}

/// How the gateway gets OAuth tokens for an upstream server. Discovery
/// (protected-resource and authorization-server metadata), PKCE, the
/// `resource` indicator and refreshing are not configured: they follow the
/// specification.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct McpOAuthConfig {
    /// A client id registered with the authorization server beforehand.
    /// Unset: a client metadata document (`client-metadata-url`) where the
    /// server accepts one, else dynamic client registration.
    pub client_id: Option<String>,
    /// The secret holding that client's secret (a confidential client).
    pub client_secret: Option<String>,
    /// The HTTPS address of this host's client metadata document.
    pub client_metadata_url: Option<String>,
    /// The scopes to ask for. Unset: those the server's challenge or
    /// metadata name.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whose token a call carries.
    #[serde(default)]
    pub delegation: Delegation,
}

/// Whose OAuth token the gateway sends to an upstream server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delegation {
    /// One token for the whole host, from `tack mcp login NAME`.
    #[default]
    Host,
    /// Each session user's own: a run whose user has none asks the user to
    /// authorize (`mcp_auth_required`) and waits.
    PerUser,
}

impl McpServerConfig {
    /// The largest result a call may return when the configuration does not say.
    pub const MAX_RESULT_BYTES: usize = 256 * 1024;

    /// Whether a tool called `name`, destructive or not after the annotation
    /// policy, passes `enable-tools` and `disable-tools`.
    pub fn offers(&self, name: &str, destructive: bool, read_only: bool) -> bool {
        let matches = |item: &String| match item.as_str() {
            "@destructive" => destructive,
            "@read-only" => read_only,
            other => other == name,
        };
        self.enable_tools
            .as_ref()
            .is_none_or(|list| list.iter().any(matches))
            && !self.disable_tools.iter().any(matches)
    }
}

/// A named set of tools served to MCP clients (`[toolsets.NAME]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Toolset {
    /// Tool plugin references, each with a version; their flags and grants
    /// come from `[tools."repo"]` as for an agent.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Upstream MCP servers (names of `[mcp-servers.*]`) whose tools this
    /// toolset serves too, through the gateway, as `server__tool`.
    #[serde(default)]
    pub mcp_servers: Vec<String>,
    /// What becomes of a call to a destructive tool.
    #[serde(default)]
    pub destructive_calls: DestructiveCalls,
    /// The role that decides such calls (`admin` always may).
    #[serde(default = "approver")]
    pub approver_role: String,
    /// How long a call waits for its decision before it fails (default 10
    /// minutes).
    #[serde(default)]
    pub approval_timeout: Option<HumanDuration>,
    /// JSON Pointers of arguments approvers do not see.
    #[serde(default)]
    pub redact: Vec<String>,
}

impl Toolset {
    /// How long a call waits for approval when the configuration does not say.
    pub const APPROVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
}

/// What tack's MCP server does with a call to a destructive tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestructiveCalls {
    /// Hold it until an approver decides through the approvals API (the
    /// default). Over stdio, where no approver can be reached, it is refused.
    #[default]
    Approve,
    /// Refuse it with a tool error that says why.
    Refuse,
    /// Run it: the client gates calls itself, as another tack host's gateway
    /// does (it asks its own approvers first). Only for a toolset whose
    /// clients are such hosts: whoever can reach the server can run the tools.
    Run,
}

/// Host-wide limits and quotas (`[limits]`); every one has a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HostLimits {
    /// API connections served at once; more wait in the listen backlog.
    pub connections: usize,
    /// How long a client has to send a request's headers (on a keep-alive
    /// connection: to start its next request).
    pub header_timeout: HumanDuration,
    /// API requests one token may make per minute (0: unlimited).
    pub requests_per_minute: u32,
    /// Largest session input or user message, in bytes.
    pub max_message_bytes: usize,
    /// Sessions one `user` token may own.
    pub sessions_per_user: u64,
    /// Live event streams open at once on one session.
    pub streams_per_session: usize,
    /// Live event streams open at once by one token.
    pub streams_per_token: usize,
    /// Most model calls a run of any agent may make.
    pub agent_max_steps: u32,
    /// Longest a run of any agent may take.
    pub agent_timeout: HumanDuration,
    /// Most tokens a run of any agent may use (none: no cap).
    pub agent_max_tokens: Option<u64>,
    /// Most a run of any agent may spend, in US dollars (none: no cap).
    pub agent_max_cost_usd: Option<f64>,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            connections: 1024,
            header_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            requests_per_minute: 1200,
            max_message_bytes: 64 * 1024,
            sessions_per_user: 10_000,
            streams_per_session: 16,
            streams_per_token: 64,
            agent_max_steps: 200,
            agent_timeout: HumanDuration(std::time::Duration::from_secs(3600)),
            agent_max_tokens: None,
            agent_max_cost_usd: None,
        }
    }
}

impl HostLimits {
    /// Why these limits cannot be used, if they cannot.
    fn check(&self) -> Result<(), String> {
        let positive = [
            ("connections", self.connections as u64),
            ("max-message-bytes", self.max_message_bytes as u64),
            ("sessions-per-user", self.sessions_per_user),
            ("streams-per-session", self.streams_per_session as u64),
            ("streams-per-token", self.streams_per_token as u64),
            ("agent-max-steps", self.agent_max_steps as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("limits.{key} must be at least 1"));
        }
        for (key, d) in [
            ("header-timeout", self.header_timeout),
            ("agent-timeout", self.agent_timeout),
        ] {
            if d.0.is_zero() || d.0 > MAX_TIMEOUT {
                return Err(format!(
                    "limits.{key} must be between 1ms and {} days",
                    MAX_TIMEOUT.as_secs() / 86_400
                ));
            }
        }
        if self
            .agent_max_cost_usd
            .is_some_and(|c| !(c >= 0.0 && c.is_finite()))
        {
            return Err("limits.agent-max-cost-usd must be a number of dollars, 0 or more".into());
        }
        Ok(())
    }
}

/// The longest any configured timeout may be (a week): longer ones are
/// mistakes, and far longer ones overflow clocks.
pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("a valid address")
}

fn default_storage() -> String {
    "sqlite://tack.db".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HostSection {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    public_url: Option<String>,
    #[serde(default = "default_storage")]
    storage: String,
    #[serde(default)]
    models: BTreeMap<String, ModelEntry>,
    #[serde(default)]
    tools: BTreeMap<String, ToolSettings>,
    #[serde(default)]
    approval_policies: BTreeMap<String, ApprovalPolicyConfig>,
    #[serde(default)]
    guest_file_io: GuestFileIo,
    #[serde(default)]
    limits: HostLimits,
    #[serde(default)]
    toolsets: BTreeMap<String, Toolset>,
    #[serde(default)]
    mcp_servers: BTreeMap<String, McpServerConfig>,
    #[serde(default)]
    mcp: McpEndpoint,
    #[serde(default = "default_code_runner")]
    code_runner: String,
}

fn default_code_runner() -> String {
    "tack/code-js@0.1.0".into()
}

/// `/mcp/{toolset}` on `tack serve` (`[mcp]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct McpEndpoint {
    /// `Host` values (names, or `name:port`) the endpoint answers to besides
    /// loopback and the `listen` address: the names clients use to reach this
    /// host. Anything else is refused, against DNS rebinding.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`https://app.example.com:443`, `http://localhost:*`)
    /// allowed to call the endpoint; a request from any other origin is
    /// refused. Clients that are not browsers send no `Origin`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// Where a guest's file operations (in its granted directories) run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestFileIo {
    /// On the calling worker thread when every directory the call is granted is
    /// on a local disk or memory filesystem (ext4, XFS, Btrfs, tmpfs, overlayfs
    /// and the like), else on the thread pool (the default).
    #[default]
    Auto,
    /// On tokio's blocking thread pool: each operation hops threads, so a hung
    /// one (a network mount, a FIFO in a granted directory) stalls only its own
    /// call, which then times out.
    ThreadPool,
    /// On the calling worker thread: an idle host answers a tool call that reads a
    /// file about three times sooner (no thread hop). Only for granted
    /// directories of regular files on local disks: opening a FIFO, or a hung
    /// network mount, would stall the worker and every session on it.
    Direct,
}

/// The whole host configuration.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where the sessions API listens.
    pub listen: SocketAddr,
    /// The address people reach this host at, when it is not `listen` (a
    /// name, a proxy in front): browsers are sent back to it after
    /// authorizing tack with an upstream MCP server.
    pub public_url: Option<String>,
    /// The durable store's URL (`sqlite://PATH`, relative to the file, or `postgres://…`).
    pub storage: String,
    /// The model catalog.
    pub models: BTreeMap<String, ModelEntry>,
    /// Central tool settings by plugin repository.
    pub tools: BTreeMap<String, ToolSettings>,
    /// Approval policies by name.
    pub approval_policies: BTreeMap<String, ApprovalPolicyConfig>,
    /// Registries, credentials and trust.
    pub distribution: DistributionConfig,
    /// Where guests' file operations run.
    pub guest_file_io: GuestFileIo,
    /// Host-wide limits and quotas.
    pub limits: HostLimits,
    /// Tool sets served over MCP, by name.
    pub toolsets: BTreeMap<String, Toolset>,
    /// Upstream MCP servers, by name.
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
    /// The code-runner component programs run in (code mode): a registry
    /// reference with a version, fetched and verified like any component.
    pub code_runner: String,
    /// The MCP endpoint of `tack serve`.
    pub mcp: McpEndpoint,
    /// Where relative paths start.
    pub base_dir: PathBuf,
}

const DISTRIBUTION_KEYS: &[&str] = &[
    "default-registry",
    "require-signatures",
    "registries",
    "trust",
];

impl HostConfig {
    /// Parse the configuration file at `path` from `text`.
    pub fn from_toml(text: &str, path: &Path) -> Result<HostConfig, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let (dist, host): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(k, _)| DISTRIBUTION_KEYS.contains(&k.as_str()));
        let distribution = DistributionConfig::from_toml(
            &toml::to_string(&dist).map_err(|e| err(e.to_string()))?,
            path,
        )
        .map_err(|e| err(e.0))?;
        let host: HostSection = host
            .try_into()
            .map_err(|e: toml::de::Error| err(e.to_string()))?;
        for (name, m) in &host.models {
            if let Some(c) = &m.credential
                && let Some(what) = tack_agent::looks_like_secret(c)
            {
                return Err(err(format!(
                    "models.{name}.credential looks like {what}: it names a secret (`tack secret set NAME`), it does not hold one"
                )));
            }
            if m.input_usd_per_mtok < 0.0 || m.output_usd_per_mtok < 0.0 {
                return Err(err(format!("models.{name}: prices must not be negative")));
            }
            if !(m.endpoint.starts_with("http://") || m.endpoint.starts_with("https://")) {
                return Err(err(format!(
                    "models.{name}.endpoint `{}` is not an http(s) URL",
                    m.endpoint
                )));
            }
        }
        for (name, p) in &host.approval_policies {
            if p.component.is_none() && p.tools.is_empty() {
                return Err(err(format!(
                    "approval-policies.{name}: give `tools` that need approval or a policy `component`"
                )));
            }
        }
        host.limits.check().map_err(err)?;
        for (name, t) in &host.toolsets {
            for (i, server) in t.mcp_servers.iter().enumerate() {
                if !host.mcp_servers.contains_key(server) {
                    let known: Vec<&str> = host.mcp_servers.keys().map(String::as_str).collect();
                    return Err(err(format!(
                        "toolsets.{name}.mcp-servers[{i}]: no MCP server `{server}` is \
                         configured (known: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            }
        }
        if let Some(u) = &host.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(err(format!(
                "public-url: `{u}` is not an http:// or https:// URL"
            )));
        }
        for (name, m) in &host.mcp_servers {
            if m.command.is_some() == m.url.is_some() {
                return Err(err(format!(
                    "mcp-servers.{name}: give either `command` (stdio) or `url` (streamable HTTP)"
                )));
            }
            let stdio = m.command.is_some();
            for (field, set, wanted) in [
                ("secret-env", !m.secret_env.is_empty(), true),
                ("env", !m.env.is_empty(), true),
                ("args", !m.args.is_empty(), true),
                ("bearer-secret", m.bearer_secret.is_some(), false),
                ("secret-headers", !m.secret_headers.is_empty(), false),
                ("headers", !m.headers.is_empty(), false),
                ("oauth", m.oauth.is_some(), false),
            ] {
                if set && stdio != wanted {
                    return Err(err(format!(
                        "mcp-servers.{name}.{field}: only for a server reached {}",
                        if wanted {
                            "as a child process (`command`)"
                        } else {
                            "over HTTP (`url`)"
                        }
                    )));
                }
            }
            if let Some(url) = &m.url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(err(format!(
                    "mcp-servers.{name}.url: `{url}` is not an http:// or https:// URL"
                )));
            }
            for (header, value) in &m.headers {
                let what = tack_agent::looks_like_secret(value).or_else(|| {
                    ["authorization", "cookie", "x-api-key"]
                        .iter()
                        .any(|h| header.eq_ignore_ascii_case(h))
                        .then_some("a credential header")
                });
                if let Some(what) = what {
                    return Err(err(format!(
                        "mcp-servers.{name}.headers.{header} looks like {what}, and credentials \
                         do not belong in the configuration: store it with `tack secret set \
                         NAME` and name the secret in `bearer-secret` or `secret-headers`"
                    )));
                }
            }
            let named = (m.secret_env.values().map(|n| ("secret-env", n)))
                .chain(m.secret_headers.values().map(|n| ("secret-headers", n)))
                .chain(m.bearer_secret.iter().map(|n| ("bearer-secret", n)))
                .chain(
                    m.oauth
                        .iter()
                        .flat_map(|o| o.client_secret.iter())
                        .map(|n| ("oauth.client-secret", n)),
                );
            for (field, n) in named {
                if let Some(what) = tack_agent::looks_like_secret(n) {
                    return Err(err(format!(
                        "mcp-servers.{name}.{field} holds what looks like {what}: it names \
                         secrets (`tack secret set NAME`), it does not hold them"
                    )));
                }
            }
            if let Some(model) = &m.sampling_model
                && !host.models.contains_key(model)
            {
                return Err(err(format!(
                    "mcp-servers.{name}.sampling-model: no model `{model}` in the catalog \
                     (models: {})",
                    host.models.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if let Some(o) = &m.oauth {
                if m.bearer_secret.is_some() {
                    return Err(err(format!(
                        "mcp-servers.{name}: `bearer-secret` and `oauth` both set the \
                         Authorization header; keep one"
                    )));
                }
                if o.client_secret.is_some() && o.client_id.is_none() {
                    return Err(err(format!(
                        "mcp-servers.{name}.oauth.client-secret: a client secret belongs to a \
                         pre-registered client; give its `client-id` too"
                    )));
                }
                if let Some(u) = &o.client_metadata_url
                    && !u.starts_with("https://")
                {
                    return Err(err(format!(
                        "mcp-servers.{name}.oauth.client-metadata-url: `{u}` must be an \
                         https:// URL (authorization servers fetch it)"
                    )));
                }
            }
            if name.contains("__") {
                return Err(err(format!(
                    "mcp-servers.{name}: a server name may not contain `__` (it separates the \
                     server from the tool in tool names)"
                )));
            }
            if m.max_result_bytes == Some(0) {
                return Err(err(format!(
                    "mcp-servers.{name}.max-result-bytes: must be at least 1"
                )));
            }
            for (field, list) in [
                (
                    "enable-tools",
                    m.enable_tools.as_deref().unwrap_or_default(),
                ),
                ("disable-tools", &m.disable_tools[..]),
            ] {
                if let Some(g) = list.iter().find(|t| {
                    t.starts_with('@') && !["@read-only", "@destructive"].contains(&t.as_str())
                }) {
                    return Err(err(format!(
                        "mcp-servers.{name}.{field}: `{g}` is not a group; the groups are \
                         `@read-only` and `@destructive`"
                    )));
                }
            }
        }
        Ok(HostConfig {
            limits: host.limits,
            toolsets: host.toolsets,
            mcp_servers: host.mcp_servers,
            mcp: host.mcp,
            code_runner: host.code_runner,
            listen: host.listen,
            public_url: host.public_url.map(|u| u.trim_end_matches('/').to_string()),
            storage: host.storage,
            models: host.models,
            tools: host.tools,
            approval_policies: host.approval_policies,
            guest_file_io: host.guest_file_io,
            distribution,
            base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        })
    }

    /// The host's address as people reach it: `public-url`, else `listen`.
    pub fn public_base(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Read the configuration file at `path`.
    pub fn load(path: &Path) -> Result<HostConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        HostConfig::from_toml(&text, path)
    }
}

impl tack_agent::Catalog for HostConfig {
    fn has_model(&self, name: &str) -> bool {
        self.models.contains_key(name)
    }
    fn models(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }
    fn has_approval_policy(&self, name: &str) -> bool {
        self.approval_policies.contains_key(name)
    }
    fn default_registry(&self) -> Option<String> {
        self.distribution.default_registry.clone()
    }
    fn allows_registry(&self, registry: &str) -> bool {
        self.distribution.allows_registry(registry)
    }
    fn mcp_servers(&self) -> Vec<String> {
        self.mcp_servers.keys().cloned().collect()
    }
    fn limit_caps(&self) -> tack_agent::Limits {
        let l = &self.limits;
        tack_agent::Limits {
            max_steps: Some(l.agent_max_steps),
            max_cost_usd: l.agent_max_cost_usd,
            max_tokens: l.agent_max_tokens,
            timeout: Some(l.agent_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tack_agent::{AgentSpec, Catalog};

    const FILE: &str = r#"
listen = "127.0.0.1:8181"
default-registry = "localhost:5050"

[models.demo]
adapter = "tack/openai-chat@0.1.0"
endpoint = "http://127.0.0.1:9000/v1"
credential = "DEMO_KEY"
input-usd-per-mtok = 2.5
output-usd-per-mtok = 10

[tools."tack/payments"]
destructive = ["issue_refund"]
grant = { wall-clock = true }

[approval-policies.refunds-over-100]
component = "tack/refund-gate@0.1.0"
scope = "session"
grant-ttl = "15m"
redact = ["account"]

[trust."*"]
require-signature = false
"#;

    fn path() -> PathBuf {
        PathBuf::from("/etc/tack/tack.toml")
    }

    #[test]
    fn the_whole_file_parses_and_serves_as_the_agent_catalog() {
        let c = HostConfig::from_toml(FILE, &path()).unwrap();
        assert_eq!(c.listen.port(), 8181);
        assert_eq!(c.guest_file_io, GuestFileIo::Auto, "the default");
        assert_eq!(c.storage, "sqlite://tack.db");
        assert_eq!(
            c.distribution.default_registry.as_deref(),
            Some("localhost:5050")
        );
        assert!(c.distribution.trust.contains_key("*"));
        assert!((c.models["demo"].cost_usd(1_000_000, 100_000) - 3.5).abs() < 1e-9);
        assert!(c.tools["tack/payments"].grant.wall_clock);
        let p = &c.approval_policies["refunds-over-100"];
        assert_eq!(
            (p.scope, p.approver_role.as_str()),
            (ApprovalScope::Session, "approver")
        );
        assert_eq!(c.models(), ["demo"]);
        let agent = AgentSpec::parse(
            "name: a\nmodel: demo\ntools: [tack/payments@0.1.0]\napproval-policy: refunds-over-100\n",
        )
        .unwrap();
        agent.validate(&c).unwrap();
    }

    #[test]
    fn mistakes_name_the_key() {
        let e = |text: &str| {
            HostConfig::from_toml(text, &path())
                .unwrap_err()
                .to_string()
        };
        assert!(e("lisen = \"x\"").contains("unknown field `lisen`"));
        assert!(e("guest-file-io = \"async\"").contains("unknown variant `async`"));
        let c = HostConfig::from_toml("guest-file-io = \"direct\"", &path()).unwrap();
        assert_eq!(c.guest_file_io, GuestFileIo::Direct);
        let c = HostConfig::from_toml("guest-file-io = \"thread-pool\"", &path()).unwrap();
        assert_eq!(c.guest_file_io, GuestFileIo::ThreadPool);
        assert!(
            e("[models.m]\nadapter = \"a@1.0.0\"\nendpoint = \"ftp://x\"")
                .contains("models.m.endpoint")
        );
        let key = format!("sk-{}", "Zq7Xw2Lp9Rt4Vb8Nm3Kc6Hd1Jf5Gs0Ay");
        let text = format!(
            "[models.m]\nadapter = \"a@1.0.0\"\nendpoint = \"http://x\"\ncredential = \"{key}\""
        );
        let msg = e(&text);
        assert!(msg.contains("models.m.credential looks like"), "{msg}");
        assert!(!msg.contains(&key));
        assert!(e("[approval-policies.p]\nscope = \"call\"").contains("give `tools`"));
        assert!(
            e("[approval-policies.p]\ntools = [\"x\"]\nscope = \"forever\"")
                .contains("unknown variant `forever`")
        );
        assert!(e("[trust.acme]\nkeys = []\nrequire = true").contains("unknown field `require`"));
    }

    #[test]
    fn limits_have_defaults_and_refuse_nonsense_naming_the_key() {
        let c = HostConfig::from_toml("", &path()).unwrap();
        assert_eq!(c.limits, HostLimits::default());
        let c = HostConfig::from_toml(
            "[limits]\nstreams-per-session = 3\nagent-timeout = \"2h\"\nagent-max-cost-usd = 0.5",
            &path(),
        )
        .unwrap();
        assert_eq!(c.limits.streams_per_session, 3);
        assert_eq!(c.limits.agent_timeout.0.as_secs(), 7200);
        assert_eq!(c.limits.agent_max_cost_usd, Some(0.5));
        let e = |text: &str| {
            HostConfig::from_toml(text, &path())
                .unwrap_err()
                .to_string()
        };
        assert!(e("[limits]\nconnections = 0").contains("limits.connections must be at least 1"));
        assert!(e("[limits]\nagent-timeout = \"9999h\"").contains("limits.agent-timeout"));
        assert!(e("[limits]\nagent-max-cost-usd = -1.0").contains("agent-max-cost-usd"));
        assert!(e("[limits]\nstreams = 4").contains("unknown field `streams`"));
        let c = HostConfig::from_toml("[toolsets.s]\ntools = [\"a/b@1.0.0\"]", &path()).unwrap();
        assert_eq!(c.toolsets["s"].tools, ["a/b@1.0.0"]);
        assert!(e("[toolsets.s]\ntool = []").contains("unknown field `tool`"));
        assert!(
            e("[toolsets.s]\nmcp-servers = [\"jira\"]")
                .contains("toolsets.s.mcp-servers[0]: no MCP server `jira` is configured")
        );
        let m = |body: &str| e(&format!("[mcp-servers.m]\n{body}"));
        assert!(m("command = \"x\"\nurl = \"http://h\"").contains("either `command`"));
        assert!(m("args = []").contains("either `command`"));
        assert!(e("[mcp-servers.a__b]\ncommand = \"x\"").contains("`__`"));
        let c = HostConfig::from_toml("[mcp-servers.t]\ncommand = \"mcp-server-time\"", &path())
            .unwrap();
        assert!(
            !c.mcp_servers["t"].trust_annotations,
            "hints are not believed by default"
        );
        assert!(
            m("command = \"x\"\ndisable-tools = [\"@writes\"]").contains(
                "mcp-servers.m.disable-tools: `@writes` is not a group; the groups are `@read-only`"
            )
        );
        assert!(m("command = \"x\"\nmax-result-bytes = 0").contains("max-result-bytes"));
        assert!(
            m("command = \"x\"\nbearer-secret = \"T\"")
                .contains("mcp-servers.m.bearer-secret: only for a server reached over HTTP")
        );
        assert!(
            m("url = \"http://h/mcp\"\nsecret-env = { A = \"B\" }")
                .contains("secret-env: only for a server reached as a child process")
        );
        assert!(m("url = \"ftp://h\"").contains("not an http:// or https:// URL"));
        assert!(
            m("url = \"http://h\"\nheaders = { Authorization = \"Bearer x\" }")
                .contains("headers.Authorization looks like a credential header")
        );
        let key = format!("sk-{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6");
        let e = m(&format!("url = \"http://h\"\nbearer-secret = \"{key}\""));
        assert!(e.contains("bearer-secret holds what looks like"), "{e}");
        assert!(!e.contains(&key), "the value is not echoed: {e}");
        let c = HostConfig::from_toml(
            "[mcp-servers.z]\nurl = \"https://z.example/mcp\"\nbearer-secret = \"Z_TOKEN\"\n\
             secret-headers = { X-Team-Key = \"Z_KEY\" }\nheaders = { X-Team = \"support\" }",
            &path(),
        )
        .unwrap();
        assert_eq!(c.mcp_servers["z"].bearer_secret.as_deref(), Some("Z_TOKEN"));
    }

    #[test]
    fn tool_filters_take_names_and_groups_and_disable_wins() {
        let server = |body: &str| {
            HostConfig::from_toml(
                &format!("[mcp-servers.m]\ncommand = \"x\"\n{body}"),
                &path(),
            )
            .unwrap()
            .mcp_servers
            .remove("m")
            .unwrap()
        };
        // (name, destructive, read-only)
        let tools = [
            ("read", false, true),
            ("write", true, false),
            ("other", false, false),
        ];
        let offered = |s: &McpServerConfig| {
            tools
                .iter()
                .filter(|(n, d, r)| s.offers(n, *d, *r))
                .map(|t| t.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(offered(&server("")), ["read", "write", "other"]);
        assert_eq!(
            offered(&server("enable-tools = [\"@read-only\"]")),
            ["read"]
        );
        assert_eq!(
            offered(&server("disable-tools = [\"@destructive\"]")),
            ["read", "other"]
        );
        assert_eq!(
            offered(&server(
                "enable-tools = [\"@read-only\", \"write\"]\ndisable-tools = [\"write\"]"
            )),
            ["read"],
            "disable-tools wins"
        );
    }

    #[test]
    fn oauth_settings_are_checked_naming_the_key() {
        let load = |body: &str| {
            HostConfig::from_toml(
                &format!("[mcp-servers.m]\nurl = \"https://m.example/mcp\"\n{body}"),
                &path(),
            )
        };
        let c = load("[mcp-servers.m.oauth]\nclient-id = \"tack\"\nclient-secret = \"M_CLIENT\"\ndelegation = \"per-user\"\n")
            .unwrap();
        let o = c.mcp_servers["m"].oauth.clone().unwrap();
        assert_eq!(o.delegation, Delegation::PerUser);
        assert_eq!(o.client_secret.as_deref(), Some("M_CLIENT"));
        let o = load("[mcp-servers.m.oauth]\n").unwrap().mcp_servers["m"]
            .oauth
            .clone()
            .unwrap();
        assert_eq!(o.delegation, Delegation::Host, "the default");
        for (body, expected) in [
            (
                "bearer-secret = \"T\"\n[mcp-servers.m.oauth]\n",
                "`bearer-secret` and `oauth` both",
            ),
            (
                "[mcp-servers.m.oauth]\nclient-secret = \"S\"\n",
                "oauth.client-secret: a client secret belongs to a pre-registered client",
            ),
            (
                "[mcp-servers.m.oauth]\nclient-metadata-url = \"http://m.example/c.json\"\n",
                "must be an https:// URL",
            ),
            (
                "[mcp-servers.m.oauth]\ndelegation = \"everyone\"\n",
                "delegation",
            ),
        ] {
            let e = load(body).unwrap_err().to_string();
            assert!(e.contains(expected), "{body}: {e}");
        }
        let e = HostConfig::from_toml(
            "[mcp-servers.m]\ncommand = \"x\"\n[mcp-servers.m.oauth]\n",
            &path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mcp-servers.m.oauth: only for a server reached over HTTP"),
            "{e}"
        );
    }
}
