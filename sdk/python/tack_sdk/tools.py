"""Tools as typed, decorated functions: the registry, descriptors and dispatch.

Nothing here touches the component bindings, so a plugin's tools can be listed
and called in plain CPython too (the SDK's own tests do).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import traceback
import typing
from typing import Any, Callable

from . import log
from .schema import ConversionError, SchemaError, from_json, schema_of, to_json

__all__ = [
    "Context",
    "ToolError",
    "ToolSpec",
    "tool",
    "tools",
    "call",
]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")

#: The error codes of tack's tool contract (`tack:plugin/types.error-code`).
ERROR_CODES = (
    "invalid-arguments",
    "not-found",
    "permission-denied",
    "conflict",
    "unavailable",
    "timeout",
    "internal",
)


@dataclasses.dataclass(frozen=True)
class Context:
    """Who and what a call is made for, for the plugin's own audit logs.

    Declare a parameter of this type to receive it; it is not part of the schema.
    """

    call_id: str
    run_id: str | None = None
    session_id: str | None = None
    principal: str | None = None


class ToolError(Exception):
    """A failure the caller (and the model) should read: raise it from a tool.

    ``code`` is one of ``ERROR_CODES``; ``field`` is the JSON Pointer of the
    argument to blame, if one is; ``retryable`` says whether the same call may
    succeed later.
    """

    def __init__(
        self,
        message: str,
        code: str = "internal",
        *,
        field: str | None = None,
        retryable: bool = False,
    ):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}; use one of {', '.join(ERROR_CODES)}")
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.retryable = retryable


@dataclasses.dataclass
class ToolSpec:
    """One declared tool: its descriptor and how to call it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    destructive: bool
    read_only: bool
    idempotent: bool
    open_world: bool
    function: Callable[..., Any]
    params: dict[str, Any]
    context_param: str | None
    returns: Any


_TOOLS: dict[str, ToolSpec] = {}


def tools() -> list[ToolSpec]:
    """The tools declared so far, in declaration order."""
    return list(_TOOLS.values())


