//! A real HTTP/1.1 server on loopback.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A real HTTP/1.1 server on 127.0.0.1 answering every request with
/// `hello from <METHOD> <path>` (plus ` (<n> bytes)` when a body came), counting the
/// requests it served and the connections it accepted.
pub struct LoopbackServer {
    /// Address it listens on.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    hang_up: Arc<tokio::sync::Notify>,
}

impl LoopbackServer {
    /// Start the server on an ephemeral port (inside a tokio runtime).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let hang_up = Arc::new(tokio::sync::Notify::new());
        let counter = hits.clone();
        let accepted = connections.clone();
        let hang_up_all = hang_up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let hang_up = hang_up_all.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let (parts, body) = req.into_parts();
                            let received = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().len())
                                .unwrap_or(0);
                            let mut body =
                                format!("hello from {} {}", parts.method, parts.uri.path());
                            if received > 0 {
                                body.push_str(&format!(" ({received} bytes)"));
                            }
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("x-served-by", "tack-tests")
                                    .body(Full::new(Bytes::from(body)))
                                    .expect("response builds"),
                            )
                        }
                    });
                    let serve =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = serve => {}
                        _ = hang_up.notified() => {}
                    }
                });
            }
        });
        LoopbackServer {
            addr,
            hits,
            connections,
            hang_up,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Close every open connection (as a server's idle timeout would).
    pub fn hang_up(&self) {
        self.hang_up.notify_waiters();
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
