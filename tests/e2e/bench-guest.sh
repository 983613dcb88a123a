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
