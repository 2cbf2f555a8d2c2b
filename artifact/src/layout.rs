//! The layout of a tack artifact, compatible with wkg and the CNCF Wasm OCI
//! artifact layout: one manifest whose config is `application/vnd.wasm.config.v0+json`
//! and whose layers are `application/wasm` (a component) and, for skills,
//! `text/markdown` (the `SKILL.md`). Tags are semver versions.
//!
//! tack adds to the config a `dev.tack` object (kind, tools with JSON Schemas,
//! declared capabilities, skill front matter) and to the manifest the
//! [`annotations::KIND`] and [`annotations::TOOLS`] annotations, so that a
//! registry can index an artifact without running it and any wkg client can
//! still pull the component.

use crate::oci::{Descriptor, ImageManifest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Media types of tack artifacts.
pub mod media_types {
    /// The config blob (wkg, CNCF Wasm OCI artifact layout).
    pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
    /// A WebAssembly component layer.
    pub const WASM_LAYER: &str = "application/wasm";
    /// A skill's `SKILL.md` layer.
    pub const SKILL_LAYER: &str = "text/markdown";
    /// Wasm layer types other tools write, accepted when reading (wasm-to-oci,
    /// containerd's wasm shims, early wkg).
    pub const OTHER_WASM_LAYERS: &[&str] = &[
        "application/vnd.wasm.content.layer.v1+wasm",
        "application/vnd.module.wasm.content.layer.v1+wasm",
        "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    ];

    /// Whether `media_type` is a wasm layer tack can run.
    pub fn is_wasm_layer(media_type: &str) -> bool {
        media_type == WASM_LAYER || OTHER_WASM_LAYERS.contains(&media_type)
    }
}

/// Annotation keys tack reads and writes.
pub mod annotations {
    /// `org.opencontainers.image.version`: the semver version (also the tag).
    pub const VERSION: &str = "org.opencontainers.image.version";
    /// `org.opencontainers.image.description`.
    pub const DESCRIPTION: &str = "org.opencontainers.image.description";
    /// `org.opencontainers.image.created` (RFC 3339).
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// `org.opencontainers.image.title`: a layer's file name.
    pub const TITLE: &str = "org.opencontainers.image.title";
    /// `org.opencontainers.image.source`.
    pub const SOURCE: &str = "org.opencontainers.image.source";
    /// `org.opencontainers.image.licenses`.
    pub const LICENSES: &str = "org.opencontainers.image.licenses";
    /// `dev.tack.kind`: tool, skill, model, policy or code-runner.
    pub const KIND: &str = "dev.tack.kind";
    /// `dev.tack.tools`: the tool names, comma-separated.
    pub const TOOLS: &str = "dev.tack.tools";
}

/// What an artifact extends tack with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A component exporting `tack:plugin/tool`.
    Tool,
    /// A `SKILL.md`, optionally with a component of the skill's tools.
    Skill,
    /// A component of the `model-adapter` world.
    Model,
    /// A component of the `policy` world.
    Policy,
    /// A component of the `code-mode` world (runs agents' programs).
    CodeRunner,
}

impl Kind {
    /// The kind's name as it appears in annotations and the browse API.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Skill => "skill",
            Kind::Model => "model",
            Kind::Policy => "policy",
            Kind::CodeRunner => "code-runner",
        }
    }

    /// The kind of a component from the interfaces it exports, if it is one of tack's.
    ///
    /// A component that exports none of tack's interfaces but exports anything outside
    /// `wasi:` is a tool plugin of plain functions: its exported functions are its tools.
    pub fn of_exports<S: AsRef<str>>(exports: &[S]) -> Option<Kind> {
        let has = |iface: &str| {
            exports.iter().any(|e| {
                let e = e.as_ref();
                e == iface || e.starts_with(&format!("{iface}@"))
            })
        };
        if has("tack:plugin/tool") {
            Some(Kind::Tool)
        } else if has("tack:plugin/model") {
            Some(Kind::Model)
        } else if has("tack:plugin/approval-policy") {
            Some(Kind::Policy)
        } else if has("tack:plugin/code-runner") {
            Some(Kind::CodeRunner)
        } else if exports.iter().any(|e| !e.as_ref().starts_with("wasi:")) {
            Some(Kind::Tool)
        } else {
            None
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "tool" => Ok(Kind::Tool),
            "skill" => Ok(Kind::Skill),
            "model" => Ok(Kind::Model),
            "policy" => Ok(Kind::Policy),
            "code-runner" => Ok(Kind::CodeRunner),
            other => Err(format!(
                "unknown kind `{other}`: expected tool, skill, model, policy or code-runner"
            )),
        }
    }
}

