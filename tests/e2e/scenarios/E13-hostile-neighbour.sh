# E13: hostile neighbours. An unprivileged host user tries the store (stat
# a layer, run a setuid binary from it, list containers' writable layers),
# a connector socket and a container's secrets file: all refused; through
# the connector's public socket (/run/sdme-connectors, it allows host uid
# 2345) that user is served and another is refused by the server. In a
# client container, root and the uid the descriptor allows are served by
# the connector, another uid is refused; the connector's commands get the
# descriptor's Environment= but not its EnvironmentFile= secrets; a volume
# whose path goes through a symlink of the image is refused; the secrets
# file is gone once the container stops.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@web sdme-import@cli systemd-nspawn@web systemd-nspawn@cli systemd-nspawn@cli2"
debian_base
secret=e2e-secret-$RANDOM$RANDOM
mkdir -p /etc/sdme
install -m 0600 /dev/null /etc/sdme/web.env
echo "SECRET=$secret" >/etc/sdme/web.env
# The connector's entrypoint is env(1): whoever calls it sees the
# environment its commands run with.
descriptor web <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian
Mode=connector

[Container]
Network=private
StartOnDemand=no
Entrypoint=/usr/bin/env
Environment=PUBLIC=visible
EnvironmentFile=/etc/sdme/web.env
ConnectorAllowUID=1234 2345
EOD
descriptor cli <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
Connector=web
EnvironmentFile=/etc/sdme/web.env
# Root here is root on the host (no user namespace): always served.
PrivateUsers=no
EOD
# In a user namespace (the default in a private network) root is host uid
# BASE, which the allow list does not name.
descriptor cli2 <<EOD
[Container]
Image=cli
Network=private
Connector=web
EOD
step "daemon-reload" systemctl daemon-reload
require "systemctl start systemd-nspawn@cli (pulls in web)" timeout 250 systemctl start systemd-nspawn@cli
sock=/var/lib/sdme/connectors/web/web.sock
if wait_for 60 test -S "$sock"; then pass "the connector socket exists"; else fail "the connector socket $sock exists within 60 s"; fi

# ---- an unprivileged host user ----
require "create an unprivileged host user" useradd -M -u 2345 -s /bin/sh e2e-user
as_user() { runuser -u e2e-user -- "$@"; }
check "the store is mode 0700, owned by root" test "$(stat -c '%a %U' /var/lib/sdme)" = "700 root"
check "the user cannot stat a layer" sh -c '! runuser -u e2e-user -- stat /var/lib/sdme/layers/sha256 >/dev/null 2>&1'
check "the user cannot list containers' writable layers" sh -c '! runuser -u e2e-user -- ls /var/lib/sdme/containers >/dev/null 2>&1'
suid=$(find /var/lib/sdme/layers -xdev -type f -perm -4000 2>/dev/null | head -1)
if [ -n "$suid" ]; then
	pass "a layer holds a setuid binary ($suid)"
	check "the user cannot run the setuid binary from the store" sh -c \
		"! runuser -u e2e-user -- '$suid' --help >/dev/null 2>&1 && ! runuser -u e2e-user -- test -x '$suid'"
else
	fail "a layer holds a setuid binary (the debian base ships su, mount, passwd)"
fi
out=$(as_user /usr/libexec/sdme/sdme-connector-client --connector-dir=/var/lib/sdme/connectors/web --name=web 2>&1 </dev/null)
rc=$?
if [ "$rc" != 0 ] && [[ $out != *PUBLIC=visible* ]]; then
	pass "the user cannot call the connector (exit $rc)"
else
	fail "the user called the connector: exit $rc, output: $out"
fi
pub=/run/sdme-connectors/web/web.sock
check "the container bound its public socket too ($pub)" wait_for 30 test -S "$pub"
out=$(as_user /usr/libexec/sdme/sdme-connector-client --socket="$pub" 2>&1 </dev/null)
rc=$?
if [ "$rc" = 0 ] && [[ $out == *PUBLIC=visible* ]]; then
	pass "the user (uid 2345, allowed) is served through $pub"
else
	fail "uid 2345 through $pub: exit $rc, output: $out"
fi
require "create a second host user" useradd -M -u 3456 -s /bin/sh e2e-other
out=$(runuser -u e2e-other -- /usr/libexec/sdme/sdme-connector-client --socket="$pub" 2>&1 </dev/null)
rc=$?
if [ "$rc" = 77 ] && [[ $out != *PUBLIC=visible* ]]; then
	pass "another host user (uid 3456) is refused there (exit 77)"
else
	fail "uid 3456 through $pub: exit $rc (expected 77), output: $out"
fi
# cli (an application) gets the secret; web (a connector) leaves it out.
envfile=/run/sdme-containers/cli/environment
check "cli's environment file exists, mode 0600 in a 0700 directory" \
	test "$(stat -c %a "$envfile" 2>/dev/null) $(stat -c %a /run/sdme-containers/cli 2>/dev/null)" = "600 700"
