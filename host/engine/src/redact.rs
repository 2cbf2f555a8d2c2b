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

/// A value that redaction selected in a call's arguments, looked for again in
/// what the tool returns: a string of 3 characters or more, or a number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Needle {
    /// A string value, as parsed (quotes and newlines raw).
    Text(String),
    /// A number.
    Number(serde_json::Number),
}

/// The values `pointers` select in the JSON `arguments` (none when they do not
/// parse).
pub(crate) fn needles(arguments: &str, pointers: &[String]) -> Vec<Needle> {
    let Ok(args) = serde_json::from_str::<Value>(arguments) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in pointers {
        let p = if p.starts_with('/') {
            p.clone()
        } else {
            format!("/{p}")
        };
        match args.pointer(&p) {
            Some(Value::String(s)) if s.chars().count() >= 3 => out.push(Needle::Text(s.clone())),
            Some(Value::Number(n)) => out.push(Needle::Number(n.clone())),
            _ => {}
        }
    }
    out
}

/// `parts` of a tool result with every needle replaced by [`REDACTED`], on
/// the parsed values: inside JSON strings and keys, JSON numbers equal to one,
/// text parts (parsed as JSON first when they are JSON, so escapes such as
/// `\"` or `\u0061` hide nothing), and text that runs across adjacent text
/// parts.
pub(crate) fn scrub_parts(
    parts: &[tack_runtime::Content],
    needles: &[Needle],
) -> Vec<tack_runtime::Content> {
    use tack_runtime::Content;
    if needles.is_empty() {
        return parts.to_vec();
    }
    let mut out: Vec<Content> = parts
        .iter()
        .map(|c| match c {
            Content::Json(v) => Content::Json(scrub_value(v, needles)),
            Content::Text(t) => match serde_json::from_str::<Value>(t) {
                Ok(v @ (Value::Object(_) | Value::Array(_) | Value::String(_))) => {
                    let scrubbed = scrub_value(&v, needles);
                    if scrubbed == v {
                        Content::Text(scrub_plain(t, needles))
                    } else {
                        Content::Text(scrubbed.to_string())
                    }
                }
                _ => Content::Text(scrub_plain(t, needles)),
            },
        })
        .collect();
    scrub_across_text_parts(&mut out, needles);
    out
}

/// `text` (any text: an error message, a stored result) with every needle
/// replaced, raw and in its JSON-escaped form.
pub(crate) fn scrub_plain(text: &str, needles: &[Needle]) -> String {
    let mut out = text.to_string();
    for n in needles {
        let forms = match n {
            Needle::Text(s) => {
                let json = serde_json::to_string(s).expect("a string serializes");
                vec![s.clone(), json[1..json.len() - 1].to_string()]
            }
            Needle::Number(n) => vec![n.to_string()],
        };
        for form in forms {
            if out.contains(&form) {
                out = out.replace(&form, REDACTED);
            }
        }
    }
    out
}

