#!/usr/bin/env bash
# The Debian package as an operator meets it: build it (npm run package), check it with lintian,
# install it with apt-get over an older build (a changed config is kept), run `hapops --version`,
# `hapops setup`, `hapops doctor` and a drain through sudo on a sandbox HAProxy, all with the
# installed /usr/sbin/hapops; check that SIGUSR1 sent through sudo opens no debugger; then remove
# and purge it and check nothing is left.
#
#   scripts/ci-package.sh              on this machine (.ci/run: a fresh CI machine, as root)
#   scripts/ci-package.sh --private    in a private mount namespace with overlays on /etc, /usr
#                                      and /var: the host's files, users and dpkg database stay
#                                      as they were (for a shared machine)
#   --no-build                         use the dist/hapops_*_amd64.deb already built
#   --deb FILE                         use this package (test/e2e/package.test.ts)
#   --no-lintian                       skip lintian (the test runs it on its own)
#
# Root on Debian. Whatever happens, it stops its sandbox, purges the package it installed and
# removes the user and group it created.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'ci-package: %s\n' "$*" >&2; }
fail() {
	say "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (it installs a package)"

build=1
private=0
inside=0
lint=1
deb=""
while [ $# -gt 0 ]; do
	case "$1" in
	--no-build) build=0 ;;
	--no-lintian) lint=0 ;;
	--private) private=1 ;;
	--inside) inside=1 ;;
	--deb)
		deb=$(realpath "$2")
		build=0
		shift
		;;
	*) fail "unknown option $1" ;;
	esac
	shift
done

