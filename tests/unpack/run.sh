#!/bin/bash
# Oracle tier for `sdme-import unpack`: the same OCI images are unpacked by
# sdme-import and by umoci, and the trees are compared entry by entry by
# tests/tools/treecmp.py (types, modes, owners, sizes, content hashes, link
# targets, hardlink groups, xattrs, device numbers, mtimes of non-dirs).
# Then the failure paths: nothing half-written at DEST, nothing left beside it.
#
# Images (built offline, deterministic):
#   basic       one layer of every entry kind (tests/unpack/layers.py)
#   layered     basic + whiteouts/opaque/swaps + swaps back (three layers)
#   inserted    basic + layers made by umoci itself (insert, --whiteout, --opaque)
#   repacked    basic + a layer made by `umoci repack` from a changed tree
#   busybox     /bin/busybox of busybox-static with its applet symlinks
#   cached      the e2e tier's cached Debian images (directory mtimes compared too)
# and, when tests/lib/registry.sh exists, the same images pulled from a
# local docker-registry (gzip and zstd layers, Docker v2s2 manifests).
#
# Under CI=true a missing prerequisite is a failure, never a skip.
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
ci=${CI:-false}
pass=0
fail=0
skipped=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
skip() {
	if [ "$ci" = true ]; then bad "prerequisite missing under CI: $*"; else echo "skip: $*"; skipped=$((skipped + 1)); fi
}

for c in umoci python3 skopeo; do
	command -v $c >/dev/null || { skip "command $c"; }
done
if [ "$(id -u)" != 0 ]; then
	skip "root (owners, devices, security.capability)"
	echo "$pass passed, $fail failed"
	exit $((fail > 0))
fi
command -v umoci >/dev/null && command -v python3 >/dev/null || { echo "$pass passed, $fail failed"; exit 1; }

target=${CARGO_TARGET_DIR:-$top/target}
if [ -z "${SDME_IMPORT:-}" ]; then
	cargo build --release --locked -q -p sdme-import || { bad "cargo build"; echo "$pass passed, $fail failed"; exit 1; }
	SDME_IMPORT=$target/release/sdme-import
fi
treecmp=$top/tests/tools/treecmp.py

work=$(mktemp -d /var/tmp/sdme-unpack-test.XXXXXX)
cleanup() {
	[ -n "${reg_loaded:-}" ] && registry_stop_all
	rm -rf "$work"
}
trap cleanup EXIT
L=$work/layout

# ---- the compare tool itself must see differences ---------------------------
mkdir -p "$work/tc/a/d" "$work/tc/b/d"
echo x >"$work/tc/a/d/f"; echo x >"$work/tc/b/d/f"
touch -d @1000 "$work/tc/a/d/f" "$work/tc/b/d/f"
if "$treecmp" "$work/tc/a" "$work/tc/b" >/dev/null; then ok "treecmp: equal trees"; else bad "treecmp: equal trees reported different"; fi
chmod 600 "$work/tc/b/d/f"
if "$treecmp" "$work/tc/a" "$work/tc/b" >/dev/null; then bad "treecmp: missed a mode difference"; else ok "treecmp: mode difference seen"; fi
chmod 644 "$work/tc/b/d/f"; ln "$work/tc/b/d/f" "$work/tc/b/d/g"; cp -p "$work/tc/a/d/f" "$work/tc/a/d/g"
if "$treecmp" "$work/tc/a" "$work/tc/b" >/dev/null; then bad "treecmp: missed a hardlink difference"; else ok "treecmp: hardlink difference seen"; fi
setfattr() { python3 -c 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())' "$@"; }
rm "$work/tc/b/d/g"; cp -p "$work/tc/a/d/g" "$work/tc/b/d/g"; setfattr "$work/tc/b/d/g" user.x y
if "$treecmp" "$work/tc/a" "$work/tc/b" >/dev/null; then bad "treecmp: missed an xattr difference"; else ok "treecmp: xattr difference seen"; fi

