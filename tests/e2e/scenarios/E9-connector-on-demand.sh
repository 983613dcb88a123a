# E9: a connector whose server container starts on first use (the default
# for Mode=connector). The host socket sdme-connector@web.socket listens
# from sockets.target on; the client container "cli" wants only that socket,
# so starting it leaves "web" stopped; the client's first call boots "web",
# whose systemd adopts the passed socket, and output and exit codes arrive.
# Then: stopping the container stops its socket (exit 69), a direct start
# brings both back, and a container powered off from inside is booted again
# by the next call. The connector is also called from the host, and (web
# allows uid 2345) by a host user through its second socket in
# /run/sdme-connectors, which the host socket unit passes on too; another
# host user is refused there by the server.
# After a reboot of the host: the socket listens from boot on and the first
# call boots "web"; "web2" ([Install] WantedBy=machines.target) is started
# at boot and takes over its host socket too.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
# e2e-timeout: 360
. /usr/local/lib/sdme-e2e/check.sh
# Stopped, not on its way up ("activating" is not active either, with readiness).
not_started() { case $(systemctl is-active systemd-nspawn@web) in inactive | failed) ;; *) return 1 ;; esac; }
E2E_UNITS="sdme-import@debian sdme-import@web sdme-import@cli sdme-connector@web.socket systemd-nspawn@web systemd-nspawn@cli sdme-connector@web2.socket systemd-nspawn@web2"

# hostcall NAME: run the connector NAME's nginx -v from the host.
hostcall() {
	timeout 60 /usr/libexec/sdme/sdme-connector-client --connector-dir="/var/lib/sdme/connectors/$1" -- -v 2>&1 </dev/null |
		grep -q 'nginx version'
}
# adopted NAME: the container's socket is the one the host created: it lives
# in the host's network namespace, so the container's own (private) one has
# no unix socket of that name.
adopted() {
	local unix
	unix=$(in_machine "$1" cat /proc/net/unix) || return 1
	[ -n "$unix" ] && ! grep -q "/var/lib/sdme/connectors/$1/$1.sock" <<<"$unix" &&
		grep -q "/var/lib/sdme/connectors/$1/$1.sock" /proc/net/unix
}

