// JSON Schema builders whose TypeScript types (schema.d.ts) follow the schema,
// so a tool's handler gets typed arguments: `{ text: s.string() }` gives
// `{ text: string }`. Each builder returns a plain JSON Schema object.

/** Mark a property schema optional (it is left out of `required`). */
const OPTIONAL = Symbol.for("tack.optional");

function meta(schema, options) {
  if (options === undefined) return schema;
  if (typeof options !== "object" || options === null) {
    throw new TypeError("schema options must be an object");
  }
  return { ...schema, ...options };
}

/** JSON Schema builders. */
export const s = {
  /** A string; options: description, minLength, maxLength, pattern, format. */
  string: (options) => meta({ type: "string" }, options),
  /** A number; options: description, minimum, maximum. */
  number: (options) => meta({ type: "number" }, options),
  /** An integer; options: description, minimum, maximum. */
  integer: (options) => meta({ type: "integer" }, options),
  /** true or false. */
  boolean: (options) => meta({ type: "boolean" }, options),
  /** null. */
  null: (options) => meta({ type: "null" }, options),
  /** Anything. */
  any: (options) => meta({}, options),
  /** One of the given strings or numbers. */
  enum: (values, options) => {
    if (!Array.isArray(values) || values.length === 0) {
      throw new TypeError("s.enum needs a non-empty array of values");
    }
    return meta({ enum: [...values] }, options);
  },
  /** An array of `items`; options: description, minItems, maxItems, uniqueItems. */
  array: (items, options) => meta({ type: "array", items: plain(items) }, options),
  /** An array of exactly these items, in order. */
  tuple: (items, options) =>
    meta(
      {
        type: "array",
        prefixItems: items.map(plain),
        items: false,
        minItems: items.length,
        maxItems: items.length,
      },
      options,
    ),
  /** An object with string keys and `values`. */
  record: (values, options) =>
    meta({ type: "object", additionalProperties: plain(values) }, options),
  /** An object with these properties; those wrapped in `s.optional` may be left out. */
  object: (properties, options) => meta(objectSchema(properties), options),
  /** Any of these schemas. */
  union: (options_, options) => meta({ anyOf: options_.map(plain) }, options),
  /** The schema, or null. */
  nullable: (schema) => ({ anyOf: [plain(schema), { type: "null" }] }),
  /** A property that may be left out of its object. */
  optional: (schema) => ({ ...plain(schema), [OPTIONAL]: true }),
};

/** The JSON Schema of an object with `properties` (a record of schemas). */
export function objectSchema(properties) {
  if (typeof properties !== "object" || properties === null || Array.isArray(properties)) {
    throw new TypeError("an object schema needs a record of property schemas");
  }
  const props = {};
  const required = [];
  for (const [name, schema] of Object.entries(properties)) {
    if (typeof schema !== "object" || schema === null) {
      throw new TypeError(`property \`${name}\` needs a schema (e.g. s.string())`);
    }
    props[name] = plain(schema);
    if (!schema[OPTIONAL]) required.push(name);
  }
  const out = { type: "object", properties: props, additionalProperties: false };
  if (required.length) out.required = required;
  return out;
}

/** A schema without the SDK's markers, nested schemas included. */
function plain(schema) {
  return JSON.parse(JSON.stringify(schema));
}
