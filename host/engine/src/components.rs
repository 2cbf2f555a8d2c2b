//! Where the engine's components come from, and what an agent resolves to: its
//! model adapter (bound to the endpoint and its credential), its tools (with
//! central flags and grants applied), its skills and its approval policy.

use crate::builtin;
use crate::error::EngineError;
use crate::remote::{RemoteTool, ToolServers};
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use tack_agent::AgentSpec;
use tack_capability::{Grant, HttpGrant};
use tack_config::{ApprovalPolicyConfig, HostConfig, ModelEntry};
use tack_runtime::{
    BoundAdapter, Credential, ModelTools, PolicyComponent, Runtime, Sandbox, ToolDescriptor,
};

/// An artifact's contents as the engine needs them.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Its digest (manifest digest from a registry, or the file's sha256).
    pub digest: String,
    /// The component, if it is one.
    pub component: Option<Vec<u8>>,
    /// The `SKILL.md`, if it is a skill.
    pub skill: Option<String>,
    /// The fingerprint of the trusted key that signed it; `None` when no
    /// trusted key did (unsigned, or a source that does not verify).
    pub signer: Option<String>,
}

/// Why a [`ComponentSource`] could not provide an artifact.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source has nothing under this reference.
    #[error("`{0}` is not known to this source")]
    Unknown(String),
    /// A local file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The source refused or failed to provide it: a malformed reference, a
    /// registry error, a signature or digest refusal (the source's own error,
    /// shown as it is).
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
}

/// Obtains artifacts by reference (`namespace/name@version`). A registry source
/// verifies what it returns (signatures, digests, lock); the engine loads only
/// what a source returned.
pub trait ComponentSource: Send + Sync {
    /// Fetch (and, for registries, verify) `reference`.
    fn fetch<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Artifact, SourceError>>;
}

/// Artifacts from local files by reference, for tests, benchmarks and
/// development (no signatures: `tack serve` uses a registry source).
#[derive(Default, Clone)]
pub struct LocalSource {
    files: HashMap<String, PathBuf>,
    skills: HashMap<String, String>,
}

impl LocalSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve the component at `path` as `reference`.
    pub fn component(mut self, reference: &str, path: impl Into<PathBuf>) -> Self {
        self.files.insert(reference.to_string(), path.into());
        self
    }

    /// Serve a skill (`SKILL.md` text) as `reference`.
    pub fn skill(mut self, reference: &str, skill_md: &str) -> Self {
        self.skills
            .insert(reference.to_string(), skill_md.to_string());
        self
    }
}

impl ComponentSource for LocalSource {
    fn fetch<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Artifact, SourceError>> {
        Box::pin(async move {
            if let Some(text) = self.skills.get(reference) {
                return Ok(Artifact {
                    digest: format!("local:{reference}"),
                    component: None,
                    skill: Some(text.clone()),
                    signer: None,
                });
            }
            let path = self
                .files
                .get(reference)
                .ok_or_else(|| SourceError::Unknown(reference.to_string()))?;
            let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
                path: path.clone(),
                source,
            })?;
            Ok(Artifact {
                digest: format!("local:{reference}"),
                component: Some(bytes),
                skill: None,
                signer: None,
            })
        })
    }
}

/// One tool as an agent's model sees it.
#[derive(Clone)]
pub struct ToolEntry {
    /// Name the model uses (the tool's own, or `plugin_tool` when two plugins
    /// offer the same name).
    pub name: String,
    /// The tool's own name.
    pub tool: String,
    /// Where it comes from: a plugin reference, `builtin` for host tools, or
    /// `mcp:SERVER` for an upstream MCP server's.
    pub plugin: String,
    /// The descriptor sent to the model (named [`name`](Self::name)).
    pub descriptor: ToolDescriptor,
    /// Destructive after central flags.
    pub destructive: bool,
    /// Where calls run.
    pub backend: Backend,
}

/// Where a tool's calls run.
#[derive(Clone)]
pub enum Backend {
    /// The engine answers them itself (`ask_user`, `load_skill`).
    Builtin,
    /// A component: each call in a fresh instance of this sandbox.
    Wasm(Sandbox),
    /// A tool the host reaches (an upstream MCP server's).
    Remote(Arc<dyn RemoteTool>),
}