check "it holds the secret (for root)" grep -qx "SECRET=\"$secret\"" "$envfile"
check "the user cannot read it" sh -c "! runuser -u e2e-user -- cat '$envfile' >/dev/null 2>&1"
check "the connector's environment file has Environment= but not the secret" sh -c \
	"grep -q 'PUBLIC=.visible.' /run/sdme-containers/web/environment && ! grep -q SECRET /run/sdme-containers/web/environment"
# The secret as a pattern file, so that no command line below contains it.
pattern=$(mktemp /root/pattern.XXXXXX)
echo "$secret" >"$pattern"
check "the secret is in no world-readable file under /run" sh -c \
	"! find /run -xdev -type f -perm -o+r 2>/dev/null | xargs -r grep -lsFf '$pattern' | grep ."
check "the secret is in no unit or command line" sh -c \
	"! { systemctl cat systemd-nspawn@web; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' '; } | grep -qFf '$pattern'"

# ---- callers in the client container ----
# call [UID]: run the connector from the client container (as root, or as
# UID); sets $rc, $out, $err.
call() {
	local o e
	o=$(mktemp) e=$(mktemp)
	local cmd=(/usr/libexec/sdme-connector-client --connector-dir=/connectors/web --name=web)
	if [ $# -gt 0 ]; then
		cmd=(setpriv --reuid="$1" --regid="$1" --clear-groups "${cmd[@]}")
	fi
	timeout 60 nsenter -t "$(leader cli)" -a "${cmd[@]}" >"$o" 2>"$e" </dev/null
	rc=$? out=$(cat "$o") err=$(cat "$e")
	rm -f "$o" "$e"
}
call
if [ "$rc" = 0 ] && [[ $out == *PUBLIC=visible* ]]; then
	pass "root in the client container is served, with the descriptor's Environment="
else
	fail "root in the client container: exit $rc, stdout: $out, stderr: $err"
fi
if [[ $out != *"$secret"* ]]; then
	pass "the connector's commands do not get EnvironmentFile= values"
else
	fail "the connector's command saw the secret from EnvironmentFile="
fi
call 1234
if [ "$rc" = 0 ] && [[ $out == *PUBLIC=visible* ]]; then
	pass "the allowed uid 1234 is served"
else
	fail "uid 1234 (ConnectorAllowUID=1234): exit $rc, stderr: $err"
fi
# call2: as root in cli2 (user namespace); sets $rc, $out, $err.
call2() {
	local o e
	o=$(mktemp) e=$(mktemp)
	timeout 60 nsenter -t "$(leader cli2)" -a /usr/libexec/sdme-connector-client --connector-dir=/connectors/web --name=web >"$o" 2>"$e" </dev/null
	rc=$? out=$(cat "$o") err=$(cat "$e")
	rm -f "$o" "$e"
}
require "systemctl start systemd-nspawn@cli2" timeout 120 systemctl start systemd-nspawn@cli2
base=$(cut -d' ' -f1 /var/lib/sdme/containers/cli2/userns 2>/dev/null)
check "cli2 has a user namespace range recorded" test -n "$base"
check "cli2's root is host uid $base" sh -c "test \"\$(stat -c %u /proc/$(leader cli2))\" = '$base'"
call2
if [ "$rc" = 77 ] && [[ $err == *"(uid $base)"* ]] && [[ $out != *PUBLIC* ]]; then
	pass "root in a client container with a user namespace is host uid $base: refused by the allow list"
else
	fail "root in cli2: exit $rc (expected 77 naming uid $base), stdout: $out, stderr: $err"
fi
call 4321
if [ "$rc" = 77 ] && [[ $err == *"permission denied"* ]] && [[ $out != *PUBLIC* ]]; then
	pass "uid 4321 is refused (exit 77, permission denied)"
else
	fail "uid 4321: exit $rc (expected 77), stdout: $out, stderr: $err"
fi

# ---- a volume through a symlink of the image ----
# Debian's /var/run is a symlink to /run: nspawn would follow it from the
# container's root and mount the volume over the container's own /run.
mkdir -p /srv/e13-vol
descriptor vlink <<EOD
[Container]
Image=cli
Network=private
Volume=/srv/e13-vol:/var/run/e13
EOD
step "daemon-reload" systemctl daemon-reload
check "a volume through a symlink of the image does not start" sh -c '! timeout 120 systemctl start systemd-nspawn@vlink'
check "the launcher says why" sh -c 'journalctl -u systemd-nspawn@vlink --no-pager | grep -q "/var/run is a symlink"'
check "nothing was mounted from the volume" sh -c '! grep -q e13-vol /proc/self/mountinfo'

# ---- secrets end with the container ----
step "stop the containers" systemctl stop systemd-nspawn@cli systemd-nspawn@web
check "their runtime directories (and the secrets in them) are gone" sh -c \
	'! test -e /run/sdme-containers/cli && ! test -e /run/sdme-containers/web'
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