fn scrub_value(v: &Value, needles: &[Needle]) -> Value {
    match v {
        Value::String(s) => Value::String(scrub_text_value(s, needles)),
        Value::Number(n)
            if needles
                .iter()
                .any(|x| matches!(x, Needle::Number(m) if m == n)) =>
        {
            Value::String(REDACTED.into())
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| scrub_value(i, needles)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (scrub_text_value(k, needles), scrub_value(v, needles)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A parsed string with the text needles replaced (numbers are matched as
/// numbers, not inside strings' digits, except in plain text).
fn scrub_text_value(s: &str, needles: &[Needle]) -> String {
    let mut out = s.to_string();
    for n in needles {
        if let Needle::Text(t) = n
            && out.contains(t.as_str())
        {
            out = out.replace(t.as_str(), REDACTED);
        }
    }
    out
}

/// Hide text needles that begin in one text part and end in a later one
/// (adjacent text parts read as one text).
fn scrub_across_text_parts(parts: &mut [tack_runtime::Content], needles: &[Needle]) {
    use tack_runtime::Content;
    let mut start = 0;
    while start < parts.len() {
        if !matches!(parts[start], Content::Text(_)) {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < parts.len() && matches!(parts[end], Content::Text(_)) {
            end += 1;
        }
        if end - start > 1 {
            scrub_run(&mut parts[start..end], needles);
        }
        start = end;
    }
}

/// `run`: consecutive text parts. Every needle occurrence in their
/// concatenation that crosses a boundary is replaced: `[redacted]` where it
/// starts, its other pieces removed.
fn scrub_run(run: &mut [tack_runtime::Content], needles: &[Needle]) {
    use tack_runtime::Content;
    let texts: Vec<String> = run
        .iter()
        .map(|c| match c {
            Content::Text(t) => t.clone(),
            Content::Json(_) => unreachable!("a run holds text parts only"),
        })
        .collect();
    let joined: String = texts.concat();
    // Byte ranges to hide, in the joined text.
    let mut hide: Vec<(usize, usize)> = Vec::new();
    for n in needles {
        let Needle::Text(t) = n else { continue };
        let mut from = 0;
        while let Some(i) = joined[from..].find(t.as_str()) {
            hide.push((from + i, from + i + t.len()));
            from += i + t.len();
        }
    }
    if hide.is_empty() {
        return;
    }
    hide.sort();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in hide {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut lo = 0;
    for (part, text) in run.iter_mut().zip(&texts) {
        let hi = lo + text.len();
        let mut out = String::new();
        let mut at = lo;
        for &(a, b) in merged.iter().filter(|(a, b)| *a < hi && *b > lo) {
            out.push_str(&joined[at..a.max(lo)]);
            if a >= lo {
                out.push_str(REDACTED);
            }
            at = b.min(hi);
        }
        out.push_str(&joined[at..hi]);
        *part = Content::Text(out);
        lo = hi;
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

    fn text(t: &str) -> tack_runtime::Content {
        tack_runtime::Content::Text(t.into())
    }

    /// Values with quotes, newlines and non-ASCII, echoed by a tool as JSON, as
    /// JSON text with escapes, as plain text, and split across text parts: none
    /// survives, and what is not a redacted value does.
    #[test]
    fn echoes_are_scrubbed_on_the_parsed_value_in_every_form() {
        use tack_runtime::Content;
        let secret = "sa\"y \"hi\"\nnow ü";
        let args = json!({"note": secret, "pin": 4711, "keep": "public"}).to_string();
        let n = needles(&args, &["note".into(), "/pin".into()]);
        assert_eq!(n.len(), 2);
        let escaped_json = r#"{"echo": "sa\"y \"hi\"\nnow \u00fc", "pin": 4711}"#;
        let parts = vec![
            Content::Json(json!({"ledger": [{"note": secret, "pin": 4711, "keep": "public"}]})),
            text(escaped_json),
            text(&format!("plain: {secret}; pin 4711")),
            text("split: sa\"y \"h"),
            text("i\"\nnow ü end"),
        ];
        let shown = scrub_parts(&parts, &n);
        let all = serde_json::to_string(&shown).unwrap();
        for leak in ["hi", "now", "4711", "\\u00fc"] {
            assert!(!all.contains(leak), "{leak} in {all}");
        }
        assert_eq!(
            shown[0],
            Content::Json(
                json!({"ledger": [{"note": REDACTED, "pin": REDACTED, "keep": "public"}]})
            )
        );
        assert_eq!(shown[2], text("plain: [redacted]; pin [redacted]"));
        assert_eq!(shown[3], text("split: [redacted]"));
        assert_eq!(shown[4], text(" end"));
        // Text without a needle is left exactly as it was.
        let untouched = vec![text("{\"a\":  1}")];
        assert_eq!(scrub_parts(&untouched, &n), untouched);
        assert_eq!(scrub_plain("error: \"sa\\\"y\"", &n), "error: \"sa\\\"y\"");
    }
}
