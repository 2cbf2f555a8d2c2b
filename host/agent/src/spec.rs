//! The agent file's shape and its validation.

use crate::secrets::scan_for_secrets;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tack_artifact::ArtifactRef;
use tack_capability::{ByteSize, HumanDuration};

/// A parsed, validated agent file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgentSpec {
    /// Lowercase letters, digits and single hyphens, at most 64 characters.
    pub name: String,
    /// What the agent is for.
    #[serde(default)]
    pub description: String,
    /// A model name from the host's model catalog.
    pub model: String,
    /// The system instructions.
    #[serde(default)]
    pub instructions: String,
    /// Tool plugin references, each with a version (`tack/payments@0.1.0`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Skill references, each with a version.
    #[serde(default)]
    pub skills: Vec<String>,
    /// MCP servers from the host's catalog whose tools the agent uses, by
    /// name (`payments`), each optionally narrowed to some of its tools
    /// (`{name: payments, tools: [get_balance]}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<McpServerUse>,
    /// Limits of one run.
    #[serde(default)]
    pub limits: Limits,
    /// The name of an approval policy defined by the host.
    #[serde(default)]
    pub approval_policy: Option<String>,
    /// Code mode: `true` adds the built-in `run_code` tool, whose programs
    /// call the agent's tools as functions; `only` offers the tools through
    /// it alone.
    #[serde(default, skip_serializing_if = "CodeMode::is_off")]
    pub code_mode: CodeMode,
    /// Limits of one `run_code` program.
    #[serde(default, skip_serializing_if = "CodeLimits::is_unset")]
    pub code_limits: CodeLimits,
}

/// Whether and how an agent's tools are offered through `run_code`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CodeMode {
    /// No `run_code` (`false`, the default).
    #[default]
    Off,
    /// `run_code` beside the tools (`true`).
    On,
    /// `run_code` instead of the tools (`only`).
    Only,
}

impl CodeMode {
    /// Whether code mode is off.
    pub fn is_off(&self) -> bool {
        *self == CodeMode::Off
    }
}

impl Serialize for CodeMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CodeMode::Off => s.serialize_bool(false),
            CodeMode::On => s.serialize_bool(true),
            CodeMode::Only => s.serialize_str("only"),
        }
    }
}

