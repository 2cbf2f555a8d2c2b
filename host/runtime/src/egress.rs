//! Outgoing HTTP from guests: every request is checked before a byte leaves.
//!
//! Order of checks for a `wasi:http` request:
//! 1. the host name must match the manifest's declared hosts **and** the grant's
//!    allow-list ([`EgressRules::check_host`]);
//! 2. the name is resolved with the runtime's [`Resolve`] (injectable, so tests can
//!    map a name to 127.0.0.1 or 169.254.169.254);
//! 3. every resolved address must be public unless its range is granted
//!    explicitly ([`EgressRules::check_ip`]);
//! 4. the connection goes to a checked address, never to the name again, so a
//!    second DNS answer cannot swap in another address (DNS rebinding).
//!
//! Each decision is recorded as an [`EgressEvent`] in the call's outcome.

use crate::pool::{ConnectionPool, Destination, ReturnOnEnd};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use serde::Serialize;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tack_capability::EgressRules;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Resolves host names to addresses for outgoing guest HTTP.
pub trait Resolve: Send + Sync + 'static {
    /// All addresses of `host`.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The operating system's resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, port)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A resolver with fixed answers, falling back to another resolver for other names.
///
/// For tests and for operators who pin names (like `/etc/hosts`).
#[derive(Clone, Default)]
pub struct StaticResolver {
    entries: Vec<(String, Vec<IpAddr>)>,
    fallback: Option<Arc<dyn Resolve>>,
}

impl StaticResolver {
    /// A resolver that knows no names (every other lookup fails).
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer `host` with `addrs`.
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.entries
            .push((host.to_ascii_lowercase(), addrs.to_vec()));
        self
    }

    /// Ask `fallback` for names not listed.
    pub fn or_else(mut self, fallback: Arc<dyn Resolve>) -> Self {
        self.fallback = Some(fallback);
        self
    }
}

impl Resolve for StaticResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            let key = host.to_ascii_lowercase();
            if let Some((_, addrs)) = self.entries.iter().find(|(h, _)| *h == key) {
                return Ok(addrs.clone());
            }
            match &self.fallback {
                Some(f) => f.resolve(host, port).await,
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no address known for `{host}`"),
                )),
            }
        })
    }
}

/// One outgoing request a guest attempted, and what the host decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressEvent {
    /// Method.
    pub method: String,
    /// Host as the guest wrote it.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The address connected to (when allowed) or refused (when that was the reason).
    pub ip: Option<IpAddr>,
    /// Whether the request was sent.
    pub allowed: bool,
    /// Why it was refused.
    pub denied: Option<String>,
}

/// A credential the host adds to a guest's outgoing requests to one host.
///
/// The guest never sees the value: the header is set (replacing any the guest
/// wrote) after every egress check has passed, only for requests to `host` (and
/// `port`, when given). `Debug` shows the header name, never the value.
#[derive(Clone)]
pub struct Credential {
    host: String,
    port: Option<u16>,
    header: http::HeaderName,
    value: http::HeaderValue,
}

impl Credential {
    /// A credential for requests to `host` (any port if `port` is `None`), sent as
    /// header `header` with `value` (e.g. `authorization` and `Bearer …`).
    pub fn new(host: &str, port: Option<u16>, header: &str, value: &str) -> Result<Self, String> {
        let header = http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("`{header}` is not a valid HTTP header name"))?;
        let mut value = http::HeaderValue::from_str(value).map_err(|_| {
            format!("the credential for `{header}` holds characters not allowed in an HTTP header (a newline?)")
        })?;
        value.set_sensitive(true);
        Ok(Credential {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port,
            header,
            value,
        })
    }

    /// The host the credential is bound to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The value, when it is text (for [`Scrubber`](crate::Scrubber)).
    pub(crate) fn value_text(&self) -> Option<&str> {
        self.value.to_str().ok()
    }

    fn applies_to(&self, host: &str, port: u16) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| p == port)
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("header", &self.header)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// What one binding (a sandbox, a bound model adapter) may send where: the
/// egress rules, the credentials the host adds, and the binding's idle
/// keep-alive connections. Cheap to clone; clones share the pool.
#[derive(Clone, Default)]
pub(crate) struct EgressBinding {
    pub(crate) rules: Arc<EgressRules>,
    pub(crate) credentials: Arc<[Credential]>,
    pub(crate) pool: Arc<ConnectionPool>,
}

