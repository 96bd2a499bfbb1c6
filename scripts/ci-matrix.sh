#!/usr/bin/env bash
# The HAProxy versions operators run, beside Debian's 2.6 that `npm test` uses: the whole e2e
# suite on 3.2.0, then the smoke set on every other binary present (reads, a drain and ready, a
# certificate rotation where the build has TLS, a map replace, a table set, 600 servers at once).
# The binaries are HAProxy release tags built as ../shared/haproxy/README.md says; they are never
# copied into the project. Where there are none (a user's clone), it says so and passes: the
# matrix is extra, not required.
#
#   scripts/ci-matrix.sh [DIR]      DIR: the binaries (default $HAPOPS_HAPROXY_DIR, else
#                                   ../shared/haproxy beside the clone, else /work/shared/haproxy)
#   FULL=3.2.0 SMOKE="2.4.0 2.8.0"  which binaries get the whole suite and the smoke set
#
# Expects a build (npm test made one).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'ci-matrix: %s\n' "$*" >&2; }

dir="${1:-${HAPOPS_HAPROXY_DIR:-}}"
if [ -z "$dir" ]; then
	for d in ../shared/haproxy /work/shared/haproxy; do
		if [ -d "$d" ]; then
			dir="$d"
			break
		fi
	done
fi
if [ -z "$dir" ] || ! ls "$dir"/haproxy-[0-9]* >/dev/null 2>&1; then
	say "no HAProxy binaries (../shared/haproxy): the version matrix is skipped; npm test ran on $(haproxy -v 2>/dev/null | head -1 || echo 'no haproxy')"
	exit 0
fi
dir="$(cd "$dir" && pwd)"

full="${FULL:-3.2.0}"
smoke_files=(test/e2e/matrix.test.ts test/e2e/read.test.ts test/e2e/change.test.ts
	test/e2e/rotate-cert.test.ts test/e2e/map.test.ts test/e2e/table.test.ts)

failed=()
run() {
	local version="$1"
	shift
	local bin="$dir/haproxy-$version"
	say "HAProxy $version: $*"
	local t0=$SECONDS
	if HAPOPS_TEST_HAPROXY="$bin" npx vitest run "$@"; then
		say "HAProxy $version: passed in $((SECONDS - t0)) s"
	else
		say "HAProxy $version: FAILED"
		failed+=("$version")
	fi
}

smoke=()
for f in "$dir"/haproxy-[0-9]*; do
	v="${f##*/haproxy-}"
	[ "$v" = "$full" ] || smoke+=("$v")
done
[ -n "${SMOKE:-}" ] && read -r -a smoke <<<"$SMOKE"

if [ -x "$dir/haproxy-$full" ]; then
	run "$full" test/e2e
else
	say "no haproxy-$full in $dir: the whole suite runs on Debian's only"
fi
for v in "${smoke[@]}"; do
	run "$v" "${smoke_files[@]}"
done

if [ "${#failed[@]}" -gt 0 ]; then
	say "FAILED on HAProxy ${failed[*]}"
	exit 1
fi
say "passed on HAProxy $full (whole suite) and ${smoke[*]} (smoke set)"
