//! `echo`: returns its argument. The benchmark's tool: it measures the sandbox,
//! not the work.

use serde::Deserialize;
use tack_sdk::{Annotations, CallContext, JsonSchema, ToolError, Toolbox};

/// Arguments of `echo`.
#[derive(Deserialize, JsonSchema)]
struct Echo {
    /// Any JSON value.
    value: serde_json::Value,
}

fn echo(input: Echo, _: &CallContext) -> Result<serde_json::Value, ToolError> {
    Ok(input.value)
}

fn tools() -> Toolbox {
    Toolbox::new().tool(
        "echo",
        "Return the value unchanged.",
        Annotations::read_only(),
        echo,
    )
}

tack_sdk::export_tools!(tools());
