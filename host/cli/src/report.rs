//! Error reporting in the style of cargo and ripgrep: `error: what`, then `help: how`.

use std::process::ExitCode;
use tack_runtime::{CallError, LoadError};

/// Exit code: the tool returned a tool error.
pub(crate) const EXIT_TOOL_ERROR: u8 = 1;
/// Exit code: bad command line (clap uses it too).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: the arguments were rejected.
pub(crate) const EXIT_BAD_ARGUMENTS: u8 = 3;
/// Exit code: the plugin or grant could not be used.
pub(crate) const EXIT_UNUSABLE: u8 = 4;
/// Exit code: the sandbox stopped the call.
pub(crate) const EXIT_SANDBOX: u8 = 5;

/// A failure to report, with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(EXIT_UNUSABLE, message)
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// A load failure of the component at `path`.
    pub(crate) fn load(path: &std::path::Path, e: LoadError) -> Self {
        let f = Failure::new(
            EXIT_UNUSABLE,
            format!("cannot load {}: {e}", path.display()),
        );
        match e {
            LoadError::Read { .. } => {
                f.help("check the path; build plugins with `scripts/build-guests`")
            }
            _ => f,
        }
    }

    /// A call failure.
    pub(crate) fn call(e: CallError) -> Self {
        let code = match e {
            CallError::UnknownTool { .. }
            | CallError::ArgumentsNotJson(_)
            | CallError::InvalidArguments { .. } => EXIT_BAD_ARGUMENTS,
            CallError::Contract(_) | CallError::Setup(_) => EXIT_UNUSABLE,
            _ => EXIT_SANDBOX,
        };
        let help = match &e {
            CallError::InvalidArguments { .. } => {
                Some("see the schema with `tack plugin inspect <file.wasm|REFERENCE>`")
            }
            CallError::ArgumentsNotJson(_) => {
                Some("pass a JSON object, e.g. --args '{\"key\": \"value\"}'")
            }
            _ => None,
        };
        let f = Failure::new(code, format!("{e} [{}]", e.kind()));
        match help {
            Some(h) => f.help(h),
            None => f,
        }
    }
}

/// Print `f` to stderr and return its exit code.
pub(crate) fn fail(f: Failure) -> ExitCode {
    eprintln!("error: {}", f.message);
    if let Some(help) = &f.help {
        eprintln!("\nhelp: {help}");
    }
    ExitCode::from(f.code)
}

/// Print a warning line to stderr.
pub(crate) fn warn(message: &str) {
    eprintln!("warning: {message}");
}

/// Print a note line to stderr.
pub(crate) fn note(message: &str) {
    eprintln!("note: {message}");
}
