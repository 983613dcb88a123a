#!/bin/bash
# Test tier "generator": `systemd-analyze verify` over the expected output of
# every golden case (tests/generator/cases/*/expected), as systemd itself
# would load it.
#
# How verify is made meaningful on a machine whose PID 1 is not systemd:
# a scratch root holds the host's stock units (/usr/lib/systemd/system, for
# systemd-nspawn@.service and the targets), executable stubs at the paths
# the units run (/usr/bin/sdme-import, /usr/libexec/sdme/sdme-nspawn,
# /usr/bin/systemctl for a reload; verify
# refuses an ExecStart= whose binary is missing), and one case's output at
# a time in etc/systemd/system. `systemd-analyze verify --root=` then loads
# every generated unit, every unit that has a generated drop-in, and every
# unit an [Install] symlink names. verify only warns (exit 0) about unknown
# keys and unparsable values, so ANY output counts as a failure. Symlink
# targets must exist in the root. Man pages are not checked (--man=no):
# other parts install them.
#
# Before the cases, a canary: a deliberately broken unit must fail, so this
# tier can never pass by checking nothing.
#
# Then tests/generator/under-systemd.sh boots a real systemd (nested nspawn,
# the outer tree from E2E_SUITE, default bookworm) with the generator
# installed and checks that systemd loads the units and passes the helpers
# exactly the argv the expected files spell out. GENERATOR_UNDER_SYSTEMD=0
# leaves that part out (tests/run-all.sh runs it once per suite as tiers of
# their own).
set -uo pipefail
cd "$(dirname "$0")/../.."
cases=tests/generator/cases

command -v systemd-analyze >/dev/null || { echo "generator: systemd-analyze is not installed"; exit 1; }
[ -f /usr/lib/systemd/system/systemd-nspawn@.service ] ||
	{ echo "generator: systemd-nspawn@.service missing (install systemd-container)"; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
root=$scratch/root
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin" "$root/usr/libexec/sdme" "$root/etc/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
# sdme's own static units (the auto-update service gets a generated drop-in).
cp units/*.service units/*.timer "$root/usr/lib/systemd/system/"
for stub in usr/bin/sdme-import usr/libexec/sdme/sdme-nspawn usr/bin/systemctl usr/libexec/sdme/sdme-netns; do
	printf '#!/bin/sh\nexit 0\n' >"$root/$stub"
	chmod 755 "$root/$stub"
done
unitdir=$root/etc/systemd/system

# verify_tree DIR: installs DIR as the generator output and verifies it.
# Prints problems; returns non-zero if there are any.
verify_tree() {
	local tree=$1 units=() problems="" f link target
	rm -rf "$unitdir"
	mkdir -p "$unitdir"
	[ -d "$tree" ] && cp -a "$tree/." "$unitdir/"
	for f in "$unitdir"/*.service "$unitdir"/*.socket; do
		[ -f "$f" ] && units+=("$(basename "$f")")
	done
	for f in "$unitdir"/*.d; do
		[ -d "$f" ] && units+=("$(basename "${f%.d}")")
	done
	for link in "$unitdir"/*.wants/* "$unitdir"/*.requires/*; do
		[ -L "$link" ] || continue
		units+=("$(basename "$link")")
		target=$(readlink "$link")
		case $target in
		/*) [ -e "$root$target" ] || problems+="dangling [Install] symlink $link -> $target"$'\n' ;;
		*) [ -e "$(dirname "$link")/$target" ] || problems+="dangling [Install] symlink $link -> $target"$'\n' ;;
		esac
	done
	if [ ${#units[@]} -gt 0 ]; then
		mapfile -t units < <(printf '%s\n' "${units[@]}" | sort -u)
		local out
		out=$(cd "$scratch" && systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1)
		local rc=$?
		[ $rc -ne 0 ] && problems+="systemd-analyze verify exited with $rc"$'\n'
		[ -n "$out" ] && problems+="$out"$'\n'
	fi
	if [ -n "$problems" ]; then
		printf '%s' "$problems"
		return 1
	fi
	return 0
}

# The canary: each of these is a real unit error and must be caught.
canary=$scratch/canary
mkdir -p "$canary/bad-key" "$canary/bad-exec/systemd-nspawn@x.service.d" "$canary/dangling/machines.target.wants"
printf '[Service]\nType=oneshot\nExecStart=/usr/bin/sdme-import pull x\nNoSuchKey=1\n' >"$canary/bad-key/sdme-import@x.service"
printf '[Service]\nExecStart=\nExecStart=/usr/libexec/sdme/missing-binary\n' \
	>"$canary/bad-exec/systemd-nspawn@x.service.d/50-sdme.conf"
ln -s ../sdme-import@gone.service "$canary/dangling/machines.target.wants/sdme-import@gone.service"
for c in bad-key bad-exec dangling; do
	if verify_tree "$canary/$c" >/dev/null; then
		echo "generator: canary '$c' was not caught: systemd-analyze verify is not checking anything"
		exit 1
	fi
done
echo "generator: canaries caught (verify can fail)"

failed=0 checked=0
for case in "$cases"/*/; do
	name=$(basename "$case")
	checked=$((checked + 1))
	if out=$(verify_tree "$case/expected"); then
		echo "ok   $name"
	else
		echo "FAIL $name"
		printf '%s\n' "$out" | sed 's/^/     /'
		failed=$((failed + 1))
	fi
done
echo "generator: verified $checked cases, $failed failed"
[ "$checked" -ge 30 ] || { echo "generator: expected at least 30 cases"; exit 1; }
[ $failed -eq 0 ] || exit 1

[ "${GENERATOR_UNDER_SYSTEMD:-1}" = 0 ] && { echo "generator: under-systemd part left out (GENERATOR_UNDER_SYSTEMD=0)"; exit 0; }
tests/generator/under-systemd.sh
