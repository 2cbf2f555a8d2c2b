//! Clocks a guest sees.
//!
//! Without the `wall-clock` capability the wall clock is frozen at the Unix epoch,
//! and the monotonic clock always counts from the start of the call, so a guest
//! learns neither the date nor the host's uptime.

use std::time::{Duration, Instant};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// A wall clock that always reads 1970-01-01T00:00:00Z.
pub(crate) struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock whose zero is the start of the call.
pub(crate) struct CallMonotonicClock(pub(crate) Instant);

impl HostMonotonicClock for CallMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