# ---- build the images ------------------------------------------------------------
python3 tests/unpack/layers.py "$work/layers" || { bad "layers.py"; }
umoci init --layout "$L" || bad "umoci init"
new_image() { umoci new --image "$L:$1" && umoci config --image "$L:$1" --config.cmd=/bin/sh >/dev/null; }
add_layers() { # TAG TAR...
	local tag=$1 t; shift
	new_image "$tag" || return 1
	for t in "$@"; do umoci raw add-layer --image "$L:$tag" "$work/layers/$t" || return 1; done
}
add_layers basic basic.tar || bad "image basic"
add_layers layered basic.tar whiteouts.tar swaps.tar || bad "image layered"

# inserted: umoci's own whiteout and opaque layers.
if add_layers inserted basic.tar; then
	mkdir -p "$work/ins/newdir/sub" && echo new >"$work/ins/newdir/sub/file" && echo top >"$work/ins/top"
	umoci insert --image "$L:inserted" "$work/ins/newdir" /opq1 &&
		umoci insert --image "$L:inserted" --opaque "$work/ins/newdir" /opq2 &&
		umoci insert --image "$L:inserted" --whiteout /old/tree &&
		umoci insert --image "$L:inserted" --whiteout /bin/sh &&
		umoci insert --image "$L:inserted" "$work/ins/top" /bin/sh ||
		bad "image inserted"
else
	bad "image inserted"
fi

# repacked: umoci computes the diff (its own whiteouts) from a changed tree.
if add_layers repacked basic.tar && umoci unpack --image "$L:repacked" "$work/rp" >/dev/null; then
	R=$work/rp/rootfs
	rm -rf "$R/old/tree" "$R/etc/shadow" && rm "$R/swap-f2d" && mkdir "$R/swap-f2d" &&
		rm -rf "$R/swap-d2f" && echo now-file >"$R/swap-d2f" && chmod 4711 "$R/bin/owned" &&
		chown 777:888 "$R/data/x" && echo more >>"$R/data/h1" && ln -s /etc "$R/newlink" &&
		touch -d @1600000000 "$R/etc/hostname" &&
		umoci repack --image "$L:repacked" "$work/rp" >/dev/null || bad "image repacked"
else
	bad "image repacked"
fi

# busybox: the static binary of Debian's busybox-static and its applets.
if [ -x /bin/busybox ] && dpkg-query -W busybox-static >/dev/null 2>&1; then
	B=$work/bbtree
	mkdir -p "$B/bin" "$B/etc" "$B/www" "$B/tmp" && chmod 1777 "$B/tmp"
	cp -p /bin/busybox "$B/bin/busybox"
	for a in $(/bin/busybox --list); do ln -sf busybox "$B/bin/$a"; done
	echo 'root:x:0:0:root:/:/bin/sh' >"$B/etc/passwd"; echo 'root:x:0:' >"$B/etc/group"
	echo 'hello from busybox oci' >"$B/www/index.html"
	tar --numeric-owner --xattrs --xattrs-include='*' -C "$B" -cf "$work/layers/busybox.tar" . &&
		add_layers busybox busybox.tar || bad "image busybox"
else
	skip "busybox-static (/bin/busybox)"
fi

tags=(basic layered inserted repacked)
[ -e "$work/layers/busybox.tar" ] && tags+=(busybox)

# ---- compare with umoci ---------------------------------------------------------
cmpopts=()
compare() { # NAME SOURCE ORACLE_ROOTFS [unpack options...]   (treecmp options in $cmpopts)
	local name=$1 src=$2 oracle=$3; shift 3
	local dest=$work/ours/$name
	mkdir -p "$work/ours"
	if ! "$SDME_IMPORT" unpack "$@" "$src" "$dest" 2>"$work/err"; then
		bad "$name: sdme-import unpack failed: $(cat "$work/err")"
		return
	fi
	if "$treecmp" "${cmpopts[@]}" "$dest" "$oracle" >"$work/cmp" 2>&1; then
		ok "$name: $(tail -1 "$work/cmp")"
	else
		bad "$name: trees differ from umoci's:"
		head -40 "$work/cmp"
	fi
}
for t in "${tags[@]}"; do
	if umoci unpack --image "$L:$t" "$work/umoci/$t" >/dev/null 2>"$work/err"; then
		compare "oci:$t" "oci:$L:$t" "$work/umoci/$t/rootfs"
		compare "oci:$t (sequential)" "oci:$L:$t" "$work/umoci/$t/rootfs" --jobs=1
	else
		bad "umoci unpack $t: $(cat "$work/err")"
	fi
