// tack's JavaScript/TypeScript SDK: tools as functions with schema-typed
// arguments. This module does not import the component bindings, so it runs
// (and is tested) in plain Node; `component.js` is the component's export.

export { s } from "./schema.js";
import { objectSchema } from "./schema.js";

/** The error codes of tack's tool contract (`tack:plugin/types.error-code`). */
export const ERROR_CODES = [
  "invalid-arguments",
  "not-found",
  "permission-denied",
  "conflict",
  "unavailable",
  "timeout",
  "internal",
];

const NAME = /^[a-z][a-z0-9_-]{0,63}$/;

/** A failure the caller (and the model) should read: throw it from a tool. */
export class ToolError extends Error {
  constructor(message, { code = "internal", field, retryable = false } = {}) {
    if (!ERROR_CODES.includes(code)) {
      throw new TypeError(`unknown error code \`${code}\`; use one of ${ERROR_CODES.join(", ")}`);
    }
    super(message);
    this.name = "ToolError";
    this.code = code;
    this.field = field;
    this.retryable = retryable;
  }
}

let sink = (level, message) => {
  console.error(`[${level}] ${message}`);
};

/** Where log records go: the host's trace inside a component (set by component.js). */
export function setLogSink(f) {
  sink = f;
}

const emit = (level) => (...parts) =>
  sink(level, parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" "));

/** Logging to the host's trace of the call. */
export const log = {
  trace: emit("trace"),
  debug: emit("debug"),
  info: emit("info"),
  warn: emit("warn"),
  error: emit("error"),
};

const tools = new Map();

/**
 * Declare a tool. `spec`: `name`, `description`, `input` (a record of
 * property schemas from `s`, or a whole object schema), optional `output`
 * (a schema), and the annotations `destructive`, `readOnly`, `idempotent`,
 * `openWorld`. `handler(args, context)` may be async; it returns a string
 * (text), `undefined`/`null` (no content), or anything else as JSON.
 */
export function tool(spec, handler) {
  if (typeof spec !== "object" || spec === null) throw new TypeError("tool(spec, handler): spec must be an object");
  const { name, description = "", input = {}, output, destructive = false, readOnly = false, idempotent = false, openWorld = false } = spec;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new TypeError(`\`${name}\` is not a valid tool name: use [a-z][a-z0-9_-]*, at most 64 characters`);
  }
  if (typeof handler !== "function") throw new TypeError(`tool \`${name}\` needs a handler function`);
  if (destructive && readOnly) throw new TypeError(`tool \`${name}\` cannot be both destructive and read-only`);
  if (tools.has(name)) throw new TypeError(`two tools are named \`${name}\``);
  const inputSchema = input.type === "object" ? JSON.parse(JSON.stringify(input)) : objectSchema(input);
  const declared = {
    name,
    description,
    inputSchema,
    outputSchema: output === undefined ? undefined : JSON.parse(JSON.stringify(output)),
    annotations: { destructive, readOnly, idempotent, openWorld },
    handler,
  };
  tools.set(name, declared);
  return handler;
}

/** The declared tools, in declaration order. */
export function declaredTools() {
  return [...tools.values()];
}

/** Forget every declared tool (for tests). */
export function clearTools() {
  tools.clear();
}

/**
 * Run tool `name` with JSON `args`: resolves to content items
 * (`{tag: "text"|"json", val}`) or rejects with a `ToolError`.
 */
export async function callTool(name, args, context) {
  const t = tools.get(name);
  if (!t) {
    throw new ToolError(`no tool named \`${name}\`; this plugin offers: ${[...tools.keys()].join(", ")}`, {
      code: "invalid-arguments",
    });
  }
  let parsed;
  try {
    parsed = JSON.parse(args);
  } catch (e) {
    throw new ToolError(`arguments are not JSON: ${e.message}`, { code: "invalid-arguments" });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ToolError("arguments must be a JSON object", { code: "invalid-arguments" });
  }
  let result;
  try {
    result = await t.handler(parsed, context);
  } catch (e) {
    if (e instanceof ToolError) throw e;
    const what = e && e.name ? `${e.name}: ${e.message}` : String(e);
    log.error(`tool \`${name}\` threw ${what}${e && e.stack ? `\n${e.stack}` : ""}`);
    const kind = e && e.name ? `${e.name}: ` : "";
    throw new ToolError(`${kind}${e && e.message !== undefined ? e.message : String(e)}`, { code: "internal" });
  }
  if (result === undefined || result === null) return [];
  if (typeof result === "string") return [{ tag: "text", val: result }];
  let json;
  try {
    json = JSON.stringify(result);
  } catch (e) {
    throw new ToolError(`the result of \`${name}\` is not JSON: ${e.message}`, { code: "internal" });
  }
  if (json === undefined) {
    throw new ToolError(`the result of \`${name}\` is not JSON (a ${typeof result})`, { code: "internal" });
  }
  return [{ tag: "json", val: json }];
}
