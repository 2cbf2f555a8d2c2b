/** A file operation the host refused or that failed; `code` is WASI's error code. */
export declare class FileError extends Error {
  path: string;
  code: string;
}
/** The bytes of file `path` (absolute, inside a granted directory). */
export declare function readBytes(path: string): Uint8Array;
/** The text of file `path` (UTF-8). */
export declare function readText(path: string): string;
/** Write `data` to `path`, replacing the file; returns the bytes written. */
export declare function writeFile(path: string, data: string | Uint8Array): number;
/** The names in directory `path`. */
export declare function list(path: string): string[];
