//! The policy the runtime applies: the intersection of manifest and grant.

use crate::egress::EgressRules;
use crate::{ByteSize, Mode};
use std::path::PathBuf;
use std::time::Duration;

/// What one plugin may do, after intersecting its manifest with the grant.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// Directories mounted into the sandbox.
    pub dirs: Vec<DirMount>,
    /// Environment variables visible to the guest.
    pub env: Vec<(String, String)>,
    /// Outgoing HTTP rules.
    pub egress: EgressRules,
    /// Whether the guest reads the real wall clock.
    pub wall_clock: bool,
    /// Resource limits per call.
    pub limits: Limits,
    /// Half-agreements that were dropped or narrowed, for the operator.
    pub notes: Vec<Note>,
}

impl Capabilities {
    /// A policy that grants nothing, with default limits.
    pub fn deny_all() -> Self {
        Capabilities {
            dirs: Vec::new(),
            env: Vec::new(),
            egress: EgressRules::default(),
            wall_clock: false,
            limits: Limits::default(),
            notes: Vec::new(),
        }
    }
}

/// A host directory mounted at a guest path.
#[derive(Debug, Clone, PartialEq)]
pub struct DirMount {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path inside the sandbox.
    pub guest: String,
    /// Access mode.
    pub mode: Mode,
}

/// Per-call resource limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Linear memory per instance (default 64 MiB).
    pub memory: ByteSize,
    /// Wall time per call (default 10 s).
    pub timeout: Duration,
    /// Fuel per call, if metering is on (default off).
    pub fuel: Option<u64>,
    /// Size of a call's result (default 1 MiB).
    pub max_output: ByteSize,
    /// Concurrent instances of the plugin (default 16).
    pub max_concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: ByteSize::mib(64),
            timeout: Duration::from_secs(10),
            fuel: None,
            max_output: ByteSize::mib(1),
            max_concurrency: 16,
        }
    }
}

/// Something the operator should know about how a grant was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Granted, but the plugin does not declare it: not applied.
    GrantUnused(String),
    /// Declared, but not granted: the plugin goes without.
    DeclaredNotGranted(String),
    /// Applied in a narrower form than granted or declared.
    Narrowed(String),
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::GrantUnused(s) | Note::DeclaredNotGranted(s) | Note::Narrowed(s) => {
                f.write_str(s)
            }
        }
    }
}
