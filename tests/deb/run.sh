#!/bin/bash
# Package tier: `make deb`, lintian, and the package installed, removed and
# purged in clean debootstrapped roots of every suite in E2E_SUITES
# (default: bookworm trixie, i.e. Debian 12 and 13), the way an operator
# installs it: `apt-get install ./sdme_….deb` (Depends come from the
# mirror). Each root is an overlay over the cached base-systemd tree (never
# written) and the install runs in systemd-nspawn, not a chroot, so the
# maintainer scripts meet a read-only /proc/sys and no systemd as PID 1,
# and the machine's own sysctls are never touched.
#
# Under CI=true a missing tool is a failure; otherwise a visible skip
# (exit 77, never a pass).
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
. tests/e2e/lib.sh

missing=()
[ "$(id -u)" = 0 ] || missing+=(root)
for c in dpkg-deb dpkg-shlibdeps lintian strip systemd-nspawn debootstrap cargo; do
	command -v "$c" >/dev/null || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "${CI:-}" = true ] && { echo "deb: FAIL: missing prerequisites: ${missing[*]}"; exit 1; }
	echo "deb: SKIP (not a pass): missing prerequisites: ${missing[*]} (run tests/deps.sh as root)"
	exit 77
fi

failed=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }
work=$(mktemp -d /var/tmp/sdme-deb.XXXXXX)
mounts=()
cleanup() {
	local m
	for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
deb=$(packaging/deb/build.sh "$work/out") || { echo "FAIL: make deb"; exit 1; }
pass "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $((SECONDS - t0)) s"

# lintian: no errors. Warnings and notes are printed; the ones left are
# listed, with the reason, in HACKING.md ("The Debian package").
lintian --display-info --pedantic "$deb" >"$work/lintian.log" 2>&1
lrc=$?
grep -v -e '^N:' -e 'running with root privileges' "$work/lintian.log" | sed 's/^/  lintian: /'
if grep -q '^E:' "$work/lintian.log"; then fail "lintian reports errors"
elif [ $lrc -ne 0 ]; then fail "lintian exited with $lrc"
else pass "lintian: no errors ($(grep -c "^W:" "$work/lintian.log") warnings, $(grep -c -e "^I:" -e "^P:" "$work/lintian.log") notes)"; fi

# What Debian expects of the contents.
dpkg-deb -c "$deb" >"$work/contents"
dpkg-deb -f "$deb" Depends >"$work/depends"
grep -q ' ./usr/share/doc/sdme/copyright$' "$work/contents" && grep -q ' ./usr/share/doc/sdme/changelog.Debian.gz$' "$work/contents" &&
	pass "copyright and changelog.Debian.gz in /usr/share/doc/sdme" || fail "copyright or changelog.Debian.gz missing"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/sdme/copyright | head -1 |
	grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' &&
	pass "copyright is DEP-5" || fail "copyright is not DEP-5"
if grep -E '/usr/share/man/man[0-9]/' "$work/contents" | grep -v '/$' | grep -qv '\.gz$'; then
	fail "uncompressed man pages"
else pass "man pages gzip-compressed ($(grep -c '/usr/share/man/man[0-9]/.*\.gz$' "$work/contents"))"; fi
for d in systemd-container systemd libc6; do
	grep -qE "(^|, )$d( |,|$)" "$work/depends" && pass "Depends: $d" || fail "Depends lacks $d: $(cat "$work/depends")"
done
grep -q ' ./usr/lib/sysctl.d/50-sdme.conf$' "$work/contents" && pass "ships sysctl.d/50-sdme.conf" || fail "no sysctl.d/50-sdme.conf"

# Install, remove, purge, install again, in a clean root of each suite.
cat >"$work/inside.sh" <<'EOS'
set -u
deb=$1
ok() { echo "PASS: $*"; }
no() { echo "FAIL: $*"; }
export DEBIAN_FRONTEND=noninteractive
apt-get -qq -o Acquire::Check-Valid-Until=false update >/tmp/apt.log 2>&1 || { tail /tmp/apt.log; no "apt-get update"; exit 1; }
[ "$(dpkg-query -W -f='${Status}' systemd-container 2>/dev/null)" = "install ok installed" ] &&
	no "the root is not clean: systemd-container is installed"
if apt-get install -y -qq --no-install-recommends "$deb" >/tmp/install.log 2>&1; then
	ok "apt-get install ./$(basename "$deb") (pulls in $(grep -c '^Setting up' /tmp/install.log) packages)"
else
	tail -20 /tmp/install.log; no "apt-get install of the package"; exit 1
fi
grep -q '50-sdme.conf applies at the next boot' /tmp/install.log && ok "postinst: sysctl deferred, says so (read-only /proc/sys)" || no "postinst said nothing about the sysctl: $(grep sdme: /tmp/install.log)"
[ "$(dpkg-query -W -f='${Status}' sdme)" = "install ok installed" ] && ok "dpkg: install ok installed" || no "dpkg status: $(dpkg-query -W -f='${Status}' sdme)"
[ "$(stat -c %a /var/lib/sdme 2>/dev/null)" = 700 ] && ok "postinst ran tmpfiles: /var/lib/sdme 0700" || no "/var/lib/sdme: $(stat -c %a /var/lib/sdme 2>&1)"
[ -d /run/systemd/nspawn ] && ok "postinst ran tmpfiles: /run/systemd/nspawn" || no "/run/systemd/nspawn missing"
gen=$(ls /lib/systemd/system-generators/sdme-generator /usr/lib/systemd/system-generators/sdme-generator 2>/dev/null | head -1)
[ -n "$gen" ] && "$gen" --version | grep -q '^sdme-generator ' && ok "generator runs: $("$gen" --version)" || no "sdme-generator missing or does not run"
/usr/libexec/sdme/sdme-nspawn --help >/dev/null && sdme-import --version >/dev/null && ok "sdme-nspawn and sdme-import run" || no "helpers do not run"
man -w sdme-nspawn 2>/dev/null | grep -q 'sdme-nspawn.8.gz' || [ -e /usr/share/man/man8/sdme-nspawn.8.gz ] && ok "man page installed" || no "no man page"
mkdir -p /var/lib/sdme/images && echo data >/var/lib/sdme/images/keep
apt-get remove -y -qq sdme >/tmp/remove.log 2>&1 && ok "apt-get remove" || { tail /tmp/remove.log; no "apt-get remove"; }
[ ! -e /usr/libexec/sdme/sdme-nspawn ] && [ -z "$(ls /lib/systemd/system-generators/sdme-generator /usr/lib/systemd/system-generators/sdme-generator 2>/dev/null)" ] &&
	ok "remove: binaries and generator gone" || no "remove left binaries"
dpkg --purge sdme >/tmp/purge.log 2>&1 && ok "dpkg --purge" || { tail /tmp/purge.log; no "dpkg --purge"; }
dpkg-query -W -f='${Status}' sdme 2>/dev/null | grep -q 'installed' && ! dpkg-query -W -f='${Status}' sdme | grep -q 'not-installed' && no "still installed after purge"
[ "$(cat /var/lib/sdme/images/keep 2>/dev/null)" = data ] && ok "purge keeps the store /var/lib/sdme (the user's data)" || no "purge removed the store"
dpkg -i "$deb" >/tmp/again.log 2>&1 && ok "installs again after purge (dpkg -i)" || { tail /tmp/again.log; no "dpkg -i after purge"; }
EOS

for suite in ${E2E_SUITES-bookworm trixie}; do
	t0=$SECONDS
	lower=$(images_tree base-systemd "$suite") || { fail "building the $suite base tree"; continue; }
	r=$work/root-$suite
	mkdir -p "$r/upper" "$r/work" "$r/deb"
	cp "$deb" "$work/inside.sh" "$r/deb/"
	for l in "$lower"/*; do [ -L "$l" ] && cp -a "$l" "$r/upper/"; done
	SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 e2e_in_cgroup "deb-$suite-$$" timeout -k 10 300 systemd-nspawn --quiet \
		--directory="$lower" --overlay="$lower:$r/upper:/" --register=no --keep-unit \
		--machine="sdme-deb-$suite-$$" --bind-ro="$r/deb:/mnt/deb" --resolv-conf=copy-host --pipe \
		bash /mnt/deb/inside.sh "/mnt/deb/$(basename "$deb")" >"$r/log" 2>&1
	rc=$?
	sed "s/^/  [$suite] /" "$r/log"
	# The postinst where /proc/sys is writable, as on a real host: a file
	# bound over the inotify limit in a private mount namespace takes the
	# write, so this machine's own limit is never changed.
	m=$r/merged
	mkdir -p "$m" && echo 128 >"$r/fake-limit"
	if mount -t overlay overlay -o "lowerdir=$lower,upperdir=$r/upper,workdir=$r/work" "$m"; then
		mounts+=("$m")
		unshare --mount --propagation private sh -ec '
			m=$1; mount -t proc proc "$m/proc"
			mount --bind "$2" "$m/proc/sys/fs/inotify/max_user_instances"
			chroot "$m" /var/lib/dpkg/info/sdme.postinst configure' sh "$m" "$r/fake-limit" >"$r/postinst.log" 2>&1
		prc=$?
		if [ $prc = 0 ] && [ "$(cat "$r/fake-limit")" = 1024 ]; then
			echo "PASS: postinst with a writable /proc/sys applies fs.inotify.max_user_instances = 1024" >>"$r/log"
		else
			echo "FAIL: postinst with a writable /proc/sys (exit $prc, limit file: $(cat "$r/fake-limit")): $(cat "$r/postinst.log")" >>"$r/log"
		fi
		umount "$m"
	else
		echo "FAIL: mounting the $suite root's overlay" >>"$r/log"
	fi
	sed -n '/writable \/proc\/sys/p; /mounting the/p' "$r/log" | sed "s/^/  [$suite] /"
	if [ $rc -ne 0 ] || grep -q '^FAIL' "$r/log" || ! grep -q '^PASS' "$r/log"; then
		fail "Debian $suite ($(images_systemd_version "$lower")): install/remove/purge (exit $rc)"
	else
		pass "Debian $suite ($(images_systemd_version "$lower")): install, remove, purge, install again ($((SECONDS - t0)) s)"
	fi
done

[ $failed = 0 ] && echo "deb: all checks passed" || echo "deb: FAILED"
[ $failed = 0 ]
