"""The SDK's schemas, conversions and dispatch, in plain CPython (no component).

Run: python3 -m unittest discover -s sdk/python/tests -t sdk/python
"""

import dataclasses
import enum
import json
import unittest
from typing import Annotated, Any, Literal, Optional, TypedDict

from typing import NotRequired

from tack_sdk import Context, Field, SchemaError, ToolError, tool
from tack_sdk import tools as registry
from tack_sdk.schema import ConversionError, from_json, schema_of, to_json


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    """A point on the plane."""

    x: int
    y: int = 0


class Movie(TypedDict):
    title: str
    year: NotRequired[int]


@dataclasses.dataclass
class Node:
    next: "Optional[Node]"


class SchemaTest(unittest.TestCase):
    def test_scalars_and_containers(self):
        self.assertEqual(schema_of(str), {"type": "string"})
        self.assertEqual(schema_of(bool), {"type": "boolean"})
        self.assertEqual(schema_of(int), {"type": "integer"})
        self.assertEqual(schema_of(float), {"type": "number"})
        self.assertEqual(schema_of(list[int]), {"type": "array", "items": {"type": "integer"}})
        self.assertEqual(
            schema_of(dict[str, float]),
            {"type": "object", "additionalProperties": {"type": "number"}},
        )
        self.assertEqual(
            schema_of(tuple[str, int]),
            {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "integer"}],
                "items": False,
                "minItems": 2,
                "maxItems": 2,
            },
        )
        self.assertEqual(schema_of(set[str])["uniqueItems"], True)
        self.assertEqual(
            schema_of(Optional[int]), {"anyOf": [{"type": "integer"}, {"type": "null"}]}
        )
        self.assertEqual(schema_of(int | str), {"anyOf": [{"type": "integer"}, {"type": "string"}]})
        self.assertEqual(schema_of(Literal["a", 1]), {"enum": ["a", 1]})
        self.assertEqual(schema_of(Color), {"enum": ["red", "green"]})
        self.assertEqual(schema_of(Any), {})

    def test_records(self):
        self.assertEqual(
            schema_of(Point),
            {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
                "required": ["x"],
                "additionalProperties": False,
                "description": "A point on the plane.",
            },
        )
        movie = schema_of(Movie)
        self.assertEqual(movie["required"], ["title"])
        self.assertEqual(movie["properties"]["year"], {"type": "integer"})

    def test_annotated_adds_description_and_bounds(self):
        s = schema_of(Annotated[int, Field(description="How many", minimum=1, maximum=9)])
        self.assertEqual(s, {"type": "integer", "description": "How many", "minimum": 1, "maximum": 9})
        self.assertEqual(schema_of(Annotated[str, "A name"])["description"], "A name")

    def test_types_without_json_form_are_refused_with_a_reason(self):
        with self.assertRaisesRegex(SchemaError, "bytes have no JSON form"):
            schema_of(bytes)
        with self.assertRaisesRegex(SchemaError, "keys are strings"):
            schema_of(dict[int, str])
        with self.assertRaisesRegex(SchemaError, "has no JSON Schema"):
            schema_of(complex)
        with self.assertRaisesRegex(SchemaError, "refers to itself"):
            schema_of(Node)


class ConversionTest(unittest.TestCase):
    def test_round_trips(self):
        cases = [
            (Point, {"x": 1, "y": -2}),
            (list[Point], [{"x": 1, "y": 0}]),
            (tuple[str, int], ["a", 1]),
            (dict[str, Color], {"k": "green"}),
            (Optional[Point], None),
            (Movie, {"title": "Up"}),
            (Literal["a", "b"], "b"),
        ]
        for tp, value in cases:
            with self.subTest(tp=tp):
                self.assertEqual(to_json(from_json(tp, value)), value)

    def test_builds_python_values(self):
        self.assertEqual(from_json(Point, {"x": 3}), Point(3, 0))
        self.assertIs(from_json(Color, "red"), Color.RED)
        self.assertEqual(from_json(tuple[int, ...], [1, 2]), (1, 2))
        self.assertEqual(from_json(float, 2), 2.0)
        self.assertEqual(from_json(int, 2.0), 2)

    def test_refusals_name_the_pointer(self):
        cases = [
            (int, "1", "", "expected an integer"),
            (int, True, "", "expected an integer"),
            (Point, {"x": 1, "z": 2}, "/z", "is not a field"),
            (Point, {"y": 1}, "", "missing required field `x`"),
            (list[int], [1, "2"], "/1", "expected an integer"),
            (tuple[int, int], [1], "", "expected 2 items"),
            (Color, "blue", "", "expected one of"),
            (dict[str, int], {"a/b": "x"}, "/a~1b", "expected an integer"),
        ]
        for tp, value, pointer, message in cases:
            with self.subTest(tp=tp, value=value):
                with self.assertRaises(ConversionError) as caught:
                    from_json(tp, value)
                self.assertEqual(caught.exception.pointer, pointer)
                self.assertIn(message, caught.exception.message)

    def test_results_without_json_form_are_errors(self):
        for value in [float("nan"), object(), {1: "a"}]:
            with self.subTest(value=value):
                with self.assertRaises(ValueError):
                    to_json(value)


