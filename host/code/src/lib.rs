//! Code mode: what an agent's model sees of its tools when it writes code.
//!
//! [`declarations`] turns the tools' JSON Schemas into one TypeScript
//! declaration of the `tools` object a program calls
//! (`await tools.orders.list({...})`), compact enough to stand in for every
//! tool schema in the `run_code` tool's description:
//!
//! ```ts
//! declare const tools: {
//!   orders: {
//!     /** List orders. */
//!     list(args: { since?: string; status?: "open" | "closed" }): Promise<{ id: number }[]>;
//!   };
//! };
//! ```
//!
//! Objects (required and optional fields, additional properties), arrays and
//! tuples, enums and constants, unions (`anyOf`, `oneOf`, type lists),
//! intersections (`allOf`) and local `$ref`s (`#/$defs/…`,
//! `#/definitions/…`, resolved in place; a reference back into itself is
//! `unknown`) are translated; descriptions become JSDoc. What has no
//! TypeScript form is `unknown`. A tool with an output schema returns its
//! type; one without returns `unknown`.

use serde_json::Value;
use std::collections::BTreeMap;

/// One tool as a program calls it.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeTool {
    /// Its namespace (`orders` in `tools.orders.list`): the MCP server or
    /// plugin it comes from.
    pub namespace: String,
    /// Its name within the namespace.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
    /// JSON Schema of what it returns, if it says.
    pub output_schema: Option<Value>,
}

/// How deep a schema is followed before the rest is `unknown`.
const MAX_DEPTH: usize = 16;

/// The TypeScript declaration of `tools` (grouped by namespace, in name
/// order).
pub fn declarations(tools: &[CodeTool]) -> String {
    let mut by_namespace: BTreeMap<&str, Vec<&CodeTool>> = BTreeMap::new();
    for t in tools {
        by_namespace.entry(&t.namespace).or_default().push(t);
    }
    let mut out = String::from("declare const tools: {\n");
    for (namespace, mut tools) in by_namespace {
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        out.push_str(&format!("  {}: {{\n", key(namespace)));
        for t in tools {
            doc(&mut out, "    ", &t.description);
            let args = Ty::new(&t.input_schema).of(&t.input_schema, 0);
            let result = t
                .output_schema
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |s| Ty::new(s).of(s, 0));
            out.push_str(&format!(
                "    {}(args: {args}): Promise<{result}>;\n",
                key(&t.name)
            ));
        }
        out.push_str("  };\n");
    }
    out.push_str("};\n");
    out
}

/// A JSDoc comment of `text` (one line when it fits), if there is any.
fn doc(out: &mut String, indent: &str, text: &str) {
    let text = text.trim().replace("*/", "*\\/");
    if text.is_empty() {
        return;
    }
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    if lines.len() == 1 {
        out.push_str(&format!("{indent}/** {} */\n", lines[0]));
    } else {
        out.push_str(&format!("{indent}/**\n"));
        for l in lines {
            out.push_str(&format!("{indent} * {l}\n").replace(" * \n", " *\n"));
        }
        out.push_str(&format!("{indent} */\n"));
    }
}

/// A property or method name: bare when it is an identifier, else quoted.
fn key(name: &str) -> String {
    let mut chars = name.chars();
    let ident = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ident {
        name.to_string()
    } else {
        Value::String(name.to_string()).to_string()
    }
}

/// Translates one schema document (the root, for its `$ref`s).
struct Ty<'a> {
    root: &'a Value,
    /// The `$ref`s being followed, to stop at a cycle.
    following: std::cell::RefCell<Vec<String>>,
}

