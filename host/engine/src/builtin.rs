//! The host's own tools: `ask_user` (pause the run for a question) and
//! `load_skill` (progressive disclosure of the agent's skills).

use serde_json::json;
use tack_runtime::{Annotations, ToolDescriptor};

/// Plugin name of the built-in tools in events and traces.
pub const BUILTIN: &str = "builtin";
/// The question tool.
pub const ASK_USER: &str = "ask_user";
/// The skill tool.
pub const LOAD_SKILL: &str = "load_skill";

/// `ask_user`'s descriptor.
pub fn ask_user() -> ToolDescriptor {
    ToolDescriptor {
        name: ASK_USER.into(),
        description: "Ask the user a question and wait for the answer. Use when you need a \
                      decision or a fact only the user has. Give `choices` when the answer \
                      is one of a few options."
            .into(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "question": {"type": "string", "minLength": 1},
                "choices": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["question"],
            "additionalProperties": false
        }),
        output_schema: None,
        annotations: Annotations {
            read_only: true,
            ..Annotations::default()
        },
    }
}

/// `load_skill`'s descriptor, listing the skills by name.
pub fn load_skill(names: &[String]) -> ToolDescriptor {
    ToolDescriptor {
        name: LOAD_SKILL.into(),
        description: "Load one of your skills: returns its full instructions and makes its \
                      tools available. Load a skill before doing what its description covers."
            .into(),
        input_schema: json!({
            "type": "object",
            "properties": {"name": {"type": "string", "enum": names}},
            "required": ["name"],
            "additionalProperties": false
        }),
        output_schema: None,
        annotations: Annotations {
            read_only: true,
            idempotent: true,
            ..Annotations::default()
        },
    }
}

/// The skill name in `load_skill` arguments.
pub fn skill_name(arguments: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(arguments)
        .ok()?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

/// The question and choices in `ask_user` arguments.
pub fn question(arguments: &str) -> Result<(String, Vec<String>), String> {
    let v: serde_json::Value =
        serde_json::from_str(arguments).map_err(|e| format!("the arguments are not JSON: {e}"))?;
    let q = v
        .get("question")
        .and_then(|q| q.as_str())
        .filter(|q| !q.trim().is_empty())
        .ok_or("`question` (a non-empty string) is required")?;
    let choices = v
        .get("choices")
        .and_then(|c| c.as_array())
        .map(|c| {
            c.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((q.to_string(), choices))
}