/// A component's WIT world, by interface name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldSummary {
    /// Imported interfaces.
    #[serde(default)]
    pub imports: Vec<String>,
    /// Exported interfaces.
    #[serde(default)]
    pub exports: Vec<String>,
    /// The world the component targets, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One tool a component offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ToolInfo {
    /// The tool's name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(default)]
    pub input_schema: Value,
    /// Behaviour hints (read-only, destructive, idempotent, open-world).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub annotations: Value,
}

/// tack's part of the config blob (`dev.tack`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TackInfo {
    /// What the artifact is.
    pub kind: Kind,
    /// The tools of its component, with their schemas.
    #[serde(default)]
    pub tools: Vec<ToolInfo>,
    /// The capabilities its component declares (its `tack-manifest`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub capabilities: Value,
    /// For skills: the `SKILL.md` front matter `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_name: Option<String>,
}

/// The config blob (`application/vnd.wasm.config.v0+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactConfig {
    /// When the artifact was built (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip2` for components.
    pub os: String,
    /// The digests of the layers, in order.
    #[serde(default)]
    pub layer_digests: Vec<String>,
    /// The component's world, when the artifact has a component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<WorldSummary>,
    /// tack's metadata.
    #[serde(default, rename = "dev.tack", skip_serializing_if = "Option::is_none")]
    pub tack: Option<TackInfo>,
}

impl ArtifactConfig {
    /// The config's bytes as pushed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a config serializes")
    }
}

/// What a registry's browse index and `tack registry show` report about one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageMetadata {
    /// The version (semver tag).
    pub version: String,
    /// What the artifact is.
    pub kind: Kind,
    /// Its description annotation, or the skill's description.
    pub description: String,
    /// When it was built, if recorded.
    pub created: Option<String>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The component's world, if any.
    pub world: Option<WorldSummary>,
    /// Its tools.
    pub tools: Vec<ToolInfo>,
    /// Its declared capabilities.
    pub capabilities: Value,
    /// Total size of config and layers.
    pub size: u64,
}

impl PackageMetadata {
    /// Read the metadata of a tack artifact from its manifest and config, or `None`
    /// if the manifest is not a tack (wkg-layout) artifact.
    pub fn read(manifest: &ImageManifest, config: &[u8]) -> Option<PackageMetadata> {
        if manifest.config.media_type != media_types::WASM_CONFIG {
            return None;
        }
        let config: ArtifactConfig = serde_json::from_slice(config).ok()?;
        let a = &manifest.annotations;
        let tack = config.tack.clone();
        let kind = tack
            .as_ref()
            .map(|t| t.kind)
            .or_else(|| a.get(annotations::KIND).and_then(|k| k.parse().ok()))
            .or_else(|| {
                config
                    .component
                    .as_ref()
                    .and_then(|w| Kind::of_exports(&w.exports))
            })
            .unwrap_or(Kind::Tool);
        Some(PackageMetadata {
            version: a.get(annotations::VERSION).cloned().unwrap_or_default(),
            kind,
            description: a.get(annotations::DESCRIPTION).cloned().unwrap_or_default(),
            created: a.get(annotations::CREATED).cloned().or(config.created),
            annotations: a.clone(),
            world: config.component,
            tools: tack.as_ref().map(|t| t.tools.clone()).unwrap_or_default(),
            capabilities: tack.map(|t| t.capabilities).unwrap_or(Value::Null),
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
        })
    }
}