impl<'a> Ty<'a> {
    fn new(root: &'a Value) -> Ty<'a> {
        Ty {
            root,
            following: Default::default(),
        }
    }

    /// The TypeScript type of `schema`.
    fn of(&self, schema: &Value, depth: usize) -> String {
        if depth > MAX_DEPTH {
            return "unknown".into();
        }
        let Some(s) = schema.as_object() else {
            // `true` (anything) and `false` (nothing).
            return if schema == &Value::Bool(false) {
                "never".into()
            } else {
                "unknown".into()
            };
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            return self.reference(r, depth);
        }
        if let Some(c) = s.get("const") {
            return literal(c);
        }
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            return union(values.iter().map(literal));
        }
        for combinator in ["anyOf", "oneOf"] {
            if let Some(options) = s.get(combinator).and_then(Value::as_array) {
                return union(options.iter().map(|o| self.of(o, depth + 1)));
            }
        }
        if let Some(parts) = s.get("allOf").and_then(Value::as_array) {
            let parts: Vec<String> = parts.iter().map(|p| self.of(p, depth + 1)).collect();
            return match parts.len() {
                0 => "unknown".into(),
                1 => parts[0].clone(),
                _ => parts
                    .iter()
                    .map(|p| group(p))
                    .collect::<Vec<_>>()
                    .join(" & "),
            };
        }
        match s.get("type") {
            Some(Value::String(t)) => self.typed(t, s, depth),
            Some(Value::Array(types)) => union(
                types
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|t| self.typed(t, s, depth)),
            ),
            _ if s.contains_key("properties") => self.typed("object", s, depth),
            _ if s.contains_key("items") => self.typed("array", s, depth),
            _ => "unknown".into(),
        }
    }

    fn typed(&self, t: &str, s: &serde_json::Map<String, Value>, depth: usize) -> String {
        match t {
            "string" => "string".into(),
            "number" | "integer" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => {
                if let Some(prefix) = s.get("prefixItems").and_then(Value::as_array) {
                    let items: Vec<String> = prefix.iter().map(|p| self.of(p, depth + 1)).collect();
                    return format!("[{}]", items.join(", "));
                }
                match s.get("items") {
                    Some(items) => format!("{}[]", group(&self.of(items, depth + 1))),
                    None => "unknown[]".into(),
                }
            }
            "object" => self.object(s, depth),
            _ => "unknown".into(),
        }
    }

    fn object(&self, s: &serde_json::Map<String, Value>, depth: usize) -> String {
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                let mut field = String::new();
                if let Some(d) = p.get("description").and_then(Value::as_str) {
                    let d = d.trim().replace("*/", "*\\/").replace('\n', " ");
                    if !d.is_empty() {
                        field.push_str(&format!("/** {d} */ "));
                    }
                }
                let optional = if required.contains(&name.as_str()) {
                    ""
                } else {
                    "?"
                };
                field.push_str(&format!(
                    "{}{optional}: {}",
                    key(name),
                    self.of(p, depth + 1)
                ));
                fields.push(field);
            }
        }
        match s.get("additionalProperties") {
            Some(Value::Object(_)) => {
                let extra = self.of(&s["additionalProperties"], depth + 1);
                fields.push(format!("[key: string]: {extra}"));
            }
            Some(Value::Bool(false)) => {}
            // No properties named at all: any object. (An empty
            // `properties` is how tools say they take no arguments.)
            _ if !s.contains_key("properties") => return "{ [key: string]: unknown }".into(),
            _ => {}
        }
        if fields.is_empty() {
            "{}".into()
        } else {
            format!("{{ {} }}", fields.join("; "))
        }
    }

    /// The schema a local `$ref` names, translated; `unknown` for a cycle
    /// or a reference that does not resolve.
    fn reference(&self, r: &str, depth: usize) -> String {
        let Some(pointer) = r.strip_prefix('#') else {
            return "unknown".into();
        };
        let Some(target) = self.root.pointer(pointer) else {
            return "unknown".into();
        };
        if self.following.borrow().iter().any(|f| f == r) {
            return "unknown".into();
        }
        self.following.borrow_mut().push(r.to_string());
        let t = self.of(target, depth + 1);
        self.following.borrow_mut().pop();
        t
    }
}

/// A JSON value as a TypeScript literal type.
fn literal(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
        _ => "unknown".into(),
    }
}

