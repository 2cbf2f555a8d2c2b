//! Event and session ids (ULIDs) and timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// A new ULID, strictly greater than every one this process made before (so ids
/// made in the same millisecond still sort in creation order).
pub(crate) fn next_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let g = g.get_or_insert_with(ulid::Generator::new);
    match g.generate() {
        Ok(id) => id.to_string(),
        // The random part overflowed within one millisecond: wait for the next one.
        Err(_) => {
            std::thread::sleep(std::time::Duration::from_millis(1));
            g.generate()
                .map(|u| u.to_string())
                .unwrap_or_else(|_| ulid::Ulid::generate().to_string())
        }
    }
}

/// Now, in ms since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
