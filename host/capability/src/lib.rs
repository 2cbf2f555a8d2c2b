//! What a tack plugin may do: its capabilities.
//!
//! A plugin runs with **nothing** unless two parties agree:
//!
//! - the package's [`Manifest`] declares what it needs (directories by guest path,
//!   environment variable names, HTTP hosts, wall clock, how much memory), and
//! - the operator's [`Grant`] allows it (which host directory backs a guest path and
//!   in which mode, env values, HTTP hosts and private ranges, limits).
//!
//! [`Grant::resolve`] intersects the two into the plugin's [`Capabilities`], the only thing
//! the runtime reads. Everything that is not in both is denied, and every
//! half-agreement (granted but not declared, declared but not granted) is reported as
//! a [`Note`] so that nothing is dropped silently.
//!
//! The file formats are documented in `docs/capabilities.md` at the repository root.

mod effective;
mod egress;
mod grant;
mod manifest;
mod units;

pub use effective::{Capabilities, DirMount, Limits, Note};
pub use egress::{EgressDenied, EgressRules, HostPattern, forbidden_ip_reason};
pub use grant::{DirGrant, Grant, HttpGrant, LimitsGrant};
pub use manifest::{
    DirRequest, HttpRequest, Manifest, ManifestCapabilities, ManifestLimits, PluginInfo, ToolNotes,
};
pub use units::{ByteSize, HumanDuration};

use serde::{Deserialize, Serialize};

/// Access mode of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Read-only.
    #[serde(rename = "ro")]
    ReadOnly,
    /// Read and write.
    #[serde(rename = "rw")]
    ReadWrite,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::ReadOnly => "ro",
            Mode::ReadWrite => "rw",
        })
    }
}

/// Why a manifest or grant could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// The TOML text did not parse or has unknown fields.
    #[error("invalid {what}: {message}")]
    Parse {
        /// `"plugin manifest"` or `"capability grant"`.
        what: &'static str,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Dotted path of the field, e.g. `http.allow[2]`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A granted host directory cannot be used.
    #[error("cannot grant directory {host}: {message}")]
    Directory {
        /// The host path as given.
        host: String,
        /// What is wrong with it.
        message: String,
    },
}
