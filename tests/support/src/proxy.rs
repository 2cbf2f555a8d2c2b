//! A loopback HTTP/1.1 proxy that adds `Authorization: Bearer TOKEN` to every
//! request, for clients that cannot send headers of their own (the MCP
//! conformance runner). Everything else, `Host` and `Origin` included, passes
//! through unchanged, and responses stream back as they come (server-sent
//! events too).

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// The proxy; it stops with the runtime it was started in.
pub struct BearerProxy {
    /// Address it listens on.
    pub addr: SocketAddr,
}

impl BearerProxy {
    /// Forward to `upstream` with `token` (inside a tokio runtime).
    pub async fn start(upstream: SocketAddr, token: &str) -> BearerProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let bearer = bearer.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |mut req: Request<Incoming>| {
                        req.headers_mut().insert(AUTHORIZATION, bearer.clone());
                        forward(upstream, req)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        BearerProxy { addr }
    }
}

/// One request to `upstream`, on a connection of its own.
async fn forward(
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender.send_request(req).await?)
}
