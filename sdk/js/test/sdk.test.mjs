// The SDK's schemas and dispatch, in plain Node (no component):
// node --test sdk/js/test/
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { readFileSync } from "node:fs";
import { callTool, clearTools, declaredTools, ERROR_CODES, s, setLogSink, tool, ToolError } from "../src/index.js";

const logged = [];
setLogSink((level, message) => logged.push([level, message]));
beforeEach(() => {
  clearTools();
  logged.length = 0;
});

describe("schemas", () => {
  test("builders give JSON Schema", () => {
    assert.deepEqual(s.string({ minLength: 1 }), { type: "string", minLength: 1 });
    assert.deepEqual(s.integer({ minimum: 0, maximum: 9 }), { type: "integer", minimum: 0, maximum: 9 });
    assert.deepEqual(s.array(s.number()), { type: "array", items: { type: "number" } });
    assert.deepEqual(s.enum(["a", "b"]), { enum: ["a", "b"] });
    assert.deepEqual(s.tuple([s.string(), s.boolean()]), {
      type: "array",
      prefixItems: [{ type: "string" }, { type: "boolean" }],
      items: false,
      minItems: 2,
      maxItems: 2,
    });
    assert.deepEqual(s.record(s.integer()), { type: "object", additionalProperties: { type: "integer" } });
    assert.deepEqual(s.nullable(s.string()), { anyOf: [{ type: "string" }, { type: "null" }] });
    assert.deepEqual(s.object({ a: s.string(), b: s.optional(s.integer()) }), {
      type: "object",
      properties: { a: { type: "string" }, b: { type: "integer" } },
      required: ["a"],
      additionalProperties: false,
    });
  });

  test("mistakes are refused with a reason", () => {
    assert.throws(() => s.enum([]), /non-empty array/);
    assert.throws(() => s.object({ a: "string" }), /property `a` needs a schema/);
    assert.throws(() => s.string("text"), /options must be an object/);
  });
});

describe("tools", () => {
  test("declaration gives a descriptor", () => {
    tool(
      { name: "move", description: "Move it.", input: { x: s.integer(), dx: s.optional(s.integer()) }, destructive: true },
      ({ x, dx = 1 }) => x + dx,
    );
    const [t] = declaredTools();
    assert.equal(t.name, "move");
    assert.deepEqual(t.inputSchema.required, ["x"]);
    assert.deepEqual(t.annotations, { destructive: true, readOnly: false, idempotent: false, openWorld: false });
  });

  test("declaration mistakes are refused", () => {
    assert.throws(() => tool({ name: "Bad Name" }, () => 1), /not a valid tool name/);
    assert.throws(() => tool({ name: "x", destructive: true, readOnly: true }, () => 1), /both destructive and read-only/);
    assert.throws(() => tool({ name: "x" }), /needs a handler/);
    tool({ name: "twice" }, () => 1);
    assert.throws(() => tool({ name: "twice" }, () => 1), /two tools are named `twice`/);
    assert.throws(() => new ToolError("x", { code: "nope" }), /unknown error code/);
  });

  test("calls map results to content", async () => {
    tool({ name: "text", input: { n: s.integer() } }, ({ n }) => `n=${n}`);
    tool({ name: "json", input: {} }, async (_args, ctx) => ({ call: ctx.callId }));
    tool({ name: "none", input: {} }, () => undefined);
    const ctx = { callId: "01J" };
    assert.deepEqual(await callTool("text", '{"n": 2}', ctx), [{ tag: "text", val: "n=2" }]);
    assert.deepEqual(await callTool("json", "{}", ctx), [{ tag: "json", val: '{"call":"01J"}' }]);
    assert.deepEqual(await callTool("none", "{}", ctx), []);
  });

  test("errors become tool errors", async () => {
    tool({ name: "fails", input: { how: s.string() } }, ({ how }) => {
      if (how === "tool") throw new ToolError("no row", { code: "not-found", field: "/how" });
      if (how === "json") return { big: 1n };
      throw new RangeError("oops");
    });
    const ctx = { callId: "x" };
    await assert.rejects(callTool("fails", '{"how": "tool"}', ctx), { code: "not-found", field: "/how" });
    await assert.rejects(callTool("fails", '{"how": "bug"}', ctx), { code: "internal", message: "RangeError: oops" });
    assert.equal(logged[0][0], "error");
    await assert.rejects(callTool("fails", '{"how": "json"}', ctx), { code: "internal", message: /is not JSON/ });
    await assert.rejects(callTool("missing", "{}", ctx), { code: "invalid-arguments", message: /offers: fails/ });
    await assert.rejects(callTool("fails", "[1]", ctx), { code: "invalid-arguments" });
    await assert.rejects(callTool("fails", "{", ctx), { code: "invalid-arguments", message: /not JSON/ });
  });
});

test("the error codes are the WIT enum's, in order", () => {
  const wit = readFileSync(new URL("../../../wit/types.wit", import.meta.url), "utf8");
  const body = /enum error-code \{([^}]*)\}/.exec(wit)[1];
  const cases = body
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("//"))
    .map((line) => line.replace(/,$/, ""));
  assert.deepEqual(ERROR_CODES, cases);
});
