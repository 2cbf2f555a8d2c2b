#!/usr/bin/env node
// `tack-js build PLUGIN.ts`: a JavaScript or TypeScript plugin becomes a component.
//
// 1. `tack plugin wit` writes tack's WIT and WASI's beside the SDK's world;
// 2. `jco componentize` bundles an entry module (the plugin, which declares its
//    tools, then the SDK's `tack:plugin/tool` export) with the SDK resolved as
//    `tack-sdk`, and snapshots the initialized engine into the component;
// 3. `tack plugin embed` embeds the manifest (`tack.toml` beside the plugin, or
//    `--manifest`): the capabilities it asks for, as for any plugin.

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), "..");

class BuildError extends Error {
  constructor(message, help) {
    super(message);
    this.help = help;
  }
}

const USAGE = `usage: tack-js build PLUGIN.(ts|js) [-o OUT.wasm] [--manifest tack.toml] [--tack PATH] [--no-check]`;

function run(cmd, args, what, help) {
  const done = spawnSync(cmd, args, { encoding: "utf8" });
  if (done.error && done.error.code === "ENOENT") throw new BuildError(`${cmd} was not found`, help);
  if (done.error) throw new BuildError(`${what} failed: ${done.error.message}`);
  if (done.status !== 0) {
    throw new BuildError(`${what} failed:\n${(done.stderr || done.stdout || "").trim()}`);
  }
  return done.stdout;
}

function build(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      manifest: { type: "string" },
      tack: { type: "string", default: process.env.TACK ?? "tack" },
      "no-check": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (positionals.length !== 1) throw new BuildError("build takes one plugin file", USAGE);
  const plugin = resolve(positionals[0]);
  if (!existsSync(plugin) || ![".ts", ".js", ".mjs", ".mts"].includes(extname(plugin))) {
    throw new BuildError(`${positionals[0]} is not a JavaScript or TypeScript file`, "pass the plugin's module, e.g. index.ts");
  }
  const output = resolve(values.output ?? plugin.slice(0, -extname(plugin).length) + ".wasm");
  const manifest = values.manifest ? resolve(values.manifest) : join(dirname(plugin), "tack.toml");
  if (values.manifest && !existsSync(manifest)) throw new BuildError(`${values.manifest} does not exist`);
  const jco = join(SDK, "node_modules", ".bin", "jco");
  if (!existsSync(jco)) {
    throw new BuildError("the SDK's build tools are not installed", `run \`npm ci\` in ${SDK}`);
  }

  const tmp = mkdtempSync(join(tmpdir(), "tack-js-"));
  try {
    const wit = join(tmp, "wit");
    mkdirSync(wit);
    copyFileSync(join(SDK, "wit", "world.wit"), join(wit, "world.wit"));
    run(values.tack, ["plugin", "wit", wit], "tack plugin wit", "install tack (cargo install --path host/cli) or pass --tack PATH");
    const entry = join(tmp, "entry.js");
    writeFileSync(
      entry,
      `import ${JSON.stringify(plugin)}; // the plugin: declares its tools\n` +
        `export { tool } from ${JSON.stringify(join(SDK, "src", "component.js"))}; // tack:plugin/tool over them\n`,
    );
    // `tack-sdk` is this SDK, whether or not the plugin's project installed it.
    const config = join(tmp, "bundle.config.mjs");
    writeFileSync(
      config,
      `export default { resolve: { alias: {\n` +
        `  "tack-sdk/files": ${JSON.stringify(join(SDK, "src", "files.js"))},\n` +
        `  "tack-sdk": ${JSON.stringify(join(SDK, "src", "index.js"))},\n` +
        `} } };\n`,
    );
    if (/\.m?ts$/.test(plugin) && !values["no-check"]) typeCheck(plugin, tmp);
    const raw = join(tmp, "plugin.wasm");
    run(
      process.execPath,
      [jco, "componentize", entry, "--wit", wit, "--world-name", "plugin", "--bundle", "--bundle-config", config, "-o", raw],
      "jco componentize",
    );
    if (existsSync(manifest)) {
      run(values.tack, ["plugin", "embed", raw, "--manifest", manifest, "-o", output], "tack plugin embed");
    } else {
      copyFileSync(raw, output);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const size = statSync(output).size;
  console.log(`built ${output} (${(size / 1e6).toFixed(1)} MB)${existsSync(manifest) ? ` with ${manifest}` : ""}`);
}

/** `tsc --noEmit --strict` over the plugin, with `tack-sdk` typed by this SDK. */
function typeCheck(plugin, tmp) {
  const tsc = join(SDK, "node_modules", "typescript", "bin", "tsc");
  const config = join(tmp, "tsconfig.json");
  writeFileSync(
    config,
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: "es2022",
        module: "esnext",
        moduleResolution: "bundler",
        allowImportingTsExtensions: true,
        lib: ["es2022", "dom"],
        paths: {
          "tack-sdk": [join(SDK, "src", "index.d.ts")],
          "tack-sdk/files": [join(SDK, "src", "files.d.ts")],
        },
      },
      files: [plugin],
    }),
  );
  const done = spawnSync(process.execPath, [tsc, "-p", config], { encoding: "utf8" });
  if (done.status !== 0) {
    throw new BuildError(
      `${basename(plugin)} does not type-check:\n${(done.stdout + done.stderr).trim()}`,
      "fix the types, or build anyway with --no-check",
    );
  }
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === "build") build(rest);
  else if (command === "-h" || command === "--help") console.log(USAGE);
  else throw new BuildError(command ? `unknown command \`${command}\`` : "no command given", USAGE);
} catch (e) {
  if (!(e instanceof BuildError)) throw e;
  console.error(`error: ${e.message}`);
  if (e.help) console.error(`help: ${e.help}`);
  process.exit(1);
}
