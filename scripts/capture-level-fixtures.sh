#!/usr/bin/env bash
# Captures which level each runtime command of the grammar (src/commands/grammar.ts) needs on a
# given HAProxy: every command is sent on a `level user`, a `level operator` and a `level admin`
# socket, in that order, and the start of each answer is written to
# test/fixtures/haproxy-<major.minor>/levels.txt as
#
#     <grammar name> TAB <socket level> TAB <the answer's first lines, joined with " | ">
#
# test/unit/grammar-levels.test.ts checks the grammar's levels (per version) against these files:
# the least level whose answer is not "Permission denied" (or its symptoms) is what the grammar
# must say for that version.
#
# Usage: scripts/capture-level-fixtures.sh [haproxy-binary...]   (default: the haproxy on PATH)
# e.g.   scripts/capture-level-fixtures.sh /usr/sbin/haproxy ../shared/haproxy/haproxy-*
#
# Needs `socat`. Binds only unix sockets and a 127.0.0.1 port in a temp dir, renamed to /srv/demo
# in the output. Commands that change state go to a throwaway process; they are ordered so that
# each one still has something to act on at every level (an entry to delete, a version to commit).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -gt 0 ]] || set -- "$(command -v haproxy)"

pid=""
work=""
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [[ -n $work ]]; then rm -rf "$work"; fi
  pid="" work=""
}
trap cleanup EXIT

capture() {
  local bin="$1" version out port
  version="$("$bin" -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')"
  out="$root/test/fixtures/haproxy-$version/levels.txt"
  work="$(mktemp -d)"
  port="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')"
  local map="$work/hosts.map" acl="$work/blocked.acl"
  printf 'example.com gold\nother.org silver\n' >"$map"
  printf '192.0.2.66\n' >"$acl"
  cat >"$work/haproxy.cfg" <<EOF
global
    stats socket $work/admin.sock mode 600 level admin
    stats socket $work/operator.sock mode 600 level operator
    stats socket $work/user.sock mode 600 level user

defaults
    mode http
    timeout connect 2s
    timeout client 1m
    timeout server 1m

frontend fe_http
    bind 127.0.0.1:$port
    http-request deny if { src -f $acl }
    http-request set-header X-Tier %[req.hdr(host),lower,map($map,default)]
    default_backend be_app

backend be_app
    stick-table type ip size 1k store gpc0
    server app1 127.0.0.1:9 check inter 10s
EOF
  "$bin" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do [[ -S $work/user.sock ]] && break; sleep 0.1; done

  s() { echo "$2" | socat -t 2 - "UNIX-CONNECT:$work/$1.sock"; }
  # An entry for show table to list (or not), versions for commit and clear to act on.
  s admin "set table be_app key 10.0.0.1 data.gpc0 1" >/dev/null
  s admin "prepare map $map" >/dev/null
  s admin "prepare acl $acl" >/dev/null

  local commands=(
    "showInfo|show info"
    "showStat|show stat"
    "showServersState|show servers state"
    "showServersConn|show servers conn"
    "showBackend|show backend"
    "showTableList|show table"
    "showTable|show table be_app"
    "setTable|set table be_app key 10.0.0.2 data.gpc0 2"
    "clearTable|clear table be_app key 10.0.0.2"
    "showMap|show map"
    "showMap|show map $map"
    "getMap|get map $map example.com"
    "addMap|add map $map level.example x"
    "setMap|set map $map level.example y"
    "delMap|del map $map level.example"
    "addMap|add map @1 $map versioned.example z"
    "commitMap|commit map @1 $map"
    "prepareMap|prepare map $map"
    "clearMap|clear map @2 $map"
    "showAcl|show acl"
    "showAcl|show acl $acl"
    "getAcl|get acl $acl 192.0.2.66"
    "addAcl|add acl $acl 192.0.2.7"
    "delAcl|del acl $acl 192.0.2.7"
    "addAcl|add acl @1 $acl 192.0.2.8"
    "commitAcl|commit acl @1 $acl"
    "prepareAcl|prepare acl $acl"
    "clearAcl|clear acl @2 $acl"
    "showSess|show sess"
    "showErrors|show errors"
    "showSslCert|show ssl cert"
    "abortSslCert|abort ssl cert $work/none.pem"
    "setTimeoutCli|set timeout cli 60"
    "setServerWeight|set server be_app/app1 weight 10"
    "setServerState|set server be_app/app1 state drain"
    "setServerAddr|set server be_app/app1 addr 127.0.0.1 port 9"
    "enableHealth|enable health be_app/app1"
    "disableHealth|disable health be_app/app1"
    "enableAgent|enable agent be_app/app1"
    "shutdownSessionsServer|shutdown sessions server be_app/app1"
    "setMaxconnServer|set maxconn server be_app/app1 100"
    "setMaxconnFrontend|set maxconn frontend fe_http 100"
    "setMaxconnGlobal|set maxconn global 1000"
    "waitSrvRemovable|wait 1 srv-removable be_app/app1"
  )
  mkdir -p "$(dirname "$out")"
  {
    echo "# HAProxy $("$bin" -v | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p'): scripts/capture-level-fixtures.sh"
    for level in user operator admin; do
      for entry in "${commands[@]}"; do
        local name="${entry%%|*}" line="${entry#*|}" answer
        answer="$(s "$level" "$line" | head -3 | sed "/^$/d; s#$work#/srv/demo#g" | paste -sd'|' | sed 's/|/ | /g' | cut -c1-160)"
        printf '%s\t%s\t%s\n' "$name" "$level" "$answer"
      done
    done
  } | sed "s#$work#/srv/demo#g" >"$out"
  echo "captured HAProxy $version into $out"
  cleanup
}

for bin in "$@"; do capture "$bin"; done
