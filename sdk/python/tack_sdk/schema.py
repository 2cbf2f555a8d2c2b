"""JSON Schema from Python type hints, and JSON values to and from Python values.

A tool's parameters are described by ordinary annotations: ``str``, ``int``,
``float``, ``bool``, ``None``, ``list[T]``, ``tuple[A, B]``, ``tuple[T, ...]``,
``set[T]``, ``dict[str, T]``, ``Optional[T]`` / ``T | None``, unions,
``Literal[...]``, ``Enum`` subclasses, dataclasses, ``TypedDict`` and ``Any``.
``Annotated[T, "text"]`` or ``Annotated[T, Field(...)]`` adds a description and
bounds. The host validates arguments against the schema before the call; the
SDK then builds the Python values (dataclass instances, enum members, tuples).

This module does not import the component bindings, so it runs (and is tested)
under any CPython >= 3.11.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from typing import Any, Union

__all__ = ["Field", "SchemaError", "ConversionError", "schema_of", "from_json", "to_json"]


class SchemaError(TypeError):
    """A type hint that has no JSON form (raised when the tool is declared)."""


class ConversionError(ValueError):
    """A JSON value that does not fit its type; ``pointer`` names where (RFC 6901)."""

    def __init__(self, pointer: str, message: str):
        super().__init__(f"at `{pointer or '/'}`: {message}")
        self.pointer = pointer
        self.message = message


@dataclasses.dataclass(frozen=True)
class Field:
    """Metadata for ``Annotated[T, Field(...)]``: a description and JSON Schema bounds."""

    description: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None

    def schema(self) -> dict[str, Any]:
        keys = {
            "description": self.description,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "minLength": self.min_length,
            "maxLength": self.max_length,
            "pattern": self.pattern,
        }
        return {k: v for k, v in keys.items() if v is not None}


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _hints(tp: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(tp, include_extras=True)
    except NameError as e:
        raise SchemaError(f"{_name(tp)}: a type hint names something undefined ({e})") from None


def _name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    text = inspect.cleandoc(doc).split("\n\n")[0].strip()
    return " ".join(text.split()) or None


def schema_of(tp: Any, _seen: tuple[Any, ...] = ()) -> dict[str, Any]:
    """The JSON Schema of values of type ``tp``; ``SchemaError`` if it has none."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        schema = schema_of(args[0], _seen)
        for meta in args[1:]:
            if isinstance(meta, str):
                schema["description"] = meta
            elif isinstance(meta, Field):
                schema.update(meta.schema())
        return schema
    if tp is Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp in (bytes, bytearray):
        raise SchemaError("bytes have no JSON form: take a `str` (text or base64) instead")
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [schema_of(a, _seen) for a in args]
        return {"anyOf": options}
    if origin in (list, typing.List) or origin is getattr(typing, "Sequence", None) or _is_abc(
        origin, "Sequence"
    ):
        return {"type": "array", "items": schema_of(args[0], _seen) if args else {}}
    if origin in (set, frozenset) or _is_abc(origin, "Set"):
        return {
            "type": "array",
            "items": schema_of(args[0], _seen) if args else {},
            "uniqueItems": True,
        }
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_of(args[0], _seen)}
        return {
            "type": "array",
            "prefixItems": [schema_of(a, _seen) for a in args],
            "items": False,
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is dict or _is_abc(origin, "Mapping"):
        if args and args[0] is not str:
            raise SchemaError(f"JSON object keys are strings: use dict[str, ...], not {tp!r}")
        return {
            "type": "object",
            "additionalProperties": schema_of(args[1], _seen) if args else {},
        }
    if tp in (list, tuple, set, dict):
        return schema_of(tp[Any] if tp is not dict else dict[str, Any], _seen)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        schema: dict[str, Any] = {"enum": [m.value for m in tp]}
        if doc := _first_paragraph(tp.__doc__):
            if not doc.startswith(tp.__name__ + "("):
                schema["description"] = doc
        return schema
    if tp in _seen:
        raise SchemaError(f"{_name(tp)} refers to itself; recursive types are not supported")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        properties: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            prop = schema_of(hints[f.name], _seen + (tp,))
            if f.default is not dataclasses.MISSING:
                prop.setdefault("default", to_json(f.default))
            elif f.default_factory is dataclasses.MISSING:
                required.append(f.name)
            properties[f.name] = prop
        schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        if (doc := _first_paragraph(tp.__doc__)) and not doc.startswith(tp.__name__ + "("):
            schema["description"] = doc
        return schema
    if _is_typeddict(tp):
        hints = _hints(tp)
        properties = {}
        for key, hint in hints.items():
            if typing.get_origin(hint) in (typing.Required, typing.NotRequired):
                hint = typing.get_args(hint)[0]
            properties[key] = schema_of(hint, _seen + (tp,))
        schema = {"type": "object", "properties": properties, "additionalProperties": False}
        required = [k for k in hints if k in tp.__required_keys__]
        if required:
            schema["required"] = required
        if doc := _first_paragraph(tp.__doc__):
            schema["description"] = doc
        return schema
    raise SchemaError(
        f"{_name(tp)} has no JSON Schema: use str, int, float, bool, list, tuple, dict, "
        "Optional, Literal, an Enum, a dataclass or a TypedDict"
    )


def _is_abc(origin: Any, name: str) -> bool:
    import collections.abc as abc

    target = getattr(abc, name)
    return isinstance(origin, type) and origin is target


def from_json(tp: Any, value: Any, pointer: str = "") -> Any:
    """Build the Python value of type ``tp`` from JSON ``value``.

    The host has already checked ``value`` against ``schema_of(tp)``; this builds
    dataclasses, enum members, tuples and sets, and still refuses what does not fit.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return from_json(args[0], value, pointer)
    if tp is Any or tp is object:
        return value
    if tp is None or tp is type(None):
        if value is not None:
            raise ConversionError(pointer, f"expected null, got {_kind(value)}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConversionError(pointer, f"expected a boolean, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConversionError(pointer, f"expected an integer, got {_kind(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConversionError(pointer, f"expected a number, got {_kind(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConversionError(pointer, f"expected a string, got {_kind(value)}")
        return value
    if origin is typing.Literal:
        if value not in args:
            raise ConversionError(pointer, f"expected one of {list(args)!r}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        errors = []
        # None first, so `Optional[X]` reads null as None whatever X is.
        for a in sorted(args, key=lambda a: a is not type(None)):
            try:
                return from_json(a, value, pointer)
            except ConversionError as e:
                errors.append(e.message)
        raise ConversionError(pointer, "fits none of the union's types: " + "; ".join(errors))
    if tp in (list, tuple, set, dict):
        return from_json(tp[Any] if tp is not dict else dict[str, Any], value, pointer)
    if origin in (list, set, frozenset) or _is_abc(origin, "Sequence") or _is_abc(origin, "Set"):
        if not isinstance(value, list):
            raise ConversionError(pointer, f"expected an array, got {_kind(value)}")
        item = args[0] if args else Any
        items = [from_json(item, v, f"{pointer}/{i}") for i, v in enumerate(value)]
        return set(items) if origin is set or _is_abc(origin, "Set") else (
            frozenset(items) if origin is frozenset else items
        )
    if origin is tuple:
        if not isinstance(value, list):
            raise ConversionError(pointer, f"expected an array, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v, f"{pointer}/{i}") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConversionError(pointer, f"expected {len(args)} items, got {len(value)}")
        return tuple(from_json(a, v, f"{pointer}/{i}") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict or _is_abc(origin, "Mapping"):
        if not isinstance(value, dict):
            raise ConversionError(pointer, f"expected an object, got {_kind(value)}")
        item = args[1] if args else Any
        return {k: from_json(item, v, f"{pointer}/{_escape(k)}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = [m.value for m in tp]
            raise ConversionError(pointer, f"expected one of {allowed!r}, got {value!r}") from None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConversionError(pointer, f"expected an object, got {_kind(value)}")
        hints = _hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        for key in value:
            if key not in fields:
                raise ConversionError(f"{pointer}/{_escape(key)}", "is not a field of " + tp.__name__)
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = from_json(hints[name], value[name], f"{pointer}/{_escape(name)}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConversionError(pointer, f"missing required field `{name}`")
        return tp(**kwargs)
    if _is_typeddict(tp):
        if not isinstance(value, dict):
            raise ConversionError(pointer, f"expected an object, got {_kind(value)}")
        hints = _hints(tp)
        out = {}
        for key, v in value.items():
            if key not in hints:
                raise ConversionError(f"{pointer}/{_escape(key)}", "is not a key of " + tp.__name__)
            hint = hints[key]
            if typing.get_origin(hint) in (typing.Required, typing.NotRequired):
                hint = typing.get_args(hint)[0]
            out[key] = from_json(hint, v, f"{pointer}/{_escape(key)}")
        for key in tp.__required_keys__:
            if key not in value:
                raise ConversionError(pointer, f"missing required key `{key}`")
        return out
    raise ConversionError(pointer, f"{_name(tp)} cannot be built from JSON")


def to_json(value: Any) -> Any:
    """A JSON-serializable form of ``value`` (dataclasses, enums, tuples, sets included)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value} has no JSON form")
        return value
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, enum.Enum):
                k = k.value
            if not isinstance(k, str):
                raise ValueError(f"JSON object keys are strings, not {type(k).__name__} ({k!r})")
            out[k] = to_json(v)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_json(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    raise ValueError(f"a {type(value).__name__} has no JSON form")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
