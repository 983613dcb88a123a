#!/bin/bash
# End-to-end tier: every tests/e2e/scenarios/*.sh runs in its own freshly
# booted systemd host (see lib.sh) against a local registry.
#
#   tests/e2e/run.sh              all scenarios
#   tests/e2e/run.sh E1 E7        scenarios E1-*.sh and E7-*.sh
#   E2E_SUITE=trixie              the Debian suite of the outer host (its systemd:
#                                 bookworm 252, trixie 257, forky newest);
#                                 default bookworm. Images stay IMAGES_SUITE.
#   E2E_KEEP=1                    keep the run directory for inspection
#   E2E_TOTAL_TIMEOUT=1500        bound for all scenarios together (seconds);
#                                 scenarios that no longer fit fail unrun
#
# A scenario is a bash script run inside the outer host after it booted; it
# sources check.sh and prints PASS:/FAIL: lines. Header lines it may carry:
#   # e2e-push: IMAGE REPO:TAG    push tests/lib/images.sh image IMAGE first
#   # e2e-timeout: SECONDS        bound for each boot of its host (default 300)
#   # e2e-install: deb            the host gets the .deb (`make deb`) instead of
#                                 `make install`; the scenario installs it from
#                                 $E2E_DEB with dpkg
# and an optional host-side hook NAME.host for preparation a guest cannot do
# (bash, run before the boot with E2E_TOP, E2E_RUN, E2E_HOST_DIR and
# E2E_REGISTRY set; it may add VAR=value lines to the guest's environment in
# E2E_HOST_DIR/upper/usr/local/lib/sdme-e2e/env; registries it starts in
# E2E_HOST_DIR/registry-*/DIR are stopped at the end).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

e2e_prereqs
t_all=$(e2e_now)
e2e_init
trap 'e2e_cleanup' EXIT
trap 'exit 130' INT TERM

scenarios=()
for f in "$E2E_DIR"/scenarios/*.sh; do
	[ -e "$f" ] || continue
	b=$(basename "$f")
	if [ $# -gt 0 ]; then
		sel=0
		# "E1" selects E1-*.sh only (not E10); a longer prefix selects by name.
		for p in "$@"; do [[ ${b%%-*} == "$p" || ( $p == *-* && $b == "$p"* ) ]] && sel=1; done
		[ $sel = 1 ] || continue
	fi
	scenarios+=("$f")
done
[ ${#scenarios[@]} -gt 0 ] || { e2e_log "FAIL: no scenario matches: $*"; exit 1; }

t0=$(e2e_now)
outer=$(images_tree outer) || { e2e_log "FAIL: building the outer host tree from $E2E_SUITE"; exit 1; }
host_systemd=$(images_systemd_version "$outer") || exit 1
e2e_log "outer host: Debian $E2E_SUITE, systemd $host_systemd; images: Debian $IMAGES_SUITE; trees ready in $(e2e_since "$t0") s"
e2e_build || exit 1
if grep -qx '# e2e-install: deb' "${scenarios[@]}"; then e2e_build_deb || exit 1; fi
e2e_registry_start || exit 1
e2e_log "registry at $E2E_REGISTRY"

t0=$(e2e_now)
declare -A pushed=()
for f in "${scenarios[@]}"; do
	while read -r _ _ img ref; do
		[ -n "${pushed[$img $ref]:-}" ] && continue
		images_push "$img" "$E2E_REGISTRY/$ref" || { e2e_log "FAIL: pushing $img"; exit 1; }
		pushed[$img $ref]=1
	done < <(grep -E '^# e2e-push: ' "$f")
done
e2e_log "images built and pushed in $(e2e_since "$t0") s"

failed=() results=()
deadline=$((SECONDS + ${E2E_TOTAL_TIMEOUT:-1500}))
for f in "${scenarios[@]}"; do
	name=$(basename "$f" .sh)
	t0=$(e2e_now)
	echo "=== e2e scenario $name"
	left=$((deadline - SECONDS))
	if [ $left -lt 60 ]; then
		echo "  [$name] FAIL: not run: the e2e tier's time bound (E2E_TOTAL_TIMEOUT) is used up"
		failed+=("$name"); results+=("$(printf '%-28s %-7s' "$name" "NOT RUN")")
		continue
	fi
	install=$(sed -n 's/^# e2e-install: *//p' "$f" | head -1)
	e2e_outer_new "$name" "${install:-make}" || { failed+=("$name"); results+=("$(printf '%-28s %-7s' "$name" "FAILED (setup)")"); continue; }
	timeout=$(sed -n 's/^# e2e-timeout: *//p' "$f" | head -1)
	timeout=${timeout:-$E2E_BOOT_TIMEOUT}
	[ "$timeout" -le $left ] || timeout=$left
	# The scenario's own bound leaves the host time to report and power off.
	echo "E2E_SCENARIO_TIMEOUT=$((timeout - 20))" >>"$E2E_RUN/$name/upper/usr/local/lib/sdme-e2e/env"
	hook=${f%.sh}.host
	if [ -f "$hook" ]; then
		E2E_HOST_DIR=$E2E_RUN/$name E2E_REGISTRY=$E2E_REGISTRY E2E_RUN=$E2E_RUN E2E_TOP=$E2E_TOP bash "$hook" ||
			{ echo "  [$name] FAIL: host hook $hook"; failed+=("$name"); results+=("$(printf '%-28s %-7s' "$name" "FAILED (host hook)")"); continue; }
	fi
	E2E_BOOT_TIMEOUT=$timeout e2e_outer_boot "$name" "$f"
	if e2e_verdict "$name"; then v=ok; else v=FAILED; failed+=("$name"); fi
	results+=("$(printf '%-28s %-7s %6s s' "$name" "$v" "$(e2e_since "$t0")")")
	echo "=== e2e scenario $name: $v ($(e2e_since "$t0") s)"
done

echo "=== e2e summary (host $E2E_SUITE, systemd $host_systemd)"
printf '  %s\n' "${results[@]}"
echo "  total $(e2e_since "$t_all") s"
[ ${#failed[@]} = 0 ] || { echo "e2e: failed: ${failed[*]}"; exit 1; }
echo "e2e: all scenarios passed"
