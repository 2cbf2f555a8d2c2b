// Types of tack's JavaScript/TypeScript SDK. A schema built with `s` carries
// the TypeScript type of the values it accepts, so a tool's handler gets typed
// arguments: `input: { text: s.string(), n: s.optional(s.integer()) }` gives
// `{ text: string; n?: number }`.

/** A JSON Schema whose values have TypeScript type `T`. */
export interface Schema<T> {
  readonly __type?: T;
  [keyword: string]: unknown;
}
/** A property schema that may be left out of its object. */
export interface Optional<T> extends Schema<T> {
  readonly __optional: true;
}

type Infer<S> = S extends Schema<infer T> ? T : never;
type Props = Record<string, Schema<unknown>>;
type RequiredKeys<P> = { [K in keyof P]: P[K] extends Optional<unknown> ? never : K }[keyof P];
type OptionalKeys<P> = { [K in keyof P]: P[K] extends Optional<unknown> ? K : never }[keyof P];
/** The TypeScript type of an object with property schemas `P`. */
export type ObjectOf<P extends Props> = { [K in RequiredKeys<P>]: Infer<P[K]> } & {
  [K in OptionalKeys<P>]?: Infer<P[K]>;
};

interface Meta {
  description?: string;
  [keyword: string]: unknown;
}

/** JSON Schema builders. */
export declare const s: {
  string(options?: Meta & { minLength?: number; maxLength?: number; pattern?: string; format?: string }): Schema<string>;
  number(options?: Meta & { minimum?: number; maximum?: number }): Schema<number>;
  integer(options?: Meta & { minimum?: number; maximum?: number }): Schema<number>;
  boolean(options?: Meta): Schema<boolean>;
  null(options?: Meta): Schema<null>;
  any(options?: Meta): Schema<unknown>;
  enum<const V extends readonly (string | number)[]>(values: V, options?: Meta): Schema<V[number]>;
  array<T>(items: Schema<T>, options?: Meta & { minItems?: number; maxItems?: number; uniqueItems?: boolean }): Schema<T[]>;
  tuple<const S extends readonly Schema<unknown>[]>(items: S, options?: Meta): Schema<{ [I in keyof S]: Infer<S[I]> }>;
  record<T>(values: Schema<T>, options?: Meta): Schema<Record<string, T>>;
  object<P extends Props>(properties: P, options?: Meta): Schema<ObjectOf<P>>;
  union<const S extends readonly Schema<unknown>[]>(options: S, meta?: Meta): Schema<Infer<S[number]>>;
  nullable<T>(schema: Schema<T>): Schema<T | null>;
  optional<T>(schema: Schema<T>): Optional<T>;
};

/** The error codes of tack's tool contract. */
export type ErrorCode =
  | "invalid-arguments"
  | "not-found"
  | "permission-denied"
  | "conflict"
  | "unavailable"
  | "timeout"
  | "internal";
export declare const ERROR_CODES: readonly ErrorCode[];

/** A failure the caller (and the model) should read: throw it from a tool. */
export declare class ToolError extends Error {
  constructor(message: string, options?: { code?: ErrorCode; field?: string; retryable?: boolean });
  code: ErrorCode;
  field?: string;
  retryable: boolean;
}

/** Who and what a call is made for, for the plugin's own audit logs. */
export interface Context {
  callId: string;
  runId?: string;
  sessionId?: string;
  principal?: string;
}

/** A tool's declaration. */
export interface ToolSpec<P extends Props> {
  /** `[a-z][a-z0-9_-]*`, at most 64 characters. */
  name: string;
  /** What the tool does, written for the model that decides to call it. */
  description?: string;
  /** The arguments: a record of property schemas. */
  input?: P;
  /** The schema of the JSON the tool returns. */
  output?: Schema<unknown>;
  /** The tool may change or delete state outside the sandbox (calls wait for approval). */
  destructive?: boolean;
  /** The tool changes no state. */
  readOnly?: boolean;
  /** Calling it twice with the same arguments has no further effect. */
  idempotent?: boolean;
  /** The tool reaches an open world (the internet). */
  openWorld?: boolean;
}

/** Declare a tool; `handler` gets the arguments typed by `spec.input`. */
export declare function tool<P extends Props>(
  spec: ToolSpec<P>,
  handler: (args: ObjectOf<P>, context: Context) => unknown | Promise<unknown>,
): typeof handler;

/** Logging to the host's trace of the call. */
export declare const log: {
  trace(...parts: unknown[]): void;
  debug(...parts: unknown[]): void;
  info(...parts: unknown[]): void;
  warn(...parts: unknown[]): void;
  error(...parts: unknown[]): void;
};
