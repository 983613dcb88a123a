# E3: mariadb whose root password comes from a root-only EnvironmentFile=;
# SELECT 1 succeeds with that password and the secret is not left readable.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: mariadb e2e/mariadb:10
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@db systemd-nspawn@db"
pw="e2e-Secret-$RANDOM$RANDOM"
debian_base
install -m 600 /dev/null /etc/sdme/db.env
echo "MARIADB_ROOT_PASSWORD=$pw" >/etc/sdme/db.env
descriptor db <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/mariadb:10
TLSVerify=no
Base=debian

[Container]
EnvironmentFile=/etc/sdme/db.env
EOD
check "port 3306 is free on this machine" sh -c '! ss -Htln "sport = :3306" | grep -q .'
systemctl daemon-reload
check "the password is not in the generated units" sh -c "! systemctl cat systemd-nspawn@db sdme-import@db 2>&1 | grep -q -- '$pw'"
require "systemctl start systemd-nspawn@db" timeout 200 systemctl start systemd-nspawn@db
# In the host's network, exposing only 3306: a user namespace by default.
check "db runs in a user namespace (its image exposes no port below 1024)" sh -c \
	'test -s /var/lib/sdme/containers/db/userns && test "$(stat -c %u /proc/$(machinectl show --property=Leader --value db))" = "$(cut -d" " -f1 /var/lib/sdme/containers/db/userns)"'
sql() { in_app db mariadb --protocol=tcp -h127.0.0.1 -uroot "-p$1" -B -N -e "$2"; }
t0=$(now)
if wait_for 90 sql "$pw" 'SELECT 1'; then
	pass "SELECT 1 with the root password over TCP ($(since "$t0") s after start returned)"
	check "SELECT 1 returns 1" test "$(sql "$pw" 'SELECT 1')" = 1
	refused() { ! sql wrong 'SELECT 1'; }
	check "a wrong password is refused" refused
else
	fail "SELECT 1 with the root password within 90 s"
	in_machine db systemctl status --no-pager sdme-oci-app 2>&1 | head -20 | sed 's/^/     | /'
	in_machine db journalctl --no-pager -u sdme-oci-app 2>&1 | tail -20 | sed 's/^/     | /'
fi
# The secret must not sit in any file others can read, in the host's
# /run, /etc or the store, nor in the container's /run, /etc or /oci.
readable() { while read -r f; do [ "$("$@" stat -c %A "$f" 2>/dev/null | cut -c8)" = r ] && echo "$f"; done; }
leaks=$( { grep -rlsF -- "$pw" /run /var/lib/sdme /etc | readable | sed 's/^/host:/'
	in_machine db grep -rlsF -- "$pw" /run /etc /oci | readable in_machine db | sed 's/^/container db:/'; } 2>/dev/null)
if [ -z "$leaks" ]; then pass "the password is in no world-readable file"; else fail "the password is world-readable in: $leaks"; fi
[ "$E2E_FAILED" = 0 ] || diag sdme-import@db systemd-nspawn@db
finish
