//! The wall clock session grants are judged by.
//!
//! A session-scoped approval grants a tool until a moment in wall-clock time
//! (`grant_expires_ms` in the log). Deciding one and checking one later read the
//! same [`Clock`], so an embedder (or a test) that moves time moves both.

/// Milliseconds since the Unix epoch, as the engine sees them.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::engine::now_ms()
    }
}
