//! Host-side types of the tool contract, serialisable for the CLI and the API.
//!
//! They mirror `wit/types.wit`; conversions from the generated bindings live here.

use crate::bindings::tack::plugin::types as wit;
use serde::{Deserialize, Serialize};

/// Behaviour hints of a tool (MCP tool annotations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    /// May change or delete state outside the sandbox.
    pub destructive: bool,
    /// Changes no state.
    pub read_only: bool,
    /// Repeating a call has no further effect.
    pub idempotent: bool,
    /// Reaches the open internet.
    pub open_world: bool,
}

/// One tool a plugin offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDescriptor {
    /// Tool name, unique within the plugin.
    pub name: String,
    /// What the tool does.
    pub description: String,
    /// JSON Schema of the arguments.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the JSON result, if declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    /// Behaviour hints.
    pub annotations: Annotations,
}

impl Annotations {
    pub(crate) fn to_wit(self) -> wit::ToolAnnotations {
        wit::ToolAnnotations {
            destructive: self.destructive,
            read_only: self.read_only,
            idempotent: self.idempotent,
            open_world: self.open_world,
        }
    }
}

impl ToolDescriptor {
    pub(crate) fn to_wit(&self) -> wit::ToolDescriptor {
        wit::ToolDescriptor {
            name: self.name.clone(),
            description: self.description.clone(),
            input_schema: self.input_schema.to_string(),
            output_schema: self.output_schema.as_ref().map(|s| s.to_string()),
            annotations: self.annotations.to_wit(),
        }
    }

    pub(crate) fn from_wit(d: wit::ToolDescriptor) -> Result<Self, String> {
        let parse = |what: &str, text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| format!("tool `{}` has an {what} that is not JSON: {e}", d.name))
        };
        let input_schema = parse("input schema", &d.input_schema)?;
        let output_schema = d
            .output_schema
            .as_deref()
            .map(|s| parse("output schema", s))
            .transpose()?;
        Ok(ToolDescriptor {
            input_schema,
            output_schema,
            annotations: Annotations {
                destructive: d.annotations.destructive,
                read_only: d.annotations.read_only,
                idempotent: d.annotations.idempotent,
                open_world: d.annotations.open_world,
            },
            name: d.name,
            description: d.description,
        })
    }
}

/// Who a call is made for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallContext {
    /// Unique id of the call; a ULID is generated when empty.
    pub call_id: String,
    /// The agent run, if any.
    pub run_id: Option<String>,
    /// The session, if any.
    pub session_id: Option<String>,
    /// The principal, if any.
    pub principal: Option<String>,
}

impl CallContext {
    pub(crate) fn to_wit(&self) -> wit::CallContext {
        wit::CallContext {
            call_id: self.call_id.clone(),
            run_id: self.run_id.clone(),
            session_id: self.session_id.clone(),
            principal: self.principal.clone(),
        }
    }
}

/// One piece of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Content {
    /// Text.
    Text(String),
    /// A JSON value.
    Json(serde_json::Value),
}

impl Content {
    pub(crate) fn from_wit(c: wit::Content) -> Result<Self, String> {
        Ok(match c {
            wit::Content::Text(t) => Content::Text(t),
            wit::Content::Json(j) => Content::Json(serde_json::from_str(&j).map_err(|e| {
                format!("the plugin returned JSON content that does not parse: {e}")
            })?),
        })
    }
}

/// The class of a tool error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The arguments were rejected.
    InvalidArguments,
    /// The thing referred to does not exist.
    NotFound,
    /// Not permitted.
    PermissionDenied,
    /// Conflicts with current state.
    Conflict,
    /// A dependency failed; retry later.
    Unavailable,
    /// The tool timed out on its own terms.
    Timeout,
    /// A bug in the tool.
    Internal,
}

/// A structured error returned by the tool itself (not a sandbox failure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolError {
    /// The class of error.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
    /// JSON Pointer of the offending argument.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Whether a retry may succeed.
    pub retryable: bool,
}

impl From<wit::ToolError> for ToolError {
    fn from(e: wit::ToolError) -> Self {
        ToolError {
            code: match e.code {
                wit::ErrorCode::InvalidArguments => ErrorCode::InvalidArguments,
                wit::ErrorCode::NotFound => ErrorCode::NotFound,
                wit::ErrorCode::PermissionDenied => ErrorCode::PermissionDenied,
                wit::ErrorCode::Conflict => ErrorCode::Conflict,
                wit::ErrorCode::Unavailable => ErrorCode::Unavailable,
                wit::ErrorCode::Timeout => ErrorCode::Timeout,
                wit::ErrorCode::Internal => ErrorCode::Internal,
            },
            message: e.message,
            field: e.field,
            retryable: e.retryable,
        }
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = serde_json::to_value(self.code).ok();
        let code = code.as_ref().and_then(|v| v.as_str()).unwrap_or("error");
        write!(f, "{code}: {}", self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        Ok(())
    }
}

/// Severity of a guest log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

/// A log record a guest emitted during a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// Text, cut at 4 KiB.
    pub message: String,
}
