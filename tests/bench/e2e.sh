#!/bin/bash
# Time from `systemctl start systemd-nspawn@nginx` (image already imported)
# to the first HTTP 200 from nginx, inside a real systemd host (the e2e
# harness). Prints each run and the median; the goal is <= 2 s. Print only:
# the exit code says whether the measurement ran, not whether it met the goal.
#   BENCH_RUNS=5 tests/bench/e2e.sh
set -uo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
e2e_prereqs
e2e_init
trap 'e2e_cleanup' EXIT
trap 'exit 130' INT TERM
e2e_build >/dev/null || exit 1
images_tree outer >/dev/null || exit 1
e2e_registry_start || exit 1
images_push debian-systemd "$E2E_REGISTRY/e2e/debian-systemd:12" && images_push nginx "$E2E_REGISTRY/e2e/nginx:1" || exit 1
e2e_outer_new bench || exit 1
echo "E2E_BENCH_RUNS=${BENCH_RUNS:-5}" >>"$E2E_RUN/bench/upper/usr/local/lib/sdme-e2e/env"
e2e_outer_boot bench "$E2E_DIR/bench-guest.sh" >/dev/null
grep -E '^(bench|FAIL)' "$E2E_RUN/bench/out/log"
grep -q '^bench: median' "$E2E_RUN/bench/out/log"
