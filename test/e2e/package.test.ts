import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliResult } from "../helpers/cli.js";
import { NEUTRAL_CONFIG } from "../helpers/cli.js";
import { canMakePrivateHost } from "../helpers/host.js";
import { useLab } from "../helpers/lab.js";

/**
 * What operators install, built by scripts/package.mjs once for this file into a temp dir (never
 * dist/, which the other files run): the single binary, run without Node on PATH, and the Debian
 * package: its files and modes, lintian, the man page, and its whole life (install over an older
 * build, setup, a drain and SIGUSR1 through sudo, remove, purge) by scripts/ci-package.sh in a
 * private mount namespace, so this machine's files, users and dpkg database stay as they were.
 */

const ROOT = join(import.meta.dirname, "..", "..");
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
).version;
const have = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

const BINARY_SKIP =
  process.platform === "linux" && process.arch === "x64"
    ? undefined
    : `the binary is built for Linux x64 (this is ${process.platform} ${process.arch})`;
const DEB_SKIP =
  BINARY_SKIP ??
  (have("dpkg-deb") && have("dpkg-shlibdeps")
    ? undefined
    : "dpkg-deb and dpkg-shlibdeps are not installed (apt-get install dpkg-dev)");
const LINTIAN_SKIP = DEB_SKIP ?? (have("lintian") ? undefined : "lintian is not installed");
const INSTALL_SKIP =
  DEB_SKIP ??
  (canMakePrivateHost() && have("apt-get")
    ? undefined
    : "installing needs root, apt-get and a private mount namespace (unshare, overlayfs)");
for (const [what, why] of [
  ["the single binary", BINARY_SKIP],
  ["the Debian package", DEB_SKIP],
  ["lintian", LINTIAN_SKIP],
  ["installing the package", INSTALL_SKIP],
] as const)
  if (why) console.warn(`test/e2e/package.test.ts: ${what} skipped: ${why}`);
const titled = (title: string, why: string | undefined) =>
  why ? `${title} (SKIPPED: ${why})` : title;