impl<'de> Deserialize<'de> for CodeMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CodeMode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`true`, `false` or `only`")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<CodeMode, E> {
                Ok(if v { CodeMode::On } else { CodeMode::Off })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CodeMode, E> {
                match v {
                    "only" => Ok(CodeMode::Only),
                    "true" => Ok(CodeMode::On),
                    "false" => Ok(CodeMode::Off),
                    other => Err(E::custom(format!(
                        "`{other}` is not a code mode; write `true` (run_code beside the \
                         tools), `only` (the tools only through run_code) or `false`"
                    ))),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Limits of one `run_code` program; each unset one takes the host's
/// default (see docs/code-mode.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CodeLimits {
    /// Wall time the program may compute, waits for tools not counted.
    pub timeout: Option<HumanDuration>,
    /// Memory of its sandbox.
    pub memory: Option<ByteSize>,
    /// Tool calls one program may make.
    pub max_tool_calls: Option<u32>,
    /// Bytes of its result and console output together.
    pub max_output_bytes: Option<ByteSize>,
}

impl CodeLimits {
    /// The most any agent may ask for: a program is one tool call, and
    /// these keep it one.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
    /// See [`MAX_TIMEOUT`](Self::MAX_TIMEOUT).
    pub const MAX_MEMORY: ByteSize = ByteSize::mib(1024);
    /// See [`MAX_TIMEOUT`](Self::MAX_TIMEOUT).
    pub const MAX_TOOL_CALLS: u32 = 10_000;
    /// See [`MAX_TIMEOUT`](Self::MAX_TIMEOUT).
    pub const MAX_OUTPUT: ByteSize = ByteSize::mib(16);

    /// Whether none is set.
    pub fn is_unset(&self) -> bool {
        *self == CodeLimits::default()
    }

    fn check(&self) -> Result<(), AgentError> {
        if let Some(t) = self.timeout
            && (t.0.is_zero() || t.0 > Self::MAX_TIMEOUT)
        {
            return Err(invalid(
                "code-limits.timeout",
                format!("must be more than 0 and at most 5m, not {t}"),
            ));
        }
        if let Some(m) = self.memory
            && (m.0 < ByteSize::mib(16).0 || m > Self::MAX_MEMORY)
        {
            return Err(invalid(
                "code-limits.memory",
                "must be at least 16MiB (the interpreter's own share) and at most 1GiB",
            ));
        }
        if let Some(n) = self.max_tool_calls
            && !(1..=Self::MAX_TOOL_CALLS).contains(&n)
        {
            return Err(invalid(
                "code-limits.max-tool-calls",
                format!("must be from 1 to {}, not {n}", Self::MAX_TOOL_CALLS),
            ));
        }
        if let Some(o) = self.max_output_bytes
            && (o.0 < 1024 || o > Self::MAX_OUTPUT)
        {
            return Err(invalid(
                "code-limits.max-output-bytes",
                "must be at least 1KiB and at most 16MiB",
            ));
        }
        Ok(())
    }
}

/// One entry of an agent's `mcp-servers`: a server by name, with all the tools
/// the host lets agents use, or only those `tools` lists (by the server's own
/// tool names).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct McpServerUse {
    /// The server's name in the host configuration (`[mcp-servers.NAME]`).
    pub name: String,
    /// Only these of its tools; `None`: all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for McpServerUse {
    /// A name (`payments`), or `{name: payments, tools: [...]}`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Narrowed {
            name: String,
            #[serde(default)]
            tools: Option<Vec<String>>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = McpServerUse;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a server name, or a map with `name` and `tools`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<McpServerUse, E> {
                Ok(McpServerUse {
                    name: v.to_string(),
                    tools: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<McpServerUse, A::Error> {
                let n = Narrowed::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(McpServerUse {
                    name: n.name,
                    tools: n.tools,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Limits of one run; a run stops with its reason at the first one reached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Model calls at most.
    pub max_steps: Option<u32>,
    /// Spend at most, in US dollars (checked before every model call).
    pub max_cost_usd: Option<f64>,
    /// Input plus output tokens at most.
    pub max_tokens: Option<u64>,
    /// Wall time of the run at most (`30s`, `2m`).
    pub timeout: Option<HumanDuration>,
}

impl Limits {
    /// The timeout as a `Duration`.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.map(|t| t.0)
    }

    /// These limits, each lowered to `caps`' where `caps` sets one (a limit
    /// this file leaves unset gets the cap).
    pub fn capped(&self, caps: &Limits) -> Limits {
        fn lower<T: PartialOrd + Copy>(mine: Option<T>, cap: Option<T>) -> Option<T> {
            match (mine, cap) {
                (Some(m), Some(c)) if c < m => Some(c),
                (None, c) => c,
                (m, _) => m,
            }
        }
        Limits {
            max_steps: lower(self.max_steps, caps.max_steps),
            max_cost_usd: lower(self.max_cost_usd, caps.max_cost_usd),
            max_tokens: lower(self.max_tokens, caps.max_tokens),
            timeout: lower(self.timeout, caps.timeout),
        }
    }

    /// Why these limits are not allowed under `caps` (the host's), naming the
    /// field: each must be positive and at most its cap.
    fn check(&self, caps: &Limits) -> Result<(), AgentError> {
        let over = |field: &str, asked: String, cap: String, key: &str| {
            invalid(
                format!("limits.{field}"),
                format!(
                    "{asked} is more than this host allows ({cap}, `agent-{key}` in the host's \
                     [limits]); ask for less, or leave it out to get the host's limit"
                ),
            )
        };
        if let (Some(m), Some(c)) = (self.max_steps, caps.max_steps)
            && m > c
        {
            return Err(over("max-steps", m.to_string(), c.to_string(), "max-steps"));
        }
        if let (Some(m), Some(c)) = (self.max_tokens, caps.max_tokens)
            && m > c
        {
            return Err(over(
                "max-tokens",
                m.to_string(),
                c.to_string(),
                "max-tokens",
            ));
        }
        if let Some(m) = self.max_cost_usd {
            if !(m.is_finite() && m >= 0.0) {
                return Err(invalid(
                    "limits.max-cost-usd",
                    "must be a number of dollars, 0 or more",
                ));
            }
            if let Some(c) = caps.max_cost_usd
                && m > c
            {
                return Err(over(
                    "max-cost-usd",
                    format!("${m}"),
                    format!("${c}"),
                    "max-cost-usd",
                ));
            }
        }
        if let Some(t) = self.timeout {
            if t.0.is_zero() {
                return Err(invalid("limits.timeout", "must be more than 0"));
            }
            if let Some(c) = caps.timeout
                && t > c
            {
                return Err(over("timeout", t.to_string(), c.to_string(), "timeout"));
            }
        }
        if self.max_steps == Some(0) {
            return Err(invalid("limits.max-steps", "must be at least 1"));
        }
        Ok(())
    }
}

/// What the host can satisfy: its model catalog, approval policies and default registry.
pub trait Catalog {
    /// Whether `name` is in the model catalog.
    fn has_model(&self, name: &str) -> bool;
    /// The catalog's model names (for error messages).
    fn models(&self) -> Vec<String>;
    /// Whether an approval policy `name` is defined.
    fn has_approval_policy(&self, name: &str) -> bool;
    /// The registry for references that name none.
    fn default_registry(&self) -> Option<String>;
    /// Whether references may resolve through `registry` (`host[:port]`).
    fn allows_registry(&self, registry: &str) -> bool {
        let _ = registry;
        true
    }
    /// The MCP servers agents may name (`[mcp-servers.*]`).
    fn mcp_servers(&self) -> Vec<String> {
        Vec::new()
    }
    /// The most any agent's `limits` may ask for (unset: no cap).
    fn limit_caps(&self) -> Limits {
        Limits::default()
    }
}

/// Why an agent file was refused. Every message names the field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AgentError {
    /// Not YAML, a wrong type, an unknown or missing field.
    #[error("{path}: {message}")]
    Shape {
        /// The field (or `(document)`).
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A value shaped like a credential.
    #[error(
        "{path}: this looks like {looks_like}; agent files must not contain secrets. Store it with `tack secret set NAME` and let the host inject it"
    )]
    Secret {
        /// The field.
        path: String,
        /// What it looks like.
        looks_like: &'static str,
    },
    /// A value breaks its rule.
    #[error("{path}: {message}")]
    Invalid {
        /// The field.
        path: String,
        /// What is wrong and the rule.
        message: String,
    },
    /// A reference the host cannot satisfy.
    #[error("{path}: {message}")]
    Reference {
        /// The field.
        path: String,
        /// What is missing, and what exists.
        message: String,
    },
}

impl AgentError {
    /// The field the error is about.
    pub fn path(&self) -> &str {
        match self {
            AgentError::Shape { path, .. }
            | AgentError::Secret { path, .. }
            | AgentError::Invalid { path, .. }
            | AgentError::Reference { path, .. } => path,
        }
    }
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> AgentError {
    AgentError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

impl AgentSpec {
    /// Parse an agent file: secrets first (so none is echoed back in another error),
    /// then the shape (unknown fields refused), then the value rules.
    pub fn parse(yaml: &str) -> Result<AgentSpec, AgentError> {
        let raw: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(yaml).map_err(|e| AgentError::Shape {
                path: "(document)".into(),
                message: format!("not valid YAML: {e}"),
            })?;
        if let Some(f) = scan_for_secrets(&raw).into_iter().next() {
            return Err(AgentError::Secret {
                path: f.path,
                looks_like: f.looks_like,
            });
        }
        let spec: AgentSpec = serde_path_to_error::deserialize(raw).map_err(|e| {
            let path = e.path().to_string();
            AgentError::Shape {
                path: if path == "." {
                    "(document)".into()
                } else {
                    path
                },
                message: e.into_inner().to_string(),
            }
        })?;
        spec.check_values()?;
        Ok(spec)
    }

    fn check_values(&self) -> Result<(), AgentError> {
        let name = &self.name;
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--");
        if !ok {
            return Err(invalid(
                "name",
                format!(
                    "`{name}` is not an agent name: use 1-64 lowercase letters, digits and single hyphens"
                ),
            ));
        }
        if self.model.trim().is_empty() {
            return Err(invalid(
                "model",
                "must name a model from the host's catalog",
            ));
        }
        let l = &self.limits;
        if l.max_steps == Some(0) {
            return Err(invalid("limits.max-steps", "must be at least 1"));
        }
        if let Some(c) = l.max_cost_usd
            && !(c.is_finite() && c > 0.0)
        {
            return Err(invalid(
                "limits.max-cost-usd",
                format!("must be a positive number of dollars, not {c}"),
            ));
        }
        if l.max_tokens == Some(0) {
            return Err(invalid("limits.max-tokens", "must be at least 1"));
        }
        if l.timeout.is_some_and(|t| t.0.is_zero()) {
            return Err(invalid("limits.timeout", "must be longer than zero"));
        }
        self.code_limits.check()?;
        if self.code_mode.is_off() && !self.code_limits.is_unset() {
            return Err(invalid(
                "code-limits",
                "limits programs, but `code-mode` is off; set `code-mode: true` (or `only`), \
                 or remove `code-limits`",
            ));
        }
        Ok(())
    }

    /// Check every reference against what the host has: the model catalog, the
    /// approval policies, and well-formed versioned tool and skill references.
    pub fn validate(&self, catalog: &dyn Catalog) -> Result<(), AgentError> {
        self.limits.check(&catalog.limit_caps())?;
        if !catalog.has_model(&self.model) {
            let mut known = catalog.models();
            known.sort();
            return Err(AgentError::Reference {
                path: "model".into(),
                message: format!(
                    "`{}` is not in the host's model catalog (known: {})",
                    self.model,
                    if known.is_empty() {
                        "none; add [models.NAME] to the host configuration".into()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
        if let Some(p) = &self.approval_policy
            && !catalog.has_approval_policy(p)
        {
            return Err(AgentError::Reference {
                path: "approval-policy".into(),
                message: format!("no approval policy `{p}` is defined on this host"),
            });
        }
        let servers = catalog.mcp_servers();
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.mcp_servers.iter().enumerate() {
            let path = format!("mcp-servers[{i}]");
            if !servers.contains(&s.name) {
                return Err(AgentError::Reference {
                    path,
                    message: format!(
                        "no MCP server `{}` is configured on this host (known: {})",
                        s.name,
                        if servers.is_empty() {
                            "none; add [mcp-servers.NAME] to the host configuration".into()
                        } else {
                            servers.join(", ")
                        }
                    ),
                });
            }
            if !seen.insert(&s.name) {
                return Err(invalid(path, format!("`{}` is listed twice", s.name)));
            }
            if let Some(tools) = &s.tools {
                if tools.is_empty() {
                    return Err(invalid(
                        format!("{path}.tools"),
                        "lists no tool: name some, or give the server by name alone for all of them",
                    ));
                }
                let mut names = std::collections::BTreeSet::new();
                for (j, t) in tools.iter().enumerate() {
                    if !names.insert(t) {
                        return Err(invalid(
                            format!("{path}.tools[{j}]"),
                            format!("`{t}` is listed twice"),
                        ));
                    }
                }
            }
        }
        let registry = catalog.default_registry();
        for (field, list) in [("tools", &self.tools), ("skills", &self.skills)] {
            let mut seen = std::collections::BTreeSet::new();
            for (i, r) in list.iter().enumerate() {
                let path = format!("{field}[{i}]");
                let parsed = ArtifactRef::parse(r, registry.as_deref()).map_err(|e| {
                    AgentError::Reference {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
                if parsed.digest.is_none()
                    && parsed
                        .tag
                        .as_deref()
                        .is_none_or(|t| semver::Version::parse(t).is_err())
                {
                    return Err(AgentError::Reference {
                        path,
                        message: format!(
                            "`{r}` names no version: pin one, e.g. {}@0.1.0",
                            parsed.repository
                        ),
                    });
                }
                if !catalog.allows_registry(&parsed.registry) {
                    return Err(AgentError::Reference {
                        path,
                        message: format!(
                            "`{r}` is on registry `{}`, which this host does not use; it \
                             resolves references only through the registries its configuration \
                             names (default-registry and [registries.*])",
                            parsed.registry
                        ),
                    });
                }
                if !seen.insert(parsed.repository_url()) {
                    return Err(invalid(path, format!("`{r}` is listed twice")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host;
    impl Catalog for Host {
        fn has_model(&self, name: &str) -> bool {
            name == "demo" || name == "gpt-4o"
        }
        fn models(&self) -> Vec<String> {
            vec!["gpt-4o".into(), "demo".into()]
        }
        fn has_approval_policy(&self, name: &str) -> bool {
            name == "refunds-over-100"
        }
        fn default_registry(&self) -> Option<String> {
            Some("localhost:5050".into())
        }
        fn mcp_servers(&self) -> Vec<String> {
            vec!["payments".into(), "zendesk".into()]
        }
    }

    const GOOD: &str = "name: refund-assistant
description: Answers refund requests.
model: demo
instructions: |
  You help customers with refunds. Check the balance first.
tools:
  - tack/payments@0.1.0
skills:
  - tack/refund-policy@0.1.0
limits:
  max-steps: 12
  max-cost-usd: 0.5
  max-tokens: 20000
  timeout: 2m
approval-policy: refunds-over-100
";

    fn err(yaml: &str) -> AgentError {
        AgentSpec::parse(yaml)
            .and_then(|s| s.validate(&Host).map(|()| s))
            .unwrap_err()
    }

    #[test]
    fn a_complete_agent_file_parses_and_validates() {
        let spec = AgentSpec::parse(GOOD).unwrap();
        spec.validate(&Host).unwrap();
        assert_eq!(spec.limits.timeout(), Some(Duration::from_secs(120)));
        assert_eq!(spec.limits.max_cost_usd, Some(0.5));
        assert_eq!(spec.tools, ["tack/payments@0.1.0"]);
    }

    #[test]
    fn mcp_servers_are_named_alone_or_narrowed_to_some_tools() {
        let yaml = format!(
            "{GOOD}mcp-servers:\n  - zendesk\n  - name: payments\n    tools: [get_balance]\n"
        );
        let spec = AgentSpec::parse(&yaml).unwrap();
        spec.validate(&Host).unwrap();
        let stored = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<AgentSpec>(&stored).unwrap(), spec);
        assert_eq!(
            spec.mcp_servers,
            [
                McpServerUse {
                    name: "zendesk".into(),
                    tools: None
                },
                McpServerUse {
                    name: "payments".into(),
                    tools: Some(vec!["get_balance".into()])
                }
            ]
        );
        let mistakes = [
            ("  - jira\n", "mcp-servers[0]", "no MCP server `jira`"),
            (
                "  - zendesk\n  - zendesk\n",
                "mcp-servers[1]",
                "listed twice",
            ),
            (
                "  - name: payments\n    tools: []\n",
                "mcp-servers[0].tools",
                "lists no tool",
            ),
            (
                "  - name: payments\n    tools: [a, a]\n",
                "mcp-servers[0].tools[1]",
                "listed twice",
            ),
            (
                "  - name: payments\n    tool: [a]\n",
                "mcp-servers[0].tool",
                "unknown field",
            ),
            ("  - 7\n", "mcp-servers[0]", "a server name"),
        ];
        for (list, path, message) in mistakes {
            let e = err(&format!("{GOOD}mcp-servers:\n{list}"));
            assert_eq!(e.path(), path, "{list}: {e}");
            assert!(e.to_string().contains(message), "{list}: {e}");
        }
    }

    #[test]
    fn code_mode_is_on_only_or_off_and_its_limits_are_bounded() {
        let on = AgentSpec::parse(&format!("{GOOD}code-mode: true\n")).unwrap();
        assert_eq!(on.code_mode, CodeMode::On);
        let only = AgentSpec::parse(&format!(
            "{GOOD}code-mode: only\ncode-limits:\n  timeout: 30s\n  max-tool-calls: 500\n  \
             memory: 128MiB\n  max-output-bytes: 256KiB\n"
        ))
        .unwrap();
        assert_eq!(only.code_mode, CodeMode::Only);
        assert_eq!(only.code_limits.max_tool_calls, Some(500));
        assert_eq!(only.code_limits.memory, Some(ByteSize::mib(128)));
        assert_eq!(AgentSpec::parse(GOOD).unwrap().code_mode, CodeMode::Off);
        // It survives a round trip through the stored form.
        let stored = serde_json::to_value(&only).unwrap();
        assert_eq!(stored["code-mode"], "only");
        let back: AgentSpec = serde_json::from_value(stored).unwrap();
        assert_eq!(back, only);

        let cases = [
            ("code-mode: maybe\n", "code-mode", "write `true`"),
            (
                "code-limits:\n  timeout: 5s\n",
                "code-limits",
                "`code-mode` is off",
            ),
            (
                "code-mode: true\ncode-limits:\n  max-tool-calls: 0\n",
                "code-limits.max-tool-calls",
                "from 1 to 10000",
            ),
            (
                "code-mode: true\ncode-limits:\n  timeout: 1h\n",
                "code-limits.timeout",
                "at most 5m",
            ),
            (
                "code-mode: true\ncode-limits:\n  memory: 4GiB\n",
                "code-limits.memory",
                "at most 1GiB",
            ),
            (
                "code-mode: true\ncode-limits:\n  fuel: 9\n",
                "code-limits.fuel",
                "unknown field",
            ),
        ];
        for (extra, path, needle) in cases {
            let e = err(&format!("{GOOD}{extra}"));
            assert_eq!(e.path(), path, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn each_mistake_names_its_field() {
        let cases = [
            (
                GOOD.replace("model: demo", "model: gpt-9"),
                "model",
                "known: demo, gpt-4o",
            ),
            (
                GOOD.replace("description:", "descripton:"),
                "descripton",
                "unknown field",
            ),
            (
                GOOD.replace("  max-steps: 12", "  max-step: 12"),
                "limits.max-step",
                "unknown field",
            ),
            (
                GOOD.replace("max-steps: 12", "max-steps: twelve"),
                "limits.max-steps",
                "invalid type",
            ),
            (
                GOOD.replace("max-cost-usd: 0.5", "max-cost-usd: -1"),
                "limits.max-cost-usd",
                "positive",
            ),
            (
                GOOD.replace("timeout: 2m", "timeout: soon"),
                "limits.timeout",
                "`soon` is not a duration",
            ),
            (
                GOOD.replace("name: refund-assistant", "name: Refund Assistant"),
                "name",
                "not an agent name",
            ),
            (
                GOOD.replace("tack/payments@0.1.0", "tack/payments"),
                "tools[0]",
                "no version",
            ),
            (
                GOOD.replace("tack/payments@0.1.0", "tack/payments:latest"),
                "tools[0]",
                "names no version",
            ),
            (
                GOOD.replace("refunds-over-100", "refunds-over-9000"),
                "approval-policy",
                "no approval policy",
            ),
            (
                GOOD.replace("model: demo\n", ""),
                "(document)",
                "missing field `model`",
            ),
            (
                GOOD.replace(
                    "  - tack/refund-policy@0.1.0",
                    "  - tack/refund-policy@0.1.0\n  - tack/refund-policy@0.2.0",
                ),
                "skills[1]",
                "listed twice",
            ),
        ];
        for (yaml, path, needle) in cases {
            let e = err(&yaml);
            assert_eq!(e.path(), path, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn secrets_are_refused_without_being_echoed() {
        let key: String = format!("sk-{}", "Zq7Xw2Lp9Rt4Vb8Nm3Kc6Hd1Jf5Gs0Ay".repeat(2));
        let yaml = GOOD.replace(
            "Check the balance first.",
            &format!("Check the balance first. Use key {key} for the API."),
        );
        let e = err(&yaml);
        assert!(matches!(e, AgentError::Secret { .. }), "{e}");
        assert_eq!(e.path(), "instructions");
        assert!(!e.to_string().contains(&key), "the secret was echoed: {e}");
        assert!(e.to_string().contains("tack secret set"), "{e}");
        // Also under a field the schema would refuse anyway: the secret wins.
        let e = err(&format!("{GOOD}api-key: {key}\n"));
        assert_eq!(e.path(), "api-key");
        assert!(matches!(e, AgentError::Secret { .. }));
    }

    #[test]
    fn limits_are_lowered_to_the_caps_and_unset_ones_take_them() {
        let d = |s: &str| s.parse::<HumanDuration>().unwrap();
        let mine = Limits {
            max_steps: Some(50),
            max_cost_usd: Some(0.1),
            max_tokens: None,
            timeout: Some(d("2m")),
        };
        let caps = Limits {
            max_steps: Some(20),
            max_cost_usd: None,
            max_tokens: Some(1000),
            timeout: Some(d("1h")),
        };
        let c = mine.capped(&caps);
        assert_eq!(c.max_steps, Some(20));
        assert_eq!(c.max_cost_usd, Some(0.1));
        assert_eq!(c.max_tokens, Some(1000));
        assert_eq!(c.timeout, Some(d("2m")));
        assert_eq!(
            Limits::default().capped(&Limits::default()),
            Limits::default()
        );
    }

    /// A host that resolves through its default registry only.
    struct OneRegistry;
    impl Catalog for OneRegistry {
        fn has_model(&self, name: &str) -> bool {
            Host.has_model(name)
        }
        fn models(&self) -> Vec<String> {
            Host.models()
        }
        fn has_approval_policy(&self, name: &str) -> bool {
            Host.has_approval_policy(name)
        }
        fn default_registry(&self) -> Option<String> {
            Host.default_registry()
        }
        fn allows_registry(&self, registry: &str) -> bool {
            registry == "localhost:5050"
        }
    }

    #[test]
    fn references_through_other_registries_are_refused_naming_the_field() {
        let spec = AgentSpec::parse(GOOD).unwrap();
        spec.validate(&OneRegistry).unwrap();
        let bad = GOOD.replace(
            "  - tack/refund-policy@0.1.0",
            "  - 127.0.0.1:18182/internal/admin@1.0.0",
        );
        let e = AgentSpec::parse(&bad)
            .unwrap()
            .validate(&OneRegistry)
            .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("skills[0]"), "{text}");
        assert!(
            text.contains("`127.0.0.1:18182`") && text.contains("does not use"),
            "{text}"
        );
    }
}
