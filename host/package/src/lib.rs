//! Packaging: a component file or a skill directory becomes a [`tack_distribution::Artifact`]
//! in the wkg-compatible layout, with tack's metadata read from the component itself
//! (its WIT world, its tools and their JSON Schemas, its declared capabilities).
//! Listing tools runs the component once, in the sandbox, with nothing granted.

use std::collections::BTreeMap;
use std::path::Path;
use tack_artifact::layout::{TackInfo, annotations};
use tack_artifact::{
    ArtifactConfig, Descriptor, Kind, Skill, SkillError, ToolInfo, WorldSummary, media_types,
};
use tack_distribution::Artifact;
use tack_runtime::Runtime;

/// Why something cannot be packaged.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        cause: String,
    },
    /// The component does not load or is not one of tack's kinds.
    #[error("{path}: {reason}")]
    Component {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The skill's `SKILL.md` is not valid.
    #[error("{path}: {source}")]
    Skill {
        /// The file.
        path: String,
        /// The rule it breaks.
        source: SkillError,
    },
    /// The directory is not a skill and not a component.
    #[error("{0}")]
    Layout(String),
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn read(path: &Path) -> Result<Vec<u8>, PackageError> {
    std::fs::read(path).map_err(|e| PackageError::Read {
        path: path.display().to_string(),
        cause: e.to_string(),
    })
}

/// What packaging learned from a component.
struct ComponentFacts {
    world: WorldSummary,
    kind: Kind,
    tools: Vec<ToolInfo>,
    capabilities: serde_json::Value,
    description: String,
}

async fn component_facts(
    runtime: &Runtime,
    bytes: &[u8],
    path: &Path,
) -> Result<ComponentFacts, PackageError> {
    let bad = |reason: String| PackageError::Component {
        path: path.display().to_string(),
        reason,
    };
    let world = tack_runtime::world_info(bytes)
        .map_err(|e| bad(format!("this is not a WebAssembly component: {e:#}")))?;
    let kind = Kind::of_exports(&world.exports).ok_or_else(|| {
        bad(format!(
            "exports {} but a tack component exports tack:plugin/tool, model-adapter, approval-policy or code-runner, or plain functions (outside wasi:) to offer as tools",
            if world.exports.is_empty() {
                "nothing".to_string()
            } else {
                world.exports.join(", ")
            }
        ))
    })?;
    // Load it as its kind: compiles it and checks it against this host's contract.
    let tools = match kind {
        Kind::Tool => {
            let plugin = runtime.load(bytes).map_err(|e| bad(e.to_string()))?;
            let tools = plugin
                .tools()
                .await
                .map_err(|e| bad(format!("listing its tools failed: {e}")))?;
            tools
                .iter()
                .map(|t| ToolInfo {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    input_schema: t.input_schema.clone(),
                    annotations: serde_json::to_value(t.annotations).unwrap_or_default(),
                })
                .collect()
        }
        Kind::Model => {
            runtime
                .load_model_adapter(bytes)
                .map_err(|e| bad(e.to_string()))?;
            Vec::new()
        }
        Kind::Policy => {
            runtime.load_policy(bytes).map_err(|e| bad(e.to_string()))?;
            Vec::new()
        }
        Kind::CodeRunner => {
            runtime
                .load_code_runner(bytes)
                .map_err(|e| bad(e.to_string()))?;
            Vec::new()
        }
        Kind::Skill => Vec::new(),
    };
    let manifest = tack_runtime::read_manifest(bytes)
        .map_err(|e| bad(e.to_string()))?
        .unwrap_or_default();
    Ok(ComponentFacts {
        world: WorldSummary {
            imports: world.imports.clone(),
            exports: world.exports.clone(),
            target: None,
        },
        kind,
        tools,
        capabilities: serde_json::to_value(&manifest).unwrap_or_default(),
        description: manifest.plugin.description.clone(),
    })
}

/// The wkg config of a wasip2 artifact built now.
fn config(world: Option<WorldSummary>, tack: TackInfo) -> ArtifactConfig {
    ArtifactConfig {
        created: Some(now()),
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: Vec::new(),
        component: world,
        tack: Some(tack),
    }
}

fn wasm_layer(bytes: &[u8], file_name: &str) -> Descriptor {
    let mut d = Descriptor::of(media_types::WASM_LAYER, bytes);
    d.annotations
        .insert(annotations::TITLE.into(), file_name.to_string());
    d
}

/// Package a component file.
pub async fn package_component(runtime: &Runtime, path: &Path) -> Result<Artifact, PackageError> {
    let bytes = read(path)?;
    let facts = component_facts(runtime, &bytes, path).await?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("component.wasm");
    Ok(Artifact {
        config: config(
            Some(facts.world),
            TackInfo {
                kind: facts.kind,
                tools: facts.tools,
                capabilities: facts.capabilities,
                skill_name: None,
            },
        ),
        layers: vec![(wasm_layer(&bytes, file_name), bytes)],
        description: facts.description,
        annotations: BTreeMap::new(),
    })
}

/// Package a skill directory: its `SKILL.md` (front matter validated, `name` equal to
/// the directory's name) and, if present, the one `.wasm` component with its tools.
pub async fn package_skill(runtime: &Runtime, dir: &Path) -> Result<Artifact, PackageError> {
    let skill_path = dir.join("SKILL.md");
    if !skill_path.is_file() {
        return Err(PackageError::Layout(format!(
            "{} has no SKILL.md: a skill directory holds SKILL.md (and optionally one .wasm component); \
             to publish a component, pass its .wasm file",
            dir.display()
        )));
    }
    let text = String::from_utf8(read(&skill_path)?).map_err(|_| PackageError::Read {
        path: skill_path.display().to_string(),
        cause: "not UTF-8".into(),
    })?;
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_string));
    let skill = Skill::parse(&text, dir_name.as_deref()).map_err(|source| PackageError::Skill {
        path: skill_path.display().to_string(),
        source,
    })?;
    let mut wasm: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| PackageError::Read {
            path: dir.display().to_string(),
            cause: e.to_string(),
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    if wasm.len() > 1 {
        return Err(PackageError::Layout(format!(
            "{} has {} .wasm files; a skill carries at most one component",
            dir.display(),
            wasm.len()
        )));
    }
    let mut md = Descriptor::of(media_types::SKILL_LAYER, text.as_bytes());
    md.annotations
        .insert(annotations::TITLE.into(), "SKILL.md".into());
    let mut layers = vec![(md, text.clone().into_bytes())];
    let (world, tools, capabilities) = match wasm.pop() {
        Some(path) => {
            let bytes = read(&path)?;
            let facts = component_facts(runtime, &bytes, &path).await?;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("component.wasm");
            layers.push((wasm_layer(&bytes, name), bytes));
            (Some(facts.world), facts.tools, facts.capabilities)
        }
        None => (None, Vec::new(), serde_json::Value::Null),
    };
    Ok(Artifact {
        config: config(
            world,
            TackInfo {
                kind: Kind::Skill,
                tools,
                capabilities,
                skill_name: Some(skill.name.clone()),
            },
        ),
        layers,
        description: skill.description,
        annotations: BTreeMap::new(),
    })
}

/// Package `path`: a skill directory or a component file.
pub async fn package(runtime: &Runtime, path: &Path) -> Result<Artifact, PackageError> {
    if path.is_dir() {
        package_skill(runtime, path).await
    } else {
        package_component(runtime, path).await
    }
}
