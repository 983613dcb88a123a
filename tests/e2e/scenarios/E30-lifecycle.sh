# E30: a container behaves like a service. Readiness: a database's unit is
# active only once its health check passes, a dependant ordered After= it
# starts only then (monotonic timestamps), a container that never becomes
# healthy fails its start in bounded time and says why. The app's output
# reaches the journal to its last line at stop (mariadb's shutdown, a slow
# stop's last words). StopTimeoutSec= is what the app gets; ReloadSignal=
# reaches the app through `systemctl reload`; a Type=oneshot job's exit
# status is its unit's.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: mariadb e2e/mariadb:10
# e2e-push: nginx e2e/nginx:1
# e2e-timeout: 600
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="systemd-nspawn@db systemd-nspawn@web systemd-nspawn@rel systemd-nspawn@sick systemd-nspawn@slow systemd-nspawn@quick systemd-nspawn@job systemd-nspawn@fail"
debian_base
image() { # NAME IMAGE
	printf '[Image]\nImage=%s\nTLSVerify=no\nBase=debian\n\n' "$E2E_REGISTRY/e2e/$2"
}
{ image db mariadb:10; cat <<'EOD'; } | descriptor db
[Container]
Network=private
Environment=MARIADB_ROOT_PASSWORD=e2e MARIADB_DATABASE=app
HealthCmd=mariadb-admin --protocol=tcp -h127.0.0.1 -uroot -pe2e ping
HealthIntervalSec=2s
HealthRetries=60
StopTimeoutSec=60
EOD
{ image web nginx:1; cat <<'EOD'; } | descriptor web
[Container]
Network=private
After=db
Requires=db
ReloadSignal=SIGHUP
EOD
{ image rel nginx:1; cat <<'EOD'; } | descriptor rel
[Container]
Network=private
ReloadCmd=nginx -s reload
EOD
{ image sick nginx:1; cat <<'EOD'; } | descriptor sick
[Container]
Network=private
HealthCmd=/bin/false
HealthIntervalSec=2s
HealthRetries=3
EOD
# The trap ignores TERM before its sleep: systemd signals every process of
# the cgroup until no new one appears, so a sleep forked fast enough by the
# trap would get the SIGTERM too (sh then prints "Terminated").
slow_app="trap 'echo got SIGTERM; trap \\\"\\\" TERM; sleep 6; echo slow stop done; exit 0' TERM; echo slow app up; while :; do sleep 1; done"
for n in slow quick; do
	{ image $n nginx:1; printf '[Container]\nNetwork=private\nEntrypoint=/bin/sh -c "%s"\n' "$slow_app"; } | descriptor $n
done
# The image's StopSignal is SIGQUIT (nginx's); StopSignal= overrides it.
printf 'StopSignal=SIGTERM\nStopTimeoutSec=20\n' >>/etc/sdme/slow.oci
printf 'StopSignal=TERM\nStopTimeoutSec=2\n' >>/etc/sdme/quick.oci
{ image job nginx:1; cat <<'EOD'; } | descriptor job
[Container]
Network=private
Type=oneshot
Entrypoint=/bin/sh -c "echo job ran; exit 0"
EOD
{ image fail nginx:1; cat <<'EOD'; } | descriptor fail
[Container]
Network=private
Type=oneshot
Entrypoint=/bin/sh -c "echo job failed; exit 7"
EOD
systemctl daemon-reload
check "the dependant is ordered after the database" sh -c "systemctl show -P After systemd-nspawn@web | grep -qw systemd-nspawn@db.service"
mono() { systemctl show -P "$2" "$1"; }