function run(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 600_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let out = "";
const DEB = () => join(out, `hapops_${VERSION}_amd64.deb`);
const BINARY = () => join(out, "hapops");

/** A file of the package, as dpkg would install it. */
function fileOfDeb(path: string): Buffer {
  const r = spawnSync(
    "sh",
    ["-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO "$2"`, "sh", DEB(), path],
    {
      maxBuffer: 1 << 28,
    },
  );
  if (r.status !== 0) throw new Error(`${path}: ${r.stderr.toString()}`);
  return r.stdout;
}

describe.skipIf(BINARY_SKIP !== undefined)(
  titled("npm run package", BINARY_SKIP),
  { timeout: 600_000 },
  () => {
    const lab = useLab({ backends: [{ name: "be_app", servers: [{ name: "app1" }] }] });

    beforeAll(async () => {
      out = mkdtempSync(join(tmpdir(), "hapops-package-"));
      // gzip: the test's package builds in seconds where xz takes a minute.
      const args = ["scripts/package.mjs", "--out", out, "--compress", "gzip"];
      if (DEB_SKIP) args.push("--binary-only");
      const r = await run(process.execPath, [join(ROOT, ...args[0]!.split("/")), ...args.slice(1)]);
      if (r.code !== 0) throw new Error(`npm run package failed:\n${r.stdout}\n${r.stderr}`);
    }, 600_000);

    afterAll(() => {
      if (out) rmSync(out, { recursive: true, force: true });
    });

    it("the binary runs --version and info against a HAProxy with no Node on PATH", async () => {
      const env = { PATH: "/nonexistent", HOME: "/tmp", HAPOPS_CONFIG: NEUTRAL_CONFIG };
      const version = await run(BINARY(), ["--version"], env);
      expect(version.code, version.stderr).toBe(0);
      expect(version.stdout.trim()).toBe(VERSION);
      const info = await run(BINARY(), ["-s", lab().sockets.admin, "info", "--json"], env);
      expect(info.code, info.stderr).toBe(0);
      expect(JSON.parse(info.stdout)).toHaveProperty("Version");
      expect(info.stderr).toBe("");
    });

    it("setup from the binary is refused, saying why and what to install instead", async () => {
      const r = await run(BINARY(), ["setup", "--dry-run"], {
        PATH: "/usr/bin:/bin",
        HAPOPS_CONFIG: NEUTRAL_CONFIG,
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/single binary cannot be made safe under sudo on Node 20/);
      expect(r.stderr).toMatch(/Debian package/);
    });

    it.skipIf(!have("npm"))(
      titled(
        "npm install -g from a clone puts hapops on PATH (as npm link does)",
        have("npm") ? undefined : "npm is not on PATH",
      ),
      async () => {
        // A prefix of its own: the machine's global packages stay as they are. A folder is
        // installed as a link to it, with nothing fetched (--offline).
        const prefix = mkdtempSync(join(tmpdir(), "hapops-npm-"));
        try {
          const npm = await run("npm", [
            "install",
            "-g",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--prefix",
            prefix,
            ROOT,
          ]);
          expect(npm.code, npm.stderr).toBe(0);
          const env = {
            PATH: `${join(prefix, "bin")}:/usr/bin:/bin`,
            HOME: "/tmp",
            HAPOPS_CONFIG: NEUTRAL_CONFIG,
          };
          const version = await run("hapops", ["--version"], env);
          expect(version.stdout.trim()).toBe(VERSION);
          const servers = await run("hapops", ["-s", lab().sockets.admin, "servers"], env);
          expect(servers.code, servers.stderr).toBe(0);
          expect(servers.stdout).toMatch(/^be_app\/app1 /m);
        } finally {
          rmSync(prefix, { recursive: true, force: true });
        }
        // What npm publishes (and installs from a tarball): the launcher, its program and cache.
        const pack = await run("npm", ["pack", "--dry-run", "--json"], {
          ...process.env,
          npm_config_loglevel: "silent",
        });
        const files = (JSON.parse(pack.stdout) as { files: { path: string }[] }[])[0]!.files.map(
          (f) => f.path,
        );
        expect(files).toEqual(
          expect.arrayContaining([
            "dist/hapops.cjs",
            "dist/hapops.program.js",
            "dist/hapops.program.cache",
          ]),
        );
      },
    );

    it.skipIf(DEB_SKIP !== undefined)(
      titled(
        "the package: the command, Node and the program, completion, man page, config",
        DEB_SKIP,
      ),
      () => {
        const info = spawnSync("dpkg-deb", ["-f", DEB()], { encoding: "utf8" }).stdout;
        expect(info).toMatch(/^Package: hapops$/m);
        expect(info).toMatch(new RegExp(`^Version: ${VERSION.replace(/\./g, "\\.")}$`, "m"));
        expect(info).toMatch(/^Architecture: amd64$/m);
        expect(info).toMatch(/^Depends: .*libc6/m);
        expect(info).not.toMatch(/nodejs/);

        // dpkg-deb -c: "<mode> <owner>/<group> <size> <date> <time> ./<path>"
        const listing = spawnSync("dpkg-deb", ["-c", DEB()], { encoding: "utf8" }).stdout;
        const entries = new Map(
          listing
            .trim()
            .split("\n")
            .map((l) => l.trim().split(/\s+/))
            .map((w) => [
              w[5]!.replace(/^\./, "").replace(/\/$/, "") || "/",
              { mode: w[0]!, owner: w[1]! },
            ]),
        );
        for (const e of entries.values()) expect(e.owner).toBe("root/root");
        const want: Record<string, string> = {
          "/usr/sbin/hapops": "-rwxr-xr-x",
          "/usr/lib/hapops/node": "-rwxr-xr-x",
          "/usr/lib/hapops/hapops.cjs": "-rw-r--r--",
          "/usr/lib/hapops/hapops.program.js": "-rw-r--r--",
          "/usr/lib/hapops/hapops.program.cache": "-rw-r--r--",
          "/usr/share/bash-completion/completions/hapops": "-rw-r--r--",
          "/usr/share/zsh/vendor-completions/_hapops": "-rw-r--r--",
          "/usr/share/man/man8/hapops.8.gz": "-rw-r--r--",
          "/etc/hapops/hapops.yaml": "-rw-r--r--",
          "/usr/share/doc/hapops/copyright": "-rw-r--r--",
        };
        for (const [path, mode] of Object.entries(want))
          expect(entries.get(path)?.mode, path).toBe(mode);
        // No sudoers rule until `hapops setup --group`, and no world- or group-writable file.
        expect([...entries.keys()].some((p) => p.includes("sudoers"))).toBe(false);
        for (const [path, e] of entries) expect(e.mode.slice(5), path).not.toMatch(/w/);

        const control = spawnSync("sh", ["-c", `dpkg-deb -I "$1" conffiles`, "sh", DEB()], {
          encoding: "utf8",
        }).stdout;
        expect(control.trim()).toBe("/etc/hapops/hapops.yaml");

        // The command starts the package's Node with the debugger closed, in a fixed environment.
        const wrapper = fileOfDeb("./usr/sbin/hapops").toString();
        expect(wrapper).toMatch(
          /exec \/usr\/bin\/env -i PATH=\/usr\/sbin:\/usr\/bin:\/sbin:\/bin .* \/usr\/lib\/hapops\/node (--inspect-port=192\.0\.2\.1:9229|--disable-sigusr1) \/usr\/lib\/hapops\/hapops\.cjs "\$@"/,
        );
        expect(fileOfDeb("./usr/share/bash-completion/completions/hapops").toString()).toMatch(
          /complete .*hapops/,
        );
        expect(fileOfDeb("./usr/share/zsh/vendor-completions/_hapops").toString()).toMatch(
          /^#compdef hapops/,
        );
      },
    );

    it.skipIf(DEB_SKIP !== undefined)(
      titled("the man page is the program's --help: every command is in it", DEB_SKIP),
      async () => {
        const page = gunzipSync(fileOfDeb("./usr/share/man/man8/hapops.8.gz")).toString();
        expect(page).toMatch(/^\.TH HAPOPS 8 /m);
        const help = await run(process.execPath, [join(ROOT, "dist", "hapops.cjs"), "--help"]);
        const commands = help.stdout
          .split("Commands:\n")[1]!
          .split("\n\n")[0]!
          .split("\n")
          .map((l) => /^ {2}([a-z-]+)/.exec(l)?.[1])
          .filter((c): c is string => c !== undefined && c !== "help");
        expect(commands.length).toBeGreaterThan(20);
        for (const c of commands)
          expect(page, c).toContain(`.SS "hapops ${c.replace(/-/g, "\\-")}`);
        // Each command's own options and examples are there, as --help prints them.
        expect(page).toContain("\\-\\-wait\\-timeout <dur>");
        expect(page).toContain("$ hapops drain be_app/app1 \\-\\-wait \\-\\-then maint");
        if (have("man")) {
          const r = spawnSync(
            "sh",
            ["-c", "gunzip -c | man --warnings -E UTF-8 -l -Tutf8 -Z - >/dev/null"],
            {
              input: fileOfDeb("./usr/share/man/man8/hapops.8.gz"),
              encoding: "utf8",
            },
          );
          expect(r.stderr).toBe("");
        }
      },
    );

    it.skipIf(LINTIAN_SKIP !== undefined)(
      titled("lintian reports no errors", LINTIAN_SKIP),
      async () => {
        const r = await run("lintian", ["--fail-on", "error", "--tag-display-limit", "0", DEB()]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(r.stdout).not.toMatch(/^E: /m);
      },
    );

    it.skipIf(INSTALL_SKIP !== undefined)(
      titled(
        "install over an older build (config kept), setup, a drain and SIGUSR1 through sudo, remove, purge: in a private host",
        INSTALL_SKIP,
      ),
      async () => {
        const r = await run(join(ROOT, "scripts", "ci-package.sh"), [
          "--private",
          "--no-lintian",
          "--deb",
          DEB(),
        ]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(r.stderr).toMatch(/ci-package: ok: /);
        // Nothing of it reached this host.
        for (const p of [
          "/usr/sbin/hapops",
          "/usr/lib/hapops",
          "/etc/hapops",
          "/etc/sudoers.d/hapops",
        ])
          expect(spawnSync("test", ["-e", p]).status, p).not.toBe(0);
      },
    );
  },
);