done

# Spot checks that do not depend on the oracle agreeing with us.
o=$work/ours/oci:layered
[ "$(cat "$o/again" 2>/dev/null)" = "upper version" ] && ok "layered: re-created entry kept" || bad "layered: again"
[ ! -e "$o/old/tree" ] && [ ! -e "$o/old/file" ] && ok "layered: whiteouts applied" || bad "layered: whiteouts"
[ -e "$o/opq1/sub/new2" ] && [ ! -e "$o/opq1/lower" ] && [ ! -e "$o/opq2/lower" ] && [ -e "$o/opq2/new" ] &&
	ok "layered: opaque directories" || bad "layered: opaque directories"
[ -d "$o/swap-d2f" ] && [ -f "$o/swap-f2d" ] && [ -d "$o/swap-l2d" ] && ok "layered: swaps" || bad "layered: swaps"
[ "$(stat -c %a "$o/bin/suid" 2>/dev/null)" = 4755 ] && [ "$(stat -c %u:%g "$o/bin/owned")" = 1234:5678 ] &&
	ok "layered: setuid after chown" || bad "layered: setuid/owner"
command -v getcap >/dev/null && { getcap "$o/bin/ping" | grep -q cap_net_raw && ok "layered: file capability" || bad "layered: file capability"; }

