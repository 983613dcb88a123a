# E24: several apps in one container (App=). The container's first app is
# nginx; two other descriptors' images run beside it, each in a root of its
# own (/oci/apps/NAME/root) as sdme-oci-app@NAME.service with the settings
# of its own [App] section: mariadb ("db": its environment, volume, health
# check and restart policy) and a client ("client": the mariadb image again,
# as user mysql, with a probe script as its entrypoint and a bind from the
# host). They share the container's network: the client reaches the
# database on 127.0.0.1:3306, each root reaches nginx on 127.0.0.1:80.
# The container's start waits for db's health check; the first app's
# variables reach no other app; a killed db is restarted.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: mariadb e2e/mariadb:10
# e2e-push: nginx e2e/nginx:1
# e2e-timeout: 420
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@db sdme-import@client sdme-import@web systemd-nspawn@web"
debian_base
PW=apps-pw-$$
image() { # IMAGE
	printf '[Image]\nImage=%s\nTLSVerify=no\nBase=debian\n\n' "$E2E_REGISTRY/e2e/$1"
}
{ image mariadb:10; cat <<EOD; } | descriptor db
[App]
Environment=MARIADB_ROOT_PASSWORD=$PW MARIADB_DATABASE=app
Volume=/var/lib/mysql
HealthCmd=mariadb-admin --protocol=tcp -h127.0.0.1 -uroot -p$PW ping
HealthIntervalSec=2s
HealthRetries=60
Restart=always
EOD
mkdir -p /run/e2e-probe
cat >/run/e2e-probe/probe.sh <<'EOF'
#!/bin/sh
# Asks the database next to it, over the container's loopback, until it answers.
until out=$(mariadb --protocol=tcp -h127.0.0.1 -uroot -p"$PW" -N -e 'select 40 + 2' 2>&1); do
	echo "probe: not yet: $out"
	sleep 1
done
echo "probe: db answered $out as $(id -un)"
exec sleep infinity
EOF
chmod 755 /run/e2e-probe/probe.sh
{ image mariadb:10; cat <<EOD; } | descriptor client
[App]
User=mysql
Entrypoint=/bin/sh
Command=/probe/probe.sh
Volume=/run/e2e-probe:/probe:ro
Environment=PW=$PW
EOD
{ image nginx:1; cat <<EOD; } | descriptor web
[Container]
Network=private
Environment=WEB_ONLY=nginx-only
App=db client
EOD
systemctl daemon-reload
check "nspawn@web wants db's and client's imports" sh -c "systemctl show -P Wants systemd-nspawn@web.service | grep -w sdme-import@db.service | grep -qw sdme-import@client.service"
require "systemctl start systemd-nspawn@web (imports web, db and client)" timeout 300 systemctl start systemd-nspawn@web
# Readiness: the start returned only once every app was ready, db's health
# check passed included (read at once, not waited for).
health_status() { in_machine web cat /run/sdme-oci-health@db/status; }
# (Monotonic timestamps: the container shares the host's clock.)
ready_before_active() {
	local ready active
	ready=$(in_machine web systemctl show -P ActiveEnterTimestampMonotonic sdme-oci-ready@db.service)
	active=$(systemctl show -P ActiveEnterTimestampMonotonic systemd-nspawn@web.service)
	[ "${ready:-0}" -gt 0 ] && [ "$ready" -le "$active" ] &&
		in_machine web journalctl --no-pager -u sdme-oci-ready@db | grep -q 'ready: the health check passed'
}
check "db's health check had passed when the container became active" ready_before_active
active() { [ "$(in_machine web systemctl is-active "$1")" = active ]; }
check "the first app runs as sdme-oci-app.service" active sdme-oci-app.service
check "db runs as sdme-oci-app@db.service" active sdme-oci-app@db.service
check "client runs as sdme-oci-app@client.service" active sdme-oci-app@client.service
check "db's health checks are scheduled" active sdme-oci-health@db.timer
app_pid() { in_machine web systemctl show -P MainPID "$1"; }
in_root_of() { local pid; pid=$(app_pid "$1") && [ "$pid" -gt 0 ] && in_machine web test -x "/proc/$pid/root$2"; }
not_in_root_of() { local pid; pid=$(app_pid "$1") && [ "$pid" -gt 0 ] && ! in_machine web test -x "/proc/$pid/root$2"; }
check "db's process runs in mariadb's root" in_root_of sdme-oci-app@db.service /usr/sbin/mariadbd
check "and not in nginx's" not_in_root_of sdme-oci-app@db.service /usr/sbin/nginx
check "nginx runs in its own root" in_root_of sdme-oci-app.service /usr/sbin/nginx
same_root() { [ "$(stat -L -c %d:%i "/proc/$(leader web)/root/oci/apps/db/root")" = "$(in_machine web stat -L -c %d:%i "/proc/$(app_pid sdme-oci-app@db.service)/root")" ]; }
check "which is /oci/apps/db/root" same_root
# The client: its own user, its own variables, its bind, db over loopback.
uid_of() { in_machine web sh -c "awk '/^Uid:/ { print \$2 }' /proc/$(app_pid "$1")/status"; }
image_uid() { in_machine web chroot /oci/apps/client/root id -u mysql; }
client_is_mysql() { local uid; uid=$(uid_of sdme-oci-app@client.service) && [ -n "$uid" ] && [ "$uid" = "$(image_uid)" ]; }
check "client runs as the image's mysql user" client_is_mysql
answered() { in_machine web journalctl --no-pager -u sdme-oci-app@client | grep -q 'probe: db answered 42 as mysql'; }
t0=$(now)
if wait_for 120 answered; then
	pass "client reached db on 127.0.0.1:3306 with its own password variable, as mysql ($(since "$t0") s)"
