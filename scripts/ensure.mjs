// Install what hapops needs on a fresh machine before the demo, the tests or the bench run:
// npm dependencies, and (as root, on Debian) the haproxy, openssl and socat packages.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const say = (msg) => process.stderr.write(`ensure: ${msg}\n`);

function have(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

// npm dependencies: install when node_modules is missing or older than the lock file.
const marker = join(root, "node_modules", ".package-lock.json");
const lock = join(root, "package-lock.json");
if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  say("installing npm dependencies (npm ci)");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
}

// System packages the sandbox and the tests run for real.
const wanted = [
  ["haproxy", "haproxy"],
  ["openssl", "openssl"],
  ["socat", "socat"],
  ["sudo", "sudo"],
  ["tmux", "tmux"],
  ["setfacl", "acl"],
  ["ss", "iproute2"],
].filter(([cmd]) => !have(cmd));
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const debian = existsSync("/etc/debian_version");
// Only some tests need these (they skip, saying so, without them): ansible-core for the Ansible
// module's, zsh and fish for the shell completion's. Installed as root on Debian, never a reason
// to stop the demo or the tests of someone who is not root.
const optional = [
  ["ansible-playbook", "ansible-core"],
  ["zsh", "zsh"],
  ["fish", "fish"],
].filter(([cmd]) => !have(cmd));
if (optional.length > 0 && !(isRoot && debian))
  say(
    `not installed: ${optional.map(([, p]) => p).join(", ")} (the tests that need them will skip)`,
  );
if (isRoot && debian) wanted.push(...optional);
if (wanted.length > 0) {
  const pkgs = wanted.map(([, pkg]) => pkg);
  if (isRoot && debian) {
    say(`installing ${pkgs.join(", ")} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    execFileSync("apt-get", ["update", "-q"], { stdio: "inherit", env });
    execFileSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...pkgs], {
      stdio: "inherit",
      env,
    });
  } else {
    say(
      `missing: ${pkgs.join(", ")}. Install ${pkgs.length > 1 ? "them" : "it"} first, e.g. ` +
        `"sudo apt-get install -y ${pkgs.join(" ")}" (run as root and this script does it for you).`,
    );
    process.exit(1);
  }
}
