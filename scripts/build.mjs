// Build the CLI: dist/hapops.cjs (what you run), the program it loads (dist/hapops.program.js)
// and a V8 code cache of that program (dist/hapops.program.cache), so a one-shot command starts
// fast.
//
//   node scripts/build.mjs
//   import { buildBundle } from "./build.mjs"      (scripts/package.mjs: the .deb's and the binary's)
//
// Where start-up went (node --cpu-prof on `hapops info`, Node 20; bench/startup.mjs measures it):
// compiling the 440 KB bundle ~11 ms, and loading node:child_process, node:crypto and node:net
// for code the command never calls ~8 ms. So:
// - hapops.cjs is a small launcher: it compiles the program with vm.Script and the code cache a
//   warm-up run left (Node 20 neither caches a main module's code nor has
//   module.enableCompileCache). Without the cache, or with one V8 rejects (another Node), it
//   compiles as before: the cache only ever saves time. The program is a file of its own, not
//   a string inside the launcher: V8 would scan a 440 KB literal on every start (~5 ms);
// - those builtins load on first use (lazyBuiltins below), not when the program starts.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

/**
 * Builtins that cost a millisecond or more to load (measured on Node 20: tls 6.4 ms, crypto
 * 3.6, child_process 2.6, net 2.0) and that a one-shot command often never calls: commander
 * loads child_process for subcommands we do not have, a read loads crypto with the certificate
 * code. Each becomes an object whose properties load the real module when first read. esbuild
 * reads an import's property at each use (`(0, m.execFileSync)(...)`), so the program still
 * gets the real functions and classes.
 */
const LAZY = ["child_process", "crypto", "net", "tls", "dgram", "http", "readline", "zlib"];

function lazyBuiltins() {
  const need = createRequire(import.meta.url);
  return {
    name: "lazy-builtins",
    setup(b) {
      const filter = new RegExp(`^(node:)?(${LAZY.join("|")})$`);
      b.onResolve({ filter }, (args) =>
        args.namespace === "lazy-builtin"
          ? { path: args.path, external: true }
          : { path: args.path.replace(/^node:/, ""), namespace: "lazy-builtin" },
      );
      b.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, ({ path }) => ({
        // The names are those of the Node that builds: the bundle targets that Node.
        contents: [
          "let m;",
          `const load = () => (m ??= require("node:${path}"));`,
          `for (const k of ${JSON.stringify(Object.keys(need(`node:${path}`)))})`,
          "  Object.defineProperty(exports, k, { enumerable: true, get: () => load()[k] });",
        ].join("\n"),
        loader: "js",
      }));
    },
  };
}

/**
 * The program: one function expression `(exports, require, module, __filename, __dirname) =>`,
 * headed by a comment naming the build. A code cache starts with the same header: V8 checks
 * only a cache's source length and its own version, so a cache left from another build of the
 * same length would run that build's code.
 */
async function bundleProgram(define) {
  const out = await build({
    entryPoints: [join(root, "src/cli/bin.ts")],
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    minify: true,
    legalComments: "none",
    // `import("node:tls")` becomes a require: vm.Script gets no dynamic-import loader on Node 20.
    supported: { "dynamic-import": false },
    define: { HAPOPS_VERSION: JSON.stringify(pkg.version), ...define },
    plugins: [lazyBuiltins()],
    write: false,
    logLevel: "warning",
  });
  const fn = `(function (exports, require, module, __filename, __dirname) {${out.outputFiles[0].text}\n})`;
  const id = createHash("sha256").update(fn).digest("hex").slice(0, 32);
  return `/*hapops ${pkg.version} ${id}*/${fn}`;
}

/** Compile `program` (its text) with `cache` (a Buffer, or undefined); see bundleProgram. */
export const COMPILE = `function compile(vm, program, filename, cache) {
  let cachedData;
  const header = program.slice(0, program.indexOf("*/") + 2);
  if (cache && cache.toString("latin1", 0, header.length) === header)
    cachedData = cache.subarray(header.length);
  return new vm.Script(program, { filename, cachedData });
}`;

