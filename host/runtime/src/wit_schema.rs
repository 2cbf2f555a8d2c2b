//! WIT types as JSON Schema: how a component's plain exported functions
//! are offered as tools (their arguments checked and converted by the host).
//!
//! The JSON form of each WIT type:
//!
//! | WIT | JSON |
//! |---|---|
//! | `bool`, `string` | boolean, string |
//! | `u8` … `s64` | integer within the type's range |
//! | `f32`, `f64` | number |
//! | `char` | a string of one character |
//! | `record` | object, every field required, nothing else |
//! | `variant` | `{"tag": "case"}`, or `{"tag": "case", "val": payload}` |
//! | `enum` | one of the case names |
//! | `flags` | array of distinct flag names |
//! | `option<T>` | `T` or `null` |
//! | `result<T, E>` | `{"ok": T}` or `{"err": E}` |
//! | `tuple<…>` | array of exactly those items |
//! | `list<T>` (fixed: `list<T, N>`) | array of `T` (exactly N) |
//! | `map<string, V>` | object of `V`; other keys: array of `[k, v]` pairs |
//!
//! Names are the WIT names as written (kebab-case). Doc comments become
//! `description`s. Resources, handles, futures, streams and error contexts
//! have no JSON form: a function that takes one is not a tool.

use serde_json::{Map, Value, json};
use wit_parser::{Docs, Resolve, Type, TypeDefKind};

/// A WIT type with no JSON form, and where it was met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {what} has no JSON form")]
pub struct Unsupported {
    /// Where in the type (`args.items[].owner`).
    pub path: String,
    /// What it is (`a resource handle`, …).
    pub what: String,
}

