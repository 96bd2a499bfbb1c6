// npm run package: what operators install, built here from this checkout, with no network:
//
// - dist/hapops: one executable (Linux x64) with no runtime dependency: a Node single executable
//   application (SEA) carrying the program and its code cache as assets;
// - dist/hapops_<version>_amd64.deb, made with dpkg-deb: /usr/sbin/hapops, Node and the program
//   under /usr/lib/hapops, bash and zsh completion, the man page (from the program's --help),
//   an example /etc/hapops/hapops.yaml (a conffile) and /var/log/hapops (0700, by postinst).
//
//   node scripts/package.mjs [--binary-only] [--compress xz|gzip|none] [--out DIR]
//                            [--deb-version V]
//
// Why the package does not use the single binary as /usr/sbin/hapops: operators run it through
// sudo, and a root process they can signal must not open a debugger on SIGUSR1 (sudo relays
// signals). Measured on Node 20.20: a SEA opens one on 127.0.0.1:9229 at SIGUSR1, ignores node
// flags on its command line (they are the program's arguments) and refuses every inspector flag
// in NODE_OPTIONS ("--inspect-port= is not allowed in NODE_OPTIONS": Node registers no debug
// options in a SEA), so nothing can close its debugger before its first line runs. The package
// therefore runs Node as `hapops setup` does, started with --inspect-port at an address no
// interface has (or --disable-sigusr1 on Node 22.14+), which the gate under sudo checks.
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const need = createRequire(import.meta.url);
// On a fresh clone the build's own dependencies (esbuild, postject) come first, as for npm test.
if (!existsSync(join(root, "node_modules", ".package-lock.json")))
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
const { build } = await import("esbuild");
const { buildBundle, COMPILE } = await import("./build.mjs");
const { helpOf, manPage } = await import("./man.mjs");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : def);
const OUT = opt("out", join(root, "dist"));
const COMPRESS = opt("compress", "xz");

/** Where the package puts things; the man page's FILES section and setup name the same. */
const CMD = "/usr/sbin/hapops";
const LIB = "/usr/lib/hapops";

function say(text) {
  process.stderr.write(`package: ${text}\n`);
}

function have(tool) {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0;
}

/** A reproducible date for the man page and the changelog: the last commit's, else today. */
function buildDate() {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch) return new Date(Number(epoch) * 1000);
  try {
    return new Date(
      execFileSync("git", ["-C", root, "log", "-1", "--format=%cI"], { encoding: "utf8" }).trim(),
    );
  } catch {
    return new Date();
  }
}

/** Node's own binary, without its debug symbols when strip is there (lintian: unstripped). */
function copyNode(to) {
  copyFileSync(realpathSync(process.execPath), to);
  chmodSync(to, 0o755);
  if (have("strip")) execFileSync("strip", ["--strip-unneeded", to]);
  else say("strip not found: Node's binary keeps its debug symbols (apt-get install binutils)");
}

// --- the single executable -------------------------------------------------------------------

/**
 * The SEA's entry: the program and its code cache come from the executable's assets and are
 * compiled as the launcher does it (build.mjs). The cache is the one build.mjs warmed for this
 * very Node, so V8 takes it (measured, and checked by test/e2e/package.test.ts through --version).
 */
