//! Keep-alive HTTP/1.1 connections for guests' outgoing requests.
//!
//! A new TCP connection per request (connect, then shutdown and the FIN
//! exchange) cost more than the rest of a model call on loopback. Each binding
//! (a [`Sandbox`](crate::Sandbox) and its siblings, a
//! [`BoundAdapter`](crate::BoundAdapter)) keeps the connections its calls
//! finished with, by destination: scheme, the host name the guest asked for
//! (the TLS server name), the checked address and the port.
//!
//! Invariants:
//! - every request still passes every egress check first (host allow-list,
//!   resolution, address check); the pool only answers "is there an open
//!   connection to this checked address";
//! - a connection goes back to the pool only after its response body was read to
//!   the end: by the guest, or, when the guest stops early (an SSE reader stops
//!   at its last event), by the host draining what is left, at most
//!   [`DRAIN_BYTES`] within [`DRAIN_FOR`]; otherwise the connection is closed;
//! - connections are never shared between bindings, so a connection opened with
//!   one binding's credentials never carries another binding's requests;
//! - a connection idle longer than [`IDLE_FOR`] is closed instead of reused, and
//!   a request the closed connection did not take is sent on a new connection.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// How long a connection may sit idle and still be reused.
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(30);
/// Most bytes read from a body the guest dropped early, to reuse its connection.
pub(crate) const DRAIN_BYTES: usize = 64 * 1024;
/// Longest wait for the rest of a body the guest dropped early.
pub(crate) const DRAIN_FOR: Duration = Duration::from_secs(1);
/// Most idle connections kept per destination.
const MAX_IDLE_PER_DESTINATION: usize = 64;

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) tls: bool,
    /// The host name the guest asked for (lowercase): the TLS server name.
    pub(crate) host: String,
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
}

struct Idle {
    to: Destination,
    sender: SendRequest<WasiBody>,
    since: Instant,
}

/// Idle connections of one binding.
#[derive(Default)]
pub(crate) struct ConnectionPool {
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl ConnectionPool {
    /// An idle, open connection to `to`, if there is one (newest first).
    pub(crate) fn take(&self, to: &Destination) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.idle.lock().expect("pool lock");
        let now = Instant::now();
        idle.retain(|i| !i.sender.is_closed() && now.duration_since(i.since) < IDLE_FOR);
        let i = idle.iter().rposition(|i| i.to == *to)?;
        Some(idle.swap_remove(i).sender)
    }

    /// Give back a connection whose last response was read to the end.
    pub(crate) fn put(&self, to: Destination, sender: SendRequest<WasiBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.iter().filter(|i| i.to == to).count() >= MAX_IDLE_PER_DESTINATION {
            return;
        }
        idle.push(Idle {
            to,
            sender,
            since: Instant::now(),
        });
    }

    /// Open idle connections held now.
    pub(crate) fn idle_count(&self) -> usize {
        let mut idle = self.idle.lock().expect("pool lock");
        idle.retain(|i| !i.sender.is_closed());
        idle.len()
    }
}

/// A response body that gives its connection back to the pool once read to the end.
pub(crate) struct ReturnOnEnd {
    pub(crate) inner: WasiBody,
    pub(crate) checkin: Option<(
        std::sync::Arc<ConnectionPool>,
        Destination,
        SendRequest<WasiBody>,
    )>,
}

impl Body for ReturnOnEnd {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some((pool, to, sender)) = self.checkin.take() {
                    pool.put(to, sender);
                }
            }
            // A failed body leaves the connection in an unknown state: close it.
            Poll::Ready(Some(Err(_))) => self.checkin = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ReturnOnEnd {
    fn drop(&mut self) {
        let Some(checkin) = self.checkin.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut body = std::mem::replace(
            &mut self.inner,
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        runtime.spawn(async move {
            let drained = tokio::time::timeout(DRAIN_FOR, async {
                let mut read = 0;
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { return false };
                    read += frame.data_ref().map_or(0, Bytes::len);
                    if read > DRAIN_BYTES {
                        return false;
                    }
                }
                true
            })
            .await;
            if drained == Ok(true) {
                let (pool, to, sender) = checkin;
                pool.put(to, sender);
            }
        });
    }
}
