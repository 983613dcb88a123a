#!/bin/bash
# Builds sdme_VERSION_ARCH.deb from `make install` (`make deb`):
#   packaging/deb/build.sh [OUTDIR]      (default: target/deb)
# The tree is `make install DESTDIR=…` as is, plus what Debian expects of
# a binary package: stripped ELF files, man pages and the changelog
# compressed with gzip -9n, a DEP-5 copyright file, md5sums, the maintainer
# scripts of this directory, Depends computed by dpkg-shlibdeps. Nothing
# here touches the network (cargo only reads its registry cache).
# VERSION is the workspace version of Cargo.toml plus the Debian revision
# DEB_REVISION (default 1): sdme_0.1.0-1_amd64.deb.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$(mkdir -p "${1:-$top/target/deb}" && cd "${1:-$top/target/deb}" && pwd)
cd "$top"

die() { echo "deb: error: $*" >&2; exit 1; }
for c in dpkg-deb dpkg-shlibdeps strip gzip make cargo; do command -v "$c" >/dev/null || die "$c is required"; done

version=$(awk '/^\[workspace.package\]/ { p = 1; next } /^\[/ { p = 0 } p && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.toml)
[ -n "$version" ] || die "no [workspace.package] version in Cargo.toml"
deb_version=$version-${DEB_REVISION:-1}
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-sdme maintainers <maintainers@users.noreply.r-seed-c3a1d384.example>}
# Every date is the last commit's (or SOURCE_DATE_EPOCH's).
# Not exported to the build: a change of it would make cargo rebuild.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -u -R -d "@$epoch")

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
make -s install DESTDIR="$root" PREFIX=/usr >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; die "make install failed"; }

# Strip as dh_strip does (the static connectors included).
elfs=()
while IFS= read -r -d '' f; do
	[ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = 177ELF ] && elfs+=("$f")
done < <(find "$root" -type f -print0)
[ ${#elfs[@]} -gt 0 ] || die "no binaries were installed"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "${elfs[@]}"

# Man pages and docs as Debian ships them.
find "$root/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
doc=$root/usr/share/doc/sdme
install -d "$doc"
sed -e "s/@DEB_VERSION@/$deb_version/" -e "s/@MAINTAINER@/$maintainer/" -e "s/@DATE@/$date/" \
	"$here/changelog" | gzip -9n >"$doc/changelog.Debian.gz"
# The crates linked into the binaries: normal dependencies, not build
# scripts' or proc macros'.
crates=$(cargo tree -e normal,no-proc-macro --prefix none --format '{p}: {l}' --workspace --locked --offline 2>/dev/null |
	sed -E 's/ \(\*\)//g; s/ \(\/[^)]*\)//' | grep -v -e '^sdme' -e '^$' | sort -u |
	awk 'NF { sub(/: *$/, ": see the crate"); print "  " $0 }') || die "cargo tree failed (crate list for the copyright file)"
[ -n "$crates" ] || die "no crates listed (cargo tree)"
awk -v crates="$crates" -v m="$maintainer" '{ gsub(/@MAINTAINER@/, m); if ($0 == "@CRATES@") print crates; else print }' \
	"$here/copyright.in" >"$doc/copyright"
chmod 644 "$doc"/*

# Control files.
install -d "$root/DEBIAN"
install -m755 "$here/postinst" "$here/postrm" "$root/DEBIAN/"
mkdir -p "$work/shlibs/debian"
printf 'Source: sdme\n\nPackage: sdme\nArchitecture: any\n' >"$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "${elfs[@]}" 2>"$work/shlibdeps.log") ||
	{ cat "$work/shlibdeps.log" >&2; die "dpkg-shlibdeps failed"; }
libdeps=$(sed -n 's/^shlibs:Depends=//p' <<<"$shlibs")
[ -n "$libdeps" ] || libdeps="libc6 (>= 2.34)"
# The connectors link glibc statically: name the source it came from.
built_using=$(dpkg-query -W -f='${source:Package} (= ${source:Version})' libc6-dev 2>/dev/null) || built_using=
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
{
	echo "Package: sdme"
	echo "Version: $deb_version"
	echo "Architecture: $arch"
	echo "Maintainer: $maintainer"
	echo "Installed-Size: $installed_size"
	echo "Depends: $libdeps, systemd, systemd-container"
	[ -z "$built_using" ] || echo "Built-Using: $built_using"
	echo "Section: admin"
	echo "Priority: optional"
	echo "Description: OCI application images as systemd services in nspawn containers"
	cat <<'EOD'
 sdme runs OCI application images (nginx, mariadb, redis, ...) as ordinary
 systemd services inside systemd-booted systemd-nspawn containers. It is a
 systemd generator plus helper binaries, with no resident manager: drop a
 descriptor into /etc/sdme, run "systemctl daemon-reload", and systemd
 itself does the orchestration: ordering, restarts, logging, resource
 control, start at boot.
 .
 Images are pulled from any OCI distribution registry or local OCI
 layouts and archives, unpacked once into a content-addressed layer store
 under /var/lib/sdme and stacked with overlayfs for each container.
EOD
} >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -newermt "@$epoch" -exec touch -h -d "@$epoch" {} +

deb=$out/sdme_${deb_version}_$arch.deb
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