const LAUNCHER = `#!/usr/bin/env node
"use strict";
// hapops, built by scripts/build.mjs: runs hapops.program.js beside this file, compiled with the
// code cache hapops.program.cache when it is there and from the same build.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");
${COMPILE}
const file = join(__dirname, "hapops.program.js");
let cache;
try {
  cache = readFileSync(join(__dirname, "hapops.program.cache"));
} catch {}
compile(require("node:vm"), readFileSync(file, "latin1"), file, cache)
  .runInThisContext()(exports, require, module, __filename, __dirname);
`;

/**
 * Run the program once for each argv in `runs`, each run starting from the cache the one before
 * left, and keep the last cache: V8 writes every function a run compiled, not only the top
 * level. `--version` builds the command tree every command starts with; `info` on a socket
 * that is not there adds reading a config and connecting; a drain's dry run, the audit log.
 */
function warmCache(dir) {
  const scratch = mkdtempSync(join(tmpdir(), "hapops-warm-"));
  const config = join(scratch, "hapops.yaml");
  writeFileSync(
    config,
    `socket: ${join(scratch, "none.sock")}\naudit:\n  path: ${join(scratch, "audit.jsonl")}\n`,
  );
  const runs = [["--version"], ["info"], ["drain", "be/srv", "--dry-run"]];
  const warm = `
    const vm = require("node:vm"), fs = require("node:fs"), path = require("node:path");
    ${COMPILE}
    const [dir, ...argv] = process.argv.slice(1);
    const file = path.join(dir, "hapops.program.js"), out = path.join(dir, "hapops.program.cache");
    const program = fs.readFileSync(file, "latin1");
    let cache;
    try { cache = fs.readFileSync(out); } catch {}
    const script = compile(vm, program, file, cache);
    process.argv = [process.argv[0], path.join(dir, "hapops.cjs"), ...argv];
    process.on("exit", () => {
      const header = program.slice(0, program.indexOf("*/") + 2);
      const tmp = out + "." + process.pid + ".tmp";
      fs.writeFileSync(tmp, Buffer.concat([Buffer.from(header, "latin1"), script.createCachedData()]));
      fs.renameSync(tmp, out);
    });
    script.runInThisContext()(exports, require, module, path.join(dir, "hapops.cjs"), dir);
  `;
  try {
    for (const argv of runs) {
      const r = spawnSync(process.execPath, ["-e", warm, dir, ...argv], {
        stdio: ["ignore", "ignore", "pipe"],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: scratch, HAPOPS_CONFIG: config },
        encoding: "utf8",
      });
      // info and the drain fail (exit 4: no socket), as intended; anything else is a broken build.
      if (r.status !== 0 && r.status !== 4)
        throw new Error(`warming the code cache with ${argv.join(" ")}: ${r.stderr}`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Build hapops.cjs, hapops.program.js and hapops.program.cache into `dir`. `define` adds
 * compile-time constants (the Debian package's). Returns the three paths.
 */
export async function buildBundle({ dir, define = {} }) {
  const program = await bundleProgram(define);
  mkdirSync(dir, { recursive: true });
  const files = {
    launcher: join(dir, "hapops.cjs"),
    program: join(dir, "hapops.program.js"),
    cache: join(dir, "hapops.program.cache"),
  };
  // Each file is written beside itself and renamed into place: hapops may be running from this
  // directory meanwhile (the tests build while others run), and must never read half a file.
  // Between the renames, the old cache does not name the new program, so it is left unused.
  const put = (path, content, mode) => {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, content, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  };
  put(files.program, Buffer.from(program, "latin1"), 0o644);
  put(files.launcher, LAUNCHER, 0o755);
  warmCache(dir);
  return files;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  await buildBundle({ dir: join(root, "dist") });
