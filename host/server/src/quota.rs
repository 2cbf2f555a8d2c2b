//! Quotas the API enforces per token and per session, from the host's
//! `[limits]`: live event streams open at once, and requests per minute.

use crate::error::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tack_config::HostLimits;

/// The API's quota book-keeping. One per server.
pub(crate) struct Quotas {
    limits: HostLimits,
    streams: Mutex<StreamCounts>,
    requests: Mutex<HashMap<String, Bucket>>,
}

#[derive(Default)]
struct StreamCounts {
    by_session: HashMap<String, usize>,
    by_token: HashMap<String, usize>,
}

/// A token bucket: `tokens` requests may be made now, refilled continuously
/// at the per-minute rate up to a minute's worth.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// An open stream's place in the quotas; dropping it (the client went away,
/// the stream ended) gives the place back.
pub(crate) struct StreamSlot {
    quotas: Arc<Quotas>,
    session: String,
    token: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.quotas.streams.lock().expect("streams lock");
        let counts = &mut *counts;
        for (map, key) in [
            (&mut counts.by_session, &self.session),
            (&mut counts.by_token, &self.token),
        ] {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

impl Quotas {
    pub(crate) fn new(limits: HostLimits) -> Arc<Quotas> {
        Arc::new(Quotas {
            limits,
            streams: Mutex::default(),
            requests: Mutex::default(),
        })
    }

    /// A place for one more stream of `session` by `token`, or 429 naming the
    /// limit that is full.
    pub(crate) fn open_stream(
        self: &Arc<Self>,
        session: &str,
        token: &str,
    ) -> Result<StreamSlot, ApiError> {
        let mut counts = self.streams.lock().expect("streams lock");
        let on_session = counts.by_session.get(session).copied().unwrap_or(0);
        let by_token = counts.by_token.get(token).copied().unwrap_or(0);
        let full = if on_session >= self.limits.streams_per_session {
            Some(format!(
                "session `{session}` has {on_session} streams open, the most this host allows \
                 (`streams-per-session` in [limits]); close one first"
            ))
        } else if by_token >= self.limits.streams_per_token {
            Some(format!(
                "token `{token}` has {by_token} streams open, the most this host allows \
                 (`streams-per-token` in [limits]); close one first"
            ))
        } else {
            None
        };
        if let Some(message) = full {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                message,
            ));
        }
        *counts.by_session.entry(session.to_string()).or_default() += 1;
        *counts.by_token.entry(token.to_string()).or_default() += 1;
        Ok(StreamSlot {
            quotas: self.clone(),
            session: session.to_string(),
            token: token.to_string(),
        })
    }

    /// Count one request by `token` against its per-minute rate, or 429 with
    /// the seconds until the next one is allowed.
    pub(crate) fn request(&self, token: &str) -> Result<(), ApiError> {
        let per_minute = self.limits.requests_per_minute;
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = per_minute as f64;
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.requests.lock().expect("requests lock");
        let bucket = buckets.entry(token.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / per_second).ceil() as u64;
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "token `{token}` made more than {per_minute} requests in a minute \
                 (`requests-per-minute` in [limits]); retry in {wait} s"
            ),
        );
        e.retry_after = Some(wait.max(1));
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(f: impl FnOnce(&mut HostLimits)) -> Arc<Quotas> {
        let mut limits = HostLimits::default();
        f(&mut limits);
        Quotas::new(limits)
    }

    #[test]
    fn streams_are_counted_per_session_and_token_and_given_back() {
        let q = quotas(|l| {
            l.streams_per_session = 2;
            l.streams_per_token = 3;
        });
        let a = q.open_stream("s1", "ann").unwrap();
        let _b = q.open_stream("s1", "bob").unwrap();
        let e = q.open_stream("s1", "cy").err().unwrap();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.message.contains("streams-per-session"), "{}", e.message);
        drop(a);
        let _c = q.open_stream("s1", "cy").unwrap();
        let _d = q.open_stream("s2", "ann").unwrap();
        let _e = q.open_stream("s3", "ann").unwrap();
        let _f = q.open_stream("s4", "ann").unwrap();
        let e = q.open_stream("s5", "ann").err().unwrap();
        assert!(e.message.contains("streams-per-token"), "{}", e.message);
    }

    #[test]
    fn requests_past_the_rate_are_refused_with_a_retry_time() {
        // One a minute: the second at once is refused (a refill takes 60 s).
        let q = quotas(|l| l.requests_per_minute = 1);
        q.request("ann").unwrap();
        let e = q.request("ann").err().unwrap();
        assert_eq!(e.code, "rate_limited");
        assert!(e.retry_after.is_some_and(|s| s >= 1), "{e:?}");
        q.request("bob").unwrap();
        let unlimited = quotas(|l| l.requests_per_minute = 0);
        for _ in 0..10_000 {
            unlimited.request("ann").unwrap();
        }
    }
}