class ToolTest(unittest.TestCase):
    def setUp(self):
        self.saved = dict(registry._TOOLS)
        registry._TOOLS.clear()

    def tearDown(self):
        registry._TOOLS.clear()
        registry._TOOLS.update(self.saved)

    def test_descriptor_from_signature_and_docstring(self):
        @tool(destructive=True)
        def move(p: Point, dx: int = 1, ctx: Context = None) -> Point:
            """Move a point.

            Second paragraph.

            Args:
                p: The point
                    to move.
                dx: How far.
            """
            return dataclasses.replace(p, x=p.x + dx)

        (spec,) = registry.tools()
        self.assertEqual(spec.name, "move")
        self.assertEqual(spec.description, "Move a point.\n\nSecond paragraph.")
        self.assertTrue(spec.destructive)
        self.assertEqual(spec.input_schema["required"], ["p"])
        self.assertEqual(spec.input_schema["properties"]["dx"]["description"], "How far.")
        self.assertEqual(spec.input_schema["properties"]["dx"]["default"], 1)
        self.assertNotIn("ctx", spec.input_schema["properties"])
        self.assertEqual(spec.output_schema["required"], ["x"])
        self.assertEqual(spec.input_schema["properties"]["p"]["description"], "A point on the plane.")

    def test_call_converts_arguments_and_results(self):
        seen = {}

        @tool
        def move(p: Point, ctx: Context, dx: int = 1) -> Point:
            seen["ctx"] = ctx
            return Point(p.x + dx, p.y)

        @tool
        def greet(name: str) -> str:
            return f"hello {name}"

        @tool
        def nothing() -> None:
            return None

        ctx = Context(call_id="01J", run_id="run")
        out = registry.call("move", json.dumps({"p": {"x": 1}, "dx": 2}), ctx)
        self.assertEqual(out, [("json", '{"x": 3, "y": 0}')])
        self.assertEqual(seen["ctx"], ctx)
        self.assertEqual(registry.call("greet", '{"name": "ada"}', ctx), [("text", "hello ada")])
        self.assertEqual(registry.call("nothing", "{}", ctx), [])

    def test_errors_become_tool_errors(self):
        @tool
        def fails(kind: str) -> str:
            if kind == "tool":
                raise ToolError("no such row", "not-found", field="/kind")
            raise KeyError(kind)

        ctx = Context(call_id="x")
        with self.assertRaises(ToolError) as caught:
            registry.call("fails", '{"kind": "tool"}', ctx)
        self.assertEqual((caught.exception.code, caught.exception.field), ("not-found", "/kind"))
        with self.assertRaises(ToolError) as caught:
            registry.call("fails", '{"kind": "bug"}', ctx)
        self.assertEqual(caught.exception.code, "internal")
        self.assertIn("KeyError", caught.exception.message)
        with self.assertRaises(ToolError) as caught:
            registry.call("fails", '{"kind": 3}', ctx)
        self.assertEqual((caught.exception.code, caught.exception.field), ("invalid-arguments", "/kind"))
        with self.assertRaises(ToolError) as caught:
            registry.call("missing", "{}", ctx)
        self.assertIn("offers: fails", caught.exception.message)

    def test_declaration_mistakes_are_refused(self):
        with self.assertRaisesRegex(SchemaError, "needs a type hint"):

            @tool
            def untyped(x):
                return x

        with self.assertRaisesRegex(ValueError, "not a valid tool name"):

            @tool(name="Bad Name")
            def bad() -> None:
                pass

        with self.assertRaisesRegex(ValueError, "both destructive and read-only"):

            @tool(destructive=True, read_only=True)
            def both() -> None:
                pass

        @tool
        def twice() -> None:
            pass

        with self.assertRaisesRegex(ValueError, "two tools are named `twice`"):

            @tool(name="twice")
            def again() -> None:
                pass

        with self.assertRaisesRegex(ValueError, "unknown error code"):
            ToolError("x", "nope")


class ContractTest(unittest.TestCase):
    def test_error_codes_are_the_wit_enums(self):
        """The SDK's list follows `error-code` in wit/types.wit, in order."""
        import pathlib
        import re

        wit = pathlib.Path(__file__).resolve().parents[3] / "wit" / "types.wit"
        body = re.search(r"enum error-code \{(.*?)\}", wit.read_text(), re.S).group(1)
        lines = (line.strip() for line in body.splitlines())
        cases = [l.rstrip(",") for l in lines if l and not l.startswith("//")]
        self.assertEqual(list(registry.ERROR_CODES), cases)


if __name__ == "__main__":
    unittest.main()