/// The JSON Schema of `ty`, resolved in `resolve`; `path` names where it
/// sits, for errors.
pub fn schema_of(resolve: &Resolve, ty: &Type, path: &str) -> Result<Value, Unsupported> {
    let unsupported = |what: &str| Unsupported {
        path: path.to_string(),
        what: what.to_string(),
    };
    let int = |min: i128, max: i128| json!({"type": "integer", "minimum": min, "maximum": max});
    Ok(match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::String => json!({"type": "string"}),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::F32 | Type::F64 => json!({"type": "number"}),
        Type::U8 => int(0, u8::MAX.into()),
        Type::U16 => int(0, u16::MAX.into()),
        Type::U32 => int(0, u32::MAX.into()),
        Type::U64 => int(0, u64::MAX.into()),
        Type::S8 => int(i8::MIN.into(), i8::MAX.into()),
        Type::S16 => int(i16::MIN.into(), i16::MAX.into()),
        Type::S32 => int(i32::MIN.into(), i32::MAX.into()),
        Type::S64 => int(i64::MIN.into(), i64::MAX.into()),
        Type::ErrorContext => return Err(unsupported("an error context")),
        Type::Id(id) => {
            let def = &resolve.types[*id];
            let mut schema = match &def.kind {
                TypeDefKind::Type(t) => schema_of(resolve, t, path)?,
                TypeDefKind::Record(r) => {
                    let mut properties = Map::new();
                    let mut required = Vec::new();
                    for f in &r.fields {
                        let mut s = schema_of(resolve, &f.ty, &format!("{path}.{}", f.name))?;
                        describe(&mut s, &f.docs);
                        properties.insert(f.name.clone(), s);
                        required.push(Value::String(f.name.clone()));
                    }
                    json!({"type": "object", "properties": properties, "required": required,
                           "additionalProperties": false})
                }
                TypeDefKind::Variant(v) => {
                    let mut cases = Vec::new();
                    for c in &v.cases {
                        let mut properties = Map::new();
                        properties.insert("tag".into(), json!({"const": c.name}));
                        let mut required = vec![json!("tag")];
                        if let Some(t) = &c.ty {
                            let s = schema_of(resolve, t, &format!("{path}<{}>", c.name))?;
                            properties.insert("val".into(), s);
                            required.push(json!("val"));
                        }
                        let mut case = json!({"type": "object", "properties": properties,
                                              "required": required, "additionalProperties": false});
                        describe(&mut case, &c.docs);
                        cases.push(case);
                    }
                    json!({"oneOf": cases})
                }
                TypeDefKind::Enum(e) => {
                    let names: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
                    json!({"type": "string", "enum": names})
                }
                TypeDefKind::Flags(f) => {
                    let names: Vec<&str> = f.flags.iter().map(|c| c.name.as_str()).collect();
                    json!({"type": "array", "items": {"type": "string", "enum": names},
                           "uniqueItems": true})
                }
                TypeDefKind::Option(t) => {
                    json!({"anyOf": [schema_of(resolve, t, path)?, {"type": "null"}]})
                }
                TypeDefKind::Result(r) => {
                    let side = |t: &Option<Type>, key: &str| -> Result<Value, Unsupported> {
                        let mut properties = Map::new();
                        let value = match t {
                            Some(t) => schema_of(resolve, t, &format!("{path}.{key}"))?,
                            None => json!({"type": "null"}),
                        };
                        properties.insert(key.into(), value);
                        Ok(json!({"type": "object", "properties": properties,
                                  "required": [key], "additionalProperties": false}))
                    };
                    json!({"oneOf": [side(&r.ok, "ok")?, side(&r.err, "err")?]})
                }
                TypeDefKind::Tuple(t) => {
                    let items = t
                        .types
                        .iter()
                        .enumerate()
                        .map(|(i, t)| schema_of(resolve, t, &format!("{path}[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?;
                    let n = items.len();
                    json!({"type": "array", "prefixItems": items, "items": false,
                           "minItems": n, "maxItems": n})
                }
                TypeDefKind::List(t) => {
                    json!({"type": "array", "items": schema_of(resolve, t, &format!("{path}[]"))?})
                }
                TypeDefKind::FixedLengthList(t, n) => {
                    json!({"type": "array", "items": schema_of(resolve, t, &format!("{path}[]"))?,
                           "minItems": n, "maxItems": n})
                }
                TypeDefKind::Map(k, v) => {
                    let value = schema_of(resolve, v, &format!("{path}{{}}"))?;
                    if *k == Type::String {
                        json!({"type": "object", "additionalProperties": value})
                    } else {
                        let key = schema_of(resolve, k, &format!("{path}{{key}}"))?;
                        json!({"type": "array", "items": {"type": "array",
                               "prefixItems": [key, value], "items": false,
                               "minItems": 2, "maxItems": 2}})
                    }
                }
                TypeDefKind::Resource | TypeDefKind::Handle(_) => {
                    return Err(unsupported("a resource handle"));
                }
                TypeDefKind::Future(_) => return Err(unsupported("a future")),
                TypeDefKind::Stream(_) => return Err(unsupported("a stream")),
                TypeDefKind::Unknown => return Err(unsupported("an unresolved type")),
            };
            describe(&mut schema, &def.docs);
            schema
        }
    })
}

/// Add `docs` to `schema` as its description, unless it has one.
fn describe(schema: &mut Value, docs: &Docs) {
    if let (Some(text), Some(map)) = (docs_text(docs), schema.as_object_mut())
        && !map.contains_key("description")
    {
        map.insert("description".into(), Value::String(text));
    }
}

/// A doc comment as prose: the lines of each paragraph joined with spaces
/// (WIT comments are wrapped for the source, not for a model), paragraphs
/// kept apart; `None` when there is none.
pub(crate) fn docs_text(docs: &Docs) -> Option<String> {
    let text = docs.contents.as_deref()?.trim();
    if text.is_empty() {
        return None;
    }
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| p.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .collect();
    Some(paragraphs.join("\n\n"))
}

/// The arguments of `function` as one JSON object schema: each parameter a
/// property, required unless its type is an `option`.
pub fn arguments_schema(
    resolve: &Resolve,
    function: &wit_parser::Function,
) -> Result<Value, Unsupported> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for param in &function.params {
        let schema = schema_of(resolve, &param.ty, &param.name)?;
        let optional = matches!(param.ty, Type::Id(id)
            if matches!(resolve.types[id].kind, TypeDefKind::Option(_)));
        if !optional {
            required.push(Value::String(param.name.clone()));
        }
        properties.insert(param.name.clone(), schema);
    }
    let mut schema = json!({"type": "object", "properties": properties, "required": required,
                            "additionalProperties": false});
    describe(&mut schema, &function.docs);
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIT: &str = r#"
        package test:shapes;

        interface shapes {
            /// A point on the plane.
            record point {
                /// Across.
                x: s32,
                y: u8,
            }
            variant shape { circle(f64), square(point), empty }
            enum color { red, green }
            flags perms { read, write }
            type id = u64;
            resource thing;

            /// Draw it.
            draw: func(s: shape, c: color, p: perms, label: option<string>,
                       pair: tuple<char, bool>, ids: list<id>, four: list<s8, 4>,
                       outcome: result<string, u16>, tags: map<string, s16>,
                       counts: map<u32, f32>) -> string;
            hold: func(t: borrow<thing>) -> bool;
        }

        world w { export shapes; }
    "#;

    fn resolve() -> Resolve {
        let mut r = Resolve::default();
        r.push_str("shapes.wit", WIT).expect("the WIT parses");
        r
    }

    fn function<'a>(r: &'a Resolve, name: &str) -> &'a wit_parser::Function {
        let (_, iface) = r
            .interfaces
            .iter()
            .find(|(_, i)| i.name.as_deref() == Some("shapes"))
            .unwrap();
        &iface.functions[name]
    }

    #[test]
    fn every_type_kind_has_its_json_form() {
        let r = resolve();
        let s = arguments_schema(&r, function(&r, "draw")).unwrap();
        assert_eq!(s["description"], "Draw it.");
        assert_eq!(
            s["required"],
            json!([
                "s", "c", "p", "pair", "ids", "four", "outcome", "tags", "counts"
            ]),
            "an option parameter may be left out"
        );
        let p = &s["properties"];
        // variant: tagged objects, the payload under `val`
        let cases = p["s"]["oneOf"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[0]["properties"]["val"], json!({"type": "number"}));
        let point = &cases[1]["properties"]["val"];
        assert_eq!(point["description"], "A point on the plane.");
        assert_eq!(point["properties"]["x"]["description"], "Across.");
        assert_eq!(point["properties"]["x"]["minimum"], i32::MIN);
        assert_eq!(point["properties"]["y"]["maximum"], 255);
        assert_eq!(point["required"], json!(["x", "y"]));
        assert_eq!(cases[2]["required"], json!(["tag"]));
        assert_eq!(p["c"], json!({"type": "string", "enum": ["red", "green"]}));
        assert_eq!(p["p"]["items"]["enum"], json!(["read", "write"]));
        assert_eq!(p["p"]["uniqueItems"], true);
        assert_eq!(p["label"]["anyOf"][1], json!({"type": "null"}));
        assert_eq!(p["pair"]["prefixItems"][0]["maxLength"], 1);
        assert_eq!(p["pair"]["maxItems"], 2);
        assert_eq!(p["ids"]["items"]["maximum"], u64::MAX, "through the alias");
        assert_eq!(
            (p["four"]["minItems"].clone(), p["four"]["maxItems"].clone()),
            (json!(4), json!(4))
        );
        assert_eq!(p["four"]["items"]["minimum"], -128);
        assert_eq!(
            p["outcome"]["oneOf"][1]["properties"]["err"]["maximum"],
            65535
        );
        assert_eq!(p["tags"]["additionalProperties"]["minimum"], -32768);
        assert_eq!(p["counts"]["items"]["prefixItems"][0]["maximum"], u32::MAX);
    }

    #[test]
    fn a_resource_has_no_json_form_and_says_where() {
        let r = resolve();
        let e = arguments_schema(&r, function(&r, "hold")).unwrap_err();
        assert_eq!(e.path, "t");
        assert_eq!(e.to_string(), "t: a resource handle has no JSON form");
    }
}
