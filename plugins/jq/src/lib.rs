//! `jq`: run a jq filter over a JSON value, with the jaq implementation of jq.
//!
//! Needs no capabilities: it is pure computation.

use serde::Deserialize;
use tack_sdk::{Annotations, CallContext, JsonSchema, ToolError, Toolbox};

/// Arguments of the `jq` tool.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JqInput {
    /// The jq filter, e.g. `.items[] | select(.price > 10) | .name`.
    filter: String,
    /// The JSON value the filter runs on.
    input: serde_json::Value,
}

/// Every value the filter produces, in order, each as its own JSON content item.
/// Most filters produce exactly one.
fn jq(args: JqInput, _ctx: &CallContext) -> Result<Vec<serde_json::Value>, ToolError> {
    use jaq_core::load::{Arena, File, Loader};
    use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};

    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File {
        code: args.filter.as_str(),
        path: (),
    };
    let modules = loader.load(&arena, program).map_err(|errs| {
        ToolError::invalid(
            "/filter",
            format!(
                "cannot parse filter `{}`: {}",
                args.filter,
                describe_load(&errs, &args.filter)
            ),
        )
    })?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            let names: Vec<String> = errs
                .iter()
                .flat_map(|(_, es)| es.iter().map(|(name, _)| format!("`{name}`")))
                .collect();
            ToolError::invalid(
                "/filter",
                format!(
                    "cannot compile filter `{}`: undefined {}",
                    args.filter,
                    names.join(", ")
                ),
            )
        })?;

    let text = serde_json::to_string(&args.input).expect("a JSON value serialises");
    let input = jaq_json::read::parse_single(text.as_bytes())
        .map_err(|e| ToolError::invalid("/input", format!("input is not JSON: {e}")))?;
    let ctx = Ctx::<data::JustLut<jaq_json::Val>>::new(&filter.lut, Vars::new([]));
    let mut results = Vec::new();
    for out in filter.id.run((ctx, input)).map(unwrap_valr) {
        let val = out.map_err(|e| ToolError::invalid("/filter", format!("filter failed: {e}")))?;
        let json: serde_json::Value = serde_json::from_str(&val.to_string()).map_err(|e| {
            ToolError::internal(format!(
                "filter produced a value that is not JSON ({val}): {e}"
            ))
        })?;
        results.push(json);
    }
    Ok(results)
}

/// Describe jaq's load errors as `expected X at column N (near `...`)`.
fn describe_load<P>(errs: &jaq_core::load::Errors<&str, P>, code: &str) -> String {
    use jaq_core::load::Error;
    let at = |found: &str| {
        let offset = (found.as_ptr() as usize).wrapping_sub(code.as_ptr() as usize);
        let near: String = found.chars().take(12).collect();
        if found.is_empty() {
            "at the end of the filter".to_string()
        } else if offset <= code.len() {
            format!("at column {} (near `{near}`)", offset + 1)
        } else {
            format!("near `{near}`")
        }
    };
    let mut out = Vec::new();
    for (_, e) in errs {
        match e {
            Error::Io(v) => out.extend(v.iter().map(|(_, m)| m.clone())),
            Error::Lex(v) => out.extend(
                v.iter()
                    .map(|(exp, found)| expected(exp.as_str(), at(found))),
            ),
            Error::Parse(v) => out.extend(
                v.iter()
                    .map(|(exp, found)| expected(exp.as_str(), at(found))),
            ),
        }
    }
    out.join("; ")
}

fn expected(what: &str, at: String) -> String {
    if what == "nothing" {
        format!("unexpected input {at}")
    } else {
        format!("expected {what} {at}")
    }
}

fn tools() -> Toolbox {
    Toolbox::new().tool_many(
        "jq",
        "Run a jq filter over a JSON value; every value it produces is returned as its own \
         JSON result, in order. Supports the jq language (paths, pipes, select, map, reduce, string functions).",
        Annotations::read_only(),
        jq,
    )
}

tack_sdk::export_tools!(tools());
tack_sdk::manifest!("tack.toml");