/// Build the manifest of an artifact: `config` and `layers` with the standard and
/// tack annotations filled in from `config`, `version` and `description`.
pub fn build_manifest(
    config: &ArtifactConfig,
    config_bytes: &[u8],
    layers: Vec<Descriptor>,
    version: &semver::Version,
    description: &str,
    extra: BTreeMap<String, String>,
) -> ImageManifest {
    let mut manifest = ImageManifest::new(
        Descriptor::of(media_types::WASM_CONFIG, config_bytes),
        layers,
    );
    let a = &mut manifest.annotations;
    a.insert(annotations::VERSION.into(), version.to_string());
    if !description.is_empty() {
        a.insert(annotations::DESCRIPTION.into(), description.to_string());
    }
    if let Some(created) = &config.created {
        a.insert(annotations::CREATED.into(), created.clone());
    }
    if let Some(tack) = &config.tack {
        a.insert(annotations::KIND.into(), tack.kind.to_string());
        if !tack.tools.is_empty() {
            let names: Vec<&str> = tack.tools.iter().map(|t| t.name.as_str()).collect();
            a.insert(annotations::TOOLS.into(), names.join(","));
        }
    }
    a.extend(extra);
    manifest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_follows_the_exported_interface() {
        assert_eq!(
            Kind::of_exports(&["tack:plugin/tool@0.1.0"]),
            Some(Kind::Tool)
        );
        assert_eq!(
            Kind::of_exports(&["tack:plugin/approval-policy@0.1.0"]),
            Some(Kind::Policy)
        );
        assert_eq!(
            Kind::of_exports(&["tack:plugin/code-runner@0.1.0"]),
            Some(Kind::CodeRunner)
        );
        assert_eq!("code-runner".parse::<Kind>(), Ok(Kind::CodeRunner));
        assert_eq!(
            Kind::of_exports(&["wasi:http/incoming-handler@0.2.0"]),
            None
        );
        // Plain exported functions beside a wasi export: a tool plugin of plain functions.
        assert_eq!(
            Kind::of_exports(&["wasi:cli/run@0.2.0", "example:plain/text@0.1.0"]),
            Some(Kind::Tool)
        );
        assert!(
            "agent"
                .parse::<Kind>()
                .unwrap_err()
                .contains("expected tool")
        );
    }

    #[test]
    fn metadata_round_trips_through_config_and_annotations() {
        let config = ArtifactConfig {
            created: Some("2026-11-24T00:00:00Z".into()),
            architecture: "wasm".into(),
            os: "wasip2".into(),
            layer_digests: vec!["sha256:00".into()],
            component: Some(WorldSummary {
                imports: vec!["wasi:io/streams@0.2.0".into()],
                exports: vec!["tack:plugin/tool@0.1.0".into()],
                target: None,
            }),
            tack: Some(TackInfo {
                kind: Kind::Tool,
                tools: vec![ToolInfo {
                    name: "jq".into(),
                    description: "run jq".into(),
                    input_schema: serde_json::json!({"type": "object"}),
                    annotations: Value::Null,
                }],
                capabilities: Value::Null,
                skill_name: None,
            }),
        };
        let bytes = config.to_bytes();
        let layer = Descriptor::of(media_types::WASM_LAYER, b"\0asm");
        let m = build_manifest(
            &config,
            &bytes,
            vec![layer],
            &semver::Version::new(0, 1, 0),
            "jq over JSON",
            BTreeMap::new(),
        );
        assert_eq!(m.annotations[annotations::TOOLS], "jq");
        let parsed = ImageManifest::from_slice(&m.to_bytes()).unwrap();
        let meta = PackageMetadata::read(&parsed, &bytes).unwrap();
        assert_eq!(meta.version, "0.1.0");
        assert_eq!(meta.kind, Kind::Tool);
        assert_eq!(meta.tools[0].name, "jq");
        assert_eq!(meta.description, "jq over JSON");
        assert_eq!(meta.size, bytes.len() as u64 + 4);
    }
}
