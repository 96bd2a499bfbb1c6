#!/usr/bin/env bash
# Captures real answers for health/agent checks and maxconn into
# test/fixtures/haproxy-<major.minor>/checks-*.{txt,csv} and maxconn-*.{txt,csv}:
# `show servers state` and `show stat` before and after `disable health|agent`, the answers to
# enable/disable on servers with and without the check, and `set maxconn server|frontend|global`.
#
# Usage: scripts/capture-check-fixtures.sh [haproxy-binary...]   (default: the haproxy on PATH)
# e.g.   scripts/capture-check-fixtures.sh /usr/sbin/haproxy ../shared/haproxy/haproxy-{2.8.0,3.0.0,3.2.0,3.4.0}
#
# Needs `socat` and `node`. Binds only a unix socket and 127.0.0.1 ports in a temp dir, renamed to
# /srv/demo in the output. be_app/app1 and app2 have `check`, app2 and app4 `agent-check` (a node
# agent answering "up ready 100%"), app3 neither, app5 and app6 a `check` on a port nothing
# listens on (DOWN).
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
  local version out work sock fe be1 be2 be3 agent closed
  version="$("$bin" -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')"
  out="$root/test/fixtures/haproxy-$version"
  work="$(mktemp -d)"
  works+=("$work")
  mkdir -p "$out"
  sock="$work/admin.sock"
  fe="$(free_port)" be1="$(free_port)" be2="$(free_port)" be3="$(free_port)"
  agent="$(free_port)" closed="$(free_port)"

  node -e '
    const http = require("http"), net = require("net");
    const [a, b, c, agent] = process.argv.slice(1).map(Number);
    for (const p of [a, b, c]) http.createServer((q, r) => r.end("ok\n")).listen(p, "127.0.0.1");
    net.createServer((s) => { s.on("error", () => {}); s.end("up ready 100%\n"); }).listen(agent, "127.0.0.1");
  ' "$be1" "$be2" "$be3" "$agent" &
  pids+=($!)

  cat >"$work/haproxy.cfg" <<EOF
global
    stats socket $sock mode 600 level admin
    maxconn 500

defaults
    mode http
    timeout connect 2s
    timeout client 1m
    timeout server 1m

frontend fe_http
    bind 127.0.0.1:$fe
    maxconn 200
    default_backend be_app

backend be_app
    option httpchk GET /health
    server app1 127.0.0.1:$be1 check inter 500ms rise 1 fall 2
    server app2 127.0.0.1:$be2 check inter 500ms rise 1 fall 2 agent-check agent-port $agent agent-inter 500ms
    server app3 127.0.0.1:$be3
    server app4 127.0.0.1:$be3 maxconn 30 agent-check agent-port $agent agent-inter 500ms
    server app5 127.0.0.1:$closed check inter 500ms rise 1 fall 1
    server app6 127.0.0.1:$closed check inter 500ms rise 1 fall 1
EOF
  "$bin" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do [[ -S $sock ]] && break; sleep 0.1; done
  sleep 2 # every check has run at least once

  s() { echo "$1" | socat - "UNIX-CONNECT:$sock" | sed "s#$work#/srv/demo#g"; }
  answers() { for c in "$@"; do echo "> $c"; s "$c"; done; }

  s "show servers state be_app" >"$out/checks-show-servers-state-before.txt"
  s "show stat" >"$out/checks-show-stat-before.csv"
  answers "disable health be_app/app1" "disable agent be_app/app2" "disable health be_app/app6" \
    "disable health be_app/app3" "disable agent be_app/app1" "enable health be_app/app3" \
    "enable agent be_app/app3" "enable health be_app/nope" >"$out/checks-answers.txt"
  sleep 1.5
  s "show servers state be_app" >"$out/checks-show-servers-state-disabled.txt"
  s "show stat" >"$out/checks-show-stat-disabled.csv"
  answers "set maxconn server be_app/app4 0" "set maxconn server be_app/app3 7" \
    "set maxconn frontend fe_http 150" "set maxconn global 100000" "set maxconn global 400" \
    "set maxconn frontend fe_nope 1" "set maxconn frontend be_app 1" \
    "set maxconn server be_app/nope 1" >"$out/maxconn-answers.txt"
  s "show stat" >"$out/maxconn-show-stat.csv"
  s "show info" >"$out/maxconn-show-info.txt"
  echo "captured HAProxy $version into $out"
  cleanup
}

for bin in "$@"; do capture "$bin"; done