impl ToolEntry {
    /// The sandbox its calls run in, for a component's tool.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        match &self.backend {
            Backend::Wasm(s) => Some(s),
            _ => None,
        }
    }
}

/// A skill of the agent.
#[derive(Clone)]
pub struct SkillEntry {
    /// Skill name.
    pub name: String,
    /// One-line description (in the system prompt).
    pub description: String,
    /// The `SKILL.md` body (what `load_skill` returns).
    pub body: String,
    /// Tools the skill brings, callable once it is loaded.
    pub tools: Vec<ToolEntry>,
}

/// The approval policy an agent names, ready to decide.
#[derive(Clone)]
pub struct PolicySet {
    /// Its name in the host configuration.
    pub name: String,
    /// Its settings.
    pub config: ApprovalPolicyConfig,
    /// Its component, if it has one.
    pub component: Option<PolicyComponent>,
    /// Which version of the policy this is: a digest of its settings and of its
    /// component, recorded with every approval it asks for.
    pub version: String,
}

/// An agent version resolved against the host: everything a run needs.
pub struct ResolvedAgent {
    /// The agent file.
    pub spec: AgentSpec,
    /// Its registered version.
    pub version: u32,
    /// The model's catalog entry.
    pub model: ModelEntry,
    /// The adapter, bound to the endpoint and credential.
    pub adapter: BoundAdapter,
    /// The agent's own tools.
    pub tools: Vec<ToolEntry>,
    /// Its skills.
    pub skills: Vec<SkillEntry>,
    /// Its approval policy.
    pub policy: Option<PolicySet>,
    /// References it loaded that no trusted key signed (each run says so in a
    /// `warning` event).
    pub unverified: Vec<String>,
    /// Its code mode, when on: the runner programs run in and their limits.
    pub code: Option<CodeSetup>,
    /// The system prompt (made once).
    system: String,
    /// Tool sets by loaded skills (made once each).
    tool_sets: std::sync::Mutex<HashMap<BTreeSet<String>, Arc<ToolSet>>>,
}

/// An agent's code mode: `run_code` and what its programs run in.
#[derive(Clone)]
pub struct CodeSetup {
    /// `On` or `Only`.
    pub mode: tack_agent::CodeMode,
    /// The code-runner component (the host's `code-runner`).
    pub runner: tack_runtime::CodeRunner,
    /// Limits of one program: the agent's `code-limits` over the defaults.
    pub limits: tack_runtime::CodeLimits,
}

/// The tools callable at one point of a session: the agent's, those of its
/// loaded skills, the built-in ones; and the same list as sent to the model.
pub struct ToolSet {
    /// The tools the model may call.
    pub entries: Vec<ToolEntry>,
    /// Their descriptors as offered to the model.
    pub model: ModelTools,
    /// In code mode, the tools a program may call, by the name it calls
    /// them (`namespace.tool`).
    pub code: HashMap<String, ToolEntry>,
}

impl ResolvedAgent {
    /// Whether any of its tools lives on an upstream MCP server.
    pub fn uses_remote_tools(&self) -> bool {
        self.tools
            .iter()
            .any(|t| matches!(t.backend, Backend::Remote(_)))
    }

    /// An agent resolved from its parts.
    pub fn new(
        spec: AgentSpec,
        version: u32,
        model: ModelEntry,
        adapter: BoundAdapter,
        tools: Vec<ToolEntry>,
        skills: Vec<SkillEntry>,
        policy: Option<PolicySet>,
    ) -> Self {
        let mut system = spec.instructions.trim().to_string();
        if !skills.is_empty() {
            system.push_str(
                "\n\nSkills you can load with the `load_skill` tool (load one before doing what it covers):\n",
            );
            for k in &skills {
                system.push_str(&format!("- {}: {}\n", k.name, k.description));
            }
        }
        ResolvedAgent {
            spec,
            version,
            model,
            adapter,
            tools,
            skills,
            policy,
            unverified: Vec::new(),
            code: None,
            system,
            tool_sets: std::sync::Mutex::default(),
        }
    }

    /// The system prompt: instructions, then each skill's name and description.
    pub fn system_prompt(&self) -> &str {
        &self.system
    }

