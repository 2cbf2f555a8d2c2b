//! Log records that go to the host's trace for the current call.
//!
//! The host caps how much one call may log; past the cap records are dropped and
//! counted. Never log secrets: the host redacts what it knows, not what it does not.

use crate::bindings::tack::plugin::logging::{self, Level};

/// Log at debug level.
pub fn debug(message: &str) {
    logging::log(Level::Debug, message);
}

/// Log at info level.
pub fn info(message: &str) {
    logging::log(Level::Info, message);
}

/// Log at warn level.
pub fn warn(message: &str) {
    logging::log(Level::Warn, message);
}

/// Log at error level.
pub fn error(message: &str) {
    logging::log(Level::Error, message);
}