if [ "$E2E_BOOT" != 1 ]; then
	info "host booted again (boot $E2E_BOOT)"
	check "sdme-connector@web.socket listens from boot on" systemctl is-active sdme-connector@web.socket
	check "systemd-nspawn@web did not start at boot" not_started
	t0=$(now)
	check "the first call from the host boots web and answers" hostcall web
	check "systemd-nspawn@web becomes active after the call (its boot done)" wait_for 30 systemctl is-active -q systemd-nspawn@web
	check "web took over the host's socket" adopted web
	check "systemd-nspawn@web2 came back at boot (machines.target)" wait_for 60 systemctl is-active systemd-nspawn@web2
	check "its socket came up with it" systemctl is-active sdme-connector@web2.socket
	check "web2 took over the host's socket (started at boot, not by a call)" adopted web2
	check "the connector of web2 answers" hostcall web2
	[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
	finish
fi

debian_base
descriptor web <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian
Mode=connector

[Container]
Network=private
ConnectorAllowUID=2345
EOD
descriptor web2 <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian
Mode=connector

[Container]
Network=private

[Install]
WantedBy=machines.target
EOD
descriptor cli <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
Connector=web
# Its root calls as root (web's allow list would refuse the host uid a
# user namespace gives it; E13 shows that).
PrivateUsers=no
EOD
step "daemon-reload" systemctl daemon-reload
sock=/var/lib/sdme/connectors/web/web.sock
check "the generator made the host socket unit" sh -c \
	"systemctl cat sdme-connector@web.socket | grep -qx 'ListenStream=$sock'"
check "the socket starts systemd-nspawn@web" sh -c \
	'test "$(systemctl show -P Triggers sdme-connector@web.socket)" = systemd-nspawn@web.service'
check "nspawn@cli wants the socket, not the server container" bash -c \
	'w=$(systemctl show -P Wants systemd-nspawn@cli); [[ " $w " == *" sdme-connector@web.socket "* && " $w " != *" systemd-nspawn@web.service "* ]]'
# sockets.target is already active after a daemon-reload; starting it again
# starts what its .wants/ gained, as the next boot would.
step "start sockets.target (as at boot)" systemctl start sockets.target
check "sdme-connector@web.socket is listening" systemctl is-active sdme-connector@web.socket
check "the host socket exists at $sock" test -S "$sock"
pub=/run/sdme-connectors/web/web.sock
check "with ConnectorAllowUID= it also listens at $pub, reachable by host users" sh -c \
	"test -S '$pub' && test \"\$(stat -c %a /run/sdme-connectors /run/sdme-connectors/web)\" = '755
755'"
ino0=$(stat -c %i "$sock" 2>/dev/null)
require "systemctl start systemd-nspawn@cli" timeout 250 systemctl start systemd-nspawn@cli
check "starting the client did not start the server container" not_started
# The server's image is imported by the first start of its container; do it
# now so that the timing below is the boot, not the import.
require "import web ahead (systemctl start sdme-import@web)" timeout 120 systemctl start sdme-import@web
check "still no server container" not_started

# conn ARGS...: run the connector from the client container; sets $rc, $out, $err.
conn() {
	local o e
	o=$(mktemp) e=$(mktemp)
	timeout 90 nsenter -t "$(leader cli)" -a /connectors/web/nginx "$@" >"$o" 2>"$e" </dev/null
	rc=$? out=$(cat "$o") err=$(cat "$e")
	rm -f "$o" "$e"
}
t0=$(now)
conn -v
if [ "$rc" = 0 ] && [[ $err == *"nginx version: nginx/"* ]]; then
	pass "first call: the server container booted and nginx -v answered, exit 0 ($(since "$t0") s)"
else
	fail "first call through the host socket: exit $rc, stderr: $err"
fi
check "systemd-nspawn@web becomes active (its boot done: Notify=)" wait_for 30 systemctl is-active -q systemd-nspawn@web
check "the container adopted the host's socket (same inode, not rebound)" \
	test "$(stat -c %i "$sock" 2>/dev/null)" = "$ino0"
listens() { in_machine web systemctl show -P Listen sdme-oci-app.socket | grep -q "$sock"; }
check "inside, sdme-oci-app.socket listens on the passed socket" listens
check "the socket lives in the host's network namespace, not the container's" adopted web
t0=$(now)
conn -t -g "env E9TOKEN;"
if [ "$rc" = 0 ] && [[ $err == *"test is successful"* ]]; then
	pass "second call with arguments: exit 0 ($(since "$t0") s)"
else
	fail "second call: exit $rc, stderr: $err"
fi
conn -t -c /nonexistent.conf
if [ "$rc" = 1 ] && [[ $err == *'"/nonexistent.conf" failed'* ]]; then
	pass "a failing command's exit code (1) and message reach the client"
else
	fail "nginx -t -c /nonexistent.conf: exit $rc (expected 1), stderr: $err"
fi
check "the host calls the connector through /var/lib/sdme/connectors/web" hostcall web
listens_pub() { in_machine web systemctl show -P Listen sdme-oci-app.socket | grep -q "$pub"; }
check "inside, sdme-oci-app.socket also listens on the passed public socket" listens_pub
require "create two host users" sh -c 'useradd -M -u 2345 e2e-allowed && useradd -M -u 3456 e2e-other'
# pubcall USER: nginx -v through the public socket as USER; sets $rc, $out.
pubcall() {
	out=$(timeout 60 runuser -u "$1" -- /usr/libexec/sdme/sdme-connector-client --socket="$pub" -- -v 2>&1 </dev/null)
	rc=$?
}
pubcall e2e-allowed
if [ "$rc" = 0 ] && [[ $out == *"nginx version"* ]]; then
	pass "the allowed host user (uid 2345) is served through $pub"
else
	fail "uid 2345 through $pub: exit $rc, output: $out"
fi
pubcall e2e-other
if [ "$rc" = 77 ] && [[ $out == *"permission denied"* ]] && [[ $out != *"nginx version"* ]]; then
	pass "another host user (uid 3456) is refused there (exit 77)"
else
	fail "uid 3456 through $pub: exit $rc (expected 77), output: $out"
fi
check "that user cannot reach the store's socket at all" sh -c \
	"! runuser -u e2e-other -- test -e '$sock'"

step "stop the server container" systemctl stop systemd-nspawn@web
check "stopping the container stopped its socket (PartOf=)" sh -c '! systemctl is-active -q sdme-connector@web.socket'
conn -v
if [ "$rc" = 69 ] && [[ $err == *"no server at /connectors/web/web.sock"* ]]; then
	pass "stopped means stopped: the client exits 69"
else
	fail "after systemctl stop: exit $rc (expected 69), stderr: $err"
fi

require "start the container directly" timeout 120 systemctl start systemd-nspawn@web
check "a direct start brings the socket back (Sockets=)" systemctl is-active sdme-connector@web.socket
works() { conn -v; [ "$rc" = 0 ]; }
t0=$(now)
if wait_for 60 works; then pass "the connector works after a direct start ($(since "$t0") s)"; else fail "after a direct start: exit $rc, stderr: $err"; fi

step "power the server container off from inside" machinectl poweroff web
gone() { not_started; }
if wait_for 60 gone; then pass "the server container powered off"; else fail "the server container powered off within 60 s"; fi
check "its socket is still listening" systemctl is-active sdme-connector@web.socket
t0=$(now)
conn -v
if [ "$rc" = 0 ]; then
	pass "the next call boots it again ($(since "$t0") s)"
else
	fail "the call after a poweroff: exit $rc, stderr: $err"
fi
check "systemd-nspawn@web becomes active again" wait_for 30 systemctl is-active -q systemd-nspawn@web

# The control: with StartOnDemand=no there is no host socket, and the
# container binds its socket itself (so "adopted" can tell the two apart).
descriptor eager <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian
Mode=connector

[Container]
Network=private
StartOnDemand=no
EOD
step "daemon-reload" systemctl daemon-reload
check "StartOnDemand=no: no socket unit" sh -c '! systemctl cat sdme-connector@eager.socket >/dev/null 2>&1'
require "systemctl start systemd-nspawn@eager" timeout 120 systemctl start systemd-nspawn@eager
eager_up() { test -S /var/lib/sdme/connectors/eager/eager.sock && hostcall eager; }
check "its connector answers (the container bound the socket at the host path)" wait_for 60 eager_up
own() { ! adopted eager && in_machine eager cat /proc/net/unix | grep -q /var/lib/sdme/connectors/eager/eager.sock; }
check "that socket is the container's own" own
[ "$E2E_FAILED" = 0 ] || { diag $E2E_UNITS; exit 1; }
exit 100 # reboot the host