/// The union of `types`, each once, in order.
fn union(types: impl Iterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for t in types {
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    match seen.len() {
        0 => "never".into(),
        1 => seen.remove(0),
        _ => seen
            .iter()
            .map(|t| group(t))
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

/// `t` in parentheses when it is a union or intersection (so that `[]`,
/// `|` and `&` bind as meant).
fn group(t: &str) -> String {
    let mut depth = 0i32;
    for c in t.chars() {
        match c {
            '{' | '[' | '(' | '<' => depth += 1,
            '}' | ']' | ')' | '>' => depth -= 1,
            '|' | '&' if depth == 0 => return format!("({t})"),
            _ => {}
        }
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(namespace: &str, name: &str, input: Value, output: Option<Value>) -> CodeTool {
        CodeTool {
            namespace: namespace.into(),
            name: name.into(),
            description: format!("{name} things."),
            input_schema: input,
            output_schema: output,
        }
    }

    #[test]
    fn tools_are_grouped_by_namespace_with_their_argument_and_result_types() {
        let tools = [
            tool(
                "orders",
                "list",
                json!({"type": "object", "required": ["since"], "properties": {
                    "since": {"type": "string", "description": "ISO date"},
                    "status": {"enum": ["open", "closed"]},
                    "limit": {"type": "integer"}
                }}),
                Some(json!({"type": "array", "items": {"type": "object",
                    "required": ["id"], "properties": {"id": {"type": "number"}}}})),
            ),
            tool("payments", "issue-refund", json!({"type": "object"}), None),
            tool(
                "orders",
                "get",
                json!({"type": "object", "properties": {}}),
                None,
            ),
        ];
        assert_eq!(
            declarations(&tools),
            "declare const tools: {\n  orders: {\n    /** get things. */\n    get(args: {}): Promise<unknown>;\n    /** list things. */\n    list(args: { limit?: number; /** ISO date */ since: string; status?: \"open\" | \"closed\" }): Promise<{ id: number }[]>;\n  };\n  payments: {\n    /** issue-refund things. */\n    \"issue-refund\"(args: { [key: string]: unknown }): Promise<unknown>;\n  };\n};\n"
        );
    }

    #[test]
    fn unions_intersections_tuples_refs_and_maps_translate() {
        let t = |s: Value| Ty::new(&s).of(&s, 0);
        assert_eq!(t(json!({"type": ["string", "null"]})), "string | null");
        assert_eq!(
            t(
                json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["number", "boolean"]}}]})
            ),
            "string | (number | boolean)[]"
        );
        assert_eq!(
            t(
                json!({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                               {"type": "object", "properties": {"b": {"const": 1}}}]})
            ),
            "{ a: string } & { b?: 1 }"
        );
        assert_eq!(
            t(json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]})),
            "[string, number]"
        );
        assert_eq!(
            t(json!({"type": "object", "additionalProperties": {"type": "number"}})),
            "{ [key: string]: number }"
        );
        assert_eq!(
            t(
                json!({"type": "object", "properties": {"x-y": {"type": "string"}},
                     "additionalProperties": false})
            ),
            "{ \"x-y\"?: string }"
        );
        let with_defs = json!({
            "$defs": {
                "money": {"type": "object", "required": ["cents"], "properties": {"cents": {"type": "integer"}}},
                "node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}
            },
            "type": "object",
            "properties": {"amount": {"$ref": "#/$defs/money"}, "list": {"$ref": "#/$defs/node"},
                           "gone": {"$ref": "#/$defs/missing"}}
        });
        assert_eq!(
            t(with_defs),
            "{ amount?: { cents: number }; gone?: unknown; list?: { next?: unknown } }"
        );
        assert_eq!(t(json!(true)), "unknown");
        assert_eq!(t(json!(false)), "never");
    }

    #[test]
    fn descriptions_cannot_end_their_comment() {
        let mut out = String::new();
        doc(&mut out, "", "Evil */ declare const x: 1; /*");
        assert_eq!(out, "/** Evil *\\/ declare const x: 1; /* */\n");
        let mut out = String::new();
        doc(&mut out, "  ", "First line.\n\nThird line.");
        assert_eq!(
            out,
            "  /**\n   * First line.\n   *\n   * Third line.\n   */\n"
        );
    }
}
