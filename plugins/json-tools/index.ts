// json-tools: JSON utilities for agents, written in TypeScript with tack's SDK.
//
// `diff` and `pick` work on what they are given; `fetch_json` reaches the web
// through the host, which allows only the hosts the operator granted (the
// manifest asks for any host; the grant decides).

import { s, tool, ToolError } from "tack-sdk";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Change {
  path: string;
  op: "added" | "removed" | "changed";
  from?: Json;
  to?: Json;
}

const escape = (key: string) => key.replace(/~/g, "~0").replace(/\//g, "~1");

function diff(a: Json, b: Json, path: string, out: Change[]): void {
  const bothObjects =
    a !== null && b !== null && typeof a === "object" && typeof b === "object" && Array.isArray(a) === Array.isArray(b);
  if (!bothObjects) {
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path: path || "/", op: "changed", from: a, to: b });
    return;
  }
  const ao = a as Record<string, Json>;
  const bo = b as Record<string, Json>;
  const keys = Array.isArray(a)
    ? [...Array(Math.max((a as Json[]).length, (b as Json[]).length)).keys()].map(String)
    : [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort();
  for (const key of keys) {
    const p = `${path}/${escape(key)}`;
    if (!(key in ao)) out.push({ path: p, op: "added", to: bo[key] });
    else if (!(key in bo)) out.push({ path: p, op: "removed", from: ao[key] });
    else diff(ao[key], bo[key], p, out);
  }
}

function resolvePointer(doc: Json, pointer: string): Json | undefined {
  if (pointer === "" || pointer === "/") return doc;
  if (!pointer.startsWith("/")) {
    throw new ToolError(`\`${pointer}\` is not a JSON Pointer: it must start with /`, { code: "invalid-arguments" });
  }
  let node: Json | undefined = doc;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object") return undefined;
    node = Array.isArray(node) ? node[Number(key)] : (node as Record<string, Json>)[key];
  }
  return node;
}

tool(
  {
    name: "diff",
    description:
      "The differences between two JSON documents, as a list of changes with the JSON Pointer of each (added, removed, changed).",
    input: { before: s.any({ description: "The first document." }), after: s.any({ description: "The second document." }) },
    output: s.array(s.object({ path: s.string(), op: s.enum(["added", "removed", "changed"]) })),
    readOnly: true,
    idempotent: true,
  },
  ({ before, after }) => {
    const changes: Change[] = [];
    diff(before as Json, after as Json, "", changes);
    return changes;
  },
);

tool(
  {
    name: "pick",
    description: "The values at the given JSON Pointers of a document (null where nothing is).",
    input: {
      document: s.any({ description: "The document." }),
      pointers: s.array(s.string(), { description: "JSON Pointers, e.g. /items/0/name.", minItems: 1 }),
    },
    readOnly: true,
    idempotent: true,
  },
  ({ document, pointers }) =>
    Object.fromEntries(pointers.map((p) => [p, resolvePointer(document as Json, p) ?? null])),
);

tool(
  {
    name: "fetch_json",
    description: "GET a URL and return its JSON body, or the value at `pointer` in it.",
    input: {
      url: s.string({ description: "An http(s) URL.", format: "uri" }),
      pointer: s.optional(s.string({ description: "A JSON Pointer into the response." })),
    },
    readOnly: true,
    openWorld: true,
  },
  async ({ url, pointer }) => {
    let response: Response;
    try {
      response = await fetch(url, { headers: { accept: "application/json" } });
    } catch (e) {
      throw new ToolError(`cannot reach ${url}: ${(e as Error).message} (is its host granted?)`, {
        code: "unavailable",
        retryable: true,
      });
    }
    if (!response.ok) {
      throw new ToolError(`${url} answered ${response.status}`, {
        code: response.status === 404 ? "not-found" : "unavailable",
        retryable: response.status >= 500,
      });
    }
    let body: Json;
    try {
      body = (await response.json()) as Json;
    } catch {
      throw new ToolError(`${url} did not answer JSON`, { code: "unavailable" });
    }
    return pointer === undefined ? body : (resolvePointer(body, pointer) ?? null);
  },
);