if [ "$inside" = 0 ]; then
	if [ "$build" = 1 ]; then
		say "building the package"
		npm run -s package
	fi
	[ -n "$deb" ] || deb=$(ls "$PWD"/dist/hapops_*_amd64.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || fail "no dist/hapops_*_amd64.deb (run npm run package)"
	if [ "$lint" = 1 ]; then
		say "lintian $deb"
		lintian --fail-on error --tag-display-limit 0 "$deb"
	fi
	if [ "$private" = 1 ]; then
		# The overlays' upper layers live here and go with it; the namespace dies with its last
		# process, so the host never sees the install.
		scratch=$(mktemp -d /tmp/hapops-ci-host.XXXXXX)
		trap 'rm -rf "$scratch"' EXIT
		mounts=""
		for d in /etc /usr /var; do
			n=${d#/}
			mkdir "$scratch/$n.up" "$scratch/$n.work"
			mounts="$mounts mount -t overlay overlay -o lowerdir=$d,upperdir=$scratch/$n.up,workdir=$scratch/$n.work $d &&"
		done
		set +e
		unshare -m --propagation private sh -c "$mounts exec \"\$0\" --inside --deb \"\$1\"" "$0" "$deb"
		rc=$?
		set -e
		exit $rc
	fi
fi

version=$(dpkg-deb -f "$deb" Version)
G=hapops-ci-ops
U=hapops-ci-op
SB=$(mktemp -d /tmp/hapops-ci-sandbox.XXXXXX)
W=$(mktemp -d /tmp/hapops-ci-work.XXXXXX)
HAPOPS=/usr/sbin/hapops

if dpkg-query -W -f='${Status}' hapops 2>/dev/null | grep -q 'installed\|config-files'; then
	fail "hapops is already installed here: this check installs and purges it, so it stops"
fi
for name in "$G" "$U"; do
	if getent group "$name" >/dev/null || getent passwd "$name" >/dev/null; then
		fail "$name exists already"
	fi
done

cleanup() {
	"$HAPOPS" sandbox stop --dir "$SB" >/dev/null 2>&1 ||
		node dist/hapops.cjs sandbox stop --dir "$SB" >/dev/null 2>&1 || true
	rm -rf "$SB" "$W"
	if dpkg-query -W -f='${Status}' hapops 2>/dev/null | grep -q 'installed\|config-files'; then
		apt-get purge -y -q hapops >/dev/null 2>&1 || true
	fi
	rm -f /etc/sudoers.d/hapops-ci-binary /usr/local/sbin/hapops-ci-binary
	userdel "$U" >/dev/null 2>&1 || true
	groupdel "$G" >/dev/null 2>&1 || true
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
# An older build to upgrade from: the same files under a lower version.
dpkg-deb -R "$deb" "$W/old"
sed -i "s/^Version: .*/Version: 0.0.1~ci/" "$W/old/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -b "$W/old" "$W/hapops_0.0.1~ci_amd64.deb" >/dev/null
rm -rf "$W/old"
say "apt-get install the older build, change its config"
apt-get install -y -q "$W/hapops_0.0.1~ci_amd64.deb" >/dev/null
echo "# changed by the operator" >>/etc/hapops/hapops.yaml
say "apt-get install $deb over it"
apt-get install -y -q "$deb" >/dev/null
[ "$(dpkg-query -W -f='${Version}' hapops)" = "$version" ] || fail "the upgrade did not happen"
grep -q "changed by the operator" /etc/hapops/hapops.yaml || fail "the upgrade lost the changed config"

say "what the package installed"
[ "$("$HAPOPS" --version)" = "$(node -p 'require("./package.json").version')" ] ||
	fail "hapops --version: $("$HAPOPS" --version)"
[ "$(stat -c '%U:%G %a' /etc/hapops/hapops.yaml)" = "root:root 644" ] || fail "/etc/hapops/hapops.yaml mode"
[ "$(stat -c '%U:%G %a' /var/log/hapops)" = "root:root 700" ] || fail "/var/log/hapops mode"
[ ! -e /etc/sudoers.d/hapops ] || fail "the package installed a sudoers rule"
grep -qx /etc/hapops/hapops.yaml /var/lib/dpkg/info/hapops.conffiles || fail "hapops.yaml is not a conffile"
[ -s /usr/share/man/man8/hapops.8.gz ] || fail "no man page"

say "hapops setup --group $G (from the package: the sudoers rule, no second copy)"
"$HAPOPS" setup --group "$G"
grep -qx "%$G ALL=(root) NOPASSWD: $HAPOPS" /etc/sudoers.d/hapops || fail "sudoers rule"
[ ! -e /usr/local/sbin/hapops ] && [ ! -e /usr/local/lib/hapops ] || fail "setup installed a second copy"

say "a sandbox HAProxy, started by the installed hapops"
"$HAPOPS" sandbox start --detach --dir "$SB" >/dev/null
cat >/etc/hapops/hapops.yaml <<EOF
socket: $SB/admin.sock
haproxyConfig: $SB/haproxy.cfg
EOF
"$HAPOPS" doctor

say "a drain through sudo, by a member of $G"
useradd --no-create-home --shell /bin/sh -G "$G" "$U"
as_operator() { runuser -u "$U" -- env -i PATH=/usr/bin:/bin "$@"; }
as_operator sudo -n "$HAPOPS" drain be_app/app1 --reason "ci package check"
"$HAPOPS" servers be_app --json | grep -q '"server":"app1"[^}]*"admin":"DRAIN"' ||
	fail "be_app/app1 is not DRAIN"
grep '"reason":"ci package check"' /var/log/hapops/audit.jsonl | grep -q "\"operator\":\"$U\"" ||
	fail "the audit log does not name $U"
as_operator sudo -n "$HAPOPS" ready be_app/app1 >/dev/null
"$HAPOPS" audit verify >/dev/null

say "SIGUSR1 through sudo opens no debugger in the root process"
fifo="$W/usr1.fifo"
out="$W/usr1.out"
chmod 0777 "$W"
mkfifo -m 0666 "$fifo"
cat >"$W/usr1.sh" <<EOF
#!/bin/sh
(echo 'servers be_app'; sleep 4) > $fifo &
sudo -n $HAPOPS shell < $fifo > $out 2>&1 &
P=\$!
for i in \$(seq 1 100); do grep -q SERVER $out 2>/dev/null && break; sleep 0.05; done
seen=0
for i in \$(seq 1 40); do
  kill -USR1 \$P 2>/dev/null
  sleep 0.05
  ss -ltn 2>/dev/null | grep -q ':9229 ' && seen=1
done
wait \$P
echo listening=\$seen
EOF
chmod 0755 "$W/usr1.sh"
as_operator "$W/usr1.sh" | grep -qx listening=0 || fail "a debugger listened after SIGUSR1"
grep -q '^SERVER' "$out" || fail "the shell did not answer: $(cat "$out")"
! grep -q 'Debugger listening' "$out" || fail "Debugger listening: $(cat "$out")"

binary="$(dirname "$deb")/hapops"
if [ -x "$binary" ]; then
	say "the single binary through sudo is refused: nothing can close its debugger on Node 20"
	install -m 0755 "$binary" /usr/local/sbin/hapops-ci-binary
	echo "%$G ALL=(root) NOPASSWD: /usr/local/sbin/hapops-ci-binary" >/etc/sudoers.d/hapops-ci-binary
	chmod 0440 /etc/sudoers.d/hapops-ci-binary
	set +e
	refused=$(as_operator sudo -n /usr/local/sbin/hapops-ci-binary servers 2>&1)
	rc=$?
	set -e
	rm -f /etc/sudoers.d/hapops-ci-binary /usr/local/sbin/hapops-ci-binary
	[ "$rc" = 3 ] && echo "$refused" | grep -q "SIGUSR1 cannot open a root debugger" ||
		fail "the single binary ran under sudo (exit $rc): $refused"
fi

"$HAPOPS" sandbox stop --dir "$SB" >/dev/null

say "apt-get remove: the program goes, the config and the audit log stay"
apt-get remove -y -q hapops >/dev/null
for p in "$HAPOPS" /usr/lib/hapops /usr/share/man/man8/hapops.8.gz; do
	[ ! -e "$p" ] || fail "$p is still there after remove"
done
grep -q "$SB/admin.sock" /etc/hapops/hapops.yaml || fail "remove lost the changed config"
[ -s /var/log/hapops/audit.jsonl ] || fail "remove lost the audit log"

say "apt-get purge: nothing is left"
apt-get purge -y -q hapops >/dev/null
for p in /etc/hapops /var/log/hapops /var/lib/hapops /run/hapops /etc/sudoers.d/hapops \
	/usr/lib/hapops /usr/sbin/hapops /usr/share/doc/hapops /usr/share/lintian/overrides/hapops \
	/usr/share/bash-completion/completions/hapops /usr/share/zsh/vendor-completions/_hapops \
	/var/lib/dpkg/info/hapops.list /var/lib/dpkg/info/hapops.conffiles; do
	[ ! -e "$p" ] || fail "$p is still there after purge"
done
! dpkg-query -W -f='${Status}' hapops 2>/dev/null | grep -q 'installed\|config-files' ||
	fail "dpkg still knows hapops"
say "ok: hapops $version installs and upgrades (config kept), runs through sudo with its debugger closed, removes and purges clean"
