import { execFileSync } from "node:child_process";
import { request } from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hapops, json } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";
import { atLeast, itWhere, lacks, testHaproxy } from "../helpers/versions.js";

interface ServerRow {
  backend: string;
  server: string;
  address: string;
  port: number;
  operational: string;
  admin: string;
  weight: number;
  initialWeight: number;
  check: string | null;
  adminFlags: string[];
}

const ESC = String.fromCharCode(27);
const ANSI = new RegExp(`${ESC}\\[`);
const GREEN_UP = new RegExp(`${ESC}\\[32mUP`);

const lab = useLab({ tcpSocket: true, tlsSocket: true });

function get(port: number, path = "/"): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    })
      .on("error", reject)
      .end();
  });
}

describe("servers", () => {
  it("lists every server with decoded states, address, weight and check", async () => {
    const r = await hapops(["-s", lab().sockets.admin, "servers", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const rows = json<ServerRow[]>(r);
    const app1 = rows.find((s) => s.backend === "be_app" && s.server === "app1");
    expect(app1).toMatchObject({
      address: "127.0.0.1",
      port: lab().backends.get("be_app/app1")?.port,
      operational: "UP",
      admin: "READY",
      weight: 100,
      initialWeight: 100,
      check: "L7OK",
    });
    expect(rows.find((s) => s.server === "app3")).toMatchObject({ weight: 50, initialWeight: 50 });
    expect(rows.find((s) => s.server === "static:2")).toMatchObject({
      backend: "be_static",
      operational: "DOWN",
      admin: "MAINT",
    });
    // `disabled` in the config sets both forced and config maintenance (admin state 5).
    expect(rows.find((s) => s.server === "static:2")?.adminFlags).toContain("CMAINT");
    expect(rows.map((s) => `${s.backend}/${s.server}`)).toEqual([
      ...(testHaproxy().tls ? ["cli_tls/admin"] : []),
      "be_app/app1",
      "be_app/app2",
      "be_app/app3",
      "be_api/api-1.blue",
      "be_api/api-2.green",
      "be_static/static_1",
      "be_static/static:2",
    ]);
  });

  it("prints an aligned table without colour when stdout is not a terminal", async () => {
    const r = await hapops(["-s", lab().sockets.admin, "servers", "be_api"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(ANSI);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^SERVER\s+ADDRESS\s+STATE\s+ADMIN\s+WEIGHT\s+SESSIONS\s+CHECK$/);
    expect(lines).toHaveLength(3);
    const col = lines[0]!.indexOf("STATE");
    for (const l of lines.slice(1)) expect(l.slice(col, col + 2)).toBe("UP");
  });

  it("colours only when asked, and NO_COLOR wins", async () => {
    const forced = await hapops(["-s", lab().sockets.admin, "servers"], {
      env: { FORCE_COLOR: "1" },
    });
    expect(forced.stdout).toMatch(GREEN_UP);
    const no = await hapops(["-s", lab().sockets.admin, "servers"], {
      env: { FORCE_COLOR: "1", NO_COLOR: "1" },
    });
    expect(no.stdout).not.toMatch(ANSI);
  });

  it("names the closest backend when the name is wrong (exit 2)", async () => {
    const r = await hapops(["-s", lab().sockets.admin, "servers", "be_ap"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no backend named be_ap; did you mean be_api, be_app\?/);
  });

  it("rejects an injected command before anything is sent, and state is unchanged", async () => {
    const r = await hapops([
      "-s",
      lab().sockets.admin,
      "servers",
      "be_app;disable server be_app/app1",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/contains ';' \(a command separator\)/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const after = json<ServerRow[]>(
      await hapops(["-s", lab().sockets.admin, "servers", "be_app", "--json"]),
    );
    expect(after.every((s) => s.admin === "READY")).toBe(true);
  });
});

describe("stat", () => {
  it("shows one server's counters", async () => {
    await get(lab().httpPort);
    const r = await hapops(["-s", lab().sockets.admin, "stat", "be_api/api-1.blue", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const rows = json<
      {
        proxy: string;
        name: string;
        kind: string;
        status: string;
        fields: Record<string, string>;
      }[]
    >(r);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      proxy: "be_api",
      name: "api-1.blue",
      kind: "server",
      status: "UP",
    });
    expect(rows[0]?.fields["check_status"]).toBe("L7OK");
  });

  it("counts real traffic on the backend that served it", async () => {
    const before = json<{ name: string; stot: number }[]>(
      await hapops(["-s", lab().sockets.admin, "stat", "be_api", "--json"]),
    ).find((e) => e.name === "BACKEND")!.stot;
    for (let i = 0; i < 3; i++) expect(await get(lab().httpPort, "/api/x")).toBe(200);
    const after = json<{ name: string; stot: number }[]>(
      await hapops(["-s", lab().sockets.admin, "stat", "be_api", "--json"]),
    ).find((e) => e.name === "BACKEND")!.stot;
    expect(after - before).toBe(3);
  });

  it("refuses an unknown server with the names that exist", async () => {
    const r = await hapops(["-s", lab().sockets.admin, "stat", "be_app/app9"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /backend be_app has no server named app9; did you mean app1, app2, app3\?/,
    );
  });
});

describe("info", () => {
  it("reports the running process", async () => {
    const r = await hapops(["-s", lab().sockets.user, "info", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const info = json<Record<string, string>>(r);
    expect(info["Name"]).toBe("HAProxy");
    expect(Number(info["Pid"])).toBe(lab().pid);
    const human = await hapops(["-s", lab().sockets.user, "info"]);
    expect(human.stdout).toMatch(new RegExp(`^Pid:\\s+${lab().pid}$`, "m"));
  });
});

describe("certs", () => {
  itWhere(testHaproxy().tls ? "needs a build without TLS, such as haproxy-2.4.0" : undefined)(
    "on a build without TLS, says so in one line (exit 1) instead of HAProxy's command list",
    async () => {
      const r = await hapops(["-s", lab().sockets.admin, "certs"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        'hapops: this HAProxy does not know "show ssl cert" (Unknown command): it was built without TLS (OpenSSL), so it has no certificates to show or change; run this against a build with TLS\n',
      );
    },
  );

  itWhere(lacks("tls"))(
    "lists certificates soonest expiry first with SANs and days left",
    async () => {
      const r = await hapops(["-s", lab().sockets.operator, "certs", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const { certs, openTransactions } = json<{
        certs: { file: string; sans: string[]; daysLeft: number; subject: string }[];
        openTransactions: string[];
      }>(r);
      expect(certs.map((c) => c.file)).toEqual([
        join(lab().certDir, "other.org.pem"),
        join(lab().certDir, "example.com.pem"),
        join(lab().dir, "tls", "socket.pem"),
      ]);
      expect(certs[0]).toMatchObject({
        sans: ["other.org", "*.other.org"],
        subject: "/CN=other.org",
      });
      expect(certs[0]!.daysLeft).toBeGreaterThanOrEqual(19);
      expect(certs[0]!.daysLeft).toBeLessThanOrEqual(20);
      expect(certs[1]!.daysLeft).toBeGreaterThanOrEqual(89);
      expect(openTransactions).toEqual([]);
    },
  );

  it("reports a user-level socket as a level problem, not as memory (exit 4)", async () => {
    const r = await hapops(["-s", lab().sockets.user, "certs"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/is at level 'user'; hapops certs \(show ssl cert\) needs 'operator'/);
    expect(r.stderr).not.toMatch(/memory/i);
  });
});

describe("table show", () => {
  it("shows the entry real traffic created, by key", async () => {
    expect(await get(lab().httpPort)).toBe(200);
    const r = await hapops([
      "-s",
      lab().sockets.operator,
      "table",
      "show",
      "be_app",
      "--key",
      "127.0.0.1",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!) as {
      table: string;
      key: string;
      data: Record<string, { value: string }>;
    };
    expect(entry).toMatchObject({ table: "be_app", key: "127.0.0.1" });
    expect(Number(entry.data["http_req_rate"]?.value)).toBeGreaterThanOrEqual(1);
  });

  it("refuses a key that is not valid for the table's type (exit 2)", async () => {
    const r = await hapops([
      "-s",
      lab().sockets.admin,
      "table",
      "show",
      "be_app",
      "--key",
      "999.1.1.1",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/key "999.1.1.1" is not valid for table be_app \(type ip\)/);
  });

  it("needs operator level to list entries (exit 4)", async () => {
    const r = await hapops(["-s", lab().sockets.user, "table", "show", "be_app"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/needs 'operator'/);
  });

  it("names the closest table when the name is wrong", async () => {
    const r = await hapops(["-s", lab().sockets.admin, "table", "show", "be_apx"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no stick table named be_apx; did you mean be_app\?/);
  });
});

describe("targets", () => {
  it("reads over plain TCP on loopback", async () => {
    const r = await hapops(["-s", lab().sockets.tcp!, "servers", "be_api", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<ServerRow[]>(r)).toHaveLength(2);
  });

  it("refuses plain TCP to a non-loopback host unless --insecure-tcp (exit 3)", async () => {
    const r = await hapops(["-s", "tcp://192.0.2.1:9999", "servers"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/refusing plain tcp:\/\/ to 192\.0\.2\.1.*--insecure-tcp/);
  });

  itWhere(lacks("tls"))("reads over mTLS with a client certificate", async () => {
    const t = lab().tls;
    const r = await hapops([
      "-s",
      lab().sockets.tls!,
      "--tls-cert",
      t.clientCert,
      "--tls-key",
      t.clientKey,
      "--tls-ca",
      t.ca,
      "servers",
      "be_api",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<ServerRow[]>(r).map((s) => s.server)).toEqual(["api-1.blue", "api-2.green"]);
  });

  itWhere(lacks("tls"))(
    "fails over mTLS with a certificate the socket does not trust (exit 4)",
    async () => {
      const t = lab().tls;
      const r = await hapops([
        "-s",
        lab().sockets.tls!,
        "--tls-cert",
        t.rogueCert,
        "--tls-key",
        t.rogueKey,
        "--tls-ca",
        t.ca,
        "servers",
      ]);
      expect(r.code).toBe(4);
      // What OpenSSL says, in words an operator can act on; never its raw error string.
      expect(r.stderr).toMatch(/TLS alert "unknown ca": the socket does not trust the CA/);
      expect(r.stderr).not.toMatch(/SSL routines|rec_layer/);
    },
  );

  itWhere(lacks("tls"))("asks for client files for tls:// (exit 2)", async () => {
    const r = await hapops(["-s", lab().sockets.tls!, "servers"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--tls-cert, --tls-key and --tls-ca/);
  });

  itWhere(lacks("tls"))("takes named targets and TLS files from a YAML config", async () => {
    const t = lab().tls;
    const cfg = join(lab().dir, "hapops.yaml");
    writeFileSync(
      cfg,
      `socket: lb\ntargets:\n  lb:\n    socket: ${lab().sockets.tls}\n    tls:\n      cert: ${t.clientCert}\n      key: ${t.clientKey}\n      ca: ${t.ca}\n`,
    );
    const r = await hapops(["servers", "be_static", "--json"], { env: { HAPOPS_CONFIG: cfg } });
    expect(r.code, r.stderr).toBe(0);
    expect(json<ServerRow[]>(r).map((s) => s.admin)).toEqual(["READY", "MAINT"]);
  });

  it("rejects unknown config keys, naming them (exit 2)", async () => {
    const cfg = join(lab().dir, "bad.yaml");
    writeFileSync(cfg, `socket: ${lab().sockets.admin}\ntimeout: 5s\n`);
    const r = await hapops(["-c", cfg, "servers"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown key 'timeout'/);
  });

  it("says when there is no socket at the path (exit 4)", async () => {
    const r = await hapops(["-s", join(lab().dir, "nope.sock"), "info"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no socket at .*nope\.sock: is HAProxy running/);
  });

  it("says when nothing listens (exit 4)", async () => {
    const r = await hapops(["-s", "tcp://127.0.0.1:1", "info"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/connection refused/);
  });

  it.runIf(process.getuid?.() === 0)(
    "tells a user without access to the socket to use the sudo wrapper (exit 4)",
    async () => {
      const r = await hapops(["-s", lab().sockets.admin, "info"], { uid: 65534, gid: 65534 });
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/permission denied opening .*sudo hapops/);
    },
  );

  it("prints errors as JSON with --json", async () => {
    const r = await hapops(["-s", "tcp://127.0.0.1:1", "info", "--json"]);
    expect(r.code).toBe(4);
    expect(json<{ error: { code: string; exitCode: number } }>(r).error).toMatchObject({
      code: "CONNECTION_REFUSED",
      exitCode: 4,
    });
  });
});

describe("doctor", () => {
  it("checks the socket, the sockets HAProxy exposes and haproxy.cfg, one line each with a fix", async () => {
    const r = await hapops([
      "-s",
      lab().sockets.admin,
      "doctor",
      "--haproxy-config",
      lab().configPath,
    ]);
    expect(r.stdout).toMatch(/^ok {4}socket mode {6}.*admin\.sock: mode 600$/m);
    expect(r.stdout).toMatch(/^ok {4}socket level {5}.* answers at level admin$/m);
    expect(r.stdout).toMatch(
      /^warn {2}exposed sockets {2}ipv4@127\.0\.0\.1:\d+ is a TCP runtime socket \(level admin\) without TLS/m,
    );
    // 3.4 wants admin for map and ACL changes: a user socket cannot change them there.
    if (atLeast("3.4")) expect(r.stdout).not.toMatch(/map access/);
    else
      expect(r.stdout).toMatch(
        new RegExp(
          `^warn {2}map access .*user\\.sock is level user, yet HAProxy ${testHaproxy().version.replace(/^(\d+)\.(\d+).*/, "$1\\.$2")} lets any level change maps and ACLs`,
          "m",
        ),
      );
    expect(r.stdout).toMatch(/^ok {4}seamless reload {2}/m);
    expect(r.stdout).toMatch(/^ok {4}server state/m);
    expect(r.stdout).toMatch(/^\s+fix: /m);
  });
});

describe("doctor as an unprivileged user", () => {
  const nobody = (() => {
    try {
      const uid = Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim());
      const gid = Number(execFileSync("id", ["-g", "nobody"], { encoding: "utf8" }).trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  })();

  it.runIf(process.getuid?.() === 0 && nobody)(
    "says it cannot check what it may not see, instead of reporting it missing or broken",
    async () => {
      // The lab's socket is in a 0700 root directory: nobody cannot even stat it.
      const r = await hapops(["-s", lab().sockets.admin, "doctor"], {
        uid: nobody!.uid,
        gid: nobody!.gid,
      });
      expect(r.stdout).toMatch(
        /^warn {2}socket +cannot check .*admin\.sock as uid \d+ \(permission denied\); run hapops doctor as root or through sudo/m,
      );
      expect(r.stdout).not.toMatch(/no socket at/);
      expect(r.stdout).not.toMatch(/can lock everyone out/);
    },
  );

  it("says reload needs a master CLI socket when there is none", async () => {
    const r = await hapops([
      "-s",
      lab().sockets.admin,
      "--master",
      "/nonexistent/master.sock",
      "doctor",
    ]);
    expect(r.stdout).toMatch(
      /^fail {2}master +master CLI: no socket at \/nonexistent\/master\.sock/m,
    );
  });

  it("names the config in use, not only the system one", async () => {
    const r = await hapops(["-s", lab().sockets.admin, "doctor"]);
    expect(r.stdout).toMatch(/^ok {4}config +\/.*hapops\.yaml is valid \(the config in use\)/m);
  });
});