/** The fuse postject flips in Node's binary (Node's docs, "Single executable applications"). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

const SEA_MAIN = `"use strict";
// hapops single executable (scripts/package.mjs): the program is an asset, with its code cache.
const sea = require("node:sea");
${COMPILE}
const cache = Buffer.from(sea.getRawAsset("hapops.program.cache"));
compile(require("node:vm"), sea.getAsset("hapops.program.js", "utf8"), process.execPath, cache)
  .runInThisContext()(exports, require, module, __filename, __dirname);
`;

function buildBinary(files, out) {
  const work = mkdtempSync(join(tmpdir(), "hapops-sea-"));
  try {
    writeFileSync(join(work, "main.cjs"), SEA_MAIN);
    const config = {
      main: join(work, "main.cjs"),
      output: join(work, "hapops.blob"),
      disableExperimentalSEAWarning: true,
      assets: { "hapops.program.js": files.program, "hapops.program.cache": files.cache },
    };
    writeFileSync(join(work, "sea.json"), JSON.stringify(config));
    execFileSync(process.execPath, ["--experimental-sea-config", join(work, "sea.json")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const tmp = join(work, "hapops");
    copyNode(tmp);
    // The blob goes into an ELF note, and the fuse tells Node it carries a program. postject's
    // ELF library warns about every note section without a name; its errors still show.
    const cli = join(dirname(need.resolve("postject")), "cli.js");
    const r = spawnSync(
      process.execPath,
      [cli, tmp, "NODE_SEA_BLOB", config.output, "--sentinel-fuse", SEA_FUSE],
      { encoding: "utf8" },
    );
    const noise = /^warning: Can't find string offset for section name/;
    const said = `${r.stdout}${r.stderr}`.split("\n").filter((l) => l && !noise.test(l));
    if (r.status !== 0) throw new Error(`postject failed: ${said.join("\n")}`);
    chmodSync(tmp, 0o755);
    copyFileSync(tmp, `${out}.tmp`);
    chmodSync(`${out}.tmp`, 0o755);
    renameSync(`${out}.tmp`, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// --- the Debian package ----------------------------------------------------------------------

/** wrapperScript and closeDebugger from src/host/setup.ts: the package's command is setup's. */
async function setupHelpers() {
  const out = await build({
    stdin: {
      contents: 'export { closeDebugger, wrapperScript } from "./src/host/setup.ts";',
      resolveDir: root,
      loader: "ts",
    },
    bundle: true,
    platform: "node",
    format: "esm",
    write: false,
    logLevel: "warning",
  });
  const url = `data:text/javascript;base64,${Buffer.from(out.outputFiles[0].text).toString("base64")}`;
  return import(url);
}

