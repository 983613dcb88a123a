# Runs inside the benchmark's systemd host (see tests/bench/e2e.sh).
. /usr/local/lib/sdme-e2e/check.sh
debian_base
descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
EOD
systemctl daemon-reload
t0=$(now)
timeout 200 systemctl start sdme-import@nginx || { echo "FAIL: import"; diag sdme-import@debian sdme-import@nginx; exit 1; }
echo "bench: imports (debian + nginx, cold store) $(since "$t0") s"
times=()
for i in $(seq "${E2E_BENCH_RUNS:-5}"); do
	t0=$(now)
	timeout 60 systemctl start systemd-nspawn@nginx || { echo "FAIL: start $i"; diag systemd-nspawn@nginx; exit 1; }
	t_unit=$(since "$t0")
	until curl -s -o /dev/null --max-time 1 -w '%{http_code}' http://127.0.0.1/ | grep -q 200; do
		[ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print (b - a > 60) }')" = 1 ] && { echo "FAIL: no HTTP 200 within 60 s"; exit 1; }
		sleep 0.02
	done
	t=$(since "$t0")
	times+=("$t")
	echo "bench: run $i: start-to-200 $t s (systemctl start returned after $t_unit s)"
	timeout 60 systemctl stop systemd-nspawn@nginx
	wait_for 30 sh -c '! machinectl show nginx'
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "bench: median start-to-first-200 over ${#times[@]} runs: $median s (goal <= 2 s)"

# ---- the user namespace, side by side with none (issue 9) ----
# Both in a private network (nginx binds port 80: in the host's network a
# namespace could not); HTTP 200 read from inside the container's network.
for mode in no yes; do
	descriptor "ns-$mode" <<EOD
[Container]
Image=nginx
Network=private
PrivateUsers=$mode
EOD
	descriptor "ns2-$mode" <<EOD
[Container]
Image=nginx
Network=private
PrivateUsers=$mode
EOD
done
systemctl daemon-reload
# up NAME: HTTP 200 from nginx inside container NAME.
up() {
	local pid
	pid=$(leader "$1") || return 1
	[ -n "$pid" ] && nsenter -t "$pid" -n curl -s -o /dev/null --max-time 1 -w '%{http_code}' http://127.0.0.1/ | grep -q 200
}
declare -A med added
for mode in no yes; do
	times=()
	for i in $(seq "${E2E_BENCH_RUNS:-5}"); do
		t0=$(now)
		timeout 60 systemctl start "systemd-nspawn@ns-$mode" || { echo "FAIL: start ns-$mode"; diag "systemd-nspawn@ns-$mode"; exit 1; }
		wait_for 60 up "ns-$mode" || { echo "FAIL: ns-$mode: no HTTP 200 within 60 s"; diag "systemd-nspawn@ns-$mode"; exit 1; }
		times+=("$(since "$t0")")
		timeout 60 systemctl stop "systemd-nspawn@ns-$mode"
		wait_for 30 sh -c "! machinectl show ns-$mode"
	done
	med[$mode]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
	echo "bench: PrivateUsers=$mode: start-to-first-200 runs ${times[*]} s, median ${med[$mode]} s"
done
echo "bench: start-to-first-200, user namespace / none: $(awk -v a="${med[yes]}" -v b="${med[no]}" 'BEGIN { printf "%.2f", a / b }') (goal <= 1.10)"
# The second container on the image: what starting it adds to the store.
for mode in no yes; do
	before=$(du -sxk /var/lib/sdme | cut -f1)
	timeout 60 systemctl start "systemd-nspawn@ns2-$mode" && wait_for 60 up "ns2-$mode" || { echo "FAIL: ns2-$mode"; exit 1; }
	timeout 60 systemctl stop "systemd-nspawn@ns2-$mode"
	wait_for 30 sh -c "! machinectl show ns2-$mode"
	after=$(du -sxk /var/lib/sdme | cut -f1)
	own=$(du -sxk "/var/lib/sdme/containers/ns2-$mode" | cut -f1)
	added[$mode]=$((after - before))
	echo "bench: PrivateUsers=$mode: a second container on the image added ${added[$mode]} KiB to the store (all of it its own directory, $own KiB: its writes, the journal mostly)"
done
echo "bench: the user namespace adds $((added[yes] - added[no])) KiB to a second container (goal < 1024 KiB)"
