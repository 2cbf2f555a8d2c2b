//! Transfer progress, reported to whoever drives a publish or pull (the CLI draws
//! indicatif bars; libraries and tests pass [`NoProgress`]).

use std::sync::Arc;

/// Which way bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// To the registry.
    Upload,
    /// From the registry.
    Download,
}

/// One transfer in progress.
pub trait Bar: Send + Sync {
    /// `n` more bytes moved.
    fn advance(&self, n: u64);
    /// The transfer ended (either way).
    fn finish(&self);
}

/// A sink of progress reports.
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes of `what` starts.
    fn start(&self, direction: Transfer, what: &str, total: u64) -> Arc<dyn Bar>;
}

/// Reports nothing.
pub struct NoProgress;

struct NoBar;

impl Bar for NoBar {
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

impl Progress for NoProgress {
    fn start(&self, _: Transfer, _: &str, _: u64) -> Arc<dyn Bar> {
        Arc::new(NoBar)
    }
}
