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

/// Most bytes one coalesced data frame holds.
const COALESCE_UP_TO: usize = 64 * 1024;

/// A response body that gives its connection back to the pool once read to the
/// end.
///
/// Data frames that are already there when the guest reads are handed over as one
/// frame (up to [`COALESCE_UP_TO`]): a server that writes each event of a stream
/// as its own chunk (an SSE model answer) then costs the guest one read, not one
/// read per event, whenever the events arrived together.
pub(crate) struct ReturnOnEnd {
    pub(crate) inner: WasiBody,
    pub(crate) checkin: Option<(
        std::sync::Arc<ConnectionPool>,
        Destination,
        SendRequest<WasiBody>,
    )>,
    /// What the inner body gave after the data a coalesced frame took: the next
    /// frame, an error or the end (`Some(None)`), handed out on the next poll.
    pub(crate) held: Option<Option<Result<Frame<Bytes>, HttpError>>>,
}

impl ReturnOnEnd {
    /// The inner body's next frame, or the one held back from the last poll.
    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match self.held.take() {
            Some(held) => Poll::Ready(held),
            None => Pin::new(&mut self.inner).poll_frame(cx),
        }
    }

    /// `first`, with the data frames ready right after it appended.
    fn coalesce(&mut self, first: Bytes, cx: &mut Context<'_>) -> Bytes {
        let mut joined: Option<bytes::BytesMut> = None;
        while joined.as_ref().map_or(first.len(), |j| j.len()) < COALESCE_UP_TO {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(more) => joined
                        .get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                        .extend_from_slice(&more),
                    Err(trailers) => {
                        self.held = Some(Some(Ok(trailers)));
                        break;
                    }
                },
                Poll::Ready(other) => {
                    self.held = Some(other);
                    break;
                }
                Poll::Pending => break,
            }
        }
        joined.map_or(first, bytes::BytesMut::freeze)
    }
}

impl Body for ReturnOnEnd {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let polled = match self.poll_inner(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(self.coalesce(data, cx))))),
                Err(trailers) => Poll::Ready(Some(Ok(trailers))),
            },
            other => other,
        };
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
        match &self.held {
            Some(None) => true,
            Some(Some(_)) => false,
            None => self.inner.is_end_stream(),
        }
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
        match &self.held {
            // The body ended while its last data was coalesced: nothing to drain.
            Some(None) => {
                let (pool, to, sender) = checkin;
                pool.put(to, sender);
                return;
            }
            // It failed: the connection is in an unknown state.
            Some(Some(Err(_))) => return,
            _ => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: Vec<Result<Frame<Bytes>, HttpError>>) -> ReturnOnEnd {
        let stream = futures_util::stream::iter(parts);
        ReturnOnEnd {
            inner: http_body_util::StreamBody::new(stream).boxed_unsync(),
            checkin: None,
            held: None,
        }
    }

    #[tokio::test]
    async fn ready_data_frames_come_as_one_and_the_end_still_comes() {
        let data = |s: &'static str| Ok(Frame::data(Bytes::from_static(s.as_bytes())));
        let mut body = frames(vec![
            data("data: a\n\n"),
            data("data: b\n\n"),
            data("data: [DONE]\n\n"),
        ]);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"data: a\n\ndata: b\n\ndata: [DONE]\n\n");
        assert!(body.is_end_stream(), "the end was seen while coalescing");
        assert!(body.frame().await.is_none());

        // Trailers and errors after data are not lost: they come next.
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-done", "1".parse().unwrap());
        let mut body = frames(vec![data("x"), data("y"), Ok(Frame::trailers(trailers))]);
        assert_eq!(
            &body.frame().await.unwrap().unwrap().into_data().unwrap()[..],
            b"xy"
        );
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        assert!(body.frame().await.is_none());
        let mut body = frames(vec![data("x"), Err(HttpError::ConnectionTerminated)]);
        assert_eq!(
            &body.frame().await.unwrap().unwrap().into_data().unwrap()[..],
            b"x"
        );
        assert!(body.frame().await.unwrap().is_err());
    }
}