    /// The tools callable with the skills `loaded`, built-ins included.
    pub fn tool_set(&self, loaded: &BTreeSet<String>) -> Arc<ToolSet> {
        let mut sets = self.tool_sets.lock().expect("tool sets lock");
        if let Some(set) = sets.get(loaded) {
            return set.clone();
        }
        let tools: Vec<ToolEntry> = self.tools_with(loaded).cloned().collect();
        let mut code = HashMap::new();
        let mut entries = builtin_tools(&self.skills);
        match &self.code {
            None => {
                entries.splice(0..0, tools);
            }
            Some(setup) => {
                let declarations = tack_code::declarations(&crate::code::code_tools(&tools));
                entries.push(builtin_entry(builtin::run_code(&declarations)));
                for t in &tools {
                    let (ns, name) = crate::code::code_name(t);
                    code.insert(format!("{ns}.{name}"), t.clone());
                }
                if setup.mode == tack_agent::CodeMode::On {
                    entries.splice(0..0, tools);
                }
            }
        }
        let model = ModelTools::new(entries.iter().map(|t| t.descriptor.clone()).collect());
        let set = Arc::new(ToolSet {
            entries,
            model,
            code,
        });
        sets.insert(loaded.clone(), set.clone());
        set
    }

    /// The tools callable now: the agent's, those of loaded skills, and the
    /// built-in ones.
    pub fn tools_with<'a>(
        &'a self,
        loaded: &'a std::collections::BTreeSet<String>,
    ) -> impl Iterator<Item = &'a ToolEntry> {
        self.tools.iter().chain(
            self.skills
                .iter()
                .filter(|k| loaded.contains(&k.name))
                .flat_map(|k| k.tools.iter()),
        )
    }
}

/// Built-in tool entries for an agent with `skills`.
pub fn builtin_tools(skills: &[SkillEntry]) -> Vec<ToolEntry> {
    let mut out = vec![builtin_entry(builtin::ask_user())];
    if !skills.is_empty() {
        let names: Vec<String> = skills.iter().map(|k| k.name.clone()).collect();
        out.push(builtin_entry(builtin::load_skill(&names)));
    }
    out
}

fn builtin_entry(d: ToolDescriptor) -> ToolEntry {
    ToolEntry {
        name: d.name.clone(),
        tool: d.name.clone(),
        plugin: builtin::BUILTIN.into(),
        descriptor: d,
        destructive: false,
        backend: Backend::Builtin,
    }
}

/// The references one resolution loaded without a trusted signature.
type Unverified = std::sync::Mutex<Vec<String>>;

/// Resolves agents and caches loaded components.
pub struct Resolver {
    runtime: Runtime,
    source: Arc<dyn ComponentSource>,
    host: Arc<HostConfig>,
    secrets: Option<tack_secrets::Secrets>,
    servers: Option<Arc<dyn ToolServers>>,
}

impl Resolver {
    /// A resolver loading components into `runtime` from `source`.
    pub fn new(
        runtime: Runtime,
        source: Arc<dyn ComponentSource>,
        host: Arc<HostConfig>,
        secrets: Option<tack_secrets::Secrets>,
    ) -> Self {
        Resolver {
            runtime,
            source,
            host,
            secrets,
            servers: None,
        }
    }

    /// How agents' `mcp-servers` are reached, if they are.
    pub fn tool_servers(&self) -> Option<&Arc<dyn ToolServers>> {
        self.servers.as_ref()
    }

    /// Reach agents' `mcp-servers` through `servers` (without, an agent that
    /// names one does not resolve).
    pub fn with_tool_servers(mut self, servers: Option<Arc<dyn ToolServers>>) -> Self {
        self.servers = servers;
        self
    }

    async fn component(
        &self,
        reference: &str,
        what: &str,
        u: &Unverified,
    ) -> Result<Vec<u8>, EngineError> {
        Ok(self.component_with_digest(reference, what, u).await?.0)
    }

