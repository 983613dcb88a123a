#!/bin/bash
# Sourced by every scenario: PASS/FAIL lines, waiting, diagnostics, and ways
# into the inner containers. Runs inside the outer host.
E2E_FAILED=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; E2E_FAILED=1; }
info() { echo "  .. $*"; }

# check DESCRIPTION command...: PASS or FAIL (with the command's output),
# and how long the command took.
check() {
	local what=$1 out t0; shift
	t0=$(now)
	if out=$("$@" 2>&1); then
		pass "$what ($(since "$t0") s)"
	else
		fail "$what ($(since "$t0") s)"
		[ -n "$out" ] && printf '%s\n' "$out" | tail -20 | sed 's/^/     | /'
	fi
	return 0
}

# require DESCRIPTION command...: like check, but a failure ends the
# scenario at once (with diagnostics of the units in $E2E_UNITS): what follows
# depends on it and would only wait for timeouts.
require() {
	local before=$E2E_FAILED
	E2E_FAILED=0
	check "$@"
	if [ "$E2E_FAILED" = 0 ]; then E2E_FAILED=$before; return 0; fi
	echo "FAIL: stopping here: the remaining checks depend on \"$1\""
	# shellcheck disable=SC2086
	diag ${E2E_UNITS:-}
	exit 1
}

# wait_for SECONDS command...: true once command succeeds within the time.
wait_for() {
	local end=$(($(date +%s%N) + $1 * 1000000000)); shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(date +%s%N)" -lt $end ] || return 1
		sleep 0.1
	done
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# Timed step: step "what" command...
step() {
	local what=$1 t0 rc; shift
	t0=$(now)
	"$@"; rc=$?
	info "$what: $(since "$t0") s (exit $rc)"
	return $rc
}

# What to look at when something failed; collected into /e2e-out/diag.log.
diag() {
	local u
	{
		echo "=== diagnostics ($(date -u +%T))"
		for u in "$@"; do
			echo "--- systemctl status $u"; systemctl status --no-pager -l "$u" 2>&1 | head -30
			echo "--- journal of $u"; journalctl -b --no-pager -o short-monotonic -u "$u" 2>&1 | tail -40
		done
		echo "--- failed units"; systemctl --failed --no-legend --plain 2>&1
		local m
		for m in $(machinectl list --no-legend 2>/dev/null | awk '{print $1}'); do
			echo "--- container $m: state $(in_machine "$m" systemctl is-system-running 2>&1)"
			in_machine "$m" systemctl --failed --no-legend --plain 2>&1
			in_machine "$m" systemctl status --no-pager -l sdme-oci-app 2>&1 | head -20
			in_machine "$m" journalctl -b --no-pager -u sdme-oci-app 2>&1 | tail -20
		done
		echo "--- generator output"; ls -R /run/systemd/generator 2>&1 | head -40
		echo "--- kernel log (generator messages)"; journalctl -b -k --no-pager 2>&1 | grep -i sdme | tail -20
	} >>"$E2E_OUT/diag.log"
}

leader() { machinectl show --property=Leader --value "$1" 2>/dev/null; }

# in_machine NAME command...: run in all of the container's namespaces.
in_machine() {
	local pid; pid=$(leader "$1") || return 1; shift
	[ -n "$pid" ] && nsenter -t "$pid" -a "$@"
}

# in_app NAME command...: run inside the application's rootfs of container NAME.
in_app() {
	local m=$1; shift
	in_machine "$m" chroot /oci/root "$@"
}

http_ok() { curl -sf -o /dev/null --max-time 2 "$1"; }

# Ends the scenario: exit code 1 if anything failed.
finish() { [ "$E2E_FAILED" = 0 ]; exit $?; }

# Descriptor helpers: write /etc/sdme/NAME.oci from stdin.
descriptor() { mkdir -p /etc/sdme && cat >"/etc/sdme/$1.oci"; }

# The base OS descriptor most scenarios use.
debian_base() {
	descriptor debian <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/debian-systemd:12
TLSVerify=no
EOD
}
