#!/bin/bash
# Benchmark: sdme-generator over 500 descriptors with mixed features
# (bases, apps on bases, containers with networks, ports, volumes,
# environment, health checks, connectors, pass-through, [Install], drop-ins
# in all three directories). Prints the median wall time of several runs of
# the release binary; the goal is <= 100 ms. Informational: never fails on
# time, only on a broken generator.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-15}
count=500

cargo build --release --locked -q -p sdme-generator
bin=${CARGO_TARGET_DIR:-target}/release/sdme-generator

# BENCH_KEEP=DIR keeps the generated root and output there for a closer look.
if [ -n "${BENCH_KEEP:-}" ]; then
	scratch=$BENCH_KEEP
	rm -rf "$scratch" && mkdir -p "$scratch"
else
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' EXIT
fi
root=$scratch/root
mkdir -p "$root/etc/sdme" "$root/run/sdme" "$root/usr/lib/sdme"

for i in $(seq 1 $count); do
	name=d$i
	case $((i % 10)) in
	0) dir=usr/lib/sdme ;;
	1) dir=run/sdme ;;
	*) dir=etc/sdme ;;
	esac
	f=$root/$dir/$name.oci
	if [ $((i % 10)) -eq 0 ]; then
		# A base image, imported at boot.
		printf '[Image]\nImage=registry.example.com/os/debian:%d\nMode=base\nPull=newer\n[Install]\nWantedBy=multi-user.target\n' "$i" >"$f"
		continue
	fi
	base=d$(((i / 10) * 10 + 10))
	[ $((i / 10 * 10 + 10)) -le $count ] || base=d10
	{
		printf '# app %d\n[Image]\nImage=registry.example.com/apps/app%d:1.%d\nBase=%s\n' "$i" "$i" "$i" "$base"
		[ $((i % 7)) -eq 0 ] && printf 'Mode=connector\n'
		printf '[Container]\nNetwork=veth\nPort=%d:80\nPort=udp:%d:53\n' $((10000 + i)) $((20000 + i))
		printf 'Volume=/srv/%s:/data\nVolume=/cache\n' "$name"
		printf 'Environment=APP=%s "GREETING=hello world" PCT=100%%%%\n' "$name"
		printf 'Command=/usr/bin/app --name "%s" --flag \\\n    --more\n' "$name"
		printf 'HealthCmd=curl -f http://localhost/\nHealthIntervalSec=30s\nMemoryMax=512M\nTasksMax=256\n'
		[ $((i % 7)) -eq 3 ] && [ $(((i - 3) % 10)) -ne 0 ] && [ $i -gt 3 ] && printf 'Connector=d%d\n' $((i - 3))
		printf '[Unit]\nAfter=remote-fs.target\n[Service]\nLimitNOFILE=65536\n'
		printf '[Install]\nWantedBy=machines.target\n'
	} >"$f"
	if [ $((i % 5)) -eq 0 ]; then
		mkdir -p "$root/etc/sdme/$name.oci.d" "$root/usr/lib/sdme/$name.oci.d"
		printf '[Container]\nEnvironment=EXTRA=1\n' >"$root/etc/sdme/$name.oci.d/10-extra.conf"
		printf '[Container]\nCPUQuota=50%%\n' >"$root/usr/lib/sdme/$name.oci.d/20-cpu.conf"
	fi
done

# systemd hands generators a directory on tmpfs (/run/systemd/generator);
# measure the same way, not against a disk file system.
outbase=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
[ -n "${BENCH_KEEP:-}" ] || trap 'rm -rf "$scratch" "$outbase"' EXIT
out=$outbase/out
times=() cpus=()
TIMEFORMAT='%3R %3U %3S'
for r in $(seq 1 "$runs"); do
	rm -rf "$out"
	mkdir -p "$out"
	# bash's time keyword: wall, user and system seconds with ms precision.
	read -r wall user sys < <({ time "$bin" --root="$root" "$out" >/dev/null; } 2>&1)
	times+=($((10#${wall/./})))
	cpus+=($((10#${user/./} + 10#${sys/./})))
done
files=$(find "$out" -type f | wc -l)
links=$(find "$out" -type l | wc -l)
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
sorted_cpu=($(printf '%s\n' "${cpus[@]}" | sort -n))
median=${sorted[$((runs / 2))]}
[ -n "${BENCH_KEEP:-}" ] && cp -a "$out" "$scratch/out"
printf 'generator: %d descriptors -> %d files, %d symlinks; %d runs: median wall %d ms (min %d, max %d), median CPU (user+sys) %d ms; goal <= 100 ms wall; load %s\n' \
	"$count" "$files" "$links" "$runs" "$median" "${sorted[0]}" "${sorted[runs - 1]}" \
	"${sorted_cpu[$((runs / 2))]}" "$(cut -d' ' -f1-3 /proc/loadavg)"
