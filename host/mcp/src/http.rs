//! A toolset over MCP's streamable HTTP transport, for `tack serve` to mount at
//! `/mcp/{toolset}` behind its API tokens.
//!
//! Both protocol eras are served: a 2025-11-25 client initializes and gets an
//! `Mcp-Session-Id` (sessions live in this process); a 2026-07-28 request is
//! served statelessly. `Host` must name this server (DNS rebinding) and a
//! browser's `Origin` must be the endpoint's own or one the operator allowed.

use crate::server::ToolServer;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::convert::Infallible;
use std::sync::Arc;

/// Hosts every server answers to: loopback by name and address.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// One toolset's MCP endpoint.
#[derive(Clone)]
pub struct HttpToolset {
    service: StreamableHttpService<ToolServer, LocalSessionManager>,
}

impl HttpToolset {
    /// `server` answering requests whose `Host` is one of `allowed_hosts`
    /// (names or `name:port`); their `Origin` must have passed
    /// [`checked_origin`].
    pub fn new(server: ToolServer, allowed_hosts: Vec<String>) -> Self {
        // `Origin` is checked by the caller ([`checked_origin`]), which knows
        // the request's own origin; rmcp checks `Host` again.
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(allowed_hosts)
            .disable_allowed_origins();
        let service = StreamableHttpService::new(
            move || Ok(server.for_session()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        HttpToolset { service }
    }

    /// Serve one HTTP request (POST, GET for a session's stream, DELETE to end
    /// a session).
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
    ) -> http::Response<BoxBody<Bytes, Infallible>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send + 'static,
        B::Error: std::fmt::Display,
    {
        self.service.handle(request).await
    }
}

/// `host` (a request's `Host` header) when it names one of `allowed` (names
/// or `name:port`), so it may be used to build this server's own URLs; else
/// why not.
pub fn checked_host<'a>(allowed: &[String], host: Option<&'a str>) -> Result<&'a str, String> {
    let host = host.ok_or("the request has no Host header")?;
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    if allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
    {
        Ok(host)
    } else {
        Err(format!(
            "Host `{host}` is not one this server answers to (a DNS rebinding attempt?); \
             the operator lists the names clients use in [mcp] allowed-hosts"
        ))
    }
}

/// Whether a request whose `Host` is `host` may come from a browser page of
/// `origin` (its `Origin` header): none (not a browser), the endpoint's own
/// origin (`http[s]://HOST`), or one of `allowed` (`scheme://host[:port]`).
pub fn checked_origin(allowed: &[String], host: &str, origin: Option<&str>) -> Result<(), String> {
    let Some(origin) = origin else {
        return Ok(());
    };
    let own = ["http://", "https://"].iter().any(|scheme| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
    });
    if own || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(format!(
            "a browser page of origin `{origin}` may not call this server; the operator \
             lists the origins allowed in [mcp] allowed-origins"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{checked_host, checked_origin};

    #[test]
    fn origins_are_the_endpoints_own_or_listed() {
        let allowed = vec!["https://console.example".to_string()];
        let host = "127.0.0.1:8080";
        assert!(
            checked_origin(&allowed, host, None).is_ok(),
            "not a browser"
        );
        assert!(checked_origin(&allowed, host, Some("http://127.0.0.1:8080")).is_ok());
        assert!(checked_origin(&allowed, host, Some("https://console.example")).is_ok());
        assert!(checked_origin(&allowed, host, Some("http://127.0.0.1:3000")).is_err());
        assert!(checked_origin(&allowed, host, Some("http://evil.example")).is_err());
        assert!(checked_origin(&allowed, host, Some("null")).is_err());
        assert!(
            checked_origin(&allowed, host, Some("http://127.0.0.1:8080.evil.example")).is_err()
        );
    }

    #[test]
    fn hosts_match_by_name_or_authority_and_nothing_else() {
        let allowed = vec![
            "localhost".to_string(),
            "::1".into(),
            "tack.example:8443".into(),
        ];
        assert_eq!(
            checked_host(&allowed, Some("localhost:8080")),
            Ok("localhost:8080")
        );
        assert_eq!(checked_host(&allowed, Some("[::1]:80")), Ok("[::1]:80"));
        assert!(checked_host(&allowed, Some("tack.example:8443")).is_ok());
        assert!(checked_host(&allowed, Some("tack.example:9000")).is_err());
        assert!(checked_host(&allowed, Some("localhost.evil.example")).is_err());
        assert!(checked_host(&allowed, Some("evil.example")).is_err());
        assert!(checked_host(&allowed, None).is_err());
    }
}
