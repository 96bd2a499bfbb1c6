// The floor under a fleet change: what the TLS connections alone cost one Node process, with
// nothing of hapops around them. Each connection does a full mTLS handshake, sends one read
// (`show servers state be_app`), reads the answer and closes; `phases` rounds one after the
// other (hapops: the check, then the apply), `perTarget` connections to every target at once.
//
//   node bench/tls-floor.mjs <ca> <cert> <key> <phases> <perTarget> <shared|each> <port>...
//
// Prints the wall time in ms (after start-up). `shared`: one secure context for every
// connection; `each`: one per connection, as hapops does today (transport/connect.ts).
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import tls from "node:tls";

const [ca, cert, key, phases, perTarget, contexts, ...ports] = process.argv.slice(2);
const files = () => ({ ca: readFileSync(ca), cert: readFileSync(cert), key: readFileSync(key) });
const shared = contexts === "shared" ? tls.createSecureContext(files()) : undefined;

const one = (port) =>
  new Promise((resolve, reject) => {
    const secureContext = shared ?? tls.createSecureContext(files());
    const s = tls.connect({ host: "127.0.0.1", port: Number(port), secureContext }, () =>
      s.end("show servers state be_app\n"),
    );
    s.on("data", () => undefined);
    s.on("close", resolve);
    s.on("error", reject);
  });

const t0 = performance.now();
for (let p = 0; p < Number(phases); p++)
  await Promise.all(
    ports.flatMap((port) => Array.from({ length: Number(perTarget) }, () => one(port))),
  );
console.log((performance.now() - t0).toFixed(1));
