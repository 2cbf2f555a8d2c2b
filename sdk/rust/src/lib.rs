//! Write tack tools in Rust.
//!
//! A tool is a typed function. Its input type derives [`JsonSchema`] and
//! [`Deserialize`](serde::Deserialize), its output type [`Serialize`](serde::Serialize)
//! (and `JsonSchema`), and its errors are [`ToolError`]s, which map onto the
//! `tool-error` record of the WIT contract (`wit/types.wit`).
//!
//! ```no_run
//! use tack_sdk::{Annotations, CallContext, JsonSchema, ToolError, Toolbox};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Greet { /// Who to greet.
//!     name: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Greeting { message: String }
//!
//! fn greet(input: Greet, _ctx: &CallContext) -> Result<Greeting, ToolError> {
//!     Ok(Greeting { message: format!("Hello, {}!", input.name) })
//! }
//!
//! fn tools() -> Toolbox {
//!     Toolbox::new().tool("greet", "Greet someone by name.", Annotations::read_only(), greet)
//! }
//!
//! tack_sdk::export_tools!(tools());
//! # fn main() {}
//! ```
//!
//! A plugin that needs capabilities (HTTP hosts, directories, a wall clock)
//! declares them in a manifest next to its `Cargo.toml` and embeds it with
//! `tack_sdk::manifest!("tack.toml");` (format: `docs/capabilities.md`).
//!
//! Build with `cargo build --target wasm32-wasip2 --release`: the `.wasm` file is a
//! component ready for `tack plugin inspect` and `tack tool call`. See the README
//! next to this crate for a walk-through.

pub use tack_sdk_core::{http, manifest};
pub mod log;

/// Bindings generated from the WIT contract. Used by [`export_tools!`]; plugin code
/// normally needs only the types re-exported at the crate root.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "tool-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_tool_plugin",
        default_bindings_module: "tack_sdk::bindings",
    });
}

use bindings::tack::plugin::types as wit;
pub use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::OnceCell;

/// Behaviour hints for a tool (MCP tool annotations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Annotations {
    /// The tool may change or delete state outside the sandbox.
    pub destructive: bool,
    /// The tool changes no state.
    pub read_only: bool,
    /// Repeating a call with the same arguments has no further effect.
    pub idempotent: bool,
    /// The tool reaches the open internet.
    pub open_world: bool,
}

impl Annotations {
    /// A tool that only reads (and so is idempotent).
    pub const fn read_only() -> Self {
        Annotations {
            destructive: false,
            read_only: true,
            idempotent: true,
            open_world: false,
        }
    }

    /// A tool that changes state but never destroys or overwrites it.
    pub const fn additive() -> Self {
        Annotations {
            destructive: false,
            read_only: false,
            idempotent: false,
            open_world: false,
        }
    }

    /// A tool that may destroy, overwrite or spend something; operators gate it.
    pub const fn destructive() -> Self {
        Annotations {
            destructive: true,
            read_only: false,
            idempotent: false,
            open_world: false,
        }
    }

    /// The same hints, with `open_world` set.
    pub const fn open_world(mut self) -> Self {
        self.open_world = true;
        self
    }

    /// The same hints, with `idempotent` set.
    pub const fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

/// Who a call is made for, as the host reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// Unique id of this call.
    pub call_id: String,
    /// The agent run, if any.
    pub run_id: Option<String>,
    /// The session, if any.
    pub session_id: Option<String>,
    /// The principal the run acts for, if any.
    pub principal: Option<String>,
}

impl From<wit::CallContext> for CallContext {
    fn from(c: wit::CallContext) -> Self {
        CallContext {
            call_id: c.call_id,
            run_id: c.run_id,
            session_id: c.session_id,
            principal: c.principal,
        }
    }
}

/// The class of a tool error.
pub use wit::ErrorCode;

/// A structured tool error: what went wrong and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError {
    /// The class of error.
    pub code: ErrorCode,
    /// What went wrong, written for the model and the operator.
    pub message: String,
    /// JSON Pointer of the offending argument, if one is to blame.
    pub field: Option<String>,
    /// Whether repeating the call later may succeed.
    pub retryable: bool,
}

