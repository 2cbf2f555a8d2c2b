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
