#!/bin/bash
# Benchmark of `sdme-import unpack` against its peers, informational (prints,
# never asserts; fails only if a tool fails):
#   sdme-import unpack            (default: layers fetched in parallel)
#   sdme-import unpack --jobs=1   (layers streamed one after the other)
#   skopeo copy + umoci unpack
#   podman pull                   (fresh storage each run, overlay driver)
# from a loopback docker-registry (plain http), caches dropped before every
# run, fresh destination each time. The image is built offline from this
# machine's own files, three layers: /usr/include, /usr/lib/gcc,
# /usr/share/doc (~370 MB uncompressed, ~10k entries), packed with
# --sort=name and numeric owners, so the same machine gives the same image.
# RUNS=N (default 3) runs of each; medians and ratios (goal: sdme <= 0.33
# of each peer) are printed.
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
[ "$(id -u)" = 0 ] || { echo "unpack bench: needs root (drop_caches, owners, podman)" >&2; exit 1; }
for c in umoci skopeo podman docker-registry bc; do
	command -v $c >/dev/null || { echo "unpack bench: missing $c (tests/deps.sh installs it)" >&2; exit 1; }
done
runs=${RUNS:-3}
cargo build --release --locked -q -p sdme-import || exit 1
bin=${CARGO_TARGET_DIR:-$top/target}/release/sdme-import

. tests/lib/registry.sh
work=$(mktemp -d /var/tmp/sdme-unpack-bench.XXXXXX)
trap 'registry_stop_all; rm -rf "$work"' EXIT

# ---- the image -------------------------------------------------------------
L=$work/layout
umoci init --layout "$L" && umoci new --image "$L:bench" || exit 1
for d in usr/include usr/lib/gcc usr/share/doc; do
	[ -d "/$d" ] || { echo "unpack bench: /$d missing" >&2; exit 1; }
	tar --numeric-owner --sort=name --xattrs -C / -cf "$work/layer.tar" "$d" &&
		umoci raw add-layer --image "$L:bench" "$work/layer.tar" || exit 1
	rm -f "$work/layer.tar"
done
umoci config --image "$L:bench" --config.cmd=/bin/sh >/dev/null || exit 1
addr=$(registry_start "$work/reg") || exit 1
ref=$addr/bench/usr:1
skopeo copy -q --dest-tls-verify=false "oci:$L:bench" "docker://$ref" >/dev/null || exit 1
rm -rf "$L"
gz=$(du -sb "$work/reg/storage" | cut -f1)

# ---- runs ------------------------------------------------------------------
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
elapsed() { # prints seconds taken by "$@"; exits on failure
	local s e
	s=$(date +%s.%N)
	"$@" >/dev/null 2>"$work/err" || { echo "unpack bench: failed: $*" >&2; cat "$work/err" >&2; exit 1; }
	e=$(date +%s.%N)
	echo "$e - $s" | bc
}
declare -A times
add() { times[$1]="${times[$1]:-} $2"; }
for i in $(seq "$runs"); do
	rm -rf "$work/out"; cold
	t=$(elapsed "$bin" unpack --tls-verify=false "$ref" "$work/out") || exit 1; add sdme "$t"
	size=$(du -sb "$work/out" | cut -f1); files=$(find "$work/out" | wc -l)
	rm -rf "$work/out"; cold
	t=$(elapsed "$bin" unpack --jobs=1 --tls-verify=false "$ref" "$work/out") || exit 1; add sdme1 "$t"
	rm -rf "$work/out" "$work/sk" "$work/bundle"; cold
	a=$(elapsed skopeo copy --src-tls-verify=false "docker://$ref" "oci:$work/sk:x") || exit 1
	b=$(elapsed umoci unpack --image "$work/sk:x" "$work/bundle") || exit 1
	add skopeo_umoci "$(echo "$a + $b" | bc)"
	rm -rf "$work/sk" "$work/bundle" "$work/podman"; cold
	t=$(elapsed podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay \
		pull --tls-verify=false "$ref") || exit 1; add podman "$t"
	podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay rmi -a >/dev/null 2>&1
	rm -rf "$work/podman"
	printf 'run %d: sdme %.2f s  sdme --jobs=1 %.2f s  skopeo+umoci %.2f s (copy %.2f + unpack %.2f)  podman %.2f s\n' \
		"$i" "$(echo ${times[sdme]} | awk '{print $NF}')" "$(echo ${times[sdme1]} | awk '{print $NF}')" \
		"$(echo "$a + $b" | bc)" "$a" "$b" "$(echo ${times[podman]} | awk '{print $NF}')"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
m_sdme=$(echo "${times[sdme]}" | median)
m_sdme1=$(echo "${times[sdme1]}" | median)
m_sk=$(echo "${times[skopeo_umoci]}" | median)
m_pod=$(echo "${times[podman]}" | median)
echo "image: 3 layers, $((gz / 1000000)) MB in the registry (gzip), $((size / 1000000)) MB / $files entries unpacked"
printf 'median of %d cold runs: sdme-import unpack %.2f s, --jobs=1 %.2f s, skopeo copy + umoci unpack %.2f s, podman pull %.2f s\n' \
	"$runs" "$m_sdme" "$m_sdme1" "$m_sk" "$m_pod"
printf 'ratios (goal <= 0.33): sdme / skopeo+umoci = %.2f, sdme / podman = %.2f; parallel / sequential = %.2f\n' \
	"$(echo "$m_sdme / $m_sk" | bc -l)" "$(echo "$m_sdme / $m_pod" | bc -l)" "$(echo "$m_sdme / $m_sdme1" | bc -l)"
