//! Tools from a component's plain exported functions: a component that
//! does not export `tack:plugin/tool` offers each function it exports (from
//! any interface, or the world itself) as one tool.
//!
//! - Name: the function's WIT name in snake case (`count-words` →
//!   `count_words`), whatever interface it is in. Two exports that would
//!   get one name make the component fail to load (and so to publish),
//!   naming both: nothing is overwritten silently.
//! - Arguments: one JSON object, a property per parameter, in the JSON form
//!   of [`wit_schema`](crate::wit_schema); checked against that schema and
//!   converted by [`wit_json`](crate::wit_json) before the call.
//! - Result: a `string` is text content; anything else is JSON content; a
//!   top-level `result<T, E>` is `T` on success and a tool error made of
//!   `E` on failure.
//! - Description and annotations: the WIT doc comment, and the manifest's
//!   `[tools.NAME]` (which may also give the description).
//!
//! Interfaces of `wasi:` packages are the system's, never tools. A function
//! whose types have no JSON form (resources, streams), or that is async, is
//! skipped, and [`PlainTools::skipped`] says why.

use crate::error::LoadError;
use crate::types::{Annotations, ToolDescriptor};
use crate::wit_schema::{arguments_schema, schema_of};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tack_capability::Manifest;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex};
use wit_parser::{Function, FunctionKind, Resolve, Type, TypeDefKind, WorldItem};

/// One exported function offered as a tool.
pub(crate) struct PlainTool {
    pub(crate) descriptor: ToolDescriptor,
    /// Where it is in the component.
    pub(crate) index: ComponentExportIndex,
    /// Its parameter names and types, and its result type.
    pub(crate) params: Vec<(String, wasmtime::component::Type)>,
    pub(crate) result: Option<wasmtime::component::Type>,
    /// Its WIT name, `package:name/interface#function` (or just the function
    /// for a world-level export).
    pub(crate) export: String,
}

/// An exported function that is not offered as a tool, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedExport {
    /// Its WIT name.
    pub export: String,
    /// Why it is not a tool.
    pub reason: String,
}

/// The tools a plain component offers.
pub(crate) struct PlainTools {
    pub(crate) tools: Vec<PlainTool>,
    pub(crate) skipped: Vec<SkippedExport>,
}

/// The doc comments of WIT interfaces, by interface (`ns:pkg/iface@1.0.0`):
/// its functions', its types' and their fields' or cases'.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub(crate) struct WitDocs(BTreeMap<String, InterfaceDocs>);

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub(crate) struct InterfaceDocs {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    functions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    types: BTreeMap<String, TypeDocs>,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub(crate) struct TypeDocs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    docs: Option<String>,
    /// Of its record fields, variant or enum cases, or flags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    items: BTreeMap<String, String>,
}

impl WitDocs {
    /// The docs of every interface in `resolve`.
    pub(crate) fn extract(resolve: &Resolve) -> WitDocs {
        let mut all = BTreeMap::new();
        for (id, iface) in &resolve.interfaces {
            let Some(key) = resolve.id_of(id) else {
                continue;
            };
            let mut d = InterfaceDocs::default();
            for (name, f) in &iface.functions {
                if let Some(text) = &f.docs.contents {
                    d.functions.insert(name.clone(), text.clone());
                }
            }
            for (name, ty) in &iface.types {
                let def = &resolve.types[*ty];
                let mut t = TypeDocs {
                    docs: def.docs.contents.clone(),
                    items: BTreeMap::new(),
                };
                let mut item = |name: &str, docs: &wit_parser::Docs| {
                    if let Some(text) = &docs.contents {
                        t.items.insert(name.to_string(), text.clone());
                    }
                };
                match &def.kind {
                    TypeDefKind::Record(r) => r.fields.iter().for_each(|f| item(&f.name, &f.docs)),
                    TypeDefKind::Variant(v) => v.cases.iter().for_each(|c| item(&c.name, &c.docs)),
                    TypeDefKind::Enum(e) => e.cases.iter().for_each(|c| item(&c.name, &c.docs)),
                    TypeDefKind::Flags(f) => f.flags.iter().for_each(|c| item(&c.name, &c.docs)),
                    _ => {}
                }
                if t.docs.is_some() || !t.items.is_empty() {
                    d.types.insert(name.clone(), t);
                }
            }
            if !d.functions.is_empty() || !d.types.is_empty() {
                all.insert(key, d);
            }
        }
        WitDocs(all)
    }

