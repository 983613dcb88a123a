#!/bin/bash
# Benchmark of the image store (sdme-import pull), informational:
#  (a) the disk cost of a second app image on the same base: goal = its own
#      layers + at most 1 MiB (glue, appglue, image.json);
#  (b) the re-import time of an unchanged image (--pull=missing, which never
#      contacts the source, and --pull=always, which resolves the manifest).
# Uses the offline test images of tests/lib/images.sh (debian-systemd, nginx,
# mariadb; built once, cached). Needs root. Fails only if an import fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "store bench: needs root" >&2; exit 1; }
. tests/lib/images.sh
cargo build --release --locked -q -p sdme-import
bin=${CARGO_TARGET_DIR:-target}/release/sdme-import
base=$(images_oci debian-systemd)
app1=$(images_oci nginx)
app2=$(images_oci mariadb)
runs=${RUNS:-20}

store=$(mktemp -d /var/tmp/sdme-store-bench.XXXXXX)
trap 'rm -rf "$store"' EXIT
pull() { "$bin" pull --store="$store" --pull="${PULL:-missing}" "$@" >/dev/null 2>"$store.log" ||
	{ cat "$store.log" >&2; echo "store bench: pull $* failed" >&2; exit 1; }; }
kib() { du -s --block-size=1K "$@" | awk '{s += $1} END {print s + 0}'; }

t0=$(date +%s.%N)
pull --name=base --mode=auto oci:"$base"
t1=$(date +%s.%N)
pull --name=app1 --base=base --mode=auto oci:"$app1"
t2=$(date +%s.%N)
printf 'first import: base %.2f s, app1 %.2f s\n' "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"

before=$(kib "$store")
layers_before=$(ls "$store/layers/sha256")
pull --name=app2 --base=base --mode=auto oci:"$app2"
after=$(kib "$store")
new_layers=$(comm -13 <(echo "$layers_before") <(ls "$store/layers/sha256"))
own=0
for l in $new_layers; do own=$((own + $(kib "$store/layers/sha256/$l"))); done
overhead=$((after - before - own))
echo "(a) second app on the same base: +$((after - before)) KiB in the store," \
	"of which its own layers $own KiB and sdme's overhead $overhead KiB (goal <= 1024 KiB)"

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for policy in missing always; do
	ms=$(for _ in $(seq "$runs"); do
		s=$(date +%s%N)
		PULL=$policy pull --name=app1 --base=base --mode=auto oci:"$app1"
		echo $((($(date +%s%N) - s) / 1000))
	done | median)
	echo "(b) re-import of an unchanged image, --pull=$policy: median $((ms / 1000)).$(printf '%03d' $((ms % 1000))) ms over $runs runs (goal <= 50 ms)"
done
rm -f "$store.log"
