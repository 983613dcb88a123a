#!/bin/bash
# Host side of the end-to-end harness: builds and installs sdme into a
# throw-away systemd "host" (an nspawn container whose PID 1 is systemd, so
# generators, daemon-reload, machined and systemd-nspawn@.service are real),
# boots it, runs one scenario script inside it and collects the result.
#
# Layout of one run ($E2E_RUN):
#   stage/               `make install DESTDIR=` of the freshly built sdme
#   registry/            the local registry's storage and log
#   NAME/upper, work     the outer host's writable overlay (lower: cached tree)
#   NAME/store           /var/lib/sdme of that host (a real directory: the
#                        store's overlayfs upper dirs cannot live on overlayfs)
#   NAME/out             /e2e-out inside: log, per-boot exit codes, diagnostics
#
# The outer host shares the machine's network namespace, so it reaches the
# registry on 127.0.0.1 and the Debian mirror (needed to install systemd into
# a base image that lacks it).

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_TOP=$(cd "$E2E_DIR/../.." && pwd)
. "$E2E_TOP/tests/lib/images.sh"

E2E_WORK=${E2E_WORK:-/var/tmp/sdme-e2e}
E2E_BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-300}    # seconds per boot of an outer host
E2E_MAX_BOOTS=${E2E_MAX_BOOTS:-3}

e2e_log() { echo "e2e: $*" >&2; }
e2e_now() { date +%s.%N; }
e2e_since() { awk -v a="$1" -v b="$(e2e_now)" 'BEGIN { printf "%.2f", b - a }'; }

