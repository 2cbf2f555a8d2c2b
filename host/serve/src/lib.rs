//! Serving an axum [`Router`] on a TCP listener, guarded against clients that
//! open connections and never finish a request.
//!
//! - At most [`Limits::connections`] connections are served at once. The
//!   accept loop takes a permit before it accepts, so connections beyond the
//!   cap wait in the kernel's listen backlog instead of costing a task each.
//! - A client has [`Limits::header_timeout`] to send a request's headers, on
//!   a new connection and between requests on a keep-alive one; then the
//!   connection is closed. A response being streamed (SSE, a blob) is not
//!   affected: the timeout runs only while a request head is awaited.
//!
//! So a flood of half-open connections holds at most `connections` permits
//! for at most `header_timeout` each, and the next client is served after.

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

/// How many connections, and how long for a request's headers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub connections: usize,
    /// Time a client has to send a request's headers (and, on a keep-alive
    /// connection, to start its next request).
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 1024,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Serve `app` on `listener` within `limits` until the task is dropped.
/// Responses go out without Nagle's delay (SSE events are written one by one).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.connections.max(1)));
    loop {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather
                // than spin; the listener itself stays usable.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                app.clone().call(req.map(axum::body::Body::new))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn server(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(serve(listener, app, limits));
        addr
    }

    async fn get_root(addr: std::net::SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    /// A client that sends half a request head is disconnected after the
    /// header timeout (the server closes: the read sees the end).
    #[tokio::test]
    async fn a_half_sent_head_is_closed_after_the_timeout() {
        let addr = server(Limits {
            connections: 4,
            header_timeout: Duration::from_millis(200),
        })
        .await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert!(get_root(addr).await.ends_with("ok"));
    }

    /// With every permit held by connections that send nothing, the next
    /// client waits in the backlog and is served once one of them times out.
    #[tokio::test]
    async fn connections_past_the_cap_wait_and_are_served() {
        let addr = server(Limits {
            connections: 2,
            header_timeout: Duration::from_millis(300),
        })
        .await;
        let _idle: Vec<TcpStream> = vec![
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        assert!(get_root(addr).await.ends_with("ok"));
    }
}
