//! What a plugin package declares it needs.
//!
//! The manifest travels inside the component, in a custom section named
//! [`Manifest::SECTION`], as TOML text (the guest SDK's `manifest!` macro embeds a
//! crate's `tack.toml`). A component without one declares nothing and so gets
//! nothing, whatever the operator grants.

use crate::egress::HostPattern;
use crate::{ByteSize, CapabilityError, Mode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A plugin's declaration of itself and of the capabilities it needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Name and description.
    #[serde(default)]
    pub plugin: PluginInfo,
    /// Capabilities the plugin asks for.
    #[serde(default)]
    pub capabilities: ManifestCapabilities,
    /// Resources the plugin needs to work.
    #[serde(default)]
    pub limits: ManifestLimits,
    /// What the plugin says about its tools, by tool name: for a component
    /// whose tools are its plain exported functions, which carry no
    /// annotations of their own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolNotes>,
}

/// A tool's description and behaviour hints, declared in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolNotes {
    /// What the tool does, for the model (instead of the WIT doc comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// It may change or delete state outside the sandbox: calls go through
    /// the approval gate.
    #[serde(default)]
    pub destructive: bool,
    /// It changes no state.
    #[serde(default)]
    pub read_only: bool,
    /// Repeating a call has no further effect.
    #[serde(default)]
    pub idempotent: bool,
    /// It reaches the open internet.
    #[serde(default)]
    pub open_world: bool,
}

/// Name and description of a plugin package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginInfo {
    /// Short package name, e.g. `files`.
    #[serde(default)]
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
}

/// Capabilities a package asks for. Each is only a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ManifestCapabilities {
    /// Directories the plugin expects at fixed guest paths.
    #[serde(default)]
    pub dirs: Vec<DirRequest>,
    /// Names of environment variables the plugin reads.
    #[serde(default)]
    pub env: Vec<String>,
    /// Outgoing HTTP.
    #[serde(default)]
    pub http: Option<HttpRequest>,
    /// Whether the plugin needs the real wall clock (otherwise it reads 1970-01-01).
    #[serde(default)]
    pub wall_clock: bool,
}

/// A directory a plugin expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DirRequest {
    /// Absolute path inside the sandbox, e.g. `/workspace`.
    pub guest: String,
    /// The most access the plugin needs.
    pub mode: Mode,
    /// Why, shown to the operator by `tack plugin inspect`.
    #[serde(default)]
    pub purpose: String,
}

/// Outgoing HTTP a plugin asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpRequest {
    /// Host patterns (`api.example.com`, `*.example.com`, `host:port`, or `*` for
    /// whatever the operator allows).
    pub hosts: Vec<HostPattern>,
}

/// Resources a plugin needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ManifestLimits {
    /// Linear memory the plugin needs to do its job.
    #[serde(default)]
    pub memory: Option<ByteSize>,
}

impl Manifest {
    /// Name of the custom section that carries the manifest in a component.
    pub const SECTION: &'static str = "tack-manifest";

    /// Parse a manifest from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, CapabilityError> {
        let m: Manifest = toml::from_str(text).map_err(|e| CapabilityError::Parse {
            what: "plugin manifest",
            message: e.to_string(),
        })?;
        m.validate()?;
        Ok(m)
    }

    /// Check the values that TOML cannot.
    pub fn validate(&self) -> Result<(), CapabilityError> {
        for (i, d) in self.capabilities.dirs.iter().enumerate() {
            validate_guest_path(&d.guest, &format!("capabilities.dirs[{i}].guest"))?;
        }
        for (i, name) in self.capabilities.env.iter().enumerate() {
            validate_env_name(name, &format!("capabilities.env[{i}]"))?;
        }
        for (name, notes) in &self.tools {
            if notes.destructive && notes.read_only {
                return Err(CapabilityError::Invalid {
                    field: format!("tools.{name}"),
                    message: "a tool cannot be both `destructive` and `read-only`".into(),
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn validate_guest_path(path: &str, field: &str) -> Result<(), CapabilityError> {
    let ok = path.starts_with('/')
        && path
            .split('/')
            .skip(1)
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        || path == "/";
    if ok {
        Ok(())
    } else {
        Err(CapabilityError::Invalid {
            field: field.to_string(),
            message: format!(
                "guest path `{path}` must be absolute and normalised, like `/workspace` (no `.`, `..` or `//`)"
            ),
        })
    }
}

pub(crate) fn validate_env_name(name: &str, field: &str) -> Result<(), CapabilityError> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(CapabilityError::Invalid {
            field: field.to_string(),
            message: format!(
                "`{name}` is not an environment variable name; use letters, digits and `_`"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::from_toml(
            r#"
            [plugin]
            name = "files"
            description = "files in a directory"
            [capabilities]
            env = ["TZ"]
            wall-clock = true
            dirs = [{ guest = "/workspace", mode = "rw", purpose = "the files" }]
            http = { hosts = ["api.example.com", "*.example.org:8443"] }
            [limits]
            memory = "32MiB"
            "#,
        )
        .unwrap();
        assert_eq!(m.plugin.name, "files");
        assert_eq!(m.capabilities.dirs[0].mode, Mode::ReadWrite);
        assert_eq!(m.capabilities.http.unwrap().hosts.len(), 2);
        assert_eq!(m.limits.memory, Some(ByteSize::mib(32)));
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = Manifest::from_toml("[capabilities]\nnetwork = true\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `network`"), "{err}");
    }

    #[test]
    fn guest_paths_must_be_normalised() {
        for bad in ["workspace", "/a/../b", "/a//b", "/a/./b", "/a/"] {
            let text = format!("[capabilities]\ndirs = [{{ guest = \"{bad}\", mode = \"ro\" }}]\n");
            let err = Manifest::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains("capabilities.dirs[0].guest"), "{bad}: {err}");
        }
    }

    #[test]
    fn tool_notes_are_read_and_checked() {
        let m = Manifest::from_toml(
            "[tools.drop-table]\ndestructive = true\ndescription = \"Drops it.\"\n",
        )
        .unwrap();
        assert!(m.tools["drop-table"].destructive);
        assert_eq!(
            m.tools["drop-table"].description.as_deref(),
            Some("Drops it.")
        );
        let err = Manifest::from_toml("[tools.x]\ndestructive = true\nread-only = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tools.x"), "{err}");
        let err = Manifest::from_toml("[tools.x]\ndangerous = true\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `dangerous`"),
            "{err}"
        );
    }

    #[test]
    fn env_names_are_checked() {
        let err = Manifest::from_toml("[capabilities]\nenv = [\"A=B\"]\n").unwrap_err();
        assert!(err.to_string().contains("capabilities.env[0]"), "{err}");
    }
}
