#!/bin/bash
# Runs every test tier. Installs what it needs first (Debian 12, as root).
# Under CI=true a tier that cannot run is a failure, never a skip.
#
# The tiers that need a real systemd (e2e, connector, and the generator's
# under-systemd check) run once per Debian suite of the test host, as tiers
# of their own named TIER@SUITE: E2E_SUITES="bookworm trixie" by default
# (systemd 252 and 257). E2E_SUITES="bookworm trixie forky" adds the newest.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
tests/deps.sh || { echo "tests: installing dependencies failed"; exit 1; }

suites=${E2E_SUITES-bookworm trixie}
[ -n "${suites// /}" ] || { echo "tests: E2E_SUITES is empty: the systemd tiers would not run"; exit 1; }

failed=()
passed=0
results=()
tier() {
	local name=$1; shift
	echo "=== tier: $name"
	local t0=$SECONDS
	if "$@"; then
		echo "=== tier $name: ok ($((SECONDS - t0)) s)"
		passed=$((passed + 1))
		results+=("$(printf '%-22s ok     %5d s' "$name" $((SECONDS - t0)))")
	else
		echo "=== tier $name: FAILED ($((SECONDS - t0)) s)"
		failed+=("$name")
		results+=("$(printf '%-22s FAILED %5d s' "$name" $((SECONDS - t0)))")
	fi
}

tier lint make -s check
tier unit cargo test --workspace --locked --release --no-fail-fast
for t in tests/*/run.sh; do
	name=$(basename "$(dirname "$t")")
	case $name in
	e2e)
		# Each suite's scenarios are bounded by 15 min (about 3 min
		# measured), so two suites cannot eat CI's hour.
		for s in $suites; do tier "$name@$s" env E2E_SUITE="$s" E2E_TOTAL_TIMEOUT="${E2E_TOTAL_TIMEOUT:-900}" "$t"; done ;;
	connector)
		for s in $suites; do tier "$name@$s" env E2E_SUITE="$s" "$t"; done ;;
	generator)
		tier generator env GENERATOR_UNDER_SYSTEMD=0 "$t"
		for s in $suites; do tier "generator@$s" env E2E_SUITE="$s" tests/generator/under-systemd.sh; done ;;
	*) tier "$name" "$t" ;;
	esac
done

cd "$top"
echo "=== tiers"
printf '  %s\n' "${results[@]}"
echo "  total $SECONDS s"
[ ${#failed[@]} -eq 0 ] || echo "tests: failed tiers: ${failed[*]}"
echo "tiers: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