    /// Fetch `reference` (a `what`), noting in `u` (and the host log) when no
    /// trusted key signed it.
    async fn fetch(
        &self,
        reference: &str,
        what: &str,
        u: &Unverified,
    ) -> Result<Artifact, EngineError> {
        let a = self
            .source
            .fetch(reference)
            .await
            .map_err(|e| EngineError::resolving(format!("{what} `{reference}`"), e))?;
        if a.signer.is_none() {
            tracing::warn!(
                "loading {what} `{reference}` ({}), which no trusted key signed",
                a.digest
            );
            u.lock()
                .expect("unverified lock")
                .push(reference.to_string());
        }
        Ok(a)
    }

    async fn component_with_digest(
        &self,
        reference: &str,
        what: &str,
        u: &Unverified,
    ) -> Result<(Vec<u8>, String), EngineError> {
        let a = self.fetch(reference, what, u).await?;
        let digest = a.digest;
        a.component.map(|c| (c, digest)).ok_or_else(|| {
            EngineError::Resolve(format!("{what} `{reference}` is a skill, not a component"))
        })
    }

    /// Resolve `spec` (version `version`): fetch, verify and load every component.
    pub async fn resolve(
        &self,
        mut spec: AgentSpec,
        version: u32,
    ) -> Result<ResolvedAgent, EngineError> {
        // A run never exceeds the host's caps, even for a version registered
        // before they were lowered.
        spec.limits = spec
            .limits
            .capped(&tack_agent::Catalog::limit_caps(&*self.host));
        let u = &Unverified::default();
        let model = self.host.models.get(&spec.model).cloned().ok_or_else(|| {
            EngineError::Resolve(format!(
                "model `{}` is not in this host's catalog (models: {})",
                spec.model,
                self.host
                    .models
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let adapter = self.adapter(&spec.model, &model, u).await?;

        let mut raw = Vec::new();
        for reference in &spec.tools {
            raw.extend(self.plugin_tools(reference, u).await?);
        }
        let mut skills = Vec::new();
        for reference in &spec.skills {
            let a = self.fetch(reference, "skill", u).await?;
            let text = a.skill.ok_or_else(|| {
                EngineError::Resolve(format!("`{reference}` is a component, not a skill"))
            })?;
            let skill = tack_artifact::skill::Skill::parse(&text, None)
                .map_err(|e| EngineError::resolving(format!("skill `{reference}`"), e))?;
            let mut tools = Vec::new();
            if let Some(list) = skill.metadata.get("tack.tools") {
                for r in list.split_whitespace() {
                    tools.extend(self.plugin_tools(r, u).await?);
                }
            }
            skills.push(SkillEntry {
                name: skill.name,
                description: skill.description,
                body: skill.body,
                tools,
            });
        }
        // Model-visible names: the tool's own unless two plugins share it.
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for t in raw.iter().chain(skills.iter().flat_map(|k| k.tools.iter())) {
            *count.entry(t.tool.clone()).or_default() += 1;
        }
        let rename = |t: &mut ToolEntry| {
            if count.get(&t.tool).copied().unwrap_or(0) > 1
                || t.tool == builtin::ASK_USER
                || t.tool == builtin::LOAD_SKILL
                || t.tool == builtin::RUN_CODE
            {
                let plugin = t
                    .plugin
                    .rsplit('/')
                    .next()
                    .unwrap_or(&t.plugin)
                    .split('@')
                    .next()
                    .unwrap_or("plugin")
                    .replace('-', "_");
                t.name = format!("{plugin}_{}", t.tool);
                t.descriptor.name = t.name.clone();
            }
        };
        raw.iter_mut().for_each(rename);
        for k in &mut skills {
            k.tools.iter_mut().for_each(rename);
        }
        for (i, server) in spec.mcp_servers.iter().enumerate() {
            raw.extend(self.server_tools(i, server).await?);
        }
        distinct_names(raw.iter().chain(skills.iter().flat_map(|k| k.tools.iter())))?;

        let policy =
            match &spec.approval_policy {
                None => None,
                Some(name) => {
                    let config = self.host.approval_policies.get(name).cloned().ok_or_else(
                        || {
                            EngineError::Resolve(format!(
                                "approval policy `{name}` is not defined in the host configuration"
                            ))
                        },
                    )?;
                    let mut digest = Sha256::new();
                    digest.update(format!("{config:?}").as_bytes());
                    let component = match &config.component {
                        None => None,
                        Some(r) => {
                            let (bytes, d) =
                                self.component_with_digest(r, "policy component", u).await?;
                            digest.update(d.as_bytes());
                            Some(self.runtime.load_policy(&bytes).map_err(|e| {
                                EngineError::resolving(format!("policy component `{r}`"), e)
                            })?)
                        }
                    };
                    let hex: String = digest
                        .finalize()
                        .iter()
                        .take(8)
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    Some(PolicySet {
                        name: name.clone(),
                        config,
                        component,
                        version: format!("sha256:{hex}"),
                    })
                }
            };
        let code = match spec.code_mode {
            tack_agent::CodeMode::Off => None,
            mode => {
                let all: Vec<ToolEntry> = raw
                    .iter()
                    .chain(skills.iter().flat_map(|k| k.tools.iter()))
                    .cloned()
                    .collect();
                crate::code::distinct_code_names(&all)?;
                let reference = &self.host.code_runner;
                let bytes = self.component(reference, "code runner", u).await?;
                let runner = self
                    .runtime
                    .load_code_runner(&bytes)
                    .map_err(|e| EngineError::resolving(format!("code runner `{reference}`"), e))?;
                Some(CodeSetup {
                    mode,
                    runner,
                    limits: crate::code::limits(&spec.code_limits),
                })
            }
        };
        let mut agent = ResolvedAgent::new(spec, version, model, adapter, raw, skills, policy);
        agent.unverified = std::mem::take(&mut *u.lock().expect("unverified lock"));
        agent.code = code;
        Ok(agent)
    }

    /// The tools of the agent's `i`th MCP server, named `server__tool`.
    async fn server_tools(
        &self,
        i: usize,
        server: &tack_agent::McpServerUse,
    ) -> Result<Vec<ToolEntry>, EngineError> {
        let name = &server.name;
        let servers = self.servers.as_ref().ok_or_else(|| {
            EngineError::Resolve(format!(
                "mcp-servers[{i}]: this host reaches no MCP servers, so `{name}` cannot be used"
            ))
        })?;
        let mut entries = servers
            .tools(name)
            .await
            .map_err(|e| EngineError::resolving(format!("MCP server `{name}`"), e))?;
        if let Some(only) = &server.tools {
            for (j, t) in only.iter().enumerate() {
                if !entries.iter().any(|e| &e.descriptor.name == t) {
                    let mut offered: Vec<&str> =
                        entries.iter().map(|e| e.descriptor.name.as_str()).collect();
                    offered.sort();
                    return Err(EngineError::Resolve(format!(
                        "mcp-servers[{i}].tools[{j}]: MCP server `{name}` offers no tool `{t}` \
                         to agents on this host (it offers: {})",
                        if offered.is_empty() {
                            "none".into()
                        } else {
                            offered.join(", ")
                        }
                    )));
                }
            }
            entries.retain(|e| only.contains(&e.descriptor.name));
        }
        Ok(entries
            .into_iter()
            .map(|e| {
                let mut descriptor = e.descriptor;
                let tool = std::mem::replace(&mut descriptor.name, format!("{name}__"));
                descriptor.name.push_str(&tool);
                ToolEntry {
                    name: descriptor.name.clone(),
                    tool,
                    plugin: format!("mcp:{name}"),
                    descriptor,
                    destructive: e.destructive,
                    backend: Backend::Remote(e.tool),
                }
            })
            .collect())
    }

    async fn adapter(
        &self,
        name: &str,
        model: &ModelEntry,
        u: &Unverified,
    ) -> Result<BoundAdapter, EngineError> {
        let bytes = self.component(&model.adapter, "model adapter", u).await?;
        let adapter = self
            .runtime
            .load_model_adapter(&bytes)
            .map_err(|e| EngineError::resolving(format!("model adapter `{}`", model.adapter), e))?;
        let (host, port) = endpoint_host(&model.endpoint).ok_or_else(|| {
            EngineError::Resolve(format!(
                "models.{name}.endpoint `{}` has no host",
                model.endpoint
            ))
        })?;
        // The operator chose this endpoint: the adapter may reach it (and only
        // it), wherever it lives, private networks and loopback included.
        let pattern = format!("{host}:{port}")
            .parse()
            .map_err(|e| EngineError::resolving(format!("models.{name}.endpoint"), e))?;
        let grant = Grant {
            http: HttpGrant {
                allow: vec![pattern],
                allow_private: vec![
                    "0.0.0.0/0".parse().expect("a network"),
                    "::/0".parse().expect("a network"),
                ],
            },
            ..Grant::default()
        };
        let mut credentials = Vec::new();
        if let Some(secret) = &model.credential {
            let secrets = self.secrets.as_ref().ok_or_else(|| {
                EngineError::Resolve(format!(
                    "models.{name} needs secret `{secret}`, but no master key is set (TACK_MASTER_KEY or TACK_MASTER_KEY_FILE)"
                ))
            })?;
            let value = secrets
                .reveal(secret)
                .await
                .map_err(|e| EngineError::resolving(format!("secret `{secret}`"), e))?
                .ok_or_else(|| {
                    EngineError::Resolve(format!(
                        "models.{name} needs secret `{secret}`, which is not set; run `tack secret set {secret}`"
                    ))
                })?;
            let value = std::str::from_utf8(value.expose()).map_err(|_| {
                EngineError::Resolve(format!("secret `{secret}` is not UTF-8 text"))
            })?;
            let header = model
                .credential_header
                .as_deref()
                .unwrap_or("authorization");
            let value = if header.eq_ignore_ascii_case("authorization") {
                format!("Bearer {}", value.trim())
            } else {
                value.trim().to_string()
            };
            credentials.push(
                Credential::new(&host, Some(port), header, &value)
                    .map_err(|e| EngineError::resolving(format!("secret `{secret}`"), e))?,
            );
        }
        adapter
            .bind(&grant, credentials)
            .map_err(|e| EngineError::resolving("model adapter grant", e))
    }

    /// The tools of the plugin at `reference`, fetched and verified, each in
    /// a sandbox with the host's grant for it and the host's central flags
    /// applied (what an agent's tools are made of, for other front ends such
    /// as the MCP server). Unsigned code is logged, as for an agent.
    pub async fn tools(&self, reference: &str) -> Result<Vec<ToolEntry>, EngineError> {
        self.plugin_tools(reference, &Unverified::default()).await
    }

    /// Catalog model `name` (`[models.NAME]`) and its adapter, bound to its
    /// endpoint and credential.
    pub async fn catalog_model(
        &self,
        name: &str,
    ) -> Result<(ModelEntry, BoundAdapter), EngineError> {
        let model = self.host.models.get(name).cloned().ok_or_else(|| {
            EngineError::Resolve(format!("model `{name}` is not in this host's catalog"))
        })?;
        let adapter = self.adapter(name, &model, &Unverified::default()).await?;
        Ok((model, adapter))
    }

    /// The host configuration it resolves against.
    pub fn host(&self) -> &HostConfig {
        &self.host
    }

    /// The code-runner component at `reference`, fetched, verified and
    /// loaded (what programs run in).
    pub async fn code_runner(
        &self,
        reference: &str,
    ) -> Result<tack_runtime::CodeRunner, EngineError> {
        let bytes = self
            .component(reference, "code runner", &Unverified::default())
            .await?;
        self.runtime
            .load_code_runner(&bytes)
            .map_err(|e| EngineError::resolving(format!("code runner `{reference}`"), e))
    }

    /// The tools of the host's toolset `name` (`[toolsets.NAME]`), each
    /// plugin resolved as [`tools`](Self::tools) does.
    pub async fn toolset(&self, name: &str) -> Result<Vec<ToolEntry>, EngineError> {
        let toolset = self.host.toolsets.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.host.toolsets.keys().map(String::as_str).collect();
            EngineError::NotFound(format!(
                "the host configuration has no toolset `{name}` (toolsets: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        let mut tools = Vec::new();
        for reference in &toolset.tools {
            tools.extend(self.tools(reference).await?);
        }
        for (i, server) in toolset.mcp_servers.iter().enumerate() {
            let used = tack_agent::McpServerUse {
                name: server.clone(),
                tools: None,
            };
            tools.extend(self.server_tools(i, &used).await?);
        }
        Ok(tools)
    }

    async fn plugin_tools(
        &self,
        reference: &str,
        u: &Unverified,
    ) -> Result<Vec<ToolEntry>, EngineError> {
        let bytes = self.component(reference, "tool plugin", u).await?;
        let plugin = self
            .runtime
            .load(&bytes)
            .map_err(|e| EngineError::resolving(format!("tool plugin `{reference}`"), e))?;
        let repo = tack_artifact::ArtifactRef::parse(reference, Some("localhost"))
            .map(|r| r.repository)
            .unwrap_or_else(|_| reference.split('@').next().unwrap_or(reference).to_string());
        let settings = self.host.tools.get(&repo).cloned().unwrap_or_default();
        let sandbox = plugin.sandbox(&settings.grant).map_err(|e| {
            EngineError::Resolve(format!(
                "the grant for `{repo}` in the host configuration: {e}"
            ))
        })?;
        let tools = plugin
            .tools()
            .await
            .map_err(|e| EngineError::resolving(format!("tool plugin `{reference}`"), e))?;
        Ok(tools
            .iter()
            .map(|d| {
                let mut d = d.clone();
                if settings.destructive.contains(&d.name) {
                    d.annotations.destructive = true;
                    d.annotations.read_only = false;
                }
                if settings.read_only.contains(&d.name) {
                    d.annotations.read_only = true;
                    d.annotations.destructive = false;
                }
                ToolEntry {
                    name: d.name.clone(),
                    tool: d.name.clone(),
                    plugin: reference.to_string(),
                    destructive: d.annotations.destructive,
                    descriptor: d,
                    backend: Backend::Wasm(sandbox.clone()),
                }
            })
            .collect())
    }
}

/// Refuse two tools of different sources under one model-visible name: the
/// model could not say which it means, and neither may shadow the other.
fn distinct_names<'a>(tools: impl Iterator<Item = &'a ToolEntry>) -> Result<(), EngineError> {
    let mut seen: HashMap<&str, &ToolEntry> = HashMap::new();
    for t in tools {
        match seen.get(t.name.as_str()) {
            Some(o) if o.plugin != t.plugin || o.tool != t.tool => {
                return Err(EngineError::Resolve(format!(
                    "two tools would both be called `{}`: `{}` of {} and `{}` of {}; the model \
                     could not tell them apart, so remove one source from the agent or narrow \
                     its MCP server's tools ({{name: SERVER, tools: [...]}})",
                    t.name, o.tool, o.plugin, t.tool, t.plugin
                )));
            }
            _ => {
                seen.insert(&t.name, t);
            }
        }
    }
    Ok(())
}

/// Host and port of an `http(s)://` URL.
pub(crate) fn endpoint_host(url: &str) -> Option<(String, u16)> {
    let (rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
        (r, 443)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, 80)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = rest.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host.to_string(), port.unwrap_or(default_port)));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None if authority.is_empty() => None,
        None => Some((authority.to_string(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, tool: &str, plugin: &str) -> ToolEntry {
        ToolEntry {
            name: name.into(),
            tool: tool.into(),
            plugin: plugin.into(),
            descriptor: ToolDescriptor {
                name: name.into(),
                description: String::new(),
                input_schema: serde_json::json!({"type": "object"}),
                output_schema: None,
                annotations: Default::default(),
            },
            destructive: false,
            backend: Backend::Builtin,
        }
    }

    #[test]
    fn two_sources_under_one_name_fail_resolution_naming_both() {
        // `a` offering `_b` and `a_` offering `b` both come out as `a___b`.
        let tools = [entry("a___b", "_b", "mcp:a"), entry("a___b", "b", "mcp:a_")];
        let e = distinct_names(tools.iter()).unwrap_err().to_string();
        assert!(
            e.contains("two tools would both be called `a___b`")
                && e.contains("`_b` of mcp:a")
                && e.contains("`b` of mcp:a_"),
            "{e}"
        );
        // The same tool reached twice (an agent's plugin also brought by a
        // skill) is one tool, not a clash.
        let same = [
            entry("jq", "jq", "tack/jq@0.1.0"),
            entry("jq", "jq", "tack/jq@0.1.0"),
            entry("payments__refund", "refund", "mcp:payments"),
        ];
        distinct_names(same.iter()).unwrap();
    }
}
