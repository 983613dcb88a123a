# E21: two containers in one network zone (Network=zone:NAME) find each other
# by machine name: a database (mariadb) and a client app (the same image with
# a probe script as its entrypoint) that connects to it as "db", resolved by
# LLMNR through systemd-resolved in each container (base debian-resolved);
# a container on a base without resolved starts and says so in the journal.
# e2e-push: debian-resolved e2e/debian-resolved:12
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: mariadb e2e/mariadb:1
# e2e-timeout: 420
. /usr/local/lib/sdme-e2e/check.sh
Z=e2ez$$
Z=${Z:0:12}
E2E_UNITS="sdme-import@debres sdme-import@db systemd-nspawn@db systemd-nspawn@web systemd-networkd"
# This host shares the machine's network namespace: the zone's bridge gets
# addresses and DHCP but no masquerading or forwarding (the shipped
# 80-container-vz.network would set both on the machine).
mkdir -p /etc/systemd/network
printf '[Match]\nName=vz-*\nDriver=bridge\n\n[Network]\nAddress=0.0.0.0/24\nLinkLocalAddressing=no\nDHCPServer=yes\nIPv6AcceptRA=no\n' \
	>/etc/systemd/network/80-container-vz.network
descriptor debres <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/debian-resolved:12
TLSVerify=no
EOD
debian_base
PW=zone-pw-$$
descriptor db <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/mariadb:1
TLSVerify=no
Base=debres

[Container]
Network=zone:$Z
Environment=MARIADB_ROOT_PASSWORD=$PW
EOD
mkdir -p /run/e2e-probe
cat >/run/e2e-probe/probe.sh <<'EOF'
#!/bin/sh
# Connects to the database by its machine name until it answers.
until out=$(mariadb -h db -uroot -p"$PW" -N -e 'select 40 + 2' 2>&1); do
	echo "probe: not yet: $out"
	sleep 1
done
echo "probe: db answered $out"
exec sleep infinity
EOF
chmod 755 /run/e2e-probe/probe.sh
descriptor web <<EOD
[Container]
Image=db
Network=zone:$Z
Entrypoint=/bin/sh
Command=/probe/probe.sh
Volume=/run/e2e-probe:/probe:ro
Environment=PW=$PW
EOD
descriptor plain <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/debian-systemd:12
TLSVerify=no

[Container]
Network=zone:$Z
EOD
systemctl daemon-reload
check "nspawn@db joins zone $Z" sh -c "systemctl show -P ExecStart systemd-nspawn@db.service | grep -q -- --network-zone=$Z"
check "nspawn@db wants the host's networkd" sh -c "systemctl show -P Wants systemd-nspawn@db.service | grep -qw systemd-networkd.service"
require "systemctl start systemd-nspawn@db" timeout 300 systemctl start systemd-nspawn@db
require "systemctl start systemd-nspawn@web" timeout 200 systemctl start systemd-nspawn@web
check "systemd-networkd was pulled in on the host" systemctl is-active systemd-networkd
check "the zone's bridge vz-$Z exists" ip link show "vz-$Z"
bridge_ports() { [ "$(ls /sys/class/net/vz-$Z/brif 2>/dev/null | wc -l)" -ge 2 ]; }
check "both containers are ports of vz-$Z" wait_for 30 bridge_ports
named() { [ "$(in_machine "$1" hostname)" = "$1" ]; }
check "web's host name is its machine name" wait_for 30 named web
check "db's host name is its machine name" wait_for 30 named db
# The host's ip in the container's network namespace (the base has none).
addr4() { nsenter -t "$(leader "$1")" -n ip -4 -o addr show dev host0 scope global | awk '{sub("/.*", "", $4); print $4; exit}'; }
has_addr() { [ -n "$(addr4 "$1")" ]; }
check "db got an address in the zone" wait_for 60 has_addr db
check "web got an address in the zone" wait_for 60 has_addr web
if ! has_addr web; then
	info "host: $(ip -br addr show | grep -E 'vz-|vb-' | tr '\n' ';')"
	info "host networkd: $(networkctl --no-pager list 2>&1 | tr '\n' ';')"
	info "web: $(nsenter -t "$(leader web)" -n ip -br addr 2>&1 | tr '\n' ';'); $(in_machine web systemctl is-active systemd-networkd 2>&1); $(in_machine web networkctl --no-pager list 2>&1 | tr '\n' ';')"
fi
t0=$(now)
if wait_for 90 in_machine web getent hosts db; then
	pass "web resolves db by machine name ($(since "$t0") s): $(in_machine web getent hosts db | head -1)"
else
	fail "web resolves db by machine name within 90 s"
	info "web resolved: $(in_machine web systemctl is-active systemd-resolved 2>&1); $(in_machine web resolvectl status host0 2>&1 | tr '\n' ';' | head -c 600)"
fi
check "db resolves web by machine name" wait_for 60 in_machine db getent hosts web
v4() { in_machine web getent ahostsv4 db | grep -q "^$(addr4 db) "; }
check "web resolves db to db's IPv4 address in the zone" wait_for 60 v4
app_reached() { in_machine web journalctl --no-pager -u sdme-oci-app | grep -q 'probe: db answered 42'; }
t0=$(now)
if wait_for 150 app_reached; then
	pass "the web app connected to the database as \"db\" ($(since "$t0") s)"
else
	fail "the web app connected to the database as \"db\" within 150 s"
	in_machine web journalctl --no-pager -u sdme-oci-app | tail -8 | sed 's/^/     | /'
fi
stub() { in_machine web cat "/proc/$(in_machine web systemctl show -P MainPID sdme-oci-app)/root/etc/resolv.conf" | grep -q '^nameserver 127.0.0.53'; }
check "the app's resolver is the container's resolved stub" stub
check "the launcher said nothing about a missing resolved for web" sh -c '! journalctl -b --no-pager -u systemd-nspawn@web | grep -q "has no systemd-resolved"'
require "systemctl start systemd-nspawn@plain" timeout 200 systemctl start systemd-nspawn@plain
check "a base without resolved: the journal says what is missing" sh -c 'journalctl -b --no-pager -u systemd-nspawn@plain | grep -q "Network=zone:.*the base has no systemd-resolved"'
check "plain still joined the zone" wait_for 60 has_addr plain
systemctl stop systemd-nspawn@web systemd-nspawn@db systemd-nspawn@plain
gone() { ! ip link show "vz-$Z" >/dev/null 2>&1; }
check "the bridge is removed with the zone's last container" wait_for 30 gone
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
