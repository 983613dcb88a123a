#!/bin/bash
# Test tier "connector": the connector server as sdme runs it, under a real
# systemd inside an nspawn container (no host systemd needed).
#
#  A  In-container units (HACKING.md, Connectors): a socket unit on
#     /connectors/t/t.sock (bound from the host) and a service running the
#     statically linked server chrooted (RootDirectory=) in a busybox-only
#     app root with BindReadOnlyPaths= of the binary. The host's client gets
#     the command's output, exit code, the unit's environment and working
#     directory, and not its own environment.
#  B  On-demand start: systemd-socket-activate stands in for a host socket
#     unit whose service is the container; the first connection boots it,
#     the container's systemd adopts the passed socket (its socket unit
#     names the host path) and answers.
#
# The container's systemd is the base-systemd tree from E2E_SUITE (default
# bookworm; trixie for systemd 257). Prints PASS/FAIL lines and "N passed,
# N failed". Under CI=true missing prerequisites are a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

missing=()
[ "$(id -u)" = 0 ] || missing+=(root)
for c in systemd-nspawn systemd-socket-activate busybox cargo debootstrap; do
	command -v "$c" >/dev/null || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "connector: missing prerequisites: ${missing[*]}"
	[ "${CI:-}" = true ] && exit 1
	echo "connector: SKIP (not a pass)"; exit 77
fi

make -s connector-static >/dev/null || { echo "FAIL: make connector-static"; exit 1; }
host=$(rustc -vV | sed -n 's/^host: //p')
bin=$top/target/static/$host/release
. tests/lib/images.sh
tree=$(images_tree base-systemd "$E2E_SUITE") || { echo "FAIL: building the base-systemd test tree from $E2E_SUITE"; exit 1; }
ver=$(images_systemd_version "$tree") || exit 1
echo "connector: container systemd $ver (Debian $E2E_SUITE)"

