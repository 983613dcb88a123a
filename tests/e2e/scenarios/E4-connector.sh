# E4: a connector. Container "web" runs the nginx image with Mode=connector
# (its entrypoint behind sdme-connector-server, socket-activated inside the
# container); container "cli" has Connector=web and runs
# /connectors/web/nginx, getting nginx's stdout, stderr and exit codes from
# the server container. Then the server's absence (exit 69), its return, and
# `sdme connector add/ls/rm` with a real daemon-reload.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@web sdme-import@cli systemd-nspawn@web systemd-nspawn@cli"
debian_base
descriptor web <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian
Mode=connector

[Container]
Network=private
# Started with its clients, not on first use (that is E9-connector-on-demand).
StartOnDemand=no
EOD
descriptor cli <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
Connector=web
EOD
step "daemon-reload" systemctl daemon-reload
check "nspawn@cli binds the connector read-only" sh -c \
	'systemctl cat systemd-nspawn@cli | grep -q -- "--bind-ro=/var/lib/sdme/connectors/web:/connectors/web"'
check "nspawn@cli wants nspawn@web" sh -c 'systemctl show -P Wants systemd-nspawn@cli | grep -qw systemd-nspawn@web.service'
require "systemctl start systemd-nspawn@cli (pulls in web)" timeout 250 systemctl start systemd-nspawn@cli
check "systemd-nspawn@web is active" systemctl is-active systemd-nspawn@web
sock=/var/lib/sdme/connectors/web/web.sock
if wait_for 60 test -S "$sock"; then pass "the connector socket $sock exists"; else fail "the connector socket $sock exists within 60 s"; fi
check "the client symlink is named after the entrypoint" \
	test "$(readlink /var/lib/sdme/connectors/web/nginx)" = /usr/libexec/sdme-connector-client
check "the client container sees /connectors/web/nginx" in_machine cli test -x /connectors/web/nginx

# conn ARGS...: run the connector from the client container; sets $rc, $out
# (stdout) and $err (stderr).
conn() {
	local o e
	o=$(mktemp) e=$(mktemp)
	timeout 60 nsenter -t "$(leader cli)" -a /connectors/web/nginx "$@" >"$o" 2>"$e" </dev/null
	rc=$? out=$(cat "$o") err=$(cat "$e")
	rm -f "$o" "$e"
}
t0=$(now)
conn -v
if [ "$rc" = 0 ] && [[ $err == *"nginx version: nginx/"* ]]; then
	pass "nginx -v through the connector: exit 0, version on stderr ($(since "$t0") s, first use starts the server)"
else
	fail "nginx -v through the connector: exit $rc, stderr: $err"
fi
token=e2e-token-$RANDOM$RANDOM
t0=$(now)
conn -t -g "env $token;"
if [ "$rc" = 0 ] && [[ $err == *"test is successful"* ]]; then
	pass "nginx -t with the client's arguments: exit 0 ($(since "$t0") s)"
else
	fail "nginx -t with the client's arguments: exit $rc, stderr: $err"
fi
# The server logs the command and the number of arguments, never the
# arguments themselves (they may hold secrets).
web_journal() { journalctl -M web --no-pager 2>/dev/null || nsenter -t "$(leader web)" -a journalctl --no-pager; }
check "the server container ran it (its journal logs the program and 3 client arguments)" sh -c \
	"$(declare -f web_journal leader); web_journal | grep -q 'running /usr/sbin/nginx with 3 client arguments'"
check "the server's journal does not log the client's arguments" sh -c \
	"$(declare -f web_journal leader); ! web_journal | grep -q -- '$token'"
conn -T
if [ "$rc" = 0 ] && [[ $out == *"worker_connections"* ]]; then
	pass "nginx -T: the configuration dump arrives on the client's stdout"
else
	fail "nginx -T: exit $rc, stdout ${#out} bytes"
fi
conn -t -c /nonexistent.conf
if [ "$rc" = 1 ] && [[ $err == *'"/nonexistent.conf" failed'* ]]; then
	pass "a failing command's exit code (1) and message reach the client"
else
	fail "nginx -t -c /nonexistent.conf: exit $rc (expected 1), stderr: $err"
fi

step "stop the server container" systemctl stop systemd-nspawn@web
check "the server container is stopped" sh -c '! systemctl is-active -q systemd-nspawn@web'
conn -v
if [ "$rc" = 69 ] && [[ $err == *"connector web: no server at /connectors/web/web.sock (is the container running?)"* ]]; then
	pass "without its server the client exits 69 with a clear message"
else
	fail "without its server: exit $rc (expected 69), stderr: $err"
fi
require "systemctl start systemd-nspawn@web again" timeout 120 systemctl start systemd-nspawn@web
works_again() { conn -v; [ "$rc" = 0 ]; }
t0=$(now)
if wait_for 60 works_again; then
	pass "the connector works again after the server container restarted ($(since "$t0") s)"
else
	fail "the connector works again after the server container restarted (within 60 s): exit $rc, stderr: $err"
	info "host: $(ls -li /var/lib/sdme/connectors/web | tr '\n' ' ')"
	info "cli:  $(in_machine cli ls -li /connectors/web 2>&1 | tr '\n' ' ')"
	info "web:  $(in_machine web ls -li /connectors/web 2>&1 | tr '\n' ' ')"
	in_machine web systemctl status --no-pager sdme-oci-app.socket 2>&1 | head -12 | sed 's/^/     | /'
fi

# sdme connector add/ls/rm on a third descriptor (never started).
descriptor extra <<EOD
[Container]
Image=cli
Network=private
EOD
check "sdme connector add extra web (reloads systemd)" sdme connector add extra web
check "the drop-in is written" test -f /etc/sdme/extra.oci.d/50-connector-web.conf
check "after the reload nspawn@extra binds the connector" sh -c \
	'systemctl cat systemd-nspawn@extra | grep -q -- "--bind-ro=/var/lib/sdme/connectors/web:/connectors/web"'
check "sdme connector ls cli" sh -c 'sdme connector ls cli | grep -q "^web	/etc/sdme/cli.oci:"'
check "sdme connector ls extra" sh -c 'sdme connector ls extra | grep -q "^web	/etc/sdme/extra.oci.d/50-connector-web.conf:"'
check "sdme connector rm extra web" sdme connector rm extra web
check "after rm nspawn@extra no longer binds it" sh -c \
	'! systemctl cat systemd-nspawn@extra | grep -q -- "/connectors/web"'
refuses() { ! sdme connector rm cli web 2>/dev/null; }
check "sdme connector rm refuses a connector set in the descriptor itself" refuses
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
