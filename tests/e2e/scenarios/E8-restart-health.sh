# E8: the app's main process is killed and Restart= brings it back; a
# failing health check restarts the app.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@nginx systemd-nspawn@nginx"
debian_base
descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
Restart=on-failure
HealthCmd=/bin/sh -c 'test ! -e /var/www/html/unhealthy'
HealthIntervalSec=2s
HealthRetries=2
HealthOnFailure=restart
EOD
systemctl daemon-reload
require "systemctl start systemd-nspawn@nginx" timeout 200 systemctl start systemd-nspawn@nginx
app_pid() { in_machine nginx systemctl show -P MainPID sdme-oci-app 2>/dev/null; }
app_up() { p=$(app_pid); [ -n "$p" ] && [ "$p" != 0 ] && nsenter -t "$(leader nginx)" -n curl -sf -o /dev/null --max-time 2 http://127.0.0.1/; }
if wait_for 60 app_up; then pass "the app is up (MainPID $(app_pid))"; else fail "the app is up within 60 s"; fi
pid1=$(app_pid)
check "SIGKILL to the app's main process" in_machine nginx sh -c "kill -KILL $pid1"
moved() { p=$(app_pid); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$pid1" ]; }
if wait_for 30 moved && wait_for 30 app_up; then pass "Restart= brought it back (MainPID $pid1 -> $(app_pid))"; else fail "Restart= brought the app back within 30 s"; fi
check "the restart is counted" sh -c "[ \"\$(nsenter -t $(leader nginx) -a systemctl show -P NRestarts sdme-oci-app)\" -ge 1 ]"
pid2=$(app_pid)
check "the health check is scheduled" sh -c "nsenter -t $(leader nginx) -a systemctl list-units --all --no-legend | grep -qi health"
check "make the health check fail" in_machine nginx touch /oci/root/var/www/html/unhealthy
pid1=$pid2
if wait_for 40 moved; then pass "the failing health check restarted the app (MainPID $pid2 -> $(app_pid))"; else fail "the failing health check restarted the app within 40 s"; fi
in_machine nginx rm -f /oci/root/var/www/html/unhealthy
if wait_for 30 app_up; then pass "the app is healthy again"; else fail "the app is healthy again"; fi
[ "$E2E_FAILED" = 0 ] || { diag systemd-nspawn@nginx; in_machine nginx systemctl list-units --all --no-pager 2>&1 | grep -i -e sdme -e health >>"$E2E_OUT/diag.log"; }
finish
