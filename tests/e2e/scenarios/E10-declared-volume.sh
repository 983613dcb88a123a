# E10: a volume the image declares (mariadb's VOLUME /var/lib/mysql) and the
# descriptor does not name gets a persistent host directory,
# /var/lib/sdme/volumes/db/var-lib-mysql: the database initialised there on
# the first start, and a row written into it, survive deleting the
# container's writable layers (a reset).
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: mariadb e2e/mariadb:10
# e2e-timeout: 360
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@db systemd-nspawn@db"
pw="e2e-Vol-$RANDOM$RANDOM"
debian_base
install -m 600 /dev/null /etc/sdme/db.env
echo "MARIADB_ROOT_PASSWORD=$pw" >/etc/sdme/db.env
# A private network: other runs on this machine may hold port 3306.
descriptor db <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/mariadb:10
TLSVerify=no
Base=debian

[Container]
Network=private
EnvironmentFile=/etc/sdme/db.env
EOD
systemctl daemon-reload
vol=/var/lib/sdme/volumes/db/var-lib-mysql
check "no volume before the first start" test ! -e "$vol"
require "systemctl start systemd-nspawn@db" timeout 200 systemctl start systemd-nspawn@db
sql() { in_app db mariadb --protocol=tcp -h127.0.0.1 -uroot "-p$pw" -B -N -e "$1"; }
up() { sql 'SELECT 1'; }
t0=$(now)
if ! wait_for 90 up; then
	fail "SELECT 1 within 90 s of the first start"
	diag $E2E_UNITS
	finish
fi
pass "mariadb answers ($(since "$t0") s)"
check "the declared volume is bound: the container's /oci/volumes lists it" \
	in_machine db grep -qx /var/lib/mysql /oci/volumes
check "the data directory was initialised in the host volume $vol" test -d "$vol/mysql"
check "the volume is a mount point in the app root" \
	in_machine db sh -c 'grep -q " /oci/root/var/lib/mysql " /proc/self/mountinfo'
token=row-$RANDOM$RANDOM
check "write a row" sql "CREATE DATABASE e2e; CREATE TABLE e2e.t (v VARCHAR(64)); INSERT INTO e2e.t VALUES ('$token')"
check "nothing of it is in the container's upper layer" sh -c \
	'! find /var/lib/sdme/containers/db/app -path "*/var/lib/mysql/e2e*" | grep -q .'

step "stop the container" systemctl stop systemd-nspawn@db
step "reset it: delete its writable layers" rm -rf /var/lib/sdme/containers/db/root /var/lib/sdme/containers/db/app
check "the volume is still there" test -d "$vol/e2e"
require "start it again" timeout 200 systemctl start systemd-nspawn@db
t0=$(now)
if wait_for 90 up; then
	pass "mariadb answers after the reset with the first start's password ($(since "$t0") s)"
else
	fail "SELECT 1 within 90 s after the reset"
fi
check "the row survived the reset" test "$(sql 'SELECT v FROM e2e.t')" = "$token"
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
