//! Elicitation requests from upstream servers (in a session, or as a
//! 2026-07-28 input-required round), put to a person as questions.
//!
//! A form becomes one question. With a single field, the answer is that
//! field's value (its choices offered when it has an `enum`, or is a
//! boolean); with several, the answer is a JSON object. `decline` and
//! `cancel` answer as such. Missing fields take the schema's defaults (as
//! SEP-1034 asks of clients), and an answer that still does not fit the
//! schema is asked again, with what was wrong, a few times before the
//! request is cancelled. A URL request asks the person to open the address
//! and say `done`.

use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction};
use serde_json::{Map, Value};
use tack_engine::remote::Asker;

/// How many answers a form gets before it is cancelled.
const ATTEMPTS: usize = 3;

/// Ask `asker` what server `server` wants to know.
pub(crate) async fn elicit(
    asker: &dyn Asker,
    server: &str,
    request: ElicitRequestParams,
) -> ElicitResult {
    match request {
        ElicitRequestParams::UrlElicitationParams { message, url, .. } => {
            let question = format!(
                "MCP server `{server}` asks you to open {url}\n{message}\n\
                 Answer `done` once you have, or `decline` or `cancel`."
            );
            let choices = vec!["done".into(), "decline".into(), "cancel".into()];
            match asker.ask(question, choices).await {
                Ok(answer) => {
                    result(&answer).unwrap_or_else(|| ElicitResult::new(ElicitationAction::Accept))
                }
                Err(_) => ElicitResult::new(ElicitationAction::Cancel),
            }
        }
        ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } => {
            let schema = serde_json::to_value(&requested_schema).unwrap_or_default();
            form(asker, server, &message, &schema).await
        }
        // A mode this build does not know.
        _ => ElicitResult::new(ElicitationAction::Decline),
    }
}

/// `decline` or `cancel`, as the result they ask for.
fn result(answer: &str) -> Option<ElicitResult> {
    let a = answer.trim();
    if a.eq_ignore_ascii_case("decline") {
        Some(ElicitResult::new(ElicitationAction::Decline))
    } else if a.eq_ignore_ascii_case("cancel") {
        Some(ElicitResult::new(ElicitationAction::Cancel))
    } else {
        None
    }
}