# Missing prerequisites: a failure under CI=true, a visible skip otherwise
# (exit 77, which callers must not count as a pass).
e2e_prereqs() {
	local missing=() c
	[ "$(id -u)" = 0 ] || missing+=("root")
	for c in systemd-nspawn debootstrap umoci skopeo docker-registry curl cargo make flock nsenter timeout; do
		command -v "$c" >/dev/null || missing+=("$c")
	done
	[ -d /sys/fs/cgroup ] || missing+=("cgroupfs")
	[ ${#missing[@]} = 0 ] && return 0
	if [ "${CI:-}" = true ]; then
		echo "e2e: FAIL: missing prerequisites: ${missing[*]}" >&2
		exit 1
	fi
	echo "e2e: SKIP (not a pass): missing prerequisites: ${missing[*]} (run tests/deps.sh as root)" >&2
	exit 77
}

# A fresh run directory; removed by e2e_cleanup unless E2E_KEEP=1.
e2e_init() {
	mkdir -p "$E2E_WORK"
	E2E_RUN=$(mktemp -d "$E2E_WORK/run.XXXXXX")
	E2E_CGROUPS=()
	e2e_log "run directory $E2E_RUN"
}

e2e_cleanup() {
	[ -n "${E2E_RUN:-}" ] || return 0
	e2e_registry_stop
	local d
	for d in "$E2E_RUN"/*/; do
		d=${d%/}
		# Anything the inner containers left mounted under the store.
		grep -q " $d/" /proc/self/mounts && umount -R -l "$d"/store 2>/dev/null
	done
	if [ "${E2E_KEEP:-0}" = 1 ]; then e2e_log "kept $E2E_RUN"; else rm -rf "$E2E_RUN"; fi
	E2E_RUN=
}

# Release build, installed the way a package would be.
e2e_build() {
	local t0 target=${CARGO_TARGET_DIR:-$E2E_TOP/target}
	t0=$(e2e_now)
	(cd "$E2E_TOP" && cargo build --release --workspace --locked -q) || { e2e_log "FAIL: cargo build"; return 1; }
	rm -rf "$E2E_RUN/stage"
	make -s -C "$E2E_TOP" install DESTDIR="$E2E_RUN/stage" PREFIX=/usr RELEASE="$target/release" \
		SYSTEMDSYSTEMUNITDIR=/usr/lib/systemd/system SYSTEMGENERATORDIR=/usr/lib/systemd/system-generators \
		>"$E2E_RUN/install.log" 2>&1 || { cat "$E2E_RUN/install.log" >&2; e2e_log "FAIL: make install"; return 1; }
	e2e_log "built and staged sdme in $(e2e_since "$t0") s"
}

# The .deb (`make deb`, packaging/deb/build.sh) for scenarios that say
# `# e2e-install: deb`; sets E2E_DEB.
e2e_build_deb() {
	local t0; t0=$(e2e_now)
	E2E_DEB=$("$E2E_TOP/packaging/deb/build.sh" "$E2E_RUN/deb" 2>"$E2E_RUN/deb.log") ||
		{ cat "$E2E_RUN/deb.log" >&2; e2e_log "FAIL: make deb"; return 1; }
	e2e_log "built $(basename "$E2E_DEB") in $(e2e_since "$t0") s"
}

# ---- registry -------------------------------------------------------------

# Plain-http registry on 127.0.0.1 (tests/lib/registry.sh).
e2e_registry_start() {
	. "$E2E_TOP/tests/lib/registry.sh" || return 1
	E2E_REGISTRY=$(registry_start "$E2E_RUN/registry") || { e2e_log "FAIL: registry did not start"; return 1; }
}

e2e_registry_stop() {
	[ -n "${E2E_REGISTRY:-}" ] || return 0
	registry_stop "$E2E_RUN/registry"
	E2E_REGISTRY=
	# Registries that scenarios' host hooks started.
	local d
	for d in "$E2E_RUN"/*/registry-*/*/; do [ -f "$d/pid" ] && registry_stop "${d%/}"; done
	return 0
}

# ---- outer hosts ----------------------------------------------------------

# e2e_outer_new NAME [deb]: a fresh outer host with sdme installed
# (`make install`), or with only the .deb of e2e_build_deb copied in as
# /usr/local/lib/sdme-e2e/sdme.deb (E2E_DEB in the guest's environment),
# for the scenario to install with dpkg as an operator would.
e2e_outer_new() {
	local name=$1 how=${2:-make} h=$E2E_RUN/$1 lower l
	lower=$(images_tree outer) || return 1
	mkdir -p "$h/upper" "$h/work" "$h/store" "$h/out"
	# Keep the merged-/usr symlinks (/lib -> usr/lib …) on top: a real
	# directory of the same name in the upper dir would hide them.
	for l in "$lower"/*; do [ -L "$l" ] && cp -a "$l" "$h/upper/"; done
	[ "$how" = deb ] || cp -a "$E2E_RUN/stage/." "$h/upper/"
	mkdir -p "$h/upper/usr/local/lib/sdme-e2e" "$h/upper/etc/systemd/system/multi-user.target.wants" "$h/upper/etc/sdme"
	[ "$how" != deb ] || cp "$E2E_DEB" "$h/upper/usr/local/lib/sdme-e2e/sdme.deb" || return 1
	cp "$E2E_DIR/guest/"* "$h/upper/usr/local/lib/sdme-e2e/"
	cp "$E2E_DIR/guest/e2e-scenario.service" "$h/upper/etc/systemd/system/"
	ln -sf /etc/systemd/system/e2e-scenario.service "$h/upper/etc/systemd/system/multi-user.target.wants/"
	echo "$name" >"$h/upper/etc/hostname"
	{
		echo "E2E_REGISTRY=${E2E_REGISTRY:-}"
		echo "E2E_NAME=$name"
		[ "$how" != deb ] || echo "E2E_DEB=/usr/local/lib/sdme-e2e/sdme.deb"
	} >"$h/upper/usr/local/lib/sdme-e2e/env"
	E2E_LOWER=$lower
}

# The cgroup the outer runs in: with no systemd on this machine, nspawn would
# otherwise put its payload/ and supervisor/ cgroups at the root, where
# concurrent containers collide.
e2e_in_cgroup() { # NAME command...
	local n=$1 h hs=(); shift
	for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
		[ -e "$h/cgroup.procs" ] && [ -w "$h" ] && hs+=("$h")
	done
	(
		for h in "${hs[@]}"; do mkdir -p "$h/sdme-tests.slice/$n" && echo "$BASHPID" >"$h/sdme-tests.slice/$n/cgroup.procs"; done
		exec "$@"
	)
	local rc=$?
	for h in "${hs[@]}"; do
		[ -d "$h/sdme-tests.slice/$n" ] && find "$h/sdme-tests.slice/$n" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	return $rc
}

# e2e_outer_boot NAME SCENARIO_FILE [nspawn options]: boots the outer host
# (again, after a reboot) until the scenario has run; prints its log live.
e2e_outer_boot() {
	local name=$1 scenario=$2 h=$E2E_RUN/$1 rc boots=0 tailpid; shift 2
	cp "$scenario" "$h/upper/usr/local/lib/sdme-e2e/scenario.sh"
	: >>"$h/out/log"
	tail -n +1 -F "$h/out/log" 2>/dev/null | sed -u "s/^/  [$name] /" &
	tailpid=$!
	while :; do
		boots=$((boots + 1))
		SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 e2e_in_cgroup "e2e-$name-$$" \
			timeout -k 15 "$E2E_BOOT_TIMEOUT" systemd-nspawn --quiet \
			--directory="$E2E_LOWER" --overlay="$E2E_LOWER:$h/upper:/" \
			--machine="e2e-$name" --register=no --keep-unit --boot --console=read-only \
			--link-journal=no --capability=CAP_NET_ADMIN \
			--bind="$h/store:/var/lib/sdme" --bind="$h/out:/e2e-out" \
			"$@" >>"$h/out/console.log" 2>&1
		rc=$?
		echo "e2e: boot $boots of $name: systemd-nspawn exited with $rc" >>"$h/out/console.log"
		# 133: the host asked for a reboot (see systemd-nspawn(1)).
		[ $rc = 133 ] && [ $boots -lt "$E2E_MAX_BOOTS" ] && continue
		break
	done
	sleep 0.2
	kill "$tailpid" 2>/dev/null; wait "$tailpid" 2>/dev/null
	[ $rc = 124 ] || [ $rc = 137 ] && echo "  [$name] FAIL: outer host timed out after ${E2E_BOOT_TIMEOUT}s" | tee -a "$h/out/log"
	return $rc
}

# Verdict of a finished scenario: its last exit code and its FAIL lines.
e2e_verdict() {
	local name=$1 h=$E2E_RUN/$1 last
	last=$(ls "$h/out"/rc.* 2>/dev/null | sort -t. -k2 -n | tail -1)
	if [ -z "$last" ]; then
		echo "  [$name] FAIL: the scenario never ran to the end; last console lines:"
		tail -40 "$h/out/console.log" | sed "s/^/  [$name] console: /"
		return 1
	fi
	if [ "$(cat "$last")" != 0 ] || grep -q '^FAIL' "$h/out/log"; then
		[ -s "$h/out/diag.log" ] && sed "s/^/  [$name] diag: /" "$h/out/diag.log" | tail -150
		return 1
	fi
	grep -q '^PASS' "$h/out/log" || { echo "  [$name] FAIL: the scenario checked nothing"; return 1; }
	return 0
}
