//! The host's own tools: `ask_user` (pause the run for a question),
//! `load_skill` (progressive disclosure of the agent's skills) and
//! `run_code` (code mode: a program that calls the agent's tools).

use serde_json::json;
use tack_runtime::{Annotations, ToolDescriptor};

/// Plugin name of the built-in tools in events and traces.
pub const BUILTIN: &str = "builtin";
/// The question tool.
pub const ASK_USER: &str = "ask_user";
/// The skill tool.
pub const LOAD_SKILL: &str = "load_skill";

/// The code-mode tool: a program that calls the agent's tools.
pub const RUN_CODE: &str = "run_code";

/// `run_code`'s descriptor: what a program is, then the tools' TypeScript
/// declarations (`declarations`), so the model reads one compact API
/// instead of a schema per tool.
pub fn run_code(declarations: &str) -> ToolDescriptor {
    ToolDescriptor {
        name: RUN_CODE.into(),
        description: format!(
            "Run a JavaScript (or TypeScript) program that calls your tools as async \
             functions, and get back what it returns. Use it to make several tool calls and filter, join or count \
             their results in code, so that only what matters comes back to you. The program \
             is the body of an async function: `await` each call, run independent calls \
             together with `Promise.all`, and `return` the answer (a JSON value). \
             `console.log` output comes back too. A failed call throws an Error with `code` \
             and `message`. There is no network, file system or clock: the tools below are \
             the only way out.\n\n```ts\n{declarations}```"
        ),
        input_schema: json!({
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The program: the body of an async function."
                }
            },
            "required": ["code"],
            "additionalProperties": false
        }),
        output_schema: None,
        annotations: Annotations::default(),
    }
}

/// The program in `run_code` arguments.
pub fn program(arguments: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(arguments).map_err(|e| format!("the arguments are not JSON: {e}"))?;
    v.get("code")
        .and_then(|c| c.as_str())
        .filter(|c| !c.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| "`code` (the program, a non-empty string) is required".into())
}

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
