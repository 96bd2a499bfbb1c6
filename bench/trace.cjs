// Where a hapops run spends its wall time, without touching hapops: preloaded with
// `node -r bench/trace.cjs dist/hapops.cjs ...`, it wraps the few calls that can wait
// (TLS connections, fsync, the audit lock, child processes, the config read) and, at exit,
// writes one JSON line of events to the file named by HAPOPS_TRACE. bench/fleet.mjs --profile
// turns it into a table.
/* global process */
"use strict";
const { performance } = require("node:perf_hooks");
const fs = require("node:fs");
const tls = require("node:tls");
const cp = require("node:child_process");

const out = process.env.HAPOPS_TRACE;
const events = [];
const now = () => performance.now();
const ev = (kind, start, end, extra) => events.push({ kind, start, end, ...extra });
events.push({ kind: "preload", start: now(), end: now() });

const connect = tls.connect;
tls.connect = function (...args) {
  const start = now();
  const socket = connect.apply(this, args);
  const port = typeof args[0] === "object" ? args[0].port : args[0];
  let secure, reused;
  socket.once("secureConnect", () => {
    secure = now();
    reused = socket.isSessionReused();
  });
  socket.once("close", () => ev("tls", start, now(), { secure, port, reused }));
  return socket;
};

const fsync = fs.fsyncSync;
fs.fsyncSync = function (...args) {
  const start = now();
  try {
    return fsync.apply(this, args);
  } finally {
    ev("fsync", start, now());
  }
};

const readFileSync = fs.readFileSync;
fs.readFileSync = function (path, ...rest) {
  const start = now();
  try {
    return readFileSync.call(this, path, ...rest);
  } finally {
    if (typeof path === "string" && /\.ya?ml$/.test(path)) ev("config-read", start, now());
  }
};

// proper-lockfile takes the audit lock with fs.mkdir (callback form) and drops it with rmdir.
const locks = new Map();
const mkdir = fs.mkdir;
fs.mkdir = function (path, ...rest) {
  if (typeof path === "string" && path.endsWith(".lock")) {
    const start = now();
    const cb = rest.pop();
    return mkdir.call(this, path, ...rest, (err, ...r) => {
      if (!err) locks.set(path, now());
      ev("lock-try", start, now(), { ok: !err });
      cb(err, ...r);
    });
  }
  return mkdir.call(this, path, ...rest);
};
const rmdir = fs.rmdir;
fs.rmdir = function (path, ...rest) {
  if (typeof path === "string" && locks.has(path)) {
    ev("lock-held", locks.get(path), now());
    locks.delete(path);
  }
  return rmdir.call(this, path, ...rest);
};

for (const name of ["spawn", "execFile"]) {
  const orig = cp[name];
  cp[name] = function (file, ...rest) {
    const start = now();
    const child = orig.call(this, file, ...rest);
    child.once("exit", () => ev("child", start, now(), { file }));
    return child;
  };
}
const execFileSync = cp.execFileSync;
cp.execFileSync = function (file, ...rest) {
  const start = now();
  try {
    return execFileSync.call(this, file, ...rest);
  } finally {
    ev("child", start, now(), { file });
  }
};

process.once("exit", () => {
  events.push({ kind: "exit", start: now(), end: now() });
  if (out) fs.appendFileSync(out, JSON.stringify(events) + "\n");
});
