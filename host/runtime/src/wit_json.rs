//! Component values to and from their JSON form (the form
//! [`wit_schema`](crate::wit_schema) describes), driven by the types of the
//! function being called.
//!
//! Arguments are checked against the tool's JSON Schema before they get
//! here; the conversion still refuses anything that does not fit the type
//! (an integer out of range, a flag that does not exist), so no value
//! reaches a guest unchecked. A nested `option<option<T>>` reads JSON
//! `null` as the outer `none`.

use serde_json::{Map, Value, json};
use wasmtime::component::{Type, Val};

/// A JSON value that does not fit the WIT type at `pointer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct ValueError {
    /// JSON Pointer of the value (`/items/0/count`).
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

fn err<T>(pointer: &str, message: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError {
        pointer: pointer.to_string(),
        message: message.into(),
    })
}

/// Which JSON kind a value is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Escape a key for a JSON Pointer (RFC 6901).
fn key(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

macro_rules! int {
    ($v:expr, $p:expr, $t:ty, $variant:ident) => {{
        let n = $v.as_i64().map(i128::from).or($v.as_u64().map(i128::from));
        match n {
            Some(n) => match <$t>::try_from(n) {
                Ok(n) => Val::$variant(n),
                Err(_) => {
                    return err(
                        $p,
                        format!(
                            "{n} is out of range for {} ({}..={})",
                            stringify!($t),
                            <$t>::MIN,
                            <$t>::MAX
                        ),
                    );
                }
            },
            None => {
                return err(
                    $p,
                    format!("expected an integer ({}), got {}", stringify!($t), $v),
                );
            }
        }
    }};
}

/// The component value of type `ty` that `v` stands for; `pointer` is where
/// `v` sits in the arguments.
pub fn to_val(ty: &Type, v: &Value, pointer: &str) -> Result<Val, ValueError> {
    let expected = |what: &str| err(pointer, format!("expected {what}, got {}", kind(v)));
    Ok(match ty {
        Type::Bool => match v.as_bool() {
            Some(b) => Val::Bool(b),
            None => return expected("a boolean"),
        },
        Type::U8 => int!(v, pointer, u8, U8),
        Type::U16 => int!(v, pointer, u16, U16),
        Type::U32 => int!(v, pointer, u32, U32),
        Type::U64 => int!(v, pointer, u64, U64),
        Type::S8 => int!(v, pointer, i8, S8),
        Type::S16 => int!(v, pointer, i16, S16),
        Type::S32 => int!(v, pointer, i32, S32),
        Type::S64 => int!(v, pointer, i64, S64),
        Type::Float32 => match v.as_f64() {
            Some(f) if f.is_finite() && f.abs() > f64::from(f32::MAX) => {
                return err(pointer, format!("{f} is out of range for f32"));
            }
            #[allow(clippy::cast_possible_truncation)]
            Some(f) => Val::Float32(f as f32),
            None => return expected("a number"),
        },
        Type::Float64 => match v.as_f64() {
            Some(f) => Val::Float64(f),
            None => return expected("a number"),
        },
        Type::Char => match v.as_str() {
            Some(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Val::Char(c),
                    _ => return err(pointer, format!("expected one character, got {s:?}")),
                }
            }
            None => return expected("a string of one character"),
        },
        Type::String => match v.as_str() {
            Some(s) => Val::String(s.to_string()),
            None => return expected("a string"),
        },
        Type::List(l) => Val::List(items(&l.ty(), v, pointer, None)?),
        Type::FixedLengthList(l) => {
            Val::FixedLengthList(items(&l.ty(), v, pointer, Some(l.len() as usize))?)
        }
        Type::Map(m) => {
            let (kt, vt) = (m.key(), m.value());
            if kt == Type::String {
                let Some(obj) = v.as_object() else {
                    return expected("an object");
                };
                let mut pairs = Vec::with_capacity(obj.len());
                for (k, item) in obj {
                    let p = format!("{pointer}/{}", key(k));
                    pairs.push((Val::String(k.clone()), to_val(&vt, item, &p)?));
                }
                Val::Map(pairs)
            } else {
                let Some(arr) = v.as_array() else {
                    return expected("an array of [key, value] pairs");
                };
                let mut pairs = Vec::with_capacity(arr.len());
                for (i, pair) in arr.iter().enumerate() {
                    let p = format!("{pointer}/{i}");
                    match pair.as_array().map(Vec::as_slice) {
                        Some([k, item]) => pairs.push((
                            to_val(&kt, k, &format!("{p}/0"))?,
                            to_val(&vt, item, &format!("{p}/1"))?,
                        )),
                        _ => return err(&p, "expected a [key, value] pair"),
                    }
                }
                Val::Map(pairs)
            }
        }
        Type::Record(r) => {
            let Some(obj) = v.as_object() else {
                return expected("an object");
            };
            let mut fields = Vec::new();
            for f in r.fields() {
                let p = format!("{pointer}/{}", key(f.name));
                let val = match obj.get(f.name) {
                    Some(item) => to_val(&f.ty, item, &p)?,
                    None if matches!(f.ty, Type::Option(_)) => Val::Option(None),
                    None => return err(pointer, format!("missing field `{}`", f.name)),
                };
                fields.push((f.name.to_string(), val));
            }
            if let Some(extra) = obj.keys().find(|k| !r.fields().any(|f| f.name == *k)) {
                return err(
                    pointer,
                    format!(
                        "unknown field `{extra}`; the record has: {}",
                        r.fields().map(|f| f.name).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            Val::Record(fields)
        }
        Type::Tuple(t) => {
            let Some(arr) = v.as_array() else {
                return expected("an array");
            };
            if arr.len() != t.types().len() {
                return err(
                    pointer,
                    format!("expected {} items, got {}", t.types().len(), arr.len()),
                );
            }
            let vals = t
                .types()
                .zip(arr)
                .enumerate()
                .map(|(i, (ty, item))| to_val(&ty, item, &format!("{pointer}/{i}")))
                .collect::<Result<_, _>>()?;
            Val::Tuple(vals)
        }
        Type::Variant(var) => {
            let Some(obj) = v.as_object() else {
                return expected(r#"an object {"tag": ..., "val": ...}"#);
            };
            let Some(tag) = obj.get("tag").and_then(Value::as_str) else {
                return err(pointer, "missing `tag` (the name of the case)");
            };
            let Some(case) = var.cases().find(|c| c.name == tag) else {
                return err(
                    &format!("{pointer}/tag"),
                    format!(
                        "no case `{tag}`; the cases are: {}",
                        var.cases().map(|c| c.name).collect::<Vec<_>>().join(", ")
                    ),
                );
            };
            if let Some(extra) = obj.keys().find(|k| *k != "tag" && *k != "val") {
                return err(pointer, format!("unknown field `{extra}`"));
            }
            let payload = match (&case.ty, obj.get("val")) {
                (Some(ty), Some(item)) => {
                    Some(Box::new(to_val(ty, item, &format!("{pointer}/val"))?))
                }
                (Some(_), None) => return err(pointer, format!("case `{tag}` needs a `val`")),
                (None, Some(_)) => {
                    return err(pointer, format!("case `{tag}` carries no `val`"));
                }
                (None, None) => None,
            };
            Val::Variant(tag.to_string(), payload)
        }
        Type::Enum(e) => match v.as_str() {
            Some(s) if e.names().any(|n| n == s) => Val::Enum(s.to_string()),
            Some(s) => {
                return err(
                    pointer,
                    format!(
                        "`{s}` is not one of: {}",
                        e.names().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            None => return expected("a string"),
        },
        Type::Option(o) => match v {
            Value::Null => Val::Option(None),
            _ => Val::Option(Some(Box::new(to_val(&o.ty(), v, pointer)?))),
        },
        Type::Result(r) => {
            let side = |t: Option<Type>, name: &str, item: &Value| match t {
                Some(t) => {
                    to_val(&t, item, &format!("{pointer}/{name}")).map(|v| Some(Box::new(v)))
                }
                None if item.is_null() => Ok(None),
                None => err(&format!("{pointer}/{name}"), "expected null"),
            };
            match v.as_object().map(|o| (o.len(), o.get("ok"), o.get("err"))) {
                Some((1, Some(ok), None)) => Val::Result(Ok(side(r.ok(), "ok", ok)?)),
                Some((1, None, Some(e))) => Val::Result(Err(side(r.err(), "err", e)?)),
                _ => return expected(r#"{"ok": ...} or {"err": ...}"#),
            }
        }
        Type::Flags(f) => {
            let Some(arr) = v.as_array() else {
                return expected("an array of flag names");
            };
            let mut set: Vec<String> = Vec::with_capacity(arr.len());
            for (i, item) in arr.iter().enumerate() {
                let p = format!("{pointer}/{i}");
                match item.as_str() {
                    Some(s) if f.names().any(|n| n == s) => {
                        if set.iter().any(|x| x == s) {
                            return err(&p, format!("flag `{s}` is given twice"));
                        }
                        set.push(s.to_string());
                    }
                    _ => {
                        return err(
                            &p,
                            format!(
                                "expected one of: {}",
                                f.names().collect::<Vec<_>>().join(", ")
                            ),
                        );
                    }
                }
            }
            Val::Flags(set)
        }
        Type::Own(_) | Type::Borrow(_) => return err(pointer, "a resource has no JSON form"),
        Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return err(pointer, "an async value has no JSON form");
        }
    })
}

fn items(ty: &Type, v: &Value, pointer: &str, len: Option<usize>) -> Result<Vec<Val>, ValueError> {
    let Some(arr) = v.as_array() else {
        return err(pointer, format!("expected an array, got {}", kind(v)));
    };
    if let Some(n) = len
        && arr.len() != n
    {
        return err(
            pointer,
            format!("expected exactly {n} items, got {}", arr.len()),
        );
    }
    arr.iter()
        .enumerate()
        .map(|(i, item)| to_val(ty, item, &format!("{pointer}/{i}")))
        .collect()
}

/// The JSON form of `v`, a value of type `ty`. Floats that JSON cannot
/// carry (NaN, infinities) become `null`.
pub fn to_json(ty: &Type, v: &Val) -> Value {
    let float = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    match (ty, v) {
        (_, Val::Bool(b)) => json!(b),
        (_, Val::U8(n)) => json!(n),
        (_, Val::U16(n)) => json!(n),
        (_, Val::U32(n)) => json!(n),
        (_, Val::U64(n)) => json!(n),
        (_, Val::S8(n)) => json!(n),
        (_, Val::S16(n)) => json!(n),
        (_, Val::S32(n)) => json!(n),
        (_, Val::S64(n)) => json!(n),
        (_, Val::Float32(f)) => float(f64::from(*f)),
        (_, Val::Float64(f)) => float(*f),
        (_, Val::Char(c)) => json!(c.to_string()),
        (_, Val::String(s)) => json!(s),
        (Type::List(l), Val::List(items)) => {
            Value::Array(items.iter().map(|i| to_json(&l.ty(), i)).collect())
        }
        (Type::FixedLengthList(l), Val::FixedLengthList(items)) => {
            Value::Array(items.iter().map(|i| to_json(&l.ty(), i)).collect())
        }
        (Type::Map(m), Val::Map(pairs)) => {
            if m.key() == Type::String {
                let mut obj = Map::new();
                for (k, item) in pairs {
                    if let Val::String(k) = k {
                        // Later duplicates win, as in the component model.
                        obj.insert(k.clone(), to_json(&m.value(), item));
                    }
                }
                Value::Object(obj)
            } else {
                Value::Array(
                    pairs
                        .iter()
                        .map(|(k, item)| json!([to_json(&m.key(), k), to_json(&m.value(), item)]))
                        .collect(),
                )
            }
        }
        (Type::Record(r), Val::Record(fields)) => {
            let mut obj = Map::new();
            for (f, (name, item)) in r.fields().zip(fields) {
                obj.insert(name.clone(), to_json(&f.ty, item));
            }
            Value::Object(obj)
        }
        (Type::Tuple(t), Val::Tuple(items)) => Value::Array(
            t.types()
                .zip(items)
                .map(|(ty, item)| to_json(&ty, item))
                .collect(),
        ),
        (Type::Variant(var), Val::Variant(tag, payload)) => {
            let case_ty = var.cases().find(|c| c.name == tag).and_then(|c| c.ty);
            match (case_ty, payload) {
                (Some(ty), Some(p)) => json!({"tag": tag, "val": to_json(&ty, p)}),
                _ => json!({"tag": tag}),
            }
        }
        (_, Val::Enum(name)) => json!(name),
        (Type::Option(o), Val::Option(Some(inner))) => to_json(&o.ty(), inner),
        (Type::Option(_), Val::Option(None)) => Value::Null,
        (Type::Result(r), Val::Result(res)) => {
            let side = |t: Option<Type>, v: &Option<Box<Val>>| match (t, v) {
                (Some(t), Some(v)) => to_json(&t, v),
                _ => Value::Null,
            };
            match res {
                Ok(v) => json!({"ok": side(r.ok(), v)}),
                Err(v) => json!({"err": side(r.err(), v)}),
            }
        }
        (_, Val::Flags(names)) => json!(names),
        // Functions whose types have no JSON form are never tools, and a
        // value always matches its own type: nothing else reaches here.
        _ => Value::Null,
    }
}