    /// Give the items of `resolve` the docs recorded for them (what is not
    /// there is passed over: a component holds only what it uses).
    fn inject(&self, resolve: &mut Resolve) {
        let ids: Vec<_> = resolve.interfaces.iter().map(|(id, _)| id).collect();
        for id in ids {
            let Some(d) = resolve.id_of(id).and_then(|k| self.0.get(&k)) else {
                continue;
            };
            let set = |docs: &mut wit_parser::Docs, text: Option<&String>| {
                if let Some(text) = text {
                    docs.contents = Some(text.clone());
                }
            };
            let iface = &mut resolve.interfaces[id];
            for (name, f) in iface.functions.iter_mut() {
                set(&mut f.docs, d.functions.get(name));
            }
            let types: Vec<_> = iface.types.iter().map(|(n, t)| (n.clone(), *t)).collect();
            for (name, ty) in types {
                let Some(t) = d.types.get(&name) else {
                    continue;
                };
                let def = &mut resolve.types[ty];
                set(&mut def.docs, t.docs.as_ref());
                match &mut def.kind {
                    TypeDefKind::Record(r) => {
                        for f in &mut r.fields {
                            set(&mut f.docs, t.items.get(&f.name));
                        }
                    }
                    TypeDefKind::Variant(v) => {
                        for c in &mut v.cases {
                            set(&mut c.docs, t.items.get(&c.name));
                        }
                    }
                    TypeDefKind::Enum(e) => {
                        for c in &mut e.cases {
                            set(&mut c.docs, t.items.get(&c.name));
                        }
                    }
                    TypeDefKind::Flags(f) => {
                        for c in &mut f.flags {
                            set(&mut c.docs, t.items.get(&c.name));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// `count-words` → `count_words`.
fn tool_name(wit_name: &str) -> String {
    wit_name.to_ascii_lowercase().replace('-', "_")
}

/// Whether the function's result carries the JSON form of its success
/// (the `ok` side of a top-level `result`).
fn success_type(resolve: &Resolve, f: &Function) -> Option<Option<Type>> {
    match f.result {
        None => Some(None),
        Some(Type::Id(id)) => match &resolve.types[id].kind {
            TypeDefKind::Result(r) => Some(r.ok),
            _ => Some(Some(Type::Id(id))),
        },
        Some(t) => Some(Some(t)),
    }
}

/// Read the tools of `component` (whose bytes are `bytes`) from its WIT.
pub(crate) fn plain_tools(
    bytes: &[u8],
    component: &Component,
    manifest: &Manifest,
) -> Result<PlainTools, LoadError> {
    let decoded = wit_component::decode(bytes)
        .map_err(|e| LoadError::NotAComponent(format!("cannot decode the component: {e:#}")))?;
    let wit_component::DecodedWasm::Component(mut resolve, world) = decoded else {
        return Err(LoadError::NotAComponent(
            "this is a WIT package, not a component".into(),
        ));
    };
    if let Some(data) = crate::inspect::custom_section(bytes, crate::inspect::WIT_DOCS_SECTION) {
        let docs: WitDocs = serde_json::from_slice(data).map_err(|e| {
            LoadError::NotAComponent(format!(
                "the component's `{}` section is not what `tack plugin embed --wit` writes: {e}",
                crate::inspect::WIT_DOCS_SECTION
            ))
        })?;
        docs.inject(&mut resolve);
    }
    let resolve = &resolve;
    let world = &resolve.worlds[world];

    let mut tools: Vec<PlainTool> = Vec::new();
    let mut skipped = Vec::new();
    for (key, item) in &world.exports {
        let (instance, functions): (Option<(String, ComponentExportIndex)>, Vec<&Function>) =
            match item {
                WorldItem::Function(f) => (None, vec![f]),
                WorldItem::Interface { id, .. } => {
                    let name = resolve.name_world_key(key);
                    let iface = &resolve.interfaces[*id];
                    let package = iface.package.map(|p| &resolve.packages[p].name);
                    if package.is_some_and(|p| p.namespace == "wasi") {
                        continue;
                    }
                    let Some(index) = component.get_export_index(None, name.as_str()) else {
                        continue;
                    };
                    (Some((name, index)), iface.functions.values().collect())
                }
                WorldItem::Type { .. } => continue,
            };
        for f in functions {
            let export = match &instance {
                Some((iface, _)) => format!("{iface}#{}", f.name),
                None => f.name.clone(),
            };
            let skip = |reason: String| SkippedExport {
                export: export.clone(),
                reason,
            };
            match f.kind {
                FunctionKind::Freestanding => {}
                FunctionKind::AsyncFreestanding => {
                    skipped.push(skip("async functions are not offered as tools yet".into()));
                    continue;
                }
                _ => {
                    skipped.push(skip(
                        "a resource's method, constructor or static function is not a tool".into(),
                    ));
                    continue;
                }
            }
            let input_schema = match arguments_schema(resolve, f) {
                Ok(s) => s,
                Err(e) => {
                    skipped.push(skip(format!("parameter {e}")));
                    continue;
                }
            };
            let output_schema = match success_type(resolve, f) {
                Some(Some(Type::String)) | Some(None) | None => None,
                Some(Some(t)) => match schema_of(resolve, &t, "result") {
                    Ok(s) => Some(s),
                    Err(e) => {
                        skipped.push(skip(format!("{e}")));
                        continue;
                    }
                },
            };
            if let Some(t) = &f.result
                && let Err(e) = schema_of(resolve, t, "result")
            {
                skipped.push(skip(format!("{e}")));
                continue;
            }
            let found = match &instance {
                Some((_, parent)) => component.get_export(Some(parent), &f.name),
                None => component.get_export(None, &f.name),
            };
            let Some((ComponentItem::ComponentFunc(func), index)) = found else {
                skipped.push(skip(
                    "the component does not export it under its WIT name".into(),
                ));
                continue;
            };
            let params = func.params().map(|(n, t)| (n.to_string(), t)).collect();
            let result = func.results().next();
            let name = tool_name(&f.name);
            if name.len() > 64 {
                return Err(LoadError::Incompatible(format!(
                    "exported function `{export}` would be the tool `{name}`, longer than 64 characters; give it a shorter name"
                )));
            }
            if let Some(other) = tools.iter().find(|t| t.descriptor.name == name) {
                return Err(LoadError::Incompatible(format!(
                    "exported functions `{}` and `{export}` would both be the tool `{name}`; rename one of them (tool names are the function names, whatever the interface)",
                    other.export
                )));
            }
            let notes = manifest.tools.get(&name);
            let description = notes
                .and_then(|n| n.description.clone())
                .or_else(|| crate::wit_schema::docs_text(&f.docs))
                .unwrap_or_else(|| format!("`{export}`"));
            let annotations = notes.map_or_else(Annotations::default, |n| Annotations {
                destructive: n.destructive,
                read_only: n.read_only,
                idempotent: n.idempotent,
                open_world: n.open_world,
            });
            tools.push(PlainTool {
                descriptor: ToolDescriptor {
                    name,
                    description,
                    input_schema,
                    output_schema,
                    annotations,
                },
                index,
                params,
                result,
                export,
            });
        }
    }
    if let Some(unknown) = manifest
        .tools
        .keys()
        .find(|k| !tools.iter().any(|t| &t.descriptor.name == *k))
    {
        return Err(LoadError::Incompatible(format!(
            "the manifest's [tools.{unknown}] names no tool of the component; its tools are: {}",
            names(&tools)
        )));
    }
    if tools.is_empty() {
        let why = if skipped.is_empty() {
            "it exports no functions outside `wasi:` interfaces".to_string()
        } else {
            skipped
                .iter()
                .map(|s| format!("`{}`: {}", s.export, s.reason))
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(LoadError::Incompatible(format!(
            "the component offers no tools: it does not export `tack:plugin/tool`, and none of its exported functions can be one ({why})"
        )));
    }
    Ok(PlainTools { tools, skipped })
}

fn names(tools: &[PlainTool]) -> String {
    if tools.is_empty() {
        return "none".into();
    }
    tools
        .iter()
        .map(|t| t.descriptor.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tool content of a plain function's result `value` (of type `ty`).
/// A top-level `result`'s error becomes a tool error: a `string` is its
/// message; an enum or variant case named like an error code
/// (`not-found`, `invalid-arguments`, `permission-denied`, `conflict`,
/// `unavailable`, `timeout`) gives that code, its string payload the
/// message; anything else is `internal` with the error's JSON as message.
pub(crate) fn result_content(
    ty: Option<&wasmtime::component::Type>,
    value: Option<&wasmtime::component::Val>,
) -> Result<crate::types::Content, crate::types::ToolError> {
    use crate::types::{Content, ToolError};
    use wasmtime::component::{Type as T, Val};
    let content = |ty: Option<T>, v: Option<&Val>| match (ty, v) {
        (_, Some(Val::String(s))) => Content::Text(s.clone()),
        (Some(ty), Some(v)) => Content::Json(crate::wit_json::to_json(&ty, v)),
        _ => Content::Json(Value::Null),
    };
    let (r, res) = match (ty, value) {
        (Some(T::Result(r)), Some(Val::Result(res))) => (r, res),
        (ty, v) => return Ok(content(ty.cloned(), v)),
    };
    let e = match res {
        Ok(v) => return Ok(content(r.ok(), v.as_deref())),
        Err(e) => e.as_deref(),
    };
    let json = |v: &Val| {
        r.err()
            .map_or(Value::Null, |t| crate::wit_json::to_json(&t, v))
    };
    let (case, payload) = match e {
        Some(Val::Enum(case)) => (Some(case.as_str()), None),
        Some(Val::Variant(case, payload)) => (Some(case.as_str()), payload.as_deref()),
        _ => (None, None),
    };
    let code = case.and_then(error_code);
    let message = match (e, code, payload) {
        (Some(Val::String(s)), ..) => s.clone(),
        (_, Some(_), Some(Val::String(s))) => s.clone(),
        (_, Some(_), None) => case.unwrap_or_default().replace('-', " "),
        (Some(v), ..) => json(v).to_string(),
        (None, ..) => "the tool failed (its error carries no detail)".into(),
    };
    let code = code.unwrap_or(crate::types::ErrorCode::Internal);
    Err(ToolError {
        retryable: matches!(
            code,
            crate::types::ErrorCode::Unavailable | crate::types::ErrorCode::Timeout
        ),
        code,
        message,
        field: None,
    })
}

/// The error code an error case named `case` stands for.
fn error_code(case: &str) -> Option<crate::types::ErrorCode> {
    use crate::types::ErrorCode;
    Some(match case {
        "invalid-arguments" | "invalid-argument" | "invalid-input" => ErrorCode::InvalidArguments,
        "not-found" => ErrorCode::NotFound,
        "permission-denied" | "forbidden" => ErrorCode::PermissionDenied,
        "conflict" => ErrorCode::Conflict,
        "unavailable" => ErrorCode::Unavailable,
        "timeout" => ErrorCode::Timeout,
        _ => return None,
    })
}

/// The component values of `tool`'s parameters from the JSON arguments
/// object; a parameter left out is `none` when it is an `option`.
pub(crate) fn arguments(
    tool: &PlainTool,
    args: &Value,
) -> Result<Vec<wasmtime::component::Val>, crate::wit_json::ValueError> {
    use wasmtime::component::{Type as T, Val};
    let empty = serde_json::Map::new();
    let obj = match args {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => {
            return Err(crate::wit_json::ValueError {
                pointer: String::new(),
                message: "the arguments must be a JSON object".into(),
            });
        }
    };
    tool.params
        .iter()
        .map(|(name, ty)| {
            let pointer = format!("/{name}");
            match obj.get(name) {
                Some(v) => crate::wit_json::to_val(ty, v, &pointer),
                None if matches!(ty, T::Option(_)) => Ok(Val::Option(None)),
                None => Err(crate::wit_json::ValueError {
                    pointer,
                    message: format!("missing argument `{name}`"),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{LoadError, Runtime, RuntimeConfig};
    use wit_component::{ComponentEncoder, StringEncoding, dummy_module, embed_component_metadata};
    use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve};

    /// A component with `wit`'s world `w` exported (its functions trap if
    /// called), and `manifest` embedded if given.
    fn component(wit: &str, manifest: Option<&str>) -> Vec<u8> {
        let mut resolve = Resolve::default();
        let pkg = resolve.push_str("test.wit", wit).expect("the WIT parses");
        let world = resolve.select_world(&[pkg], Some("w")).expect("world w");
        let mangling = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);
        let mut module = dummy_module(&resolve, world, mangling);
        embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
            .expect("embed the WIT");
        let bytes = ComponentEncoder::default()
            .module(&module)
            .expect("a core module")
            .validate(true)
            .encode()
            .expect("a component");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test.wit"), wit).unwrap();
        let bytes = crate::embed_wit_docs(&bytes, dir.path()).expect("the docs embed");
        match manifest {
            Some(m) => crate::embed_manifest(&bytes, m).expect("the manifest embeds"),
            None => bytes,
        }
    }

    fn runtime() -> Runtime {
        Runtime::new(RuntimeConfig {
            pooling: false,
            ..RuntimeConfig::default()
        })
        .unwrap()
    }

    fn load_error(wit: &str, manifest: Option<&str>) -> String {
        match runtime().load(&component(wit, manifest)) {
            Err(e @ LoadError::Incompatible(_)) => e.to_string(),
            Err(e) => panic!("expected an incompatibility, got {e}"),
            Ok(_) => panic!("the component loaded"),
        }
    }

    #[tokio::test]
    async fn exported_functions_are_tools_named_and_described_from_wit() {
        let wit = r#"
            package example:text@0.1.0;
            interface stats {
                resource counter { constructor(); add: func(n: u32); }
                /// Count the words of `text`.
                count-words: func(text: string) -> u32;
                tally: func(c: borrow<counter>) -> u32;
                drop-index: func(name: string);
            }
            world w {
                export stats;
                /// The version.
                export version: func() -> string;
            }
        "#;
        let manifest =
            "[tools.drop_index]\ndestructive = true\ndescription = \"Drops an index.\"\n";
        let plugin = runtime().load(&component(wit, Some(manifest))).unwrap();
        let tools = plugin.tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["version", "count_words", "drop_index"]);
        assert_eq!(
            tools[0].description, "`version`",
            "a world-level function's doc comment is not carried"
        );
        assert_eq!(tools[1].description, "Count the words of `text`.");
        assert_eq!(
            tools[1].input_schema["required"],
            serde_json::json!(["text"])
        );
        assert_eq!(
            tools[1].output_schema.as_ref().unwrap()["maximum"],
            u32::MAX
        );
        assert!(tools[2].annotations.destructive, "from the manifest");
        assert_eq!(tools[2].description, "Drops an index.");
        assert!(!tools[1].annotations.destructive);
        assert_eq!(
            plugin.tool_exports()[1],
            ("count_words", "example:text/stats@0.1.0#count-words")
        );
        let skipped: Vec<(&str, &str)> = plugin
            .skipped_exports()
            .iter()
            .map(|s| (s.export.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped.iter().any(|(e, r)| e.ends_with("#tally")
            && *r == "parameter c: a resource handle has no JSON form"));
        assert!(
            skipped
                .iter()
                .any(|(e, r)| e.ends_with("#[method]counter.add") && r.contains("resource"))
        );
    }

    #[test]
    fn two_exports_with_one_tool_name_are_refused_naming_both() {
        let err = load_error(
            r#"
            package example:two@0.1.0;
            interface a { run: func(); }
            interface b { run: func(x: u8); }
            world w { export a; export b; }
            "#,
            None,
        );
        assert!(
            err.contains("`example:two/a@0.1.0#run` and `example:two/b@0.1.0#run` would both be the tool `run`"),
            "{err}"
        );
    }

    #[test]
    fn manifest_notes_for_a_missing_tool_are_refused() {
        let err = load_error(
            "package example:one;\ninterface i { go: func(); }\nworld w { export i; }\n",
            Some("[tools.gone]\ndestructive = true\n"),
        );
        assert!(err.contains("[tools.gone] names no tool"), "{err}");
        assert!(err.contains("its tools are: go"), "{err}");
    }

    #[test]
    fn a_component_with_no_usable_function_says_why() {
        let err = load_error(
            r#"
            package example:res;
            interface i { resource r; take: func(r: r); }
            world w { export i; }
            "#,
            None,
        );
        assert!(err.contains("offers no tools"), "{err}");
        assert!(
            err.contains("#take`: parameter r: a resource handle"),
            "{err}"
        );
    }

    #[test]
    fn an_embedded_manifest_is_read_back_and_not_embedded_twice() {
        let wit = "package example:one;\ninterface i { go: func(); }\nworld w { export i; }\n";
        let bytes = component(wit, Some("[plugin]\nname = \"one\"\n"));
        let m = crate::read_manifest(&bytes).unwrap().unwrap();
        assert_eq!(m.plugin.name, "one");
        let err = crate::embed_manifest(&bytes, "[plugin]\nname = \"two\"\n").unwrap_err();
        assert!(
            err.to_string().contains("already carries a manifest"),
            "{err}"
        );
        let err = crate::embed_manifest(b"\0asm\x01\0\0\0", "").unwrap_err();
        assert!(err.to_string().contains("not one"), "{err}");
    }
}