impl EgressBinding {
    /// A binding to `rules` with no credentials and an empty pool.
    pub(crate) fn new(rules: EgressRules) -> Self {
        EgressBinding {
            rules: Arc::new(rules),
            credentials: Arc::from(Vec::new()),
            pool: Arc::default(),
        }
    }

    /// The same rules with `credentials`, and a pool of its own (connections
    /// are never shared between different credentials).
    pub(crate) fn with_credentials(&self, credentials: Vec<Credential>) -> Self {
        EgressBinding {
            rules: self.rules.clone(),
            credentials: Arc::from(credentials),
            pool: Arc::default(),
        }
    }
}

/// Per-call `wasi:http` hooks: the egress check and the sender.
pub(crate) struct EgressHooks {
    pub(crate) binding: EgressBinding,
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) events: Arc<Mutex<Vec<EgressEvent>>>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let binding = self.binding.clone();
        let resolver = self.resolver.clone();
        let events = self.events.clone();
        Box::new(async move { send_checked(request, options, &binding, &*resolver, &events).await })
    }
}

async fn send_checked(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    binding: &EgressBinding,
    resolver: &dyn Resolve,
    events: &Mutex<Vec<EgressEvent>>,
) -> SendResult {
    let rules = &*binding.rules;
    let uri = request.uri().clone();
    let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = uri
        .host()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .to_string();
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    let mut event = EgressEvent {
        method: request.method().to_string(),
        host: bare_host.clone(),
        port,
        ip: None,
        allowed: false,
        denied: None,
    };
    let record = |e: EgressEvent| {
        if let Some(reason) = &e.denied {
            tracing::warn!(host = %e.host, port = e.port, "{reason}");
        }
        events.lock().expect("egress events lock").push(e);
    };

    if let Err(denied) = rules.check_host(&bare_host, port) {
        event.denied = Some(denied.to_string());
        record(event);
        return Err(HttpError::HttpRequestDenied);
    }

    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(Duration::from_secs(30));
    let addrs = match bare_host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            match tokio::time::timeout(connect_timeout, resolver.resolve(&bare_host, port)).await {
                Err(_) => {
                    event.denied = Some(format!("DNS lookup of `{bare_host}` timed out"));
                    record(event);
                    return Err(HttpError::DnsTimeout);
                }
                Ok(Err(e)) => {
                    event.denied = Some(format!("DNS lookup of `{bare_host}` failed: {e}"));
                    record(event);
                    return Err(HttpError::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    });
                }
                Ok(Ok(addrs)) if addrs.is_empty() => {
                    event.denied = Some(format!("`{bare_host}` has no addresses"));
                    record(event);
                    return Err(HttpError::DestinationNotFound);
                }
                Ok(Ok(addrs)) => addrs,
            }
        }
    };
    // Every address must pass: a name that mixes public and forbidden answers is refused.
    for ip in &addrs {
        if let Err(denied) = rules.check_ip(&bare_host, *ip) {
            event.ip = Some(*ip);
            event.denied = Some(denied.to_string());
            record(event);
            return Err(HttpError::DestinationIpProhibited);
        }
    }

    // Every check has passed: credentials are added only now, for the host they
    // are bound to.
    for c in binding
        .credentials
        .iter()
        .filter(|c| c.applies_to(&bare_host, port))
    {
        request
            .headers_mut()
            .insert(c.header.clone(), c.value.clone());
    }
    // Send only the path on the wire; the Host header carries the authority.
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    // An idle connection to a checked address, when the binding has one.
    let server_name = bare_host.to_ascii_lowercase();
    for ip in &addrs {
        let to = Destination {
            tls: use_tls,
            host: server_name.clone(),
            ip: *ip,
            port,
        };
        while let Some(mut sender) = binding.pool.take(&to) {
            if !matches!(
                tokio::time::timeout(connect_timeout, sender.ready()).await,
                Ok(Ok(()))
            ) {
                continue;
            }
            let sent = match sender.try_send_request(request).await {
                Ok(response) => Ok(response),
                Err(mut e) => match e.take_message() {
                    // The connection closed before taking the request: try another.
                    Some(r) => {
                        request = r;
                        continue;
                    }
                    None => Err(e.into_error()),
                },
            };
            event.ip = Some(*ip);
            event.allowed = true;
            record(event);
            return Ok(pooled(sent?, &binding.pool, to, sender));
        }
    }

    let mut last_err = None;
    let mut stream = None;
    for ip in &addrs {
        match tokio::time::timeout(
            connect_timeout,
            TcpStream::connect(SocketAddr::new(*ip, port)),
        )
        .await
        {
            Ok(Ok(s)) => {
                event.ip = Some(*ip);
                stream = Some((*ip, s));
                break;
            }
            Ok(Err(e)) => last_err = Some(HttpError::Connect(e)),
            Err(_) => last_err = Some(HttpError::ConnectionTimeout),
        }
    }
    let Some((ip, tcp)) = stream else {
        event.denied = Some(format!("could not connect to `{bare_host}:{port}`"));
        record(event);
        return Err(last_err.unwrap_or(HttpError::ConnectionRefused));
    };
    // Requests are written in pieces (head, body): without this, Nagle's
    // algorithm holds the body for the peer's delayed ACK (~40 ms).
    let _ = tcp.set_nodelay(true);
    event.allowed = true;
    record(event);

    let to = Destination {
        tls: use_tls,
        host: server_name,
        ip,
        port,
    };
    let response = if use_tls {
        let name = rustls::pki_types::ServerName::try_from(bare_host.clone()).map_err(|e| {
            HttpError::DnsError {
                rcode: Some(format!("`{bare_host}` is not a valid TLS server name: {e}")),
                info_code: None,
            }
        })?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(HttpError::Tls)?;
        exchange(
            TokioIo::new(tls),
            request,
            connect_timeout,
            &binding.pool,
            to,
        )
        .await?
    } else {
        exchange(
            TokioIo::new(tcp),
            request,
            connect_timeout,
            &binding.pool,
            to,
        )
        .await?
    };
    Ok(response)
}

/// Send `request` on a new connection over `io`; the connection goes to `pool`
/// once the response has been read.
async fn exchange<S>(
    io: S,
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    pool: &Arc<ConnectionPool>,
    to: Destination,
) -> SendResult
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        tokio::time::timeout(connect_timeout, hyper::client::conn::http1::handshake(io))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
    // The connection lives as long as its sender (here, then in the pool).
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("guest HTTP connection closed: {e}");
        }
    });
    let response = sender.send_request(request).await?;
    Ok(pooled(response, pool, to, sender))
}

/// The response for the guest, its body giving `sender` back to `pool` at its end.
fn pooled(
    response: http::Response<hyper::body::Incoming>,
    pool: &Arc<ConnectionPool>,
    to: Destination,
    sender: SendRequest<WasiBody>,
) -> (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
) {
    let pool = pool.clone();
    let response = response.map(|body| {
        ReturnOnEnd {
            inner: body.map_err(HttpError::from).boxed_unsync(),
            checkin: Some((pool, to, sender)),
            held: None,
        }
        .boxed_unsync()
    });
    // Connection errors surface on the body; there is nothing more to wait for.
    let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
    (response, done)
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}
