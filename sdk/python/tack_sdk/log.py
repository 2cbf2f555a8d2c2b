"""Logging to the host's trace (``tack:plugin/logging``).

The host keeps each record with the call and caps how much one call may log.
Python's ``logging`` module is routed here too inside a component. Outside a
component (tests in plain CPython) records go to standard error.
"""

from __future__ import annotations

import logging as _logging
import sys

try:
    from wit_world.imports import logging as _host  # type: ignore[import-not-found]
except ImportError:  # plain CPython: not inside a component
    _host = None

__all__ = ["trace", "debug", "info", "warn", "error", "HostHandler"]


def _log(level: str, message: str) -> None:
    if _host is None:
        print(f"[{level}] {message}", file=sys.stderr)
    else:
        _host.log(getattr(_host.Level, level.upper()), message)


def trace(message: str) -> None:
    """Log at trace level."""
    _log("trace", message)


def debug(message: str) -> None:
    """Log at debug level."""
    _log("debug", message)


def info(message: str) -> None:
    """Log at info level."""
    _log("info", message)


def warn(message: str) -> None:
    """Log at warn level."""
    _log("warn", message)


def error(message: str) -> None:
    """Log at error level."""
    _log("error", message)


class HostHandler(_logging.Handler):
    """A ``logging`` handler that sends records to the host."""

    def emit(self, record: _logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:  # a bad format string must not fail the tool
            message = str(record.msg)
        if record.levelno >= _logging.ERROR:
            _log("error", message)
        elif record.levelno >= _logging.WARNING:
            _log("warn", message)
        elif record.levelno >= _logging.INFO:
            _log("info", message)
        else:
            _log("debug", message)
