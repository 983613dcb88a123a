# E5: a Debian base image WITHOUT systemd gets systemd installed at import
# (from the Debian mirror named in the image's apt sources) and boots.
# The install runs the image's own package manager: it must run in a
# container (own PID namespace, clean environment), and nothing sdme does
# around it may follow the image's symlinks onto the host. The base is
# e2e/debian-hostile:12 from E5-base-without-systemd.host (its
# /etc/machine-id and /etc/resolv.conf point at the canaries made below; an
# apt hook records where dpkg ran). An interrupted install comes first.
# e2e-push: nginx e2e/nginx:1
# e2e-timeout: 480
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@web systemd-nspawn@web"
canary=/var/tmp/sdme-e5-canary
mkdir -p "$canary"
echo "host canary" >"$canary/machine-id"
echo "host canary" >"$canary/resolv.conf"
# A secret in the import's environment, as registry credentials could be.
mkdir -p /etc/systemd/system/sdme-import@debian.service.d
printf '[Service]\nEnvironment=SDME_E5_SECRET=e5-secret-value\n' >/etc/systemd/system/sdme-import@debian.service.d/50-e5-secret.conf
descriptor debian <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/debian-hostile:12
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
descriptor broken <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/debian-broken:12
TLSVerify=no
EOD
systemctl daemon-reload
check "the import's environment holds the secret" sh -c 'systemctl show --property=Environment sdme-import@debian | grep -q SDME_E5_SECRET=e5-secret-value'

# No procps in the test host: processes by name from /proc.
running() { grep -qx "$1" /proc/[0-9]*/comm 2>/dev/null; }
# Mounts below the store in any process's mount namespace (the install's
# private one included, while a process holds it).
store_mounts() { awk '$5 ~ "^/var/lib/sdme/"' /proc/[0-9]*/mountinfo 2>/dev/null; }

# Interrupted: stopped while the package manager runs in its container.
systemctl start --no-block sdme-import@debian
if wait_for 120 running systemd-nspawn; then pass "the install runs under systemd-nspawn"; else fail "systemd-nspawn ran for the install within 120 s"; fi
check "systemctl stop sdme-import@debian (interrupting the install)" timeout 60 systemctl stop sdme-import@debian
check "the interrupted install left no process" sh -c "! grep -qxE 'systemd-nspawn|apt-get|dpkg|http' /proc/[0-9]*/comm 2>/dev/null"
check "the interrupted install left nothing mounted below /var/lib/sdme" test -z "$(store_mounts)"
check "the interrupted import left no image" test ! -e /var/lib/sdme/images/debian
systemctl reset-failed sdme-import@debian 2>/dev/null

# The package manager fails: a clear error, nothing left behind.
check "sdme-import@broken fails (its apt sources answer nothing)" sh -c '! timeout 120 systemctl start sdme-import@broken'
broken_error() { journalctl -b --no-pager -o cat -u sdme-import@broken | grep 'installing systemd into base image broken (debian) with apt failed: the command in the container ended with exit status: 100'; }
check "the error names the image, the distribution and the exit status" broken_error
broken_clean() { [ ! -e /var/lib/sdme/images/broken ] && ! ls -d /var/lib/sdme/images/.tmp.broken.* 2>/dev/null && [ -z "$(store_mounts)" ]; }
check "the failed install left no image, no temporary generation (upper dir) and nothing mounted" broken_clean

require "sdme-import@debian (installs systemd)" timeout 300 systemctl start sdme-import@debian
check "nothing stays mounted below /var/lib/sdme" test -z "$(store_mounts)"
journalctl -b --no-pager -o cat -u sdme-import@debian | grep -m1 'running in a container' | sed 's/^/  .. /'
layer=/var/lib/sdme/images/debian/systemd
probe=$layer/var/tmp/sdme-e5-probe
check "the image's apt hook ran (probe recorded)" test -s "$probe/pidns"
info "host PID namespace $(readlink /proc/self/ns/pid); dpkg's: $(cat "$probe/pidns" 2>&1); its PID 1: $(cat "$probe/pid1" 2>&1)"
own_pidns() { p=$(cat "$probe/pidns") && [ -n "$p" ] && [ "$p" != "$(readlink /proc/self/ns/pid)" ]; }
check "dpkg ran in a PID namespace of its own" own_pidns
other_pid1() { p=$(cat "$probe/pid1") && [ -n "$p" ] && [ "$p" != systemd ]; }
check "dpkg's PID 1 is not the host's systemd" other_pid1
check "dpkg's environment is nspawn's (container=systemd-nspawn)" grep -qx 'container=systemd-nspawn' "$probe/env"
check "dpkg got DEBIAN_FRONTEND=noninteractive" grep -qx 'DEBIAN_FRONTEND=noninteractive' "$probe/env"
check "the import's secret did not reach the image's code" sh -c "[ -s '$probe/env' ] && ! grep -q SDME_E5_SECRET '$probe/env'"
check "dpkg saw the host's resolver file (the image's symlink replaced, not followed)" cmp "$probe/resolv.conf" /etc/resolv.conf
check "the host canary behind the image's /etc/machine-id symlink is untouched" test "$(cat $canary/machine-id)" = "host canary"
check "the host canary behind the image's /etc/resolv.conf symlink is untouched" test "$(cat $canary/resolv.conf)" = "host canary"
check "the systemd layer holds the install" test -d "$layer/usr/lib/systemd"
check "the systemd layer has no resolv.conf, machine-id or policy-rc.d" sh -c "! ls -d '$layer/etc/resolv.conf' '$layer/etc/machine-id' '$layer/usr/sbin/policy-rc.d' 2>/dev/null"
check "the systemd layer has no apt lists or caches" sh -c "! ls -d '$layer/var/lib/apt/lists' '$layer/var/cache/apt' 2>/dev/null"

require "systemctl start systemd-nspawn@web" timeout 120 systemctl start systemd-nspawn@web
# Right after the start job the leader may not have exec'd init yet (the
# name it has until then differs between systemd versions): wait for it.
leader_comm() { cat "/proc/$(leader web)/comm" 2>&1; }
first_comm=$(leader_comm)
pid1_is_systemd() { [ "$(leader_comm)" = systemd ]; }
if wait_for 30 pid1_is_systemd; then
	pass "the container's PID 1 is systemd (right after the start job its comm was: $first_comm)"
else
	fail "the container's PID 1 is systemd within 30 s (leader $(leader web), comm: $(leader_comm))"
fi
booted() { st=$(in_machine web systemctl is-system-running 2>/dev/null); [ "$st" = running ] || [ "$st" = degraded ]; }
if wait_for 60 booted; then pass "the container booted ($(in_machine web systemctl is-system-running))"; else fail "the container booted (state: $(in_machine web systemctl is-system-running 2>&1))"; fi
check "systemd is installed in the container's root" in_machine web test -x /lib/systemd/systemd
app_ok() { in_machine web curl -sf -o /dev/null --max-time 2 http://127.0.0.1/ 2>/dev/null || nsenter -t "$(leader web)" -n curl -sf -o /dev/null --max-time 2 http://127.0.0.1/; }
if wait_for 60 app_ok; then pass "nginx answers inside the container"; else fail "nginx answers inside the container within 60 s"; fi
[ "$E2E_FAILED" = 0 ] || diag sdme-import@debian sdme-import@web systemd-nspawn@web
finish
