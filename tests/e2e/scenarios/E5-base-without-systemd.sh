# E5: a Debian base image WITHOUT systemd gets systemd installed at import
# (from the Debian mirror named in the image's apt sources) and boots.
# e2e-push: debian-nosystemd e2e/debian:12
# e2e-push: nginx e2e/nginx:1
# e2e-timeout: 420
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@web systemd-nspawn@web"
descriptor debian <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/debian:12
TLSVerify=no
EOD
descriptor web <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
EOD
systemctl daemon-reload
require "sdme-import@debian (installs systemd)" timeout 300 systemctl start sdme-import@debian
require "systemctl start systemd-nspawn@web" timeout 120 systemctl start systemd-nspawn@web
pid1_is_systemd() { [ "$(cat "/proc/$(leader web)/comm")" = systemd ]; }
check "the container's PID 1 is systemd" pid1_is_systemd
booted() { st=$(in_machine web systemctl is-system-running 2>/dev/null); [ "$st" = running ] || [ "$st" = degraded ]; }
if wait_for 60 booted; then pass "the container booted ($(in_machine web systemctl is-system-running))"; else fail "the container booted (state: $(in_machine web systemctl is-system-running 2>&1))"; fi
check "systemd is installed in the container's root" in_machine web test -x /lib/systemd/systemd
app_ok() { in_machine web curl -sf -o /dev/null --max-time 2 http://127.0.0.1/ 2>/dev/null || nsenter -t "$(leader web)" -n curl -sf -o /dev/null --max-time 2 http://127.0.0.1/; }
if wait_for 60 app_ok; then pass "nginx answers inside the container"; else fail "nginx answers inside the container within 60 s"; fi
[ "$E2E_FAILED" = 0 ] || diag sdme-import@debian sdme-import@web systemd-nspawn@web
finish
