//! Blocking outgoing HTTP through `wasi:http`.
//!
//! Requests go through the host, which checks the host name against the plugin's
//! manifest and the operator's grant, checks the resolved address, and may add
//! credentials for that host. A refused request comes back as [`HttpError`] with
//! the host's reason code.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

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

    let entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
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
    let future = outgoing_handler::handle(outgoing, options)
        .map_err(|e| HttpError::Transport(describe(&e)))?;

    // A server may answer before it has read the whole body (and close the stream);
    // then its answer counts, and the write error only matters if there is none.
    let mut write_error = None;
    {
        let stream = body.write().map_err(|_| bad("body"))?;
        for chunk in req.body.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                write_error = Some(format!("writing the body: {e:?}"));
                break;
            }
        }
    }
    if let Err(e) = OutgoingBody::finish(body, None) {
        write_error.get_or_insert_with(|| describe(&e));
    }

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
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|_| HttpError::Transport("response body already taken".into()))?;
    let (body, truncated) = read_body(&incoming, max_body)?;
    drop(incoming);
    Ok(Response {
        status,
        headers,
        body,
        truncated,
    })
}

fn read_body(incoming: &IncomingBody, max: usize) -> Result<(Vec<u8>, bool), HttpError> {
    let stream = incoming
        .stream()
        .map_err(|_| HttpError::Transport("response body stream already taken".into()))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if out.len() + chunk.len() > max {
                    let room = max - out.len();
                    out.extend_from_slice(&chunk[..room]);
                    return Ok((out, true));
                }
                out.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok((out, false)),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Transport(format!(
                    "reading the body: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}
