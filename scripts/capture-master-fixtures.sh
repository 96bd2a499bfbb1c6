#!/usr/bin/env bash
# Captures real master CLI answers (HAProxy in master-worker mode: -W -S <socket>) for the
# `show proc` and `reload` parsers into test/fixtures/haproxy-<major.minor>/master-*.txt.
#
# Usage: scripts/capture-master-fixtures.sh [haproxy-binary...]   (default: the haproxy on PATH)
# e.g.   scripts/capture-master-fixtures.sh /usr/sbin/haproxy ../shared/haproxy/haproxy-{2.8.0,3.0.0,3.2.0,3.4.0}
#
# Needs `socat` and `node`. Binds only unix sockets and 127.0.0.1 ports in a temp dir; the temp dir is renamed
# to /srv/demo in the output. The backend is a node HTTP server answering each request after 3 s, so that a
# reload leaves an old worker finishing a request.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -gt 0 ]] || set -- "$(command -v haproxy)"

pids=()
works=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for w in "${works[@]}"; do rm -rf "$w"; done
  pids=()
  works=()
}
trap cleanup EXIT

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

capture() {
  local bin="$1"
  local version out work master fe_port be_port
  version="$("$bin" -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')"
  out="$root/test/fixtures/haproxy-$version"
  work="$(mktemp -d)"
  works+=("$work")
  mkdir -p "$out"
  fe_port="$(free_port)"
  be_port="$(free_port)"
  master="$work/master.sock"

  node -e 'require("http").createServer((q, r) => setTimeout(() => r.end("ok\n"), 3000)).listen(+process.argv[1], "127.0.0.1")' "$be_port" &
  pids+=($!)

  cat >"$work/haproxy.cfg" <<EOF
global
    stats socket $work/admin.sock mode 600 level admin expose-fd listeners
    stats timeout 2m

defaults
    mode http
    timeout connect 2s
    timeout client 1m
    timeout server 1m

frontend fe_http
    bind 127.0.0.1:$fe_port
    default_backend be_app

backend be_app
    server app1 127.0.0.1:$be_port
EOF

  "$bin" -W -db -S "$master" -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  pids+=($!)

  for _ in $(seq 1 100); do
    [[ -S "$master" ]] && printf 'show proc\n' | socat -t 2 stdio "unix:$master" 2>/dev/null | grep -q '^[0-9].*worker' && break
    sleep 0.05
  done

  cli() { printf '%s\n' "$1" | socat -t 10 stdio "unix:$master"; }
  save() { sed "s#$work#/srv/demo#g" >"$out/master-$1"; }
  # Wait until `show proc` matches a pattern (the master re-executes itself on a reload).
  wait_proc() {
    for _ in $(seq 1 200); do
      cli "show proc" 2>/dev/null | grep -Eq "$1" && return 0
      sleep 0.05
    done
    echo "timed out waiting for show proc to match $1" >&2
    return 1
  }

  cli "show proc" | save show-proc.txt
  cli "help" | save help.txt
  cli "@!1 show info" | save error-no-such-pid.txt || true
  printf 'user\nshow proc\n' | socat -t 5 stdio "unix:$master" | save show-proc-at-user-level.txt

  # A request in flight, then a reload: the old worker stays to finish it.
  node -e 'require("http").get("http://127.0.0.1:" + process.argv[1] + "/slow", (r) => r.resume())' "$fe_port" &
  local client=$!
  sleep 0.5
  cli "reload" | save reload-success.txt
  wait_proc "old workers"
  cli "show proc" | save show-proc-old-worker.txt
  wait "$client" || true
  for _ in $(seq 1 200); do
    cli "show proc" | grep -q "old workers" || break
    sleep 0.05
  done

  # A configuration that does not parse: the reload fails and the worker keeps serving.
  echo "    bogus_keyword on" >>"$work/haproxy.cfg"
  cli "reload" | save reload-failed.txt
  wait_proc "failed: 1"
  cli "show proc" | save show-proc-failed-reload.txt
}

for bin in "$@"; do
  echo "capturing $bin" >&2
  capture "$bin"
  cleanup
done
