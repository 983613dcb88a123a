#!/bin/bash
# The generator under a real systemd: boots a throw-away systemd "host" (an
# nspawn container over the cached `outer` test tree of E2E_SUITE, default
# bookworm = systemd 252, trixie = 257; see tests/lib/images.sh) with
# sdme-generator installed as a system generator
# and the golden cases' hostile descriptors in /etc/sdme, then checks from
# inside:
#  - systemd ran the generator at boot and loaded every generated unit
#    (LoadState=loaded, drop-in listed, no load errors);
#  - the argv that systemd hands the helpers is byte-for-byte what the
#    descriptors say: the helpers are stubs that record their argv, and the
#    record is compared with the argv computed here from the expected files
#    (so %, $, quotes, backslashes, newlines, ';' and '#' survive exactly);
#  - [Install] symlinks become real dependencies (machines.target wants the
#    container, multi-user.target wants an import);
#  - errors reach the kernel log as sdme-generator[PID] records;
#  - daemon-reload re-runs the generator.
# usage: under-systemd.sh [GENERATOR-BINARY]   (default: a fresh release build)
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
fail() { echo "under-systemd: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root"
command -v systemd-nspawn >/dev/null || fail "systemd-nspawn missing (systemd-container)"
if [ $# -gt 0 ]; then
	bin=$(realpath "$1") || fail "no generator binary $1"
else
	cargo build --release --locked -q -p sdme-generator || fail "cargo build of sdme-generator"
	bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/sdme-generator")
fi
. "$top/tests/lib/images.sh"
outer=$(images_tree outer) || fail "cannot build the outer test tree from $E2E_SUITE"
ver=$(images_systemd_version "$outer") || fail "no systemd in $outer"
echo "under-systemd: host Debian $E2E_SUITE, systemd $ver"

scratch=$(mktemp -d /var/tmp/sdme-gen-systemd.XXXXXX)
cleanup() {
	mountpoint -q "$scratch/root" && umount -l "$scratch/root"
	rm -rf "$scratch"
}
trap cleanup EXIT
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay overlay -o "lowerdir=$outer,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root" ||
	fail "overlay mount"
r=$scratch/root

install -Dm755 "$bin" "$r/usr/lib/systemd/system-generators/sdme-generator"
# Stub helpers: record argv NUL-separated, one file per call.
for stub in usr/bin/sdme-import usr/libexec/sdme/sdme-nspawn; do
	mkdir -p "$r/$(dirname "$stub")"
	cat >"$r/$stub" <<'EOS'
#!/bin/bash
mkdir -p /run/argv
printf '%s\0' "$0" "$@" >"/run/argv/$(basename "$0").$(printf '%s' "$*" | md5sum | cut -c1-8)"
exit 0
EOS
	chmod 755 "$r/$stub"
done
mkdir -p "$r/etc/sdme"
for c in escaping-hostile install-import-only app-on-base continuation bad-values; do
	cp -a "tests/generator/cases/$c/input/etc/sdme/." "$r/etc/sdme/"
done
cp -a tests/generator/cases/install-container/input/etc/sdme/web.oci "$r/etc/sdme/"

cat >"$r/usr/local/bin/sdme-gen-probe" <<'EOS'
#!/bin/bash
out=/sdme-gen-probe
{
	systemctl is-system-running --wait >/dev/null 2>&1
	for u in sdme-import@evil sdme-import@cont sdme-import@os sdme-import@nginx sdme-import@ubuntu \
		systemd-nspawn@evil systemd-nspawn@cont systemd-nspawn@nginx systemd-nspawn@web; do
		echo "load $u $(systemctl show -P LoadState "$u.service") $(systemctl show -P DropInPaths "$u.service" | grep -c 50-sdme.conf)"
	done
	echo "wants-machines $(systemctl show -P Wants machines.target | tr ' ' '\n' | grep -c -x -e systemd-nspawn@nginx.service -e systemd-nspawn@web.service)"
	echo "wants-default $(systemctl show -P Wants default.target | tr ' ' '\n' | grep -c -x sdme-import@os.service)"
	echo "wants-import-nginx $(systemctl show -P Wants systemd-nspawn@nginx.service | tr ' ' '\n' | grep -c -x sdme-import@nginx.service)"
	echo "after-import-nginx $(systemctl show -P After systemd-nspawn@nginx.service | tr ' ' '\n' | grep -c -x sdme-import@nginx.service)"
	# systemd logs each generator that fails (exit 1: bad.oci is broken).
	# 252 and 257 log the generator's path bare, 262 quoted: match both.
	runs() { journalctl -b --no-pager -o cat | grep -cE "sdme-generator'? failed with exit status 1"; }
	systemctl start sdme-import@evil.service sdme-import@cont.service
	systemctl start --no-block systemd-nspawn@evil.service systemd-nspawn@cont.service
	for i in $(seq 1 50); do [ "$(ls /run/argv | wc -l)" -ge 4 ] && break; sleep 0.1; done
	n=$(runs)
	systemctl daemon-reload
	# The journal may record the reload's generator run a moment later.
	for i in $(seq 1 50); do [ "$(runs)" -gt "$n" ] && break; sleep 0.1; done
	echo "reload $(( $(runs) > n ))"
	echo "failed-run-logged $(( $(runs) >= 1 ))"
	journalctl -b --no-pager -o cat | grep -i 'sdme-generator' | sed 's/^/journal: /'

	mkdir -p /sdme-gen-argv && cp /run/argv/* /sdme-gen-argv/
	echo done
} >$out 2>&1
sync
systemctl poweroff --no-block
EOS
chmod 755 "$r/usr/local/bin/sdme-gen-probe"
cat >"$r/etc/systemd/system/sdme-gen-probe.service" <<'EOS'
[Unit]
Description=sdme-generator probe
After=multi-user.target
[Service]
# Not oneshot: the probe waits for the boot to finish, which a oneshot
# job in multi-user.target would hold up.
Type=simple
ExecStart=/usr/local/bin/sdme-gen-probe
[Install]
WantedBy=multi-user.target
EOS
mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
ln -sf ../sdme-gen-probe.service "$r/etc/systemd/system/multi-user.target.wants/sdme-gen-probe.service"

# Own cgroup (PID 1 of this machine is not systemd; see TESTBED.md).
cg=()
for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
	[ -e "$h/cgroup.procs" ] && [ -w "$h" ] && cg+=("$h/sdme-gen-test.$$")
done
(
	for d in "${cg[@]}"; do mkdir -p "$d" && echo $BASHPID >"$d/cgroup.procs"; done
	SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec timeout 120 systemd-nspawn -q -D "$r" --register=no --keep-unit \
		-b --console=read-only --capability=CAP_NET_ADMIN >"$scratch/boot.log" 2>&1
)
rc=$?
for d in "${cg[@]}"; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
[ -f "$r/sdme-gen-probe" ] || { tail -30 "$scratch/boot.log"; fail "the probe did not run (nspawn exit $rc)"; }
cat "$r/sdme-gen-probe"
grep -qx done "$r/sdme-gen-probe" || fail "probe incomplete"

problems=0
check() { # DESCRIPTION EXPECTED-LINE
	if grep -qxF "$2" "$r/sdme-gen-probe"; then echo "ok   $1"; else echo "FAIL $1 (want: $2)"; problems=$((problems + 1)); fi
}
for u in sdme-import@evil sdme-import@cont sdme-import@os sdme-import@nginx sdme-import@ubuntu; do
	check "$u loaded" "load $u loaded 0"
done
for u in systemd-nspawn@evil systemd-nspawn@cont systemd-nspawn@nginx systemd-nspawn@web; do
	check "$u loaded with the drop-in" "load $u loaded 1"
done
check "[Install] WantedBy=machines.target" "wants-machines 2"
check "[Install] WantedBy=default.target (import only)" "wants-default 1"
check "container wants its import" "wants-import-nginx 1"
check "container is ordered after its import" "after-import-nginx 1"
check "systemd saw the generator fail (a broken descriptor)" "failed-run-logged 1"
# A container has no /dev/kmsg, so here the generator falls back to
# /dev/console, as systemd's own generators do (PID 1 sends a generator's
# stderr to /dev/null); the kernel-log path is covered by
# generator/tests/golden.rs on the host.
if grep -q 'sdme-generator: /etc/sdme/bad.oci:2: Image=' "$scratch/boot.log"; then
	echo "ok   error message with file and line on the console"
else
	echo "FAIL error message not on the console"; problems=$((problems + 1))
fi
check "daemon-reload re-runs the generator" "reload 1"

# The argv systemd passed must equal the argv a systemd-style reading of the
# expected files gives; computed here with python3 (shlex is not systemd's
# splitter, so do it by the rules: specifiers %% -> %, C-unescaping words,
# $$ -> $).
expect_argv() { # FILE -> prints the argv of its last ExecStart=, NUL-separated
	python3 - "$1" <<'EOP'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
logical, pending = [], ""
for line in text.split("\n"):
    line = line.strip()
    if pending and line[:1] in "#;":
        continue
    pending += line
    n = len(pending) - len(pending.rstrip("\\"))
    if n % 2:
        pending = pending[:-1] + " "
        continue
    logical.append(pending); pending = ""
value = [l for l in logical if l.startswith("ExecStart=") and l != "ExecStart="][-1][len("ExecStart="):]
value = value.replace("%%", "%")
esc = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "s": " ", "\\": "\\", '"': '"', "'": "'", " ": " "}
words, i, cur, quote, have = [], 0, "", None, False
while i < len(value):
    c = value[i]
    if c == "\\":
        n = value[i + 1]
        if n == "x": cur += chr(int(value[i + 2:i + 4], 16)); i += 4
        elif n == "u": cur += chr(int(value[i + 2:i + 6], 16)); i += 6
        else: cur += esc[n]; i += 2
        have = True
        continue
    if quote is None and c in "\"'": quote = c; have = True
    elif quote == c: quote = None
    elif quote is None and c in " \t":
        if have: words.append(cur)
        cur, have = "", False
    else: cur += c; have = True
    i += 1
if have: words.append(cur)
sys.stdout.buffer.write(b"".join(w.replace("$$", "$").encode("utf-8", "surrogateescape") + b"\0" for w in words))
EOP
}
for pair in "escaping-hostile/expected/sdme-import@evil.service" \
	"escaping-hostile/expected/systemd-nspawn@evil.service.d/50-sdme.conf" \
	"continuation/expected/sdme-import@cont.service" \
	"continuation/expected/systemd-nspawn@cont.service.d/50-sdme.conf"; do
	want=$(expect_argv "tests/generator/cases/$pair" | md5sum | cut -c1-32)
	found=0
	for f in "$r"/sdme-gen-argv/*; do
		[ "$(md5sum <"$f" | cut -c1-32)" = "$want" ] && found=1
	done
	if [ $found = 1 ]; then
		echo "ok   argv systemd passed = argv of $pair"
	else
		echo "FAIL argv of $pair not seen; systemd passed:"
		for f in "$r"/sdme-gen-argv/*; do tr '\0' '\n' <"$f" | sed 's/^/       /'; echo; done
		echo "     expected:"; expect_argv "tests/generator/cases/$pair" | tr '\0' '\n' | sed 's/^/       /'
		problems=$((problems + 1))
	fi
done
[ $problems -eq 0 ] || fail "$problems check(s) failed"
echo "under-systemd: all checks passed"