function write(path, content, mode) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** shlibs:Depends for Node's binary, from dpkg-shlibdeps (libc6, libgcc-s1, libstdc++6). */
function sharedLibraryDepends(stage, binary) {
  mkdirSync(join(stage, "debian"), { recursive: true });
  writeFileSync(
    join(stage, "debian", "control"),
    "Source: hapops\n\nPackage: hapops\nArchitecture: amd64\n",
  );
  // Its warnings (Node links libdl and libpthread it does not need) are Node's business.
  const out = execFileSync("dpkg-shlibdeps", ["-O", `-e${binary}`], {
    cwd: stage,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  rmSync(join(stage, "debian"), { recursive: true, force: true });
  return /shlibs:Depends=(.*)/.exec(out)?.[1]?.trim() ?? "";
}

function copyrightFile() {
  const nodeLicense = [
    join(dirname(realpathSync(process.execPath)), "..", "share", "doc", "nodejs", "LICENSE"),
    "/usr/share/doc/nodejs/copyright",
  ].find((p) => existsSync(p));
  const licence = (name) => {
    try {
      const dir = join(root, "node_modules", name);
      const f = readdirSync(dir).find((x) => /^licen[cs]e/i.test(x));
      return f ? readFileSync(join(dir, f), "utf8") : "";
    } catch {
      return "";
    }
  };
  const indent = (t) =>
    t
      .trim()
      .split("\n")
      .map((l) => (l.trim() === "" ? " ." : ` ${l}`))
      .join("\n");
  const deps = Object.keys(pkg.dependencies);
  return [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: hapops",
    "",
    "Files: *",
    "Copyright: hapops contributors",
    `License: ${pkg.license === "MIT" ? "Expat" : pkg.license}`,
    "",
    `Files: ${LIB}/hapops.program.js ${LIB}/hapops.program.cache`,
    `Comment: hapops, bundled with its dependencies: ${deps.join(", ")}.`,
    "Copyright: hapops contributors, and the authors of each dependency",
    "License: Expat and ISC",
    "",
    `Files: ${LIB}/node`,
    `Comment: Node.js ${process.version}, the runtime the program runs on.`,
    "Copyright: Node.js contributors, and the authors of the parts it includes",
    "License: Node.js",
    "",
    "License: Expat",
    indent(
      licence("commander") ||
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software (MIT).",
    ),
    "",
    "License: Node.js",
    nodeLicense
      ? indent(
          // Debian ships the Apache License once, in common-licenses; a copy here is an error.
          readFileSync(nodeLicense, "utf8").replace(
            /TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION[^]*?END OF TERMS AND CONDITIONS/g,
            "(the terms of the Apache License 2.0: /usr/share/common-licenses/Apache-2.0)",
          ),
        )
      : ` See https://github.com/nodejs/node/blob/${process.version}/LICENSE`,
    "",
  ].join("\n");
}

async function buildDeb(version) {
  for (const [tool, from] of [
    ["dpkg-deb", "dpkg"],
    ["dpkg-shlibdeps", "dpkg-dev"],
  ])
    if (!have(tool))
      throw new Error(
        `${tool} is needed for the Debian package (apt-get install ${from}), or pass --binary-only`,
      );
  const stage = mkdtempSync(join(tmpdir(), "hapops-deb-"));
  const pkgRoot = join(stage, "root");
  try {
    const lib = join(pkgRoot, LIB);
    // The package's build knows its command: `hapops setup` then installs only the sudoers rule.
    await buildBundle({ dir: lib, define: { HAPOPS_PACKAGED_COMMAND: JSON.stringify(CMD) } });
    // /usr/sbin/hapops runs the launcher with the package's node: no #! line, not executable.
    const launcher = join(lib, "hapops.cjs");
    writeFileSync(launcher, readFileSync(launcher, "utf8").replace(/^#!.*\n/, ""));
    for (const f of readdirSync(lib)) chmodSync(join(lib, f), 0o644);
    copyNode(join(lib, "node"));
    const node = join(lib, "node");
    const run = (...words) =>
      execFileSync(node, [join(lib, "hapops.cjs"), ...words], {
        encoding: "utf8",
        env: { PATH: "/usr/bin:/bin", HOME: "/tmp", NO_COLOR: "1" },
      });

    const { closeDebugger, wrapperScript } = await setupHelpers();
    write(
      join(pkgRoot, CMD),
      wrapperScript(`${LIB}/node`, closeDebugger(node), `${LIB}/hapops.cjs`, "the hapops package"),
      0o755,
    );

    // Completion scripts from the program itself (hapops completion bash|zsh).
    for (const [shell, path] of [
      ["bash", "/usr/share/bash-completion/completions/hapops"],
      ["zsh", "/usr/share/zsh/vendor-completions/_hapops"],
    ]) {
      let script;
      try {
        script = run("completion", shell);
      } catch (e) {
        throw new Error(
          `hapops completion ${shell} failed, so the package has no ${path}: ${e.stderr ?? e.message}`,
        );
      }
      write(join(pkgRoot, path), script, 0o644);
    }

    const date = buildDate();
    const man = manPage({
      help: helpOf([node, join(lib, "hapops.cjs")]),
      version,
      date: date.toISOString().slice(0, 10),
      files: [
        ["/etc/hapops/hapops.yaml", "the system configuration; under sudo the only one read"],
        ["/var/log/hapops/audit.jsonl", "the audit log (root's runs and sudo runs)"],
        ["/etc/sudoers.d/hapops", "the operators' sudoers rule, written by hapops setup"],
        [`${LIB}/`, "Node and the program /usr/sbin/hapops runs"],
      ],
    });
    write(join(pkgRoot, "usr/share/man/man8/hapops.8.gz"), gzipSync(man, { level: 9 }), 0o644);

    write(
      join(pkgRoot, "etc/hapops/hapops.yaml"),
      readFileSync(join(root, "packaging", "hapops.yaml")),
      0o644,
    );
    const doc = join(pkgRoot, "usr/share/doc/hapops");
    write(join(doc, "copyright"), copyrightFile(), 0o644);
    write(
      join(pkgRoot, "usr/share/lintian/overrides/hapops"),
      [
        "# Node.js links its own zlib (and OpenSSL, ICU...) statically: the package carries Node",
        "# on purpose, as Debian 12 has no Node 20, and hapops has no other runtime dependency.",
        `embedded-library zlib [${LIB.slice(1)}/node]`,
        "",
      ].join("\n"),
      0o644,
    );
    const rfc2822 = date.toUTCString().replace("GMT", "+0000");
    const maintainer = `${process.env.DEBFULLNAME ?? "hapops maintainers"} <${process.env.DEBEMAIL ?? "hapops@example.org"}>`;
    // A native package: the changelog is changelog.gz (gzip -n: no name or time in it).
    const changelog = `hapops (${version}) unstable; urgency=medium\n\n  * Built by scripts/package.mjs from hapops ${pkg.version}.\n\n -- ${maintainer}  ${rfc2822}\n`;
    write(join(doc, "changelog.gz"), gzipSync(changelog, { level: 9 }), 0o644);

    // Directories 0755 whatever the umask; dpkg-deb takes modes from the tree.
    for (const d of walkDirs(pkgRoot)) chmodSync(d, 0o755);

    const control = join(pkgRoot, "DEBIAN");
    mkdirSync(control, { mode: 0o755 });
    const depends = sharedLibraryDepends(stage, join(lib, "node"));
    const files = walk(pkgRoot).filter((f) => !f.startsWith(control));
    const installedKb = Math.ceil(files.reduce((n, f) => n + statSync(f).size, 0) / 1024);
    write(
      join(control, "control"),
      [
        "Package: hapops",
        `Version: ${version}`,
        "Architecture: amd64",
        `Maintainer: ${maintainer}`,
        `Installed-Size: ${installedKb}`,
        `Depends: ${depends}`,
        "Recommends: sudo",
        "Suggests: haproxy",
        "Section: admin",
        "Priority: optional",
        "Description: safe, audited ops runner for the HAProxy runtime API",
        " hapops runs named, validated and verified operations on HAProxy through its",
        " runtime API (the stats socket): drain, maintenance, weights, certificate",
        " rotation, stick tables, maps, reloads, over one load balancer or many. Every",
        " change is planned from the live state, can be dry-run, is guarded, and is",
        " written to a hash-chained audit log with the operator's identity.",
        " .",
        " Operators run it through one sudoers rule, which `hapops setup --group <g>`",
        " installs. The package carries its own Node.js runtime.",
        "",
      ].join("\n"),
      0o644,
    );
    write(join(control, "conffiles"), "/etc/hapops/hapops.yaml\n", 0o644);
    for (const s of ["postinst", "postrm"])
      write(join(control, s), readFileSync(join(root, "packaging", s)), 0o755);
    write(
      join(control, "md5sums"),
      files
        .map(
          (f) =>
            `${createHash("md5").update(readFileSync(f)).digest("hex")}  ${relative(pkgRoot, f)}\n`,
        )
        .join(""),
      0o644,
    );

    const deb = join(OUT, `hapops_${version}_amd64.deb`);
    mkdirSync(OUT, { recursive: true });
    execFileSync("dpkg-deb", ["--root-owner-group", `-Z${COMPRESS}`, "--build", pkgRoot, deb], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    return deb;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function walkDirs(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => [join(dir, e.name), ...walkDirs(join(dir, e.name))]);
}

if (process.platform !== "linux" || process.arch !== "x64") {
  say(`builds for Linux x64 only (this is ${process.platform} ${process.arch})`);
  process.exit(2);
}
// The binary carries the bundle built here (dist/ by default; with --out, nothing in dist/ changes).
const files = await buildBundle({ dir: OUT });
const binary = join(OUT, "hapops");
buildBinary(files, binary);
const shown = (p) => (relative(process.cwd(), p).startsWith("..") ? p : relative(process.cwd(), p));
say(`built ${shown(binary)} (${(statSync(binary).size / 1e6).toFixed(0)} MB)`);
if (!args.includes("--binary-only")) {
  const deb = await buildDeb(opt("deb-version", pkg.version));
  say(`built ${shown(deb)} (${(statSync(deb).size / 1e6).toFixed(0)} MB)`);
}
