#!/bin/bash
# Builds the registry tier's test images offline into one OCI layout with
# umoci (busybox-static from the host, no network):
#   busybox     one layer: /bin/busybox + applet links, /etc/passwd, config
#   multi       busybox + a layer adding files + a layer deleting one (whiteout)
#   arm64       a one-layer image whose config says linux/arm64/v8
#   multiarch   an OCI index over busybox (linux/amd64) and arm64, plus an
#               attestation-style entry (unknown/unknown) that must be skipped
#   big         busybox + a ~48 MiB layer (throughput figure)
# usage: fixtures.sh LAYOUT_DIR
set -euo pipefail
L=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/sdme-fixtures.XXXXXX")
trap 'rm -rf "$work"' EXIT
bb=$(command -v busybox)

umoci init --layout "$L"

unpack() { umoci unpack --rootless --image "$L:$1" "$work/$2" >/dev/null; }
repack() { umoci repack --image "$L:$1" "$work/$2" >/dev/null; rm -rf "${work:?}/$2"; }

# busybox
umoci new --image "$L:busybox"
unpack busybox b
R=$work/b/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/www"
cp "$bb" "$R/bin/busybox"
for a in sh ls cat echo httpd sleep true; do ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
echo 'hello from the sdme registry tier' >"$R/www/index.html"
repack busybox b
umoci config --image "$L:busybox" --config.entrypoint /bin/httpd \
	--config.cmd=-f --config.cmd=-p --config.cmd=8080 --config.cmd=-h --config.cmd=/www \
	--config.exposedports 8080/tcp --config.env PATH=/bin --author sdme-tests

# multi: two more layers on top of busybox
umoci tag --image "$L:busybox" multi
unpack multi m
mkdir -p "$work/m/rootfs/data/sub"
seq 1 20000 >"$work/m/rootfs/data/numbers"
echo a >"$work/m/rootfs/data/sub/a"
ln "$work/m/rootfs/data/sub/a" "$work/m/rootfs/data/sub/a-hardlink"
repack multi m
unpack multi m
rm "$work/m/rootfs/data/numbers" "$work/m/rootfs/www/index.html"
echo changed >"$work/m/rootfs/data/sub/a"
repack multi m

# arm64: its own one-layer image with an arm64 config
umoci new --image "$L:arm64"
unpack arm64 a
mkdir -p "$work/a/rootfs/etc"
echo 'arch=arm64' >"$work/a/rootfs/etc/arch"
repack arm64 a
umoci config --image "$L:arm64" --architecture arm64 --os linux --config.cmd /bin/sh

# big: busybox + a large, moderately compressible layer
umoci tag --image "$L:busybox" big
unpack big g
# (head closing the pipe early is expected: no pipefail here)
(set +o pipefail; find /usr/bin /usr/lib -maxdepth 1 -type f -size +100k 2>/dev/null | sort |
	xargs cat 2>/dev/null | head -c $((48 * 1024 * 1024)) >"$work/g/rootfs/big.bin")
repack big g

umoci gc --layout "$L"

# multiarch: an index written by hand, added to index.json as a tag. The
# arm64 manifest's descriptor gets variant v8 (normalization: ≡ no variant).
python3 - "$L" <<'PY'
import hashlib, json, os, sys
L = sys.argv[1]
idx_path = os.path.join(L, "index.json")
idx = json.load(open(idx_path))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
def entry(tag, platform):
    d = {k: by_tag[tag][k] for k in ("mediaType", "digest", "size")}
    d["platform"] = platform
    return d
attestation = {k: by_tag["busybox"][k] for k in ("mediaType", "digest", "size")}
attestation["platform"] = {"os": "unknown", "architecture": "unknown"}
attestation["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [attestation,
                       entry("arm64", {"os": "linux", "architecture": "arm64", "variant": "v8"}),
                       entry("busybox", {"os": "linux", "architecture": "amd64"})]}
raw = json.dumps(index).encode()
digest = hashlib.sha256(raw).hexdigest()
open(os.path.join(L, "blobs", "sha256", digest), "wb").write(raw)
idx["manifests"].append({"mediaType": index["mediaType"], "digest": "sha256:" + digest, "size": len(raw),
                         "annotations": {"org.opencontainers.image.ref.name": "multiarch"}})
json.dump(idx, open(idx_path, "w"))
PY
echo "fixtures: built busybox multi arm64 big multiarch in $L" >&2