impl ToolError {
    /// An error of class `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ToolError {
            code,
            message: message.into(),
            field: None,
            retryable: matches!(code, ErrorCode::Unavailable | ErrorCode::Timeout),
        }
    }

    /// The argument at JSON Pointer `field` (e.g. `/path`) is not acceptable.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ToolError {
            field: Some(field.into()),
            ..Self::new(ErrorCode::InvalidArguments, message)
        }
    }

    /// The thing asked for does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The tool may not do what was asked.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    /// The call conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// A dependency failed; retrying later may help.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// A bug in the tool.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// Map an I/O error about `what` to the closest class.
    pub fn io(what: impl std::fmt::Display, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let message = format!("{what}: {err}");
        match err.kind() {
            K::NotFound => Self::not_found(message),
            K::PermissionDenied | K::ReadOnlyFilesystem => Self::permission_denied(message),
            K::AlreadyExists | K::DirectoryNotEmpty | K::IsADirectory | K::NotADirectory => {
                Self::conflict(message)
            }
            K::InvalidInput | K::InvalidFilename => Self::new(ErrorCode::InvalidArguments, message),
            K::TimedOut => Self::new(ErrorCode::Timeout, message),
            _ => Self::internal(message),
        }
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ToolError> for wit::ToolError {
    fn from(e: ToolError) -> Self {
        wit::ToolError {
            code: e.code,
            message: e.message,
            field: e.field,
            retryable: e.retryable,
        }
    }
}

type Handler = Box<dyn Fn(&str, &CallContext) -> Result<Vec<wit::Content>, ToolError>>;

struct Entry {
    name: String,
    description: String,
    annotations: Annotations,
    /// Input and output schema; generated only when the tools are listed, so a
    /// plain call (a fresh instance every time) does not pay for it.
    schemas: Schemas,
    handler: Handler,
}

/// The set of tools a component offers. Build it in a function and pass that
/// function to [`export_tools!`].
#[derive(Default)]
pub struct Toolbox {
    entries: Vec<Entry>,
}

impl Toolbox {
    /// An empty toolbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add tool `name`, run by `f`.
    ///
    /// The input schema comes from `I`'s [`JsonSchema`] (doc comments become field
    /// descriptions), the output schema from `O`'s. The result is returned as one
    /// JSON content item.
    pub fn tool<I, O, F>(
        self,
        name: &str,
        description: &str,
        annotations: Annotations,
        f: F,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
        F: Fn(I, &CallContext) -> Result<O, ToolError> + 'static,
    {
        self.tool_many(name, description, annotations, move |input, ctx| {
            f(input, ctx).map(|o| vec![o])
        })
    }

    /// Add tool `name`, whose result is a sequence of values: each becomes its own
    /// JSON content item (like the outputs of a jq filter). The output schema is
    /// that of one item.
    pub fn tool_many<I, O, F>(
        mut self,
        name: &str,
        description: &str,
        annotations: Annotations,
        f: F,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
        F: Fn(I, &CallContext) -> Result<Vec<O>, ToolError> + 'static,
    {
        assert!(
            valid_tool_name(name),
            "tool name `{name}` must match [a-z][a-z0-9_-]* and be at most 64 characters"
        );
        let handler: Handler = Box::new(move |args, ctx| {
            let de = &mut serde_json::Deserializer::from_str(args);
            let input: I = serde_path_to_error::deserialize(de).map_err(|e| {
                let pointer = path_to_pointer(e.path());
                let message = format!("invalid arguments at `{pointer}`: {}", e.inner());
                ToolError::invalid(pointer, message)
            })?;
            f(input, ctx)?
                .iter()
                .map(|o| {
                    serde_json::to_string(o)
                        .map(wit::Content::Json)
                        .map_err(|e| {
                            ToolError::internal(format!("result does not serialise to JSON: {e}"))
                        })
                })
                .collect()
        });
        self.entries.push(Entry {
            name: name.to_string(),
            description: description.to_string(),
            annotations,
            schemas: Schemas::Derived(schemas::<I, O>),
            handler,
        });
        self
    }

    /// Add tool `name` with a hand-written JSON Schema for its input (for what
    /// a derived schema cannot say: `$defs` with anchors, `if`/`then`/`else`,
    /// `anyOf` of required sets). `f` gets the arguments as JSON, already
    /// checked against `input_schema` by the host, and returns the result's
    /// parts, text or JSON. The tool has no output schema.
    pub fn tool_with_schema<F>(
        mut self,
        name: &str,
        description: &str,
        annotations: Annotations,
        input_schema: serde_json::Value,
        f: F,
    ) -> Self
    where
        F: Fn(serde_json::Value, &CallContext) -> Result<Vec<Part>, ToolError> + 'static,
    {
        assert!(
            valid_tool_name(name),
            "tool name `{name}` must match [a-z][a-z0-9_-]* and be at most 64 characters"
        );
        let handler: Handler = Box::new(move |args, ctx| {
            let input: serde_json::Value = serde_json::from_str(args)
                .map_err(|e| ToolError::invalid("", format!("arguments are not JSON: {e}")))?;
            Ok(f(input, ctx)?
                .into_iter()
                .map(|p| match p {
                    Part::Text(t) => wit::Content::Text(t),
                    Part::Json(v) => wit::Content::Json(v.to_string()),
                })
                .collect())
        });
        self.entries.push(Entry {
            name: name.to_string(),
            description: description.to_string(),
            annotations,
            schemas: Schemas::Given(input_schema.to_string()),
            handler,
        });
        self
    }

    fn descriptors(&self) -> Vec<wit::ToolDescriptor> {
        self.entries
            .iter()
            .map(|e| {
                let (input_schema, output_schema) = match &e.schemas {
                    Schemas::Derived(f) => {
                        let (input, output) = f();
                        (input, Some(output))
                    }
                    Schemas::Given(input) => (input.clone(), None),
                };
                let a = e.annotations;
                wit::ToolDescriptor {
                    name: e.name.clone(),
                    description: e.description.clone(),
                    input_schema,
                    output_schema,
                    annotations: wit::ToolAnnotations {
                        destructive: a.destructive,
                        read_only: a.read_only,
                        idempotent: a.idempotent,
                        open_world: a.open_world,
                    },
                }
            })
            .collect()
    }

    fn dispatch(
        &self,
        name: &str,
        args: &str,
        ctx: &CallContext,
    ) -> Result<Vec<wit::Content>, ToolError> {
        match self.entries.iter().find(|e| e.name == name) {
            Some(e) => (e.handler)(args, ctx),
            None => {
                let known: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
                Err(ToolError::not_found(format!(
                    "no tool named `{name}`; this component offers: {}",
                    known.join(", ")
                )))
            }
        }
    }
}

/// Where a tool's schemas come from.
enum Schemas {
    /// Input and output schemas derived from the handler's types.
    Derived(fn() -> (String, String)),
    /// A hand-written input schema, and no output schema.
    Given(String),
}

/// JSON Schemas of a tool's input and output types.
fn schemas<I: JsonSchema, O: JsonSchema>() -> (String, String) {
    let input = serde_json::to_string(&schemars::schema_for!(I)).expect("schema serialises");
    let output = serde_json::to_string(&schemars::schema_for!(O)).expect("schema serialises");
    (input, output)
}

/// One part of a tool's result, for [`Toolbox::tool_with_schema`].
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text, as the model reads it.
    Text(String),
    /// A JSON value.
    Json(serde_json::Value),
}

fn valid_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Turn serde_path_to_error's `a.b[2]` path into a JSON Pointer `/a/b/2`.
fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

#[doc(hidden)]
pub mod __rt {
    //! Support for [`export_tools!`](crate::export_tools); not a public API.
    use super::*;
    use bindings::exports::tack::plugin::tool as export;

    thread_local! {
        static TOOLBOX: OnceCell<Toolbox> = const { OnceCell::new() };
    }

    fn with<R>(build: fn() -> Toolbox, f: impl FnOnce(&Toolbox) -> R) -> R {
        TOOLBOX.with(|cell| f(cell.get_or_init(build)))
    }

    pub fn list_tools(build: fn() -> Toolbox) -> Vec<export::ToolDescriptor> {
        with(build, |t| t.descriptors())
    }

    pub fn call_tool(
        build: fn() -> Toolbox,
        name: String,
        arguments: String,
        context: export::CallContext,
    ) -> Result<Vec<export::Content>, export::ToolError> {
        let ctx = CallContext::from(context);
        with(build, |t| t.dispatch(&name, &arguments, &ctx)).map_err(Into::into)
    }
}

/// Export a [`Toolbox`] as this component's `tack:plugin/tool` implementation.
///
/// Pass an expression that builds the toolbox; it runs once per instance.
#[macro_export]
macro_rules! export_tools {
    ($build:expr) => {
        #[doc(hidden)]
        pub struct __TackTools;

        impl $crate::bindings::exports::tack::plugin::tool::Guest for __TackTools {
            fn list_tools() -> ::std::vec::Vec<$crate::bindings::exports::tack::plugin::tool::ToolDescriptor> {
                $crate::__rt::list_tools(|| $build)
            }

            fn call_tool(
                name: ::std::string::String,
                arguments: ::std::string::String,
                context: $crate::bindings::exports::tack::plugin::tool::CallContext,
            ) -> ::std::result::Result<
                ::std::vec::Vec<$crate::bindings::exports::tack::plugin::tool::Content>,
                $crate::bindings::exports::tack::plugin::tool::ToolError,
            > {
                $crate::__rt::call_tool(|| $build, name, arguments, context)
            }
        }

        $crate::bindings::__export_tool_plugin!(__TackTools with_types_in $crate::bindings);
    };
}
