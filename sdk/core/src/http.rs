//! Blocking outgoing HTTP through `wasi:http`.
//!
//! Requests go through the host, which checks the host name against the plugin's
//! manifest and the operator's grant, checks the resolved address, and may add
//! credentials for that host. A refused request comes back as [`HttpError`] with
//! the host's reason code.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

/// An HTTP request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for none).
    pub body: Vec<u8>,
    /// Give up if no response has started after this many milliseconds.
    pub timeout_ms: Option<u64>,
}

/// An HTTP response with its body read (up to a cap).
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Body bytes, at most the cap given to [`send`].
    pub body: Vec<u8>,
    /// Whether the body was longer than the cap and was cut.
    pub truncated: bool,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The URL or request could not be built.
    InvalidRequest(String),
    /// The host or the network refused or failed the request.
    Transport(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            HttpError::Transport(m) => write!(f, "request failed: {m}"),
        }
    }
}

fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::HttpRequestDenied => {
            "denied by the host's egress policy (host not declared or not granted)".into()
        }
        ErrorCode::DestinationIpProhibited => {
            "denied by the host's egress policy (the host resolves to a forbidden address)".into()
        }
        other => format!("{other:?}"),
    }
}

/// Send `req` and read at most `max_body` bytes of the response body.
pub fn send(req: &Request, max_body: usize) -> Result<Response, HttpError> {
    let mut open = open(req)?;
    let (body, truncated) = open.read_to_end(max_body)?;
    Ok(Response {
        status: open.status,
        headers: open.headers().to_vec(),
        body,
        truncated,
    })
}

/// A response whose head has arrived and whose body is read as it comes (for
/// server-sent events and other streams).
pub struct OpenResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lowercase) and values, once asked for.
    headers: Option<Vec<(String, String)>>,
    // Field order is drop order: the stream before its body, the body before the response.
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
}

impl OpenResponse {
    /// Header names (lowercase) and values. Read from the host when first asked
    /// for: a caller that never looks at them costs no host calls for them.
    pub fn headers(&mut self) -> &[(String, String)] {
        self.headers.get_or_insert_with(|| {
            self._response
                .headers()
                .entries()
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect()
        })
    }

