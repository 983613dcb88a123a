# E23: Port= reachable from the host itself: nginx on a veth with three
# ports chosen free at run time: HOST:80 (nspawn's forward on the host's
# addresses, and the proxy on 127.0.0.1), 127.0.0.1:HOST:80 (loopback only)
# and ADDR:HOST:80 (the host's own address only).
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@nginx systemd-nspawn@nginx systemd-networkd"
check "systemd-networkd started on the host" systemctl start systemd-networkd
addr=$(ip -4 -o addr show scope global | awk '$2 !~ /^(ve-|vz-)/ {sub("/.*", "", $4); print $4; exit}')
require "this machine has a global IPv4 address" test -n "$addr"
# Ports free now on this machine (no test depends on a fixed one).
taken=" "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		case $taken in *" $p "*) continue ;; esac
		ss -Htln "sport = :$p" | grep -q . && continue
		taken="$taken$p "
		echo "$p"
		return
	done
}
P1=$(free_port) P2=$(free_port) P3=$(free_port)
taken="$taken$P1 $P2 $P3 "
info "ports: any $P1, loopback $P2, $addr $P3"
debian_base
descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=veth
Port=$P1:80
Port=127.0.0.1:$P2:80
Port=$addr:$P3:80/tcp
EOD
systemctl daemon-reload
check "the proxy socket lists the three bindings" sh -c "systemctl show -P Listen sdme-port@nginx-80.socket | tr ' ' '\n' | grep -c -e 127.0.0.1:$P1 -e 127.0.0.1:$P2 -e $addr:$P3 | grep -qx 3"
check "nspawn forwards only the port without an address" sh -c "systemctl show -P ExecStart systemd-nspawn@nginx.service | grep -o -- '--port=[^ ]*' | tr '\n' ' ' | grep -qx -- '--port=tcp:$P1:80 '"
require "systemctl start systemd-nspawn@nginx" timeout 200 systemctl start systemd-nspawn@nginx
check "the port socket listens while the container runs" systemctl is-active sdme-port@nginx-80.socket
page() { curl -s --max-time 3 "$1" | grep -q 'hello from sdme nginx v1'; }
t0=$(now)
if wait_for 60 page "http://127.0.0.1:$P1/"; then
	pass "nginx answers on http://127.0.0.1:$P1/ ($(since "$t0") s after start returned)"
else
	fail "nginx answers on http://127.0.0.1:$P1/ within 60 s"
	journalctl -b --no-pager -u sdme-port@nginx-80.service | tail -10 | sed 's/^/     | /'
fi
check "nginx answers on http://$addr:$P1/ (nspawn's forward)" wait_for 60 page "http://$addr:$P1/"
check "nginx answers on http://127.0.0.1:$P2/" page "http://127.0.0.1:$P2/"
# The proxy connects to the container's address: nginx must not see a host
# user's request as one from its own loopback.
token=e23-$RANDOM$RANDOM
curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$P2/$token"
seen() { journalctl -M nginx -u sdme-oci-app -o cat --no-pager | grep -m1 "GET /$token"; }
if wait_for 15 seen; then
	line=$(seen)
	check "the app sees the proxied client from the container's address, not 127.0.0.1 ($line)" sh -c "! printf '%s\n' '$line' | grep -q '^127\.'"
else
	fail "nginx logged the proxied request /$token"
fi
check "port $P2 is not open on $addr (loopback only)" sh -c "! curl -s -o /dev/null --max-time 2 http://$addr:$P2/"
check "nginx answers on http://$addr:$P3/ (the host's own address)" page "http://$addr:$P3/"
check "port $P3 is not open on 127.0.0.1 (that address only)" sh -c "! curl -s -o /dev/null --max-time 2 http://127.0.0.1:$P3/"
check "the proxy runs as nobody" sh -c "ps_uid=\$(awk '/^Uid:/ {print \$2}' /proc/\$(systemctl show -P MainPID sdme-port@nginx-80.service)/status); [ \"\$ps_uid\" = 65534 ]"
check "and in the container's network namespace" sh -c "[ \"\$(readlink /proc/\$(systemctl show -P MainPID sdme-port@nginx-80.service)/ns/net)\" = \"\$(readlink /proc/$(leader nginx)/ns/net)\" ]"
check "systemctl stop systemd-nspawn@nginx" timeout 60 systemctl stop systemd-nspawn@nginx
check "the port socket stopped with the container" sh -c '! systemctl is-active -q sdme-port@nginx-80.socket'
check "nothing listens on 127.0.0.1:$P2 any more" sh -c "! ss -Htln 'sport = :$P2' | grep -q ."
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS sdme-port@nginx-80.socket sdme-port@nginx-80.service
finish
