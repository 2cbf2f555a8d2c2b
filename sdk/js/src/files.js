// Files in the directories the operator granted (the manifest's `dirs`),
// through `wasi:filesystem`. Only those directories exist for a plugin; a path
// outside them, or one that climbs out with `..`, is refused by the host.

import { getDirectories } from "wasi:filesystem/preopens@0.2.12";

const CHUNK = 4096; // the most `blocking-write-and-flush` takes at once

/** A file operation the host refused or that failed; `code` is WASI's error code. */
export class FileError extends Error {
  constructor(path, code) {
    super(`${path}: ${describe(code)}`);
    this.name = "FileError";
    this.path = path;
    this.code = code;
  }
}

function describe(code) {
  switch (code) {
    case "no-entry":
      return "no such file or directory";
    case "not-permitted":
    case "access":
      return "not permitted (outside the granted directories, or read-only)";
    case "is-directory":
      return "is a directory";
    case "not-directory":
      return "not a directory";
    default:
      return String(code);
  }
}

function wasiCode(e) {
  return e && typeof e === "object" && "payload" in e ? e.payload : e && e.message ? e.message : String(e);
}

/** The granted directory holding `path` and the path inside it. */
function locate(path) {
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw new FileError(String(path), "absolute path required");
  }
  let best;
  for (const [dir, mount] of getDirectories()) {
    const root = mount.endsWith("/") ? mount.slice(0, -1) : mount;
    if ((path === root || path.startsWith(root + "/")) && (!best || root.length > best.root.length)) {
      best = { dir, root };
    }
  }
  if (!best) throw new FileError(path, "not-permitted");
  const rel = path.slice(best.root.length).replace(/^\/+/, "");
  return { dir: best.dir, rel: rel === "" ? "." : rel };
}

function attempt(path, f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof FileError) throw e;
    throw new FileError(path, wasiCode(e));
  }
}

/** The bytes of file `path`. */
export function readBytes(path) {
  const { dir, rel } = locate(path);
  return attempt(path, () => {
    const file = dir.openAt({ symlinkFollow: true }, rel, {}, { read: true });
    const stream = file.readViaStream(0n);
    const chunks = [];
    let size = 0;
    for (;;) {
      let chunk;
      try {
        chunk = stream.blockingRead(65536n);
      } catch (e) {
        if (wasiCode(e) && wasiCode(e).tag === "closed") break;
        throw e;
      }
      chunks.push(chunk);
      size += chunk.length;
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  });
}

/** The text of file `path` (UTF-8). */
export function readText(path) {
  return new TextDecoder().decode(readBytes(path));
}

/** Write `data` (a string, as UTF-8, or bytes) to `path`, replacing the file. */
export function writeFile(path, data) {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const { dir, rel } = locate(path);
  attempt(path, () => {
    const file = dir.openAt({ symlinkFollow: true }, rel, { create: true, truncate: true }, { write: true });
    const stream = file.writeViaStream(0n);
    for (let i = 0; i < bytes.length; i += CHUNK) {
      stream.blockingWriteAndFlush(bytes.subarray(i, i + CHUNK));
    }
  });
  return bytes.length;
}

/** The names in directory `path`. */
export function list(path) {
  const { dir, rel } = locate(path);
  return attempt(path, () => {
    const d = rel === "." ? dir : dir.openAt({ symlinkFollow: true }, rel, { directory: true }, { read: true });
    const entries = d.readDirectory();
    const names = [];
    for (let e = entries.readDirectoryEntry(); e; e = entries.readDirectoryEntry()) names.push(e.name);
    return names.sort();
  });
}