# The e2e tier's cached Debian images (real distribution trees), if present.
if [ -x tests/lib/images.sh ]; then
	for img in debian-nosystemd nginx-v2; do
		# A complete entry (built aside and renamed into place): not one being built.
		cached=$(for c in /var/cache/sdme-tests/oci/"$img"-*; do
			case $c in *.tmp*) continue ;; esac
			[ -f "$c/index.json" ] && echo "$c"
		done | head -1)
		if [ -z "$cached" ]; then
			[ "$ci" = true ] && cached=$(tests/lib/images.sh oci "$img" 2>/dev/null | sed 's/:[^:]*$//')
		fi
		[ -n "$cached" ] && [ -d "$cached" ] || { skip "cached image $img"; continue; }
		tag=$(python3 -c 'import json,sys; i=json.load(open(sys.argv[1]+"/index.json")); print(i["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$cached") ||
			{ bad "$img: no tag in $cached"; continue; }
		if umoci unpack --image "$cached:$tag" "$work/umoci/$img" >/dev/null 2>"$work/err"; then
			# Every directory is listed in these layers: directory times must match too.
			cmpopts=(--dir-mtimes)
			compare "cached:$img" "oci:$cached:$tag" "$work/umoci/$img/rootfs"
			cmpopts=()
			rm -rf "$work/ours/cached:$img"
		else
			bad "umoci unpack $img: $(cat "$work/err")"
		fi
		rm -rf "$work/umoci/$img"
	done
else
	skip "tests/lib/images.sh (cached Debian images)"
fi

# ---- through a registry ----------------------------------------------------------
if [ -f tests/lib/registry.sh ]; then
	# shellcheck source=../lib/registry.sh
	. tests/lib/registry.sh
	reg_loaded=1
	if addr=$(registry_start "$work/reg"); then
		for t in "${tags[@]}"; do
			skopeo copy -q --dest-tls-verify=false "oci:$L:$t" "docker://$addr/oracle/$t:gz" >/dev/null 2>"$work/err" ||
				{ bad "push $t: $(cat "$work/err")"; continue; }
			compare "registry:$t" "$addr/oracle/$t:gz" "$work/umoci/$t/rootfs" --tls-verify=false
		done
		skopeo copy -q --dest-tls-verify=false --dest-compress-format zstd "oci:$L:layered" "docker://$addr/oracle/zstd:1" >/dev/null 2>"$work/err" &&
			compare "registry:layered zstd" "$addr/oracle/zstd:1" "$work/umoci/layered/rootfs" --tls-verify=false ||
			bad "push zstd: $(cat "$work/err")"
		skopeo copy -q --dest-tls-verify=false --format v2s2 "oci:$L:layered" "docker://$addr/oracle/v2s2:1" >/dev/null 2>"$work/err" &&
			compare "registry:layered v2s2" "$addr/oracle/v2s2:1" "$work/umoci/layered/rootfs" --tls-verify=false ||
			bad "push v2s2: $(cat "$work/err")"
	else
		bad "registry_start"
	fi
else
	skip "tests/lib/registry.sh"
fi

# ---- failure paths: DEST untouched, nothing left beside it --------------------------
leftovers() { ls -A "$1" | grep -c '^\..*\.tmp-' || true; }
mkdir -p "$work/f"
mkdir "$work/f/full" && echo keep >"$work/f/full/file"
if "$SDME_IMPORT" unpack "oci:$L:basic" "$work/f/full" 2>/dev/null; then bad "non-empty DEST accepted"; else
	[ "$(cat "$work/f/full/file")" = keep ] && [ "$(ls -A "$work/f/full")" = file ] && ok "non-empty DEST refused and untouched" || bad "non-empty DEST changed"
fi
echo x >"$work/f/afile"
"$SDME_IMPORT" unpack "oci:$L:basic" "$work/f/afile" 2>/dev/null && bad "file DEST accepted" || ok "file DEST refused"
mkdir "$work/f/empty"
"$SDME_IMPORT" unpack "oci:$L:basic" "$work/f/empty" 2>"$work/err" && [ -f "$work/f/empty/etc/hostname" ] &&
	ok "empty DEST directory replaced" || bad "empty DEST: $(cat "$work/err")"
"$SDME_IMPORT" unpack "oci:$L:nosuchtag" "$work/f/notag" 2>"$work/err" && bad "missing tag accepted" ||
	{ [ ! -e "$work/f/notag" ] && grep -q nosuchtag "$work/err" && ok "missing tag: clear error ($(head -c 120 "$work/err"))" || bad "missing tag: $(cat "$work/err")"; }
# A tampered layer blob (same size, one byte flipped) of the last layer: the
# digest check fails at the end of the stream, after lower layers were applied.
cp -a "$L" "$work/tampered"
last=$(python3 - "$work/tampered" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = [x for x in idx["manifests"] if x.get("annotations", {}).get("org.opencontainers.image.ref.name") == "layered"][0]
man = json.load(open(d + "/blobs/sha256/" + m["digest"].split(":")[1]))
print(d + "/blobs/sha256/" + man["layers"][-1]["digest"].split(":")[1])
PY
)
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' "$last"
for jobs in 1 4; do
	"$SDME_IMPORT" unpack --jobs=$jobs "oci:$work/tampered:layered" "$work/f/tampered" 2>"$work/err" && bad "tampered layer accepted (jobs=$jobs)" ||
		{ [ ! -e "$work/f/tampered" ] && [ "$(leftovers "$work/f")" = 0 ] && ok "tampered layer (jobs=$jobs): refused, nothing left ($(head -c 150 "$work/err"))" ||
			bad "tampered layer (jobs=$jobs): DEST or staging left: $(ls -A "$work/f")"; }
done
# A hostile layer (an entry for the root that is not a directory).
python3 - "$work/layers/hostile.tar" <<'PY'
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
ti = tarfile.TarInfo("etc/ok"); ti.size = 2; t.addfile(ti, io.BytesIO(b"ok"))
ti = tarfile.TarInfo("."); ti.type = tarfile.SYMTYPE; ti.linkname = "/"; t.addfile(ti)
t.close()
PY
add_layers hostile hostile.tar || bad "image hostile"
"$SDME_IMPORT" unpack "oci:$L:hostile" "$work/f/hostile" 2>"$work/err" && bad "hostile layer accepted" ||
	{ [ ! -e "$work/f/hostile" ] && [ "$(leftovers "$work/f")" = 0 ] && ok "hostile layer: refused, nothing left ($(head -c 150 "$work/err"))" || bad "hostile layer: leftovers"; }

echo "unpack tier: $pass passed, $fail failed, $skipped skipped"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
