#!/bin/bash
# Runs every test tier. Installs what it needs first (Debian 12, as root).
# Under CI=true a tier that cannot run is a failure, never a skip.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
tests/deps.sh || { echo "tests: installing dependencies failed"; exit 1; }

failed=()
passed=0
tier() {
	local name=$1; shift
	echo "=== tier: $name"
	local t0=$SECONDS
	if "$@"; then
		echo "=== tier $name: ok ($((SECONDS - t0)) s)"
		passed=$((passed + 1))
	else
		echo "=== tier $name: FAILED ($((SECONDS - t0)) s)"
		failed+=("$name")
	fi
}

tier lint make -s check
tier unit cargo test --workspace --locked --release --no-fail-fast
for t in tests/*/run.sh; do
	tier "$(basename "$(dirname "$t")")" "$t"
done

cd "$top"
[ ${#failed[@]} -eq 0 ] || echo "tests: failed tiers: ${failed[*]}"
echo "tiers: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
