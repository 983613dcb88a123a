# E14: sdme installed from its .deb (`make deb`) with dpkg, as an operator
# would, instead of `make install`: the postinst's daemon-reload runs the
# generator on the descriptors already in /etc/sdme, tmpfiles makes the
# store private, a container runs (Network=private, checked from inside);
# the launcher's inotify check, counting the instances of a container in a
# user namespace too, warns in the unit's journal at warning priority when
# the limit leaves no room for another container (a fake, lower limit
# bound over /proc/sys while one unit starts) and the container still boots; `dpkg -r` removes
# the generator's units (postrm daemon-reload) and keeps the store.
# e2e-install: deb
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@nginx systemd-nspawn@nginx systemd-nspawn@tight"
# The host's curl in the container's network namespace (the base has none).
page_in() { local pid; pid=$(leader "$1") && [ -n "$pid" ] && nsenter -t "$pid" -n curl -s --max-time 2 http://127.0.0.1/ | grep -q "hello from sdme nginx v1"; }
# Inotify instances held by processes: all of this host's, or those of
# one container's unit (its cgroup).
inotify_of() {
	local n=0 p f
	for p in "$@"; do
		for f in /proc/"$p"/fd/*; do [ "$(readlink "$f" 2>/dev/null)" = anon_inode:inotify ] && n=$((n + 1)); done
	done
	echo $n
}
all_pids() { ls /proc | grep -E '^[0-9]+$'; }
unit_pids() { find "/sys/fs/cgroup/machine.slice/systemd-nspawn@$1.service" -name cgroup.procs -exec cat {} + 2>/dev/null; }
require "no sdme before the package" sh -c '! command -v sdme-import && ! ls /usr/lib/systemd/system-generators/sdme-generator /lib/systemd/system-generators/sdme-generator'
debian_base
descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
EOD
descriptor tight <<EOD
[Container]
Image=nginx
Network=private
EOD
dpkg -i "$E2E_DEB" >/tmp/dpkg.log 2>&1
rc=$?
sed 's/^/     | /' /tmp/dpkg.log
require "dpkg -i $(basename "$E2E_DEB") (exit $rc)" test $rc = 0
check "dpkg: sdme is installed ($(dpkg-query -W -f='${Version}' sdme))" sh -c '[ "$(dpkg-query -W -f="\${Status}" sdme)" = "install ok installed" ]'
check "postinst's daemon-reload ran the generator (no reload by hand)" systemctl cat sdme-import@nginx.service
check "postinst ran tmpfiles: /var/lib/sdme is 0700" sh -c '[ "$(stat -c %a /var/lib/sdme)" = 700 ]'
check "postinst started nothing" sh -c '! systemctl is-active -q sdme-import@nginx systemd-nspawn@nginx sdme-gc.timer'
check "the sysctl drop-in is installed" test -f /usr/lib/sysctl.d/50-sdme.conf
require "systemctl start systemd-nspawn@nginx" timeout 200 systemctl start systemd-nspawn@nginx
if wait_for 60 page_in nginx; then pass "nginx answers inside its private network"; else fail "nginx answers inside its private network"; fi
check "no inotify warning with room to spare" sh -c '! journalctl -b -u systemd-nspawn@nginx --no-pager | grep -q "inotify instances"'

# A limit that leaves room for this container but not the next: a file
# bound over /proc/sys/fs/inotify/max_user_instances in this host's mount
# namespace while one container starts (a unit's own BindReadOnlyPaths=
# would give it a mount namespace, in which the launcher cannot replace its
# runtime directory: EBUSY). 10 left only if the launcher also counts
# nginx's instances, whose processes run as another host uid in a user
# namespace root owns (the kernel charges them to root): missing them, it
# would see 18 left and say nothing.
pid=$(leader nginx)
check "nginx's init runs as a non-root host uid (user namespace): $(stat -c %u "/proc/$pid")" sh -c "[ \"\$(stat -c %u /proc/$pid)\" != 0 ]"
used=$(inotify_of $(all_pids)) in_nginx=$(inotify_of $(unit_pids nginx))
echo $((used + 10)) >/run/e2e-tight-limit
require "bind a fake inotify limit over /proc/sys" mount --bind /run/e2e-tight-limit /proc/sys/fs/inotify/max_user_instances
info "inotify instances in this host: $used (nginx's unit: $in_nginx); fake limit while systemd-nspawn@tight starts: $(cat /proc/sys/fs/inotify/max_user_instances)"
timeout 120 systemctl start systemd-nspawn@tight
rc=$?
umount /proc/sys/fs/inotify/max_user_instances
require "systemctl start systemd-nspawn@tight (exit $rc)" test $rc = 0
warning() { journalctl -b -u systemd-nspawn@tight -p warning --no-pager | grep "sdme-nspawn: warning: inotify instances nearly used up: .* left, about 8 per container: the next container may fail to boot"; }
if wait_for 10 warning; then
	pass "the launcher warned at warning priority in the unit's journal, counting nginx's instances too"
	warning | tail -1 | sed 's/^/     | /'
else
	fail "the launcher warned at warning priority in the unit's journal (the next container may fail)"
	journalctl -b -u systemd-nspawn@tight --no-pager | tail -5 | sed 's/^/     | /'
fi
check "the warning shows in systemctl status" sh -c 'systemctl status --no-pager -l -n 100 systemd-nspawn@tight | grep -q "inotify instances nearly used up"'
if wait_for 60 page_in tight; then pass "a warning, not a refusal: the container still runs"; else fail "the warned container runs"; fi

require "stop the containers" timeout 60 systemctl stop systemd-nspawn@tight systemd-nspawn@nginx
dpkg -r sdme >/tmp/dpkg-r.log 2>&1
rc=$?
check "dpkg -r sdme (exit $rc)" test $rc = 0
check "postrm's daemon-reload: the generator's units are gone" sh -c '! systemctl cat sdme-import@nginx.service'
check "the store is kept" test -e /var/lib/sdme/images/nginx
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
