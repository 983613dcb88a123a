#!/bin/bash
# A host full of containers: BENCH_SCALE_N (default 40) nginx containers of
# one image, wanted by machines.target, each on its own private network,
# inside a real systemd host (the e2e harness, scenario E15-scale) that is
# rebooted so that they come up from boot alone. Prints the time from the
# host's PID 1 start to the last container's answer, and per container the
# memory (PSS of its unit's processes, and the cgroup's memory.current) and
# the inotify instances and watches it holds. Print only: the exit code
# says whether the measurement ran, never whether a number was good.
#   BENCH_SCALE_N=60 tests/bench/scale.sh
set -uo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
e2e_prereqs
e2e_init
trap 'e2e_cleanup' EXIT
trap 'exit 130' INT TERM
scenario=$E2E_DIR/scenarios/E15-scale.sh
n=${BENCH_SCALE_N:-40}
e2e_build >/dev/null || exit 1
images_tree outer >/dev/null || exit 1
e2e_registry_start || exit 1
images_push debian-systemd "$E2E_REGISTRY/e2e/debian-systemd:12" && images_push nginx "$E2E_REGISTRY/e2e/nginx:1" || exit 1
e2e_outer_new scale || exit 1
timeout=$(( 420 + 4 * (n > 40 ? n - 40 : 0) ))
printf 'E2E_SCALE_N=%s\nE2E_SCENARIO_TIMEOUT=%s\n' "$n" $((timeout - 20)) >>"$E2E_RUN/scale/upper/usr/local/lib/sdme-e2e/env"
E2E_HOST_DIR=$E2E_RUN/scale E2E_REGISTRY=$E2E_REGISTRY E2E_RUN=$E2E_RUN E2E_TOP=$E2E_TOP bash "${scenario%.sh}.host" || exit 1
E2E_BOOT_TIMEOUT=$timeout e2e_outer_boot scale "$scenario" >/dev/null
echo "host: Debian $E2E_SUITE, systemd $(images_systemd_version "$(images_tree outer)"), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
grep -E '^FAIL' "$E2E_RUN/scale/out/log"
sed -n 's/^  \.\. scale: /scale: /p' "$E2E_RUN/scale/out/log"
grep -q '^scale: boot-to-all-ready' < <(sed -n 's/^  \.\. //p' "$E2E_RUN/scale/out/log")
