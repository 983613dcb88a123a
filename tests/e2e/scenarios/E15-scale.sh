# E15: a host full of containers. E2E_SCALE_N (default 40) containers of one
# nginx image, each wanted by machines.target, on a private network each (no
# host ports to collide on; checked from inside, in each container's network
# namespace). The host reboots; from boot alone, with nothing started by
# hand, every container must answer. Prints (lines "scale:", read by
# tests/bench/scale.sh) the time from the host's PID 1 start to the last
# answer, the memory (PSS) and inotify instances and watches per container.
# The hook E15-scale.host raises this machine's inotify limit with sdme's
# sysctl drop-in (8 instances each: Debian's 128 has room for about 15).
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
# e2e-timeout: 420
. /usr/local/lib/sdme-e2e/check.sh
N=${E2E_SCALE_N:-40}
names=()
for i in $(seq -w 1 "$N"); do names+=("c$i"); done
E2E_UNITS="sdme-import@nginx machines.target systemd-nspawn@${names[0]} systemd-nspawn@${names[-1]}"
page_in() { local pid; pid=$(leader "$1") && [ -n "$pid" ] && nsenter -t "$pid" -n curl -s --max-time 1 http://127.0.0.1/ | grep -q "hello from sdme nginx v1"; }

if [ "$E2E_BOOT" = 1 ]; then
	debian_base
	descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian
EOD
	for c in "${names[@]}"; do
		descriptor "$c" <<EOD
[Container]
Image=nginx
Network=private

[Install]
WantedBy=machines.target
EOD
	done
	systemctl daemon-reload
	require "import the one image" timeout 200 systemctl start sdme-import@debian sdme-import@nginx
	wanted=$(systemctl show -P Wants machines.target | tr ' ' '\n' | grep -c '^systemd-nspawn@c[0-9]*\.service$')
	check "all $N containers are wanted by machines.target ($wanted)" test "$wanted" = "$N"
	info "machine's fs.inotify.max_user_instances: $(cat /proc/sys/fs/inotify/max_user_instances) (was ${E2E_MACHINE_INOTIFY_LIMIT_BEFORE:-?})"
	[ "$E2E_FAILED" = 0 ] || exit 1
	exit 100 # reboot: the containers come up from boot alone
fi

# Seconds since this host's PID 1 started (both from the kernel's boot clock).
hz=$(getconf CLK_TCK)
since_boot() { awk -v hz="$hz" -v st="$(cut -d' ' -f22 /proc/1/stat)" '{ printf "%.2f", $1 - st / hz }' /proc/uptime; }
t_start=$(since_boot)
info "scenario started $t_start s after the host's PID 1"
declare -A ready=()
end=$((SECONDS + 240))
while [ ${#ready[@]} -lt "$N" ] && [ $SECONDS -lt $end ]; do
	for c in "${names[@]}"; do
		[ -n "${ready[$c]:-}" ] && continue
		page_in "$c" && ready[$c]=$(since_boot)
	done
	[ ${#ready[@]} -lt "$N" ] && sleep 0.2
done
all=$(since_boot)
if [ ${#ready[@]} = "$N" ]; then
	pass "all $N containers answer from boot alone"
	last=$(printf '%s\n' "${ready[@]}" | sort -n | tail -1)
	first=$(printf '%s\n' "${ready[@]}" | sort -n | head -1)
	info "scale: containers $N"
	info "scale: boot-to-all-ready $last s (host PID 1 start to the last container's answer; first answer at $first s; polled from $t_start s on, about once a second per container)"
else
	fail "only ${#ready[@]} of $N containers answer within 240 s of the scenario's start ($all s after boot)"
	for c in "${names[@]}"; do [ -n "${ready[$c]:-}" ] || info "not answering: $c ($(systemctl is-active systemd-nspawn@"$c"))"; done
fi

# Per container: the processes of its unit's cgroup (nspawn and the payload).
procs_of() { find "/sys/fs/cgroup/machine.slice/systemd-nspawn@$1.service" -name cgroup.procs -exec cat {} + 2>/dev/null; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
pss=() inst=() watches=() memcur=()
for c in "${names[@]}"; do
	kb=0 n=0 w=0
	for p in $(procs_of "$c"); do
		k=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) && kb=$((kb + ${k:-0}))
		for f in /proc/"$p"/fd/*; do
			[ "$(readlink "$f" 2>/dev/null)" = anon_inode:inotify ] || continue
			n=$((n + 1))
			w=$((w + $(grep -c '^inotify wd' "/proc/$p/fdinfo/${f##*/}" 2>/dev/null || echo 0)))
		done
	done
	pss+=("$kb") inst+=("$n") watches+=("$w")
	f=/sys/fs/cgroup/machine.slice/systemd-nspawn@$c.service/memory.current
	[ -r "$f" ] && memcur+=("$(cat "$f")")
done
info "scale: pss-per-container median $(printf '%s\n' "${pss[@]}" | median | awk '{ printf "%.1f", $1 / 1024 }') MiB, max $(printf '%s\n' "${pss[@]}" | sort -n | tail -1 | awk '{ printf "%.1f", $1 / 1024 }') MiB, total $(printf '%s\n' "${pss[@]}" | awk '{ s += $1 } END { printf "%.0f", s / 1024 }') MiB"
if [ ${#memcur[@]} -gt 0 ]; then
	info "scale: memory.current-per-container median $(printf '%s\n' "${memcur[@]}" | median | awk '{ printf "%.1f", $1 / 1048576 }') MiB (cgroup, page cache included)"
else
	info "scale: memory.current-per-container n/a (no memory controller in this host's cgroups)"
fi
info "scale: inotify-instances-per-container median $(printf '%s\n' "${inst[@]}" | median), max $(printf '%s\n' "${inst[@]}" | sort -n | tail -1); watches median $(printf '%s\n' "${watches[@]}" | median)"
# Which processes hold them, in the first container.
by=$(for p in $(procs_of "${names[0]}"); do
	k=0; for f in /proc/"$p"/fd/*; do [ "$(readlink "$f" 2>/dev/null)" = anon_inode:inotify ] && k=$((k + 1)); done
	[ $k = 0 ] || echo "$(cat "/proc/$p/comm" 2>/dev/null) $k"
done | sort | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')
info "scale: inotify-instances-by-process ${names[0]}: $by"
# What the launcher's check costs here: the same scan (each fd of the
# processes charged to root, here all of them, read with readlink), done by
# find(1).
t0=$EPOCHREALTIME
nfd=$(find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | wc -l)
info "scale: launcher-check-cost $nfd descriptors read in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }') ms (the launcher's scan, done by find)"
host_inst=0
for p in /proc/[0-9]*; do for f in "$p"/fd/*; do [ "$(readlink "$f" 2>/dev/null)" = anon_inode:inotify ] && host_inst=$((host_inst + 1)); done; done
info "scale: inotify-instances-total $host_inst (this host and its containers; the launcher's limit is $(grep -o '[0-9]*' /proc/sys/fs/inotify/max_user_instances))"
warned=0
for c in "${names[@]}"; do journalctl -b -u "systemd-nspawn@$c" --no-pager 2>/dev/null | grep -q 'inotify instances nearly used up' && warned=$((warned + 1)); done
check "the launcher warned for no container (the limit has room: $warned warned)" test "$warned" = 0
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
