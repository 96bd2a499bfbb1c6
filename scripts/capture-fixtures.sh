#!/usr/bin/env bash
# Captures real HAProxy runtime API answers for the parser tests into
# test/fixtures/haproxy-<major.minor>/captured-*.txt.
#
# Needs `haproxy`, `socat` and `openssl` on PATH. Binds only unix sockets in a temp dir; the only
# health checks (which `track` requires) aim at closed ports on 127.0.0.1, and the one host name
# is "localhost": nothing leaves the machine. The temp dir is renamed to /srv/demo in the output,
# as in /work/shared/fixtures. Certificates get fixed serials and dates, so a re-run changes only
# keys, fingerprints, entry addresses and timers.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(haproxy -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')"
out="$root/test/fixtures/haproxy-$version"
work="$(mktemp -d)"
pid=""

cleanup() {
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$out" "$work/certs" "$work/pki"

# --- certificates: a self-signed one, and a leaf + intermediate chain with DNS and IP SANs ----
(
  cd "$work/pki"
  cat >ca.cnf <<'EOF'
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = .
database = ./index.txt
serial = ./serial
new_certs_dir = .
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = copy
[ policy_any ]
countryName = optional
organizationName = optional
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
[ v3_self ]
basicConstraints = CA:false
subjectAltName = DNS:example.com
[ v3_leaf ]
basicConstraints = CA:false
subjectAltName = DNS:example.net, DNS:www.example.net, IP:127.0.0.1, IP:::1
EOF
  : >index.txt
  # `openssl ca` is used rather than `req -x509` because OpenSSL 3.0 has no way to fix the dates
  # there; fixed dates keep the captured notBefore/notAfter stable across runs.
  issue() { # serial subject key csr-key signer-key signer-cert(or "self") extensions start end out
    echo "$1" >serial
    openssl req -new -key "$3" -subj "$2" -config ca.cnf -out req.csr
    if [[ "$5" == self ]]; then
      openssl ca -batch -config ca.cnf -selfsign -keyfile "$3" -in req.csr -extensions "$6" \
        -startdate "$7" -enddate "$8" -out "$9" 2>/dev/null
    else
      openssl ca -batch -config ca.cnf -keyfile "$4" -cert "$5" -in req.csr -extensions "$6" \
        -startdate "$7" -enddate "$8" -out "$9" 2>/dev/null
    fi
    # `openssl ca` writes a text dump before the PEM block; keep only the PEM.
    openssl x509 -in "$9" -out "$9"
  }
  for k in root inter self; do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k.key" 2>/dev/null
  done
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out leaf.key 2>/dev/null
  issue 1001 "/CN=Hapops Test Root" root.key - self v3_ca 20250101000000Z 20350101000000Z root.crt
  issue 1002 "/CN=Hapops Test Intermediate" inter.key root.key root.crt v3_ca \
    20250101000000Z 20340101000000Z inter.crt
  issue 1003 "/C=FR/O=Hapops Test/CN=example.net" leaf.key inter.key inter.crt v3_leaf \
    20250301120000Z 20270315083005Z leaf.crt
  issue 1004 "/CN=example.com" self.key - self v3_self 20250101000000Z 20300101000000Z self.crt
  issue 1005 "/CN=example.com" self.key - self v3_self 20260101000000Z 20310101000000Z self2.crt
  # Two CA certificates after the leaf, so "Chain Subject"/"Chain Issuer" repeat.
  cat leaf.crt inter.crt root.crt leaf.key >"$work/certs/example.net.pem"
  cat self.crt self.key >"$work/certs/example.com.pem"
  cat self2.crt self.key >"$work/new-example.com.pem"
)

# --- configuration -----------------------------------------------------------------------------
cat >"$work/haproxy.cfg" <<EOF
global
    stats socket $work/admin.sock level admin
    stats socket $work/oper.sock level operator
    stats socket $work/user.sock level user
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind unix@$work/fe.sock ssl crt $work/certs/
    default_backend be_app
backend be_app
    server app1 127.0.0.1:9001 weight 100
    server app2 127.0.0.1:9002
    server app3 127.0.0.1:9003
    server app4 127.0.0.1:9004 disabled
    server app5 127.0.0.1:9005 disabled
    # Tracked servers need "check"; "inter 1h" with the default "fall 3" keeps them from going
    # DOWN while this script runs, so nothing is ever actually probed for long.
    server t1 127.0.0.1:9011 check inter 1h disabled
    server t2 127.0.0.1:9012 track t1
    server t3 127.0.0.1:9013 check inter 1h
    server t4 127.0.0.1:9014 track t3
    server s6 [::1]:9006
    server s7 [2001:db8::7]:80
    server noport 127.0.0.1
backend be.web-01_a:x
    server srv-1.a_b:c 127.0.0.1:9101
backend be_fqdn
    server h1 localhost:9020
    server h2 example.invalid:80 init-addr none
backend be_empty
backend st_empty
    stick-table type ip size 1k expire 10m store gpc0
backend st_ip
    stick-table type ip size 1k expire 10m store gpc0,server_id,gpt0,conn_rate(10s),http_req_rate(10s)
backend st_str
    stick-table type string len 32 size 1k expire 10m store gpc0,http_req_rate(10s)
backend st_v6
    stick-table type ipv6 size 1k expire 10m store gpc0
backend st_int
    stick-table type integer size 1k store gpc(2),gpc_rate(2,10s),gpt(2),bytes_in_cnt
EOF

haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do
  [[ -S "$work/admin.sock" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/haproxy.log" >&2; exit 1; }
  sleep 0.1
done

# One-shot mode: one connection per command, answer read to EOF (it ends with the blank line).
cli() { # socket command
  printf '%s\n' "$2" | socat -t 5 stdio "unix:$work/$1.sock"
}
# Runs a command that changes state; HAProxy answers a success with nothing but the blank line.
act() {
  local answer
  answer="$(cli admin "$1")"
  if [[ -n "$answer" ]]; then
    echo "unexpected answer to '$1': $answer" >&2
    exit 1
  fi
}
save() { # name socket command
  cli "$2" "$3" | sed "s#$work#/srv/demo#g" >"$out/captured-$1"
  echo "captured-$1"
}

act "set server be_app/app1 weight 50"
act "set server be_app/app2 state drain"
act "disable server be_app/app3"
# Enabling a server that is `disabled` in the config clears FMAINT but leaves CMAINT set.
act "enable server be_app/app5"
act "set server be_app/t3 state drain"
act "set table st_ip key 10.0.0.1 data.gpc0 3 data.server_id 2 data.gpt0 7"
act "set table st_ip key 192.168.1.20 data.gpc0 1"
act "set table st_str key user@example.com data.gpc0 5"
act 'set table st_str key has\ space data.gpc0 1'
act 'set table st_str key a=b\\c data.gpc0 2'
act "set table st_v6 key 2001:db8::1 data.gpc0 2"
act "set table st_int key 42 data.gpc 2 data.gpt 1 data.bytes_in_cnt 10"

save show-servers-state.txt admin "show servers state"
save show-servers-state-be_empty.txt admin "show servers state be_empty"
save show-stat.csv admin "show stat"
save show-table.txt admin "show table"
save show-table-st_empty.txt admin "show table st_empty"
save show-table-st_ip.txt admin "show table st_ip"
save show-table-st_str.txt admin "show table st_str"
save show-table-st_v6.txt admin "show table st_v6"
save show-table-st_int.txt admin "show table st_int"
save show-table-st_ip-user-level.txt user "show table st_ip"
save show-ssl-cert-file-chain.txt admin "show ssl cert $work/certs/example.net.pem"

# A certificate transaction: `set ssl cert F <<` with the PEM as payload, ended by a blank line.
{
  printf 'set ssl cert %s <<\n' "$work/certs/example.com.pem"
  cat "$work/new-example.com.pem"
  printf '\n'
} | socat -t 5 stdio "unix:$work/admin.sock" >"$work/set-answer.txt"
grep -q '^Transaction created' "$work/set-answer.txt" || { cat "$work/set-answer.txt" >&2; exit 1; }
save show-ssl-cert-transaction.txt admin "show ssl cert"
save show-ssl-cert-file-pending.txt admin "show ssl cert *$work/certs/example.com.pem"
cli admin "abort ssl cert $work/certs/example.com.pem" >/dev/null
