// What a hostile JavaScript tool tries; the sandbox stops each
// (host/cli/tests/languages.rs).

import { s, tool, ToolError } from "tack-sdk";
import { readText } from "tack-sdk/files";

tool({ name: "spin", description: "Loop forever." }, () => {
  let n = 0;
  for (;;) n++;
});

tool({ name: "hog", description: "Allocate and touch `mib` MiB.", input: { mib: s.integer({ minimum: 0 }) } }, ({ mib }) => {
  const blocks = [];
  for (let i = 0; i < mib; i++) blocks.push(new Uint8Array(1024 * 1024).fill(1));
  return blocks.length;
});

tool({ name: "read_file", description: "Read a file.", input: { path: s.string() } }, ({ path }) => {
  try {
    return readText(path);
  } catch (e) {
    throw new ToolError(e.message, { code: "permission-denied" });
  }
});

tool({ name: "fetch", description: "GET `url` and return the status.", input: { url: s.string() } }, async ({ url }) => {
  try {
    return (await fetch(url)).status;
  } catch (e) {
    throw new ToolError(`${url}: ${e.message}`, { code: "permission-denied" });
  }
});