# Readiness and ordering: starting web starts db first.
t0=$(now)
require "systemctl start systemd-nspawn@web (pulls in db)" timeout 400 systemctl start systemd-nspawn@web
info "start returned after $(since "$t0") s"
sql() { in_app db mariadb --protocol=tcp -h127.0.0.1 -uroot -pe2e -B -N -e "$1"; }
check "db answers as soon as the start returned (no waiting)" test "$(sql 'SELECT 1')" = 1
db_ready_inside=$(in_machine db systemctl show -P ActiveEnterTimestampMonotonic sdme-oci-ready.service)
db_active=$(mono systemd-nspawn@db ActiveEnterTimestampMonotonic)
db_began=$(mono systemd-nspawn@db ExecMainStartTimestampMonotonic)
web_began=$(mono systemd-nspawn@web ExecMainStartTimestampMonotonic)
info "db started at $db_began, healthy at $db_ready_inside, active at $db_active; web started at $web_began (µs, monotonic)"
check "db's unit became active only after its health check passed" test "$db_ready_inside" -gt 0 -a "$db_active" -ge "$db_ready_inside"
check "db took a while to become healthy (its first start initializes the database)" test $((db_ready_inside - db_began)) -gt 1000000
check "web started only after db was active" test "$web_began" -ge "$db_active"
check "db's journal says why it is ready" sh -c "journalctl -M db -u sdme-oci-ready -o cat --no-pager | grep -q 'ready: the health check passed'"
check "web (no health check) is ready when nginx started" sh -c "journalctl -M web -u sdme-oci-ready -o cat --no-pager | grep -q 'ready: sdme-oci-app.service started'"

# A container that never becomes healthy fails its start, in bounded time.
t0=$(now)
if timeout 120 systemctl start systemd-nspawn@sick; then
	fail "the start of a never-healthy container fails"
else
	took=$(since "$t0")
	pass "the start of a never-healthy container fails (after $took s)"
	check "... within its bound (3 retries x 2 s, plus the boot)" awk -v t="$took" 'BEGIN { exit !(t < 60) }'
	check "... and the unit is failed, not active" sh -c "! systemctl is-active -q systemd-nspawn@sick"
	check "... and the journal says why" sh -c "journalctl -b -u systemd-nspawn@sick -o cat --no-pager | grep -q 'not ready: the health check did not pass within 6 s'"
fi

# Reload reaches the app: nginx re-reads its configuration, same process.
nginx_pid() { in_machine web systemctl show -P MainPID sdme-oci-app; }
pid=$(nginx_pid)
in_machine web sh -c 'printf "server { listen 8081; return 200 \"reloaded\\n\"; }\n" >/oci/root/etc/nginx/conf.d/e2e-reload.conf'
check "systemctl reload systemd-nspawn@web" timeout 60 systemctl reload systemd-nspawn@web
answers() { [ "$(nsenter -t "$(leader web)" -n curl -s --max-time 2 http://127.0.0.1:8081/)" = reloaded ]; }
if wait_for 20 answers; then pass "nginx serves the new configuration after the reload"; else fail "nginx serves the new configuration after the reload"; fi
check "... without a restart (MainPID $pid)" test "$(nginx_pid)" = "$pid"

# ReloadCmd=: the command runs in the app's root (nginx -s reload, found
# in the image's PATH).
require "systemctl start systemd-nspawn@rel" timeout 120 systemctl start systemd-nspawn@rel
rel_pid=$(in_machine rel systemctl show -P MainPID sdme-oci-app)
in_machine rel sh -c 'printf "server { listen 8082; return 200 \"reloaded by command\\n\"; }\n" >/oci/root/etc/nginx/conf.d/e2e-reload.conf'
check "systemctl reload systemd-nspawn@rel (ReloadCmd=)" timeout 60 systemctl reload systemd-nspawn@rel
answers_cmd() { [ "$(nsenter -t "$(leader rel)" -n curl -s --max-time 2 http://127.0.0.1:8082/)" = "reloaded by command" ]; }
if wait_for 20 answers_cmd; then pass "nginx -s reload made nginx serve the new configuration"; else
	fail "nginx -s reload made nginx serve the new configuration"
	in_machine rel journalctl -u sdme-oci-app -o cat --no-pager | tail -15 | sed 's/^/     | /'
	in_machine rel systemctl cat sdme-oci-app | grep -i reload | sed 's/^/     | /'
