"""Outgoing HTTP through the host (``wasi:http/outgoing-handler``).

The host allows a request only to the hosts the plugin's manifest declares and
the operator's grant allows, injects credentials on the way out where the
operator configured them, and logs each decision; a refused request raises
``HttpError`` with the host's reason. Python's own sockets (``urllib``,
``http.client``) do not exist inside a component: use this module.

```python
from tack_sdk import http

r = http.get("https://api.example.com/items", headers={"accept": "application/json"})
items = r.json()
```
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Bound at build time: a component cannot import modules at call time.
try:
    from componentize_py_types import Err  # type: ignore[import-not-found]
    from wit_world.imports import outgoing_handler, streams  # type: ignore[import-not-found]
    from wit_world.imports import wasi_http_types as h  # type: ignore[import-not-found]
except ImportError:  # plain CPython: not inside a component
    outgoing_handler = None

__all__ = ["HttpError", "Response", "request", "get", "post"]

_CHUNK = 4096  # the most `blocking-write-and-flush` accepts at once


class HttpError(Exception):
    """A request that could not be made or got no response (refused by the host's
    egress policy, unreachable, timed out). ``code`` is the WASI error's name."""

    def __init__(self, message: str, code: str = "internal-error"):
        super().__init__(message)
        self.code = code


@dataclass
class Response:
    """A complete response: status, headers (names lowercased) and body."""

    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, if any."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.body)


def get(url: str, *, headers: dict[str, str] | None = None, timeout_ms: int | None = None) -> Response:
    """``GET url``."""
    return request("GET", url, headers=headers, timeout_ms=timeout_ms)


def post(
    url: str,
    body: bytes | str | None = None,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
    timeout_ms: int | None = None,
) -> Response:
    """``POST url`` with ``body``, or with ``json`` serialized (and its content type)."""
    headers = dict(headers or {})
    if json is not None:
        body = _json.dumps(json)
        headers.setdefault("content-type", "application/json")
    return request("POST", url, body=body, headers=headers, timeout_ms=timeout_ms)


def request(
    method: str,
    url: str,
    *,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout_ms: int | None = None,
) -> Response:
    """Send one request and read the whole response.

    ``timeout_ms`` bounds connecting and the wait for the first byte; the host's
    limit on the call's wall time applies in any case.
    """
    if outgoing_handler is None:
        raise HttpError("tack_sdk.http works inside a component only", "configuration-error")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError(f"`{url}` is not an http(s) URL", "http-request-uri-invalid")
    methods = {
        "GET": h.Method_Get(),
        "HEAD": h.Method_Head(),
        "POST": h.Method_Post(),
        "PUT": h.Method_Put(),
        "DELETE": h.Method_Delete(),
        "OPTIONS": h.Method_Options(),
        "PATCH": h.Method_Patch(),
    }
    m = methods.get(method.upper(), h.Method_Other(method))
    data = body.encode() if isinstance(body, str) else (body or b"")
    fields = h.Fields.from_list([(k.lower(), v.encode()) for k, v in (headers or {}).items()])
    req = h.OutgoingRequest(fields)
    req.set_method(m)
    req.set_scheme(h.Scheme_Https() if parts.scheme == "https" else h.Scheme_Http())
    req.set_authority(parts.netloc)
    req.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    options = None
    if timeout_ms is not None:
        options = h.RequestOptions()
        options.set_connect_timeout(timeout_ms * 1_000_000)
        options.set_first_byte_timeout(timeout_ms * 1_000_000)
    out_body = req.body()
    try:
        future = outgoing_handler.handle(req, options)
    except Err as e:
        raise _http_error(e.value) from None
    if data:
        with out_body.write() as stream:
            for i in range(0, len(data), _CHUNK):
                stream.blocking_write_and_flush(data[i : i + _CHUNK])
    h.OutgoingBody.finish(out_body, None)
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    # option<result<result<incoming-response, error-code>>>: the outer result is
    # an error only when the response was already taken.
    if outcome is None or isinstance(outcome, Err):
        raise HttpError("no response to take", "internal-error")
    if isinstance(outcome.value, Err):
        raise _http_error(outcome.value.value)
    resp = outcome.value.value
    with resp:
        status = resp.status()
        headers_out: dict[str, list[str]] = {}
        with resp.headers() as hs:
            for name, value in hs.entries():
                headers_out.setdefault(name.lower(), []).append(value.decode("latin-1"))
        chunks = []
        incoming = resp.consume()
        with incoming.stream() as s:
            while True:
                try:
                    chunks.append(s.blocking_read(65536))
                except Err as e:
                    if isinstance(e.value, streams.StreamError_Closed):
                        break
                    raise HttpError(f"reading the response body failed: {e.value}") from None
        h.IncomingBody.finish(incoming)
    return Response(status=status, headers=headers_out, body=b"".join(chunks))


def _http_error(code: Any) -> HttpError:
    name = type(code).__name__.removeprefix("ErrorCode_")
    kebab = "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
    detail = getattr(code, "value", None)
    message = {
        "http-request-denied": "the host refused the request: its host is not granted to this plugin",
    }.get(kebab, f"HTTP request failed: {kebab}" + (f" ({detail})" if detail else ""))
    return HttpError(message, kebab)