    /// The value of header `name` (any case), if present.
    pub fn header(&mut self, name: &str) -> Option<&str> {
        self.headers()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next piece of the body as it arrives; `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            match self.stream.blocking_read(64 * 1024) {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Ok(Some(chunk)),
                Err(StreamError::Closed) => return Ok(None),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(HttpError::Transport(format!(
                        "reading the body: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
    }

    /// The rest of the body, at most `max` bytes (and whether it was cut).
    pub fn read_to_end(&mut self, max: usize) -> Result<(Vec<u8>, bool), HttpError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk()? {
            if out.len() + chunk.len() > max {
                let room = max - out.len();
                out.extend_from_slice(&chunk[..room]);
                return Ok((out, true));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((out, false))
    }
}

/// Send `req` and wait for the response head; read the body from the result.
pub fn open(req: &Request) -> Result<OpenResponse, HttpError> {
    let (scheme, rest) = if let Some(r) = req.url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = req.url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(HttpError::InvalidRequest(format!(
            "`{}` must start with http:// or https://",
            req.url
        )));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if authority.is_empty() {
        return Err(HttpError::InvalidRequest(format!(
            "`{}` has no host",
            req.url
        )));
    }
    let method = match req.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };

    let mut entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    // The body is known whole: say how long it is (no chunked encoding, which
    // some servers refuse, and no separate write for its last chunk).
    let has_body =
        !req.body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch);
    if has_body && !entries.iter().any(|(k, _)| k == "content-length") {
        entries.push((
            "content-length".to_string(),
            req.body.len().to_string().into_bytes(),
        ));
    }
    let headers = Fields::from_list(&entries)
        .map_err(|e| HttpError::InvalidRequest(format!("bad header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let bad = |what: &str| HttpError::InvalidRequest(format!("invalid {what} in `{}`", req.url));
    outgoing.set_method(&method).map_err(|_| bad("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|_| bad("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|_| bad("host"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|_| bad("path"))?;
    let body = outgoing.body().map_err(|_| bad("body"))?;

    let options = req.timeout_ms.map(|ms| {
        let o = RequestOptions::new();
        let _ = o.set_connect_timeout(Some(ms * 1_000_000));
        let _ = o.set_first_byte_timeout(Some(ms * 1_000_000));
        o
    });
    // A body the host takes in one write is written before the request goes:
    // the connection then gets the request in one piece. (tack's host buffers
    // that write; a larger body is written after, as the server reads it.)
    let mut write_error = None;
    let stream = body.write().map_err(|_| bad("body"))?;
    let write_first = matches!(stream.check_write(), Ok(room) if room >= req.body.len() as u64);
    let rest = if write_first {
        if !req.body.is_empty()
            && let Err(e) = stream.write(&req.body)
        {
            write_error = Some(format!("writing the body: {e:?}"));
        }
        drop(stream);
        if let Err(e) = OutgoingBody::finish(body, None) {
            write_error.get_or_insert_with(|| describe(&e));
        }
        None
    } else {
        Some((stream, body))
    };
    let future = outgoing_handler::handle(outgoing, options)
        .map_err(|e| HttpError::Transport(describe(&e)))?;

    // A server may answer before it has read the whole body (and close the stream);
    // then its answer counts, and the write error only matters if there is none.
    if let Some((stream, body)) = rest {
        for chunk in req.body.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                write_error = Some(format!("writing the body: {e:?}"));
                break;
            }
        }
        drop(stream);
        if let Err(e) = OutgoingBody::finish(body, None) {
            write_error.get_or_insert_with(|| describe(&e));
        }
    }

    // The response cannot have come yet: wait first, then take it.
    future.subscribe().block();
    let response = loop {
        match future.get() {
            Some(Ok(Ok(r))) => break r,
            Some(Ok(Err(e))) => {
                let mut message = describe(&e);
                if let Some(w) = write_error {
                    message = format!("{message} ({w})");
                }
                return Err(HttpError::Transport(message));
            }
            Some(Err(())) => return Err(HttpError::Transport("response already taken".into())),
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|_| HttpError::Transport("response body already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|_| HttpError::Transport("response body stream already taken".into()))?;
    Ok(OpenResponse {
        status,
        headers: None,
        stream,
        _body: body,
        _response: response,
    })
}

/// Whether a request that got `status` may succeed if tried again later: timeouts
/// (408), rate limits (429) and server errors (5xx, including Anthropic's 529).
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status)
}

/// The `retry-after` header in milliseconds, if it holds a number of seconds
/// (`retry-after-ms`, which some providers send, wins).
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(ms.max(0.0) as u64);
    }
    get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|s| (s.max(0.0) * 1000.0) as u64)
}

/// A failed provider request, classified for the host's retries (model adapters
/// turn it into their world's `model-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status, if the provider answered.
    pub status: Option<u16>,
    /// What went wrong (the provider's own message where it gave one).
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
    /// The provider's `retry-after`, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    /// A failure that is not an HTTP status.
    pub fn new(status: Option<u16>, message: impl Into<String>, retryable: bool) -> Self {
        Failure {
            status,
            message: message.into(),
            retryable,
            retry_after_ms: None,
        }
    }

    /// A non-2xx answer: the provider's `error.message` if the body is JSON
    /// (OpenAI and Anthropic both use that shape), else the body's start.
    pub fn from_status(status: u16, headers: &[(String, String)], body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let detail =
            json_error_message(&text).unwrap_or_else(|| text.chars().take(512).collect::<String>());
        Failure {
            status: Some(status),
            message: format!("the provider answered {status}: {detail}"),
            retryable: is_retryable_status(status),
            retry_after_ms: retry_after_ms(headers),
        }
    }

    /// A request that got no answer: retryable unless the request itself was bad
    /// or the host's egress policy refused it.
    pub fn from_transport(e: &HttpError) -> Self {
        let retryable =
            !matches!(e, HttpError::InvalidRequest(_)) && !e.to_string().contains("egress policy");
        Failure::new(None, e.to_string(), retryable)
    }
}

/// `"message": "…"` inside an `"error"` object, found without a JSON library
/// (this crate stays dependency-free); `None` if absent.
fn json_error_message(text: &str) -> Option<String> {
    let error = text.find("\"error\"")?;
    let rest = &text[error..];
    let key = rest.find("\"message\"")?;
    let rest = rest[key + 9..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

impl Request {
    /// A JSON `POST` to `url` with `extra` headers; `accept` asks for server-sent
    /// events when `stream`.
    pub fn post_json(url: String, extra: &[(&str, &str)], body: Vec<u8>, stream: bool) -> Request {
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            (
                "accept".to_string(),
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }
                .to_string(),
            ),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Request {
            method: "POST".into(),
            url,
            headers,
            body,
            timeout_ms: Some(120_000),
        }
    }

    /// `METHOD URL headers: k=v, …`, for a debug log of what the guest sends (the
    /// host adds credentials later, so they never appear here).
    pub fn describe(&self) -> String {
        format!(
            "{} {} headers: {}",
            self.method,
            self.url,
            self.headers
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Send `req` and require `200`: a transport failure or any other status comes
/// back as a [`Failure`] (with the provider's message and retry hints).
pub fn open_ok(req: &Request) -> Result<OpenResponse, Failure> {
    let mut response = open(req).map_err(|e| Failure::from_transport(&e))?;
    if response.status != 200 {
        let (body, _) = response.read_to_end(64 * 1024).unwrap_or_default();
        return Err(Failure::from_status(
            response.status,
            response.headers(),
            &body,
        ));
    }
    Ok(response)
}

/// Read a `200` body whole, at most `max` bytes (a larger one is a [`Failure`]).
pub fn read_all(response: &mut OpenResponse, max: usize) -> Result<Vec<u8>, Failure> {
    let (body, truncated) = response
        .read_to_end(max)
        .map_err(|e| Failure::from_transport(&e))?;
    if truncated {
        return Err(Failure::new(
            None,
            format!("the response is larger than {} MiB", max >> 20),
            false,
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_take_the_providers_message_and_retry_hints() {
        let headers = vec![("Retry-After".to_string(), "2".to_string())];
        let body = br#"{"error": {"type": "rate_limit_error", "message": "slow \"down\""}}"#;
        let f = Failure::from_status(429, &headers, body);
        assert_eq!(f.message, "the provider answered 429: slow \"down\"");
        assert!(f.retryable);
        assert_eq!(f.retry_after_ms, Some(2000));
        let f = Failure::from_status(400, &[], b"plain text");
        assert_eq!(f.message, "the provider answered 400: plain text");
        assert!(!f.retryable);
        assert!(Failure::from_status(529, &[], b"").retryable);
        let denied = HttpError::Transport("denied by the host's egress policy (x)".into());
        assert!(!Failure::from_transport(&denied).retryable);
        assert!(
            Failure::from_transport(&HttpError::Transport("ConnectionRefused".into())).retryable
        );
    }
}
