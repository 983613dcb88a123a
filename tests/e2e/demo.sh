#!/bin/bash
# `make demo`: the whole story on one Debian 12 machine, as root, offline
# (only the Debian mirror is used, to build the test images once).
#
#   1. install what is needed (tests/deps.sh)     4. boot a systemd host (nspawn)
#   2. build sdme and install it into that host   5. in it: drop /etc/sdme/nginx.oci and its
#   3. start a local registry, push a Debian          base, daemon-reload, start, print the page
#      base image and an nginx image built           and `systemctl status`
#      from Debian packages                        6. clean up
#
# Every step prints how long it took. Set E2E_KEEP=1 to keep the host's files.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)

steps=()
timed() { # timed "what" command...
	local what=$1 t0 rc; shift
	t0=$(date +%s.%N)
	echo "==> $what"
	"$@"; rc=$?
	local dt; dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	steps+=("$(printf '%-52s %7s s%s' "$what" "$dt" "$([ $rc = 0 ] || echo "  FAILED ($rc)")")")
	return $rc
}
summary() {
	echo
	echo "==> demo timings"
	printf '    %s\n' "${steps[@]}"
}

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it boots containers and installs packages)" >&2; exit 1; }
t_all=$(date +%s.%N)
timed "install dependencies (tests/deps.sh)" "$top/tests/deps.sh" || { summary; exit 1; }

. "$top/tests/e2e/lib.sh"
e2e_init
trap 'e2e_cleanup; summary' EXIT
trap 'exit 130' INT TERM

timed "build sdme (cargo build --release) and stage it" e2e_build || exit 1
timed "build the test trees (cached after the first run)" images_tree outer >/dev/null || exit 1
timed "start a local registry" e2e_registry_start || exit 1
echo "    registry at http://$E2E_REGISTRY"
push_images() {
	images_push debian-systemd "$E2E_REGISTRY/e2e/debian-systemd:12" &&
		images_push nginx "$E2E_REGISTRY/e2e/nginx:1"
}
timed "build (cached) and push debian-systemd:12 and nginx:1" push_images || exit 1
timed "prepare a systemd host with sdme installed" e2e_outer_new demo || exit 1
timed "boot the host and run the demo inside it" e2e_outer_boot demo "$top/tests/e2e/demo-guest.sh"
ok=0
grep -q '^DEMO OK' "$E2E_RUN/demo/out/log" && ok=1
steps+=("$(printf '%-52s %7s s' "total" "$(awk -v a="$t_all" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')")")
if [ $ok = 1 ]; then echo "demo: nginx from an OCI image served its page under systemd"; exit 0; fi
echo "demo: FAILED (see the log above)"
[ -s "$E2E_RUN/demo/out/diag.log" ] && cat "$E2E_RUN/demo/out/diag.log"
tail -30 "$E2E_RUN/demo/out/console.log"
exit 1
