"""The component's export: tack's tool contract (``tack:plugin/tool``) over the
tools declared with ``@tool``. ``python -m tack_sdk build`` makes the component's
entry module import this after the plugin's own module.
"""

from __future__ import annotations

import json
import logging

from componentize_py_types import Err  # type: ignore[import-not-found]
from wit_world import exports  # type: ignore[import-not-found]
from wit_world.imports import tack_plugin_types as types  # type: ignore[import-not-found]

from . import tools as _tools
from .log import HostHandler

_root = logging.getLogger()
if not any(isinstance(h, HostHandler) for h in _root.handlers):
    _root.addHandler(HostHandler())
    if _root.level == logging.WARNING:  # the default: let info through to the host
        _root.setLevel(logging.INFO)

_CODES = {
    "invalid-arguments": types.ErrorCode.INVALID_ARGUMENTS,
    "not-found": types.ErrorCode.NOT_FOUND,
    "permission-denied": types.ErrorCode.PERMISSION_DENIED,
    "conflict": types.ErrorCode.CONFLICT,
    "unavailable": types.ErrorCode.UNAVAILABLE,
    "timeout": types.ErrorCode.TIMEOUT,
    "internal": types.ErrorCode.INTERNAL,
}


def _descriptors() -> list:
    return [
        types.ToolDescriptor(
            name=spec.name,
            description=spec.description,
            input_schema=json.dumps(spec.input_schema),
            output_schema=json.dumps(spec.output_schema) if spec.output_schema else None,
            annotations=types.ToolAnnotations(
                destructive=spec.destructive,
                read_only=spec.read_only,
                idempotent=spec.idempotent,
                open_world=spec.open_world,
            ),
        )
        for spec in _tools.tools()
    ]


class Tool(exports.Tool):
    """``tack:plugin/tool``: list the declared tools, call one."""

    def list_tools(self) -> list:
        return _descriptors()

    def call_tool(self, name: str, arguments: str, context) -> list:
        ctx = _tools.Context(
            call_id=context.call_id,
            run_id=context.run_id,
            session_id=context.session_id,
            principal=context.principal,
        )
        try:
            content = _tools.call(name, arguments, ctx)
        except _tools.ToolError as e:
            raise Err(
                types.ToolError(
                    code=_CODES[e.code],
                    message=e.message,
                    field=e.field,
                    retryable=e.retryable,
                )
            ) from None
        return [
            types.Content_Text(value) if kind == "text" else types.Content_Json(value)
            for kind, value in content
        ]