work=$(mktemp -d /var/tmp/sdme-connector-tier.XXXXXX)
nspawn_pids=()
cleanup() {
	local p h
	for p in "${nspawn_pids[@]}"; do stop_container "$p"; done
	for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
		for d in "$h"/sdme-tests.slice/connector-$$-*; do
			[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
		done
	done
	rm -rf "$work"
}
trap cleanup EXIT

# With no systemd as PID 1 here, each nspawn needs a cgroup of its own
# (otherwise it makes payload/ and supervisor/ at the root). Always run in
# the background (`in_cgroup NAME cmd... &`): it joins the cgroup and execs,
# so $! is the command's own pid.
in_cgroup() { # NAME command...
	local n=$1 h; shift
	for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
		[ -e "$h/cgroup.procs" ] && [ -w "$h" ] || continue
		mkdir -p "$h/sdme-tests.slice/$n" && echo "$BASHPID" >"$h/sdme-tests.slice/$n/cgroup.procs"
	done
	exec "$@"
}
stop_container() { # PID of the nspawn process: SIGTERM = clean poweroff
	local p=$1
	kill -TERM "$p" 2>/dev/null || return 0
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
	sleep 0.5
}

# An upper layer over the base tree: the static server, a busybox-only app
# root at /oci/root, /oci/env, and the two units.
make_upper() { # DIR LISTEN-PATH
	local u=$1 listen=$2 c
	mkdir -p "$u/etc/systemd/system/sockets.target.wants" "$u/usr/libexec" "$u/oci/root/bin" "$u/oci/root/srv/app"
	install -m755 "$bin/sdme-connector-server" "$u/usr/libexec/"
	cp "$(command -v busybox)" "$u/oci/root/bin/busybox"
	for c in sh cat echo pwd ls env; do ln -s busybox "$u/oci/root/bin/$c"; done
	echo 'APPVAR=from-oci-env' >"$u/oci/env"
	cat >"$u/etc/systemd/system/sdme-oci-app.socket" <<EOU
[Socket]
ListenStream=$listen
SocketMode=0666
DirectoryMode=0755
[Install]
WantedBy=sockets.target
EOU
	cat >"$u/oci/root/bin/probe" <<'EOS'
#!/bin/sh
# What the command sees: who is PID 1, whether this is the busybox-only app
# root (no /lib), its environment, cwd and arguments.
lib=no; [ -e /lib ] && lib=yes
echo "pid1=$(cat /proc/1/comm) lib=$lib app=$APPVAR client=${CLIENTVAR-unset} cwd=$(pwd) args=$*"
exit "$1"
EOS
	chmod 755 "$u/oci/root/bin/probe"
	cat >"$u/etc/systemd/system/sdme-oci-app.service" <<'EOU'
[Service]
RootDirectory=/oci/root
MountAPIVFS=yes
EnvironmentFile=-/oci/env
WorkingDirectory=/srv/app
BindReadOnlyPaths=/usr/libexec/sdme-connector-server
ExecStart=/usr/libexec/sdme-connector-server --idle-timeout=2 -- /bin/probe
EOU
	ln -s ../sdme-oci-app.socket "$u/etc/systemd/system/sockets.target.wants/"
	: >"$u/etc/machine-id"
}

client() { timeout 60 "$bin/sdme-connector-client" "$@" </dev/null; }

# ---- A: the container binds its own socket in the shared directory -------
a=$work/a
mkdir -p "$a/host"
make_upper "$a/upper" /connectors/t/t.sock
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 in_cgroup "connector-$$-a" systemd-nspawn -q -D "$tree" \
	--overlay="$tree:$a/upper:/" --register=no --keep-unit -b --console=read-only --private-network \
	--bind="$a/host:/connectors/t" >"$a/console.log" 2>&1 &
nspawn_pids+=($!)
t0=$SECONDS
for _ in $(seq 600); do [ -S "$a/host/t.sock" ] && break; sleep 0.1; done
if [ -S "$a/host/t.sock" ]; then pass "A: the container's socket unit listens in the shared directory ($((SECONDS - t0)) s)"; else fail "A: no socket after 60 s"; tail -20 "$a/console.log"; fi
out=$(CLIENTVAR=leak client --socket="$a/host/t.sock" -- 3 "x y"); rc=$?
echo "     | $out"
[ "$rc" = 3 ] && pass "A: exit code 3 comes back" || fail "A: exit code $rc, expected 3"
[[ $out == *"pid1=systemd"* ]] && pass "A: the command ran inside the container" || fail "A: not inside the container: $out"
[[ $out == *"lib=no"* ]] && pass "A: chrooted in the busybox-only app root (static server)" || fail "A: not chrooted in the app root: $out"
[[ $out == *"app=from-oci-env"* ]] && pass "A: the unit's EnvironmentFile= reaches the command" || fail "A: no unit environment: $out"
[[ $out == *"client=unset"* ]] && pass "A: the client's environment does not" || fail "A: client environment leaked: $out"
[[ $out == *"cwd=/srv/app"* ]] && pass "A: the unit's WorkingDirectory= is the cwd" || fail "A: wrong cwd: $out"
[[ $out == *"args=3 x y"* ]] && pass "A: arguments arrive intact" || fail "A: arguments: $out"
sleep 3 # past the server's idle timeout: the socket unit must start it again
out=$(client --socket="$a/host/t.sock" -- 0); rc=$?
[ "$rc" = 0 ] && pass "A: after the idle exit the socket unit starts the server again" || fail "A: after idle: exit $rc: $out"
stop_container "${nspawn_pids[0]}"

# ---- B: a socket-activated container adopts the host's socket ------------
b=$work/b
mkdir -p "$b/host"
make_upper "$b/upper" "$b/host/t.sock" # the inner unit names the HOST path
# systemd-socket-activate passes nspawn only the environment named with -E:
# without the unified view the container sees the hybrid layout, which
# systemd 256+ refuses to boot on.
in_cgroup "connector-$$-b" systemd-socket-activate -l "$b/host/t.sock" -E SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 \
	systemd-nspawn -q -D "$tree" --overlay="$tree:$b/upper:/" --register=no --keep-unit -b \
	--console=read-only --private-network >"$b/console.log" 2>&1 &
nspawn_pids+=($!) # systemd-socket-activate execs nspawn: same pid
for _ in $(seq 100); do grep -q "Listening on" "$b/console.log" 2>/dev/null && break; sleep 0.1; done
t0=$(date +%s.%N)
out=$(client --socket="$b/host/t.sock" -- 5 first); rc=$?
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
echo "     | $out"
if [ "$rc" = 5 ] && [[ $out == *"pid1=systemd"* ]]; then
	# Proof of adoption: the inner unit names a path that does not exist in
	# the container; had it bound its own socket there, the host's client
	# would never have reached it.
	pass "B: the first connection booted the container, whose socket unit adopted the passed socket and answered (${took} s)"
else
	fail "B: first connection: exit $rc: $out"; tail -20 "$b/console.log"
fi
t0=$(date +%s.%N)
out=$(client --socket="$b/host/t.sock" -- 6 again); rc=$?
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
[ "$rc" = 6 ] && pass "B: later connections are served by the running container (${took} s)" || fail "B: second connection: exit $rc: $out"

echo "connector: $passed passed, $failed failed"
[ "$failed" = 0 ]