fi
check "... without a restart (MainPID $rel_pid)" test "$(in_machine rel systemctl show -P MainPID sdme-oci-app)" = "$rel_pid"
check "systemctl stop systemd-nspawn@rel" timeout 60 systemctl stop systemd-nspawn@rel

# The app's output to its last line at stop: mariadb's own shutdown messages.
check "systemctl stop systemd-nspawn@web" timeout 120 systemctl stop systemd-nspawn@web
check "systemctl restart systemd-nspawn@db" timeout 300 systemctl restart systemd-nspawn@db
check "mariadb's shutdown reached the journal (journalctl -M db -u sdme-oci-app)" sh -c "journalctl -M db -u sdme-oci-app -o cat --no-pager | grep -q 'Shutdown complete'"

# StopSignal= and StopTimeoutSec=: the slow app gets SIGTERM and its 20 s and says its last words; with
# 2 s it is killed before them.
for n in slow quick; do require "systemctl start systemd-nspawn@$n" timeout 120 systemctl start systemd-nspawn@$n; done
check "the host's stop timeout covers the app's (20 s + 30 s)" test "$(systemctl show -P TimeoutStopUSec systemd-nspawn@slow)" = 50s
up() { journalctl -M "$1" -u sdme-oci-app -o cat --no-pager | grep -q 'slow app up'; }
wait_for 30 up slow; wait_for 30 up quick
info "slow's app: $(in_machine slow systemctl show -p ActiveState -p SubState -p ExecMainStartTimestampMonotonic -p NRestarts sdme-oci-app | tr '\n' ' ')"
t0=$(now)
check "systemctl stop systemd-nspawn@slow" timeout 120 systemctl stop systemd-nspawn@slow
took=$(since "$t0")
check "the slow app had its time to stop ($took s >= 6 s)" awk -v t="$took" 'BEGIN { exit !(t >= 6) }'
if ! awk -v t="$took" 'BEGIN { exit !(t >= 6) }'; then
	info "slow's journal, every boot:"
	journalctl -M slow -o short-monotonic --no-pager 2>&1 | grep -v -e Deactivated -e Unmount -e umount | tail -70 | sed 's/^/     | /'
	journalctl -u systemd-nspawn@slow -o short-monotonic --no-pager | tail -30 | sed 's/^/     | /'
fi
check "systemctl stop systemd-nspawn@quick" timeout 120 systemctl stop systemd-nspawn@quick
for n in slow quick; do require "systemctl start systemd-nspawn@$n (again, to read its journal)" timeout 120 systemctl start systemd-nspawn@$n; done
check "the slow app's last words reached the journal" sh -c "journalctl -M slow -u sdme-oci-app -o cat --no-pager | grep -q 'slow stop done'"
check "the quick one got SIGTERM ..." sh -c "journalctl -M quick -u sdme-oci-app -o cat --no-pager | grep -q 'got SIGTERM'"
if journalctl -M quick -u sdme-oci-app -o cat --no-pager | grep -q 'slow stop done'; then
	fail "... and was killed after 2 s, before its last words"
	info "quick's journal, every boot:"
	journalctl -M quick -o short-monotonic --no-pager 2>&1 | grep -v -e Deactivated -e Unmount -e umount | tail -90 | sed 's/^/     | /'
else
	pass "... and was killed after 2 s, before its last words"
fi

# Jobs: the unit's result and exit status are the app's.
check "a oneshot job's start succeeds when it exits 0" timeout 120 systemctl start systemd-nspawn@job
check "... and its unit is inactive, not failed" test "$(systemctl show -P ActiveState systemd-nspawn@job)" = inactive
check "... with exit status 0" test "$(systemctl show -P ExecMainStatus systemd-nspawn@job)" = 0
if timeout 120 systemctl start systemd-nspawn@fail; then fail "a job that exits 7 fails its start"; else pass "a job that exits 7 fails its start"; fi
check "... its unit is failed with exit status 7" test "$(systemctl show -P ActiveState systemd-nspawn@fail) $(systemctl show -P ExecMainStatus systemd-nspawn@fail)" = "failed 7"
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
