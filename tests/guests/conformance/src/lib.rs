//! The fixture tools of the MCP conformance suite's server scenarios that a
//! tack tool can be: text results, a tool error, log records during a call,
//! and an input schema with JSON Schema 2020-12 keywords. Served by a test
//! toolset on `/mcp`; scenarios that need what a tool component cannot do
//! (images, audio, progress, sampling, elicitation) are listed with their
//! reasons in `tests/conformance/`.

use serde_json::{Value, json};
use tack_sdk::{Annotations, CallContext, Part, ToolError, Toolbox, log};

fn no_arguments() -> Value {
    json!({"type": "object", "properties": {}})
}

fn simple_text(_: Value, _: &CallContext) -> Result<Vec<Part>, ToolError> {
    Ok(vec![Part::Text(
        "This is a simple text response for testing.".into(),
    )])
}

fn error_handling(_: Value, _: &CallContext) -> Result<Vec<Part>, ToolError> {
    Err(ToolError::internal(
        "This tool intentionally returns an error for testing",
    ))
}

fn with_logging(_: Value, _: &CallContext) -> Result<Vec<Part>, ToolError> {
    log::info("Tool execution started");
    log::info("Tool processing data");
    log::info("Tool execution completed");
    Ok(vec![Part::Text(
        "Tool with logging executed successfully".into(),
    )])
}

fn schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"address": {"$anchor": "addressDef", "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    })
}

fn echo_contact(input: Value, _: &CallContext) -> Result<Vec<Part>, ToolError> {
    Ok(vec![Part::Json(input)])
}

fn tools() -> Toolbox {
    let quiet = Annotations::read_only();
    Toolbox::new()
        .tool_with_schema(
            "test_simple_text",
            "Returns a simple text response.",
            quiet,
            no_arguments(),
            simple_text,
        )
        .tool_with_schema(
            "test_error_handling",
            "Always fails, for testing error reporting.",
            quiet,
            no_arguments(),
            error_handling,
        )
        .tool_with_schema(
            "test_tool_with_logging",
            "Logs three messages while it runs.",
            quiet,
            no_arguments(),
            with_logging,
        )
        .tool_with_schema(
            "test_logging_tool",
            "Logs while it runs (clients that set no log level hear nothing).",
            quiet,
            no_arguments(),
            with_logging,
        )
        .tool_with_schema(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            quiet,
            schema_2020_12(),
            echo_contact,
        )
}

tack_sdk::export_tools!(tools());