else
	fail "client reached db on 127.0.0.1:3306 within 120 s"
	in_machine web journalctl --no-pager -u sdme-oci-app@client | tail -5 | sed 's/^/     | /'
fi
environ() { in_machine web sh -c "tr '\\0' '\\n' </proc/$(app_pid "$1")/environ"; }
has_var() { environ "$1" | grep -q "^$2="; }
# Read at all (PATH is there) and without the variable.
lacks_var() { has_var "$1" PATH && ! has_var "$@"; }
# (nginx empties its own environment, so the first app is asked of systemd.)
env_files() { in_machine web systemctl show -P EnvironmentFiles "$1"; }
first_gets_it() { env_files sdme-oci-app.service | grep -q '^/run/sdme/environment ' && in_machine web grep -q '^WEB_ONLY=' /run/sdme/environment; }
check "nginx gets the container's WEB_ONLY (/run/sdme/environment)" first_gets_it
db_not_it() { env_files sdme-oci-app@db.service | grep -q '^/oci/apps/db/env ' && ! env_files sdme-oci-app@db.service | grep -q '^/run/sdme/environment '; }
check "db's unit does not read the first app's environment file" db_not_it
check "db does not" lacks_var sdme-oci-app@db.service WEB_ONLY
check "client does not" lacks_var sdme-oci-app@client.service WEB_ONLY
check "client does not have db's MARIADB_ROOT_PASSWORD" lacks_var sdme-oci-app@client.service MARIADB_ROOT_PASSWORD
check "db has its own MARIADB_ROOT_PASSWORD" has_var sdme-oci-app@db.service MARIADB_ROOT_PASSWORD
page() { in_machine web chroot "/oci/apps/$1/root" bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET / HTTP/1.0\r\nHost: x\r\n\r\n" >&3 && cat <&3' | grep -q 'hello from sdme nginx v1'; }
check "db's root reaches nginx on 127.0.0.1:80" wait_for 30 page db
check "db's Volume=/var/lib/mysql is a volume of the container" test -d /var/lib/sdme/volumes/web@db/var-lib-mysql/mysql
logged() { in_machine web journalctl --no-pager -u sdme-oci-app@db | grep -q 'ready for connections'; }
check "db's output is in the journal of sdme-oci-app@db" wait_for 30 logged
check "db's writable layer is the container's" test -d /var/lib/sdme/containers/web/apps/db
check "db's and client's generations are recorded for gc" sh -c "grep -q '^db\\.' /var/lib/sdme/containers/web/generations && grep -q '^client\\.' /var/lib/sdme/containers/web/generations"
# The day-two command reaches each app.
check "sdme status web names the other apps" sh -c "sdme status web | grep -q '^  apps: db client '"
exec_as() { [ "$(sdme exec --app=client web id -un)" = mysql ]; }
check "sdme exec --app=client runs as client's user" exec_as
exec_root() { sdme exec --app=db web test -x /usr/sbin/mariadbd && ! sdme exec --app=db web test -e /usr/sbin/nginx; }
check "sdme exec --app=db runs in db's root" exec_root
check "sdme logs --app=db shows db's output" sh -c "sdme logs --app=db web -n all | grep -q 'ready for connections'"
check "sdme exec --app=nosuch fails, naming the unit" sh -c "! sdme exec --app=nosuch web true 2>/tmp/e24-nosuch && grep -q 'has no sdme-oci-app@nosuch.service' /tmp/e24-nosuch"
# Restart=always: a killed database comes back, with a new main process.
old=$(app_pid sdme-oci-app@db.service)
check "kill -9 db's main process" in_machine web sh -c "kill -9 $old"
restarted() { local pid; pid=$(app_pid sdme-oci-app@db.service); [ -n "$pid" ] && [ "$pid" != 0 ] && [ "$pid" != "$old" ] && active sdme-oci-app@db.service; }
check "a killed db is restarted (Restart=always)" wait_for 60 restarted
check "and its health check passes in the new process" wait_for 60 in_machine web systemctl start sdme-oci-health-check@db.service
check "systemctl stop systemd-nspawn@web" timeout 90 systemctl stop systemd-nspawn@web
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
