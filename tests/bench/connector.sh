#!/bin/bash
# Benchmark: median round trip of `true` through a connector (client ->
# socket -> server fork+exec -> exit status back) against a local fork+exec
# of /bin/true, both started by the same shell loop. Goal: ratio <= 2x.
# Informational: prints, never fails on time (only on a broken connector).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-300}

# The binaries as installed: statically linked (see HACKING.md, connector);
# STATIC=0 measures the default dynamically linked build instead.
if [ "${STATIC:-1}" = 1 ]; then
	host=$(rustc -vV | sed -n 's/^host: //p')
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -q -p sdme-connector \
		--target "$host" --target-dir target/static
	bin=target/static/$host/release
else
	cargo build --release --locked -q -p sdme-connector
	bin=${CARGO_TARGET_DIR:-target}/release
fi
command -v systemd-socket-activate >/dev/null || { echo "bench: systemd-socket-activate (package systemd) is required" >&2; exit 1; }

scratch=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$scratch"' EXIT
dir=$scratch/connectors/bench
mkdir -p "$dir"
ln -s "$(realpath "$bin/sdme-connector-client")" "$dir/true"
systemd-socket-activate -l "$dir/bench.sock" \
	"$bin/sdme-connector-server" --idle-timeout=0 /bin/true 2>"$scratch/server.log" &
server_pid=$!
for _ in $(seq 100); do grep -q 'Listening on' "$scratch/server.log" && break; sleep 0.05; done
"$dir/true" || { echo "bench: connector round trip failed" >&2; cat "$scratch/server.log" >&2; exit 1; }

# Microseconds per run of "$@", one line each.
time_runs() {
	local i t0 t1
	for ((i = 0; i < runs; i++)); do
		t0=$EPOCHREALTIME
		"$@" </dev/null
		t1=$EPOCHREALTIME
		echo $(((${t1/./} - ${t0/./})))
	done
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

time_runs /bin/true >/dev/null # warm-up
local_us=$(time_runs /bin/true | median)
time_runs "$dir/true" >/dev/null
conn_us=$(time_runs "$dir/true" | median)
ratio=$(awk -v c="$conn_us" -v l="$local_us" 'BEGIN { printf "%.2f", c / l }')
echo "connector: median round trip of true over $runs runs ($(file -b "$bin/sdme-connector-client" | grep -o "static-pie linked\\|statically linked\\|dynamically linked"))"
echo "  local fork+exec of /bin/true : ${local_us} us"
echo "  through the connector        : ${conn_us} us"
echo "  ratio                        : ${ratio}x (goal <= 2x)"
