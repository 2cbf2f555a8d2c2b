//! Redaction of tool arguments by JSON Pointer (RFC 6901).

use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// A copy of `value` with the target of each pointer replaced by
/// [`REDACTED`]; pointers that point nowhere are ignored. A pointer written as a
/// bare name (`account`) means `/account`.
pub fn redact(value: &Value, pointers: &[String]) -> Value {
    let mut out = value.clone();
    for p in pointers {
        let p = if p.starts_with('/') || p.is_empty() {
            p.clone()
        } else {
            format!("/{p}")
        };
        if p.is_empty() {
            return Value::String(REDACTED.into());
        }
        if let Some(target) = out.pointer_mut(&p) {
            *target = Value::String(REDACTED.into());
        }
    }
    out
}

/// [`redact`] for JSON text; text that is not JSON is redacted whole when any
/// pointer is given (it cannot be redacted in part).
pub fn redact_text(text: &str, pointers: &[String]) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => redact(&v, pointers),
        Err(_) if pointers.is_empty() => Value::String(text.to_string()),
        Err(_) => Value::String(REDACTED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_and_bare_names_redact_nested_values() {
        let v = json!({"account": "acct_1", "card": {"number": "4111", "exp": "12/30"}, "n": 5});
        let r = redact(
            &v,
            &["account".into(), "/card/number".into(), "/missing".into()],
        );
        assert_eq!(
            r,
            json!({"account": REDACTED, "card": {"number": REDACTED, "exp": "12/30"}, "n": 5})
        );
        assert_eq!(redact_text("not json", &["/x".into()]), json!(REDACTED));
        assert_eq!(redact_text("not json", &[]), json!("not json"));
    }
}