async fn form(asker: &dyn Asker, server: &str, message: &str, schema: &Value) -> ElicitResult {
    let empty = Map::new();
    let props = schema["properties"].as_object().unwrap_or(&empty);
    let single = (props.len() == 1).then(|| props.iter().next()).flatten();
    let mut choices: Vec<String> = match single {
        Some((_, p)) if p["type"] == "boolean" => vec!["true".into(), "false".into()],
        Some((_, p)) => enum_values(p),
        None => Vec::new(),
    };
    if !choices.is_empty() {
        choices.push("decline".into());
    }
    let how = match single {
        Some((name, p)) => format!("Answer with the {}.", describe(name, p, schema)),
        None => format!(
            "Answer with a JSON object: {}.",
            props
                .iter()
                .map(|(name, p)| describe(name, p, schema))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let validator = jsonschema::validator_for(schema).ok();
    let mut problem = String::new();
    for _ in 0..ATTEMPTS {
        let question = format!(
            "MCP server `{server}` asks: {message}\n{problem}{how} Or answer `decline` or `cancel`."
        );
        let Ok(answer) = asker.ask(question, choices.clone()).await else {
            return ElicitResult::new(ElicitationAction::Cancel);
        };
        if let Some(r) = result(&answer) {
            return r;
        }
        let mut content = match serde_json::from_str::<Value>(answer.trim()) {
            Ok(Value::Object(o)) => o,
            _ => match single {
                Some((name, p)) => Map::from_iter([(name.clone(), value_of(&answer, p))]),
                None => {
                    problem = "That answer is not a JSON object. ".into();
                    continue;
                }
            },
        };
        for (name, p) in props {
            if let Some(d) = p.get("default")
                && !content.contains_key(name)
            {
                content.insert(name.clone(), d.clone());
            }
        }
        let content = Value::Object(content);
        let errors: Vec<String> = validator
            .as_ref()
            .map(|v| v.iter_errors(&content).map(|e| e.to_string()).collect())
            .unwrap_or_default();
        if errors.is_empty() {
            let mut r = ElicitResult::new(ElicitationAction::Accept);
            r.content = Some(content);
            return r;
        }
        problem = format!("That answer does not fit: {}. ", errors.join("; "));
    }
    ElicitResult::new(ElicitationAction::Cancel)
}

/// The values a property may take, when it lists them.
fn enum_values(p: &Value) -> Vec<String> {
    let listed = p["enum"].as_array().cloned().or_else(|| {
        p["oneOf"]
            .as_array()
            .map(|o| o.iter().map(|c| c["const"].clone()).collect())
    });
    listed
        .unwrap_or_default()
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
        .collect()
}

/// `name (type, required, default …): description` for the question.
fn describe(name: &str, p: &Value, schema: &Value) -> String {
    let mut notes = vec![p["type"].as_str().unwrap_or("value").to_string()];
    let required = schema["required"]
        .as_array()
        .is_some_and(|r| r.iter().any(|n| n == name));
    if required {
        notes.push("required".into());
    }
    let values = enum_values(p);
    if !values.is_empty() {
        notes.push(format!("one of {}", values.join(", ")));
    }
    if let Some(d) = p.get("default") {
        notes.push(format!("default {d}"));
    }
    let mut out = format!("`{name}` ({})", notes.join(", "));
    if let Some(d) = p["description"].as_str().or(p["title"].as_str()) {
        out.push_str(&format!(": {d}"));
    }
    out
}

/// A bare answer as the value of property `p`.
fn value_of(answer: &str, p: &Value) -> Value {
    let a = answer.trim();
    match p["type"].as_str() {
        Some("integer") => a.parse::<i64>().map(Value::from).unwrap_or(a.into()),
        Some("number") => a.parse::<f64>().map(Value::from).unwrap_or(a.into()),
        Some("boolean") => match a.to_ascii_lowercase().as_str() {
            "true" | "yes" => Value::Bool(true),
            "false" | "no" => Value::Bool(false),
            _ => a.into(),
        },
        _ => a.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::BoxFuture;
    use serde_json::json;
    use std::sync::Mutex;
    use tack_engine::remote::RemoteError;

    /// Answers from a list, recording the questions.
    struct Scripted {
        answers: Mutex<Vec<&'static str>>,
        asked: Mutex<Vec<(String, Vec<String>)>>,
    }

    impl Scripted {
        fn new(answers: &[&'static str]) -> Scripted {
            Scripted {
                answers: Mutex::new(answers.iter().rev().copied().collect()),
                asked: Mutex::default(),
            }
        }
    }

    impl Asker for Scripted {
        fn ask(
            &self,
            question: String,
            choices: Vec<String>,
        ) -> BoxFuture<'_, Result<String, RemoteError>> {
            self.asked.lock().unwrap().push((question, choices));
            let next = self.answers.lock().unwrap().pop();
            Box::pin(async move {
                next.map(str::to_string)
                    .ok_or_else(|| RemoteError::new("interrupted", "no more answers"))
            })
        }
    }

    fn schema() -> Value {
        json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "description": "Your name"},
            "age": {"type": "integer", "default": 30},
            "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"}
        }})
    }

    #[tokio::test]
    async fn a_form_takes_a_json_answer_with_defaults_and_asks_again_when_it_does_not_fit() {
        let asker = Scripted::new(&["not json", r#"{"age": "old"}"#, r#"{"name": "Ada"}"#]);
        let r = form(&asker, "crm", "Who are you?", &schema()).await;
        assert_eq!(r.action, ElicitationAction::Accept);
        assert_eq!(
            r.content,
            Some(json!({"name": "Ada", "age": 30, "tier": "free"}))
        );
        let asked = asker.asked.lock().unwrap();
        assert_eq!(asked.len(), 3);
        assert!(asked[0].0.contains("MCP server `crm` asks: Who are you?"));
        assert!(asked[0].0.contains("`name` (string, required): Your name"));
        assert!(asked[1].0.contains("not a JSON object"), "{}", asked[1].0);
        assert!(asked[2].0.contains("does not fit"), "{}", asked[2].0);
    }

    #[tokio::test]
    async fn a_single_field_takes_a_bare_answer_and_offers_its_choices() {
        let s = json!({"type": "object", "properties": {
            "confirm": {"type": "boolean"}}});
        let asker = Scripted::new(&["yes"]);
        let r = form(&asker, "pay", "Refund?", &s).await;
        assert_eq!(r.content, Some(json!({"confirm": true})));
        assert_eq!(
            asker.asked.lock().unwrap()[0].1,
            ["true", "false", "decline"]
        );
        let asker = Scripted::new(&["Decline"]);
        let r = form(&asker, "pay", "Refund?", &s).await;
        assert_eq!(r.action, ElicitationAction::Decline);
    }

    #[tokio::test]
    async fn no_answer_or_too_many_wrong_ones_cancel() {
        let asker = Scripted::new(&[]);
        let r = form(&asker, "crm", "Who?", &schema()).await;
        assert_eq!(r.action, ElicitationAction::Cancel);
        let asker = Scripted::new(&["[]", "[]", "[]", r#"{"name": "late"}"#]);
        let r = form(&asker, "crm", "Who?", &schema()).await;
        assert_eq!(r.action, ElicitationAction::Cancel);
        assert_eq!(asker.asked.lock().unwrap().len(), ATTEMPTS);
    }
}