def _doc_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (everything before an ``Args:`` section) and the
    per-parameter descriptions of a Google-style docstring."""
    if not doc:
        return "", {}
    head, _, rest = _split_args(inspect.cleandoc(doc))
    params: dict[str, str] = {}
    indent = None
    current = None
    for line in rest.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            break  # the next section (Returns:, Raises:, ...)
        entry = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line.strip())
        if entry and (indent is None or depth == indent):
            indent = depth
            current = entry.group(1)
            params[current] = entry.group(2)
        elif current is not None:
            params[current] = (params[current] + " " + line.strip()).strip()
    return head.strip(), params


def _split_args(text: str) -> tuple[str, str, str]:
    m = re.search(r"^(Args|Arguments|Parameters):\s*$", text, flags=re.M)
    if not m:
        return text, "", ""
    return text[: m.start()], m.group(1), text[m.end() :]


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    destructive: bool = False,
    read_only: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
) -> Any:
    """Declare a function as a tool.

    Use it bare (``@tool``) or with options (``@tool(destructive=True)``). The
    tool's name is the function's (or ``name``); its description is the
    docstring (or ``description``) up to an ``Args:`` section, whose entries
    describe the parameters. Every parameter needs a type hint; those with
    defaults are optional. The return annotation, if any, is the output schema.
    The annotations (``destructive`` and so on) are the author's claims: the
    operator can override them, and destructive tools go through approval.
    """

    def declare(f: Callable[..., Any]) -> Callable[..., Any]:
        spec = _spec(
            f,
            name=name,
            description=description,
            destructive=destructive,
            read_only=read_only,
            idempotent=idempotent,
            open_world=open_world,
        )
        if spec.name in _TOOLS:
            raise ValueError(f"two tools are named `{spec.name}`; pass @tool(name=...) to one")
        _TOOLS[spec.name] = spec
        return f

    return declare(function) if function is not None else declare


def _spec(f: Callable[..., Any], **opts: Any) -> ToolSpec:
    tool_name = opts["name"] or f.__name__
    if not _NAME.match(tool_name):
        raise ValueError(
            f"`{tool_name}` is not a valid tool name: use [a-z][a-z0-9_-]*, at most 64 characters"
        )
    if opts["destructive"] and opts["read_only"]:
        raise ValueError(f"`{tool_name}` cannot be both destructive and read-only")
    where = f"tool `{tool_name}`"
    try:
        hints = typing.get_type_hints(f, include_extras=True)
    except NameError as e:
        raise SchemaError(f"{where}: a type hint names something undefined: {e}") from None
    summary, param_docs = _doc_parts(f.__doc__)
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: dict[str, Any] = {}
    context_param = None
    for p in inspect.signature(f).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise SchemaError(f"{where}: *args and **kwargs have no schema; name each parameter")
        hint = hints.get(p.name, inspect.Parameter.empty)
        if hint is Context:
            context_param = p.name
            continue
        if hint is inspect.Parameter.empty:
            raise SchemaError(f"{where}: parameter `{p.name}` needs a type hint")
        try:
            prop = schema_of(hint)
        except SchemaError as e:
            raise SchemaError(f"{where}, parameter `{p.name}`: {e}") from None
        if p.name in param_docs and "description" not in prop:
            prop["description"] = param_docs[p.name]
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            try:
                prop["default"] = to_json(p.default)
            except ValueError:
                pass
        properties[p.name] = prop
        params[p.name] = hint
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        input_schema["required"] = required
    returns = hints.get("return", inspect.Parameter.empty)
    output_schema = None
    if returns not in (inspect.Parameter.empty, None, type(None), str):
        try:
            output_schema = schema_of(returns)
        except SchemaError as e:
            raise SchemaError(f"{where}, return type: {e}") from None
    paragraphs = [" ".join(p.split()) for p in summary.split("\n\n") if p.strip()]
    description = opts["description"] or "\n\n".join(paragraphs) or f.__name__
    return ToolSpec(
        name=tool_name,
        description=description,
        input_schema=input_schema,
        output_schema=output_schema,
        destructive=opts["destructive"],
        read_only=opts["read_only"],
        idempotent=opts["idempotent"],
        open_world=opts["open_world"],
        function=f,
        params=params,
        context_param=context_param,
        returns=returns,
    )


def call(name: str, arguments: str, context: Context) -> list[tuple[str, str]]:
    """Run tool ``name`` with JSON ``arguments``; returns content as
    ``("text", str)`` and ``("json", str)`` pairs, or raises ``ToolError``.

    A returned ``str`` is text; ``None`` is no content; anything else is JSON.
    An exception other than ``ToolError`` becomes an ``internal`` error naming it.
    """
    spec = _TOOLS.get(name)
    if spec is None:
        raise ToolError(
            f"no tool named `{name}`; this plugin offers: {', '.join(_TOOLS)}",
            "invalid-arguments",
        )
    try:
        args = json.loads(arguments)
    except json.JSONDecodeError as e:
        raise ToolError(f"arguments are not JSON: {e}", "invalid-arguments") from None
    if not isinstance(args, dict):
        raise ToolError("arguments must be a JSON object", "invalid-arguments")
    kwargs: dict[str, Any] = {}
    for key in args:
        if key not in spec.params:
            raise ToolError(
                f"`{key}` is not a parameter of `{name}`", "invalid-arguments", field="/" + key
            )
    for pname, hint in spec.params.items():
        if pname in args:
            try:
                kwargs[pname] = from_json(hint, args[pname], "/" + pname)
            except ConversionError as e:
                raise ToolError(str(e), "invalid-arguments", field=e.pointer) from None
    if spec.context_param:
        kwargs[spec.context_param] = context
    try:
        result = spec.function(**kwargs)
    except ToolError:
        raise
    except TypeError as e:
        if "required positional argument" in str(e) or "missing" in str(e):
            raise ToolError(str(e), "invalid-arguments") from None
        raise ToolError(f"{type(e).__name__}: {e}", "internal") from None
    except Exception as e:  # a bug in the tool: report it, do not take the plugin down
        log.error(f"tool `{name}` raised:\n{traceback.format_exc()}")
        raise ToolError(f"{type(e).__name__}: {e}", "internal") from None
    if result is None:
        return []
    if isinstance(result, str):
        return [("text", result)]
    try:
        return [("json", json.dumps(to_json(result), ensure_ascii=False))]
    except ValueError as e:
        raise ToolError(f"the result of `{name}` is not JSON: {e}", "internal") from None
