//! Reading a component without running it: its manifest and its WIT world.

use serde::Serialize;
use tack_capability::{CapabilityError, Manifest};
use wasmparser::{Parser, Payload};

/// The imports and exports of a component's world, by WIT name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorldInfo {
    /// Interfaces and functions the component imports (`wasi:cli/environment@0.2.12`, …).
    pub imports: Vec<String>,
    /// Interfaces and functions the component exports (`tack:plugin/tool@0.1.0`, …).
    pub exports: Vec<String>,
}

impl WorldInfo {
    /// Whether the component exports `tack:plugin/tool`, i.e. is a tool plugin.
    pub fn is_tool_plugin(&self) -> bool {
        self.exports_interface("tack:plugin/tool")
    }

    /// Whether the component exports `interface` (`tack:plugin/model`), any version.
    pub fn exports_interface(&self, interface: &str) -> bool {
        self.exports.iter().any(|e| {
            e == interface
                || e.strip_prefix(interface)
                    .is_some_and(|rest| rest.starts_with('@'))
        })
    }
}

/// The WIT world of a component binary.
pub fn world_info(bytes: &[u8]) -> anyhow::Result<WorldInfo> {
    let decoded = wit_component::decode(bytes)?;
    let resolve = decoded.resolve();
    let world = &resolve.worlds[decoded.package_world()];
    let name = |key: &wit_parser::WorldKey| resolve.name_world_key(key);
    let mut imports: Vec<String> = world.imports.keys().map(name).collect();
    let mut exports: Vec<String> = world.exports.keys().map(name).collect();
    imports.sort();
    exports.sort();
    Ok(WorldInfo { imports, exports })
}

trait DecodedExt {
    fn package_world(&self) -> wit_parser::WorldId;
}

impl DecodedExt for wit_component::DecodedWasm {
    fn package_world(&self) -> wit_parser::WorldId {
        match self {
            wit_component::DecodedWasm::Component(_, world) => *world,
            wit_component::DecodedWasm::WitPackage(resolve, pkg) => *resolve.packages[*pkg]
                .worlds
                .values()
                .next()
                .expect("a package with a world"),
        }
    }
}

/// The manifest embedded in a component (custom section `tack-manifest`, at any
/// nesting depth), or an empty one if there is none.
pub fn read_manifest(bytes: &[u8]) -> Result<Option<Manifest>, CapabilityError> {
    let mut found: Option<&[u8]> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        if let Payload::CustomSection(reader) = payload
            && reader.name() == Manifest::SECTION
        {
            if found.is_some() {
                return Err(CapabilityError::Invalid {
                    field: Manifest::SECTION.into(),
                    message: "the component carries two manifests; embed exactly one".into(),
                });
            }
            found = Some(reader.data());
        }
    }
    let Some(data) = found else { return Ok(None) };
    let text = std::str::from_utf8(data).map_err(|_| CapabilityError::Parse {
        what: "plugin manifest",
        message: "the embedded manifest is not UTF-8".into(),
    })?;
    Manifest::from_toml(text).map(Some)
}

/// `component` with `manifest` (TOML text) embedded as its manifest, so that
/// a component built by any toolchain carries its declared capabilities the
/// way an SDK-built one does. Refused when the manifest is invalid or the
/// component already carries one.
pub fn embed_manifest(component: &[u8], manifest: &str) -> Result<Vec<u8>, CapabilityError> {
    Manifest::from_toml(manifest)?;
    if !Parser::is_component(component) {
        return Err(CapabilityError::Invalid {
            field: Manifest::SECTION.into(),
            message: "a manifest is embedded in a WebAssembly component, and this is not one"
                .into(),
        });
    }
    if read_manifest(component)?.is_some() {
        return Err(CapabilityError::Invalid {
            field: Manifest::SECTION.into(),
            message: "the component already carries a manifest; embed into the component as built, without one".into(),
        });
    }
    Ok(append_custom_section(
        component,
        Manifest::SECTION,
        manifest.as_bytes(),
    ))
}

/// Name of the custom section that carries the doc comments of a
/// component's WIT (toolchains drop them when they build a component).
pub const WIT_DOCS_SECTION: &str = "tack-wit-docs";

/// `component` with the doc comments of the WIT in `wit_dir` (the WIT it was
/// built from) embedded, so its plain exported functions are described as
/// their WIT says.
pub fn embed_wit_docs(component: &[u8], wit_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let mut resolve = wit_parser::Resolve::default();
    resolve.push_path(wit_dir)?;
    let docs = crate::plain::WitDocs::extract(&resolve);
    let mut sections = 0;
    for payload in Parser::new(0).parse_all(component) {
        if let Ok(Payload::CustomSection(r)) = payload
            && r.name() == WIT_DOCS_SECTION
        {
            sections += 1;
        }
    }
    anyhow::ensure!(
        sections == 0,
        "the component already carries WIT docs; embed into the component as built"
    );
    Ok(append_custom_section(
        component,
        WIT_DOCS_SECTION,
        &serde_json::to_vec(&docs)?,
    ))
}

/// `bytes` with a custom section appended (one may stand anywhere in a
/// component).
fn append_custom_section(bytes: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    leb128(&mut body, name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = Vec::with_capacity(bytes.len() + body.len() + 6);
    out.extend_from_slice(bytes);
    out.push(0);
    leb128(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// The data of the top-level custom section `name`, if there is one.
pub(crate) fn custom_section<'a>(bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    Parser::new(0).parse_all(bytes).find_map(|p| match p {
        Ok(Payload::CustomSection(r)) if r.name() == name => Some(r.data()),
        _ => None,
    })
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
