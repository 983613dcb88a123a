# E2: nginx on a private network (Network=veth) with Port=8080:80; the page is
# fetched from the host on port 8080.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@nginx systemd-nspawn@nginx"
# The host's networkd serves the veth (DHCP), as on a systemd host set up for
# containers; the outer's networkd.conf keeps it away from everything else.
check "systemd-networkd started on the host" systemctl start systemd-networkd
debian_base
descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=veth
Port=8080:80
EOD
check "port 8080 is free on this machine" sh -c '! ss -Htln "sport = :8080" | grep -q .'
systemctl daemon-reload
check "nspawn@nginx gets a veth" sh -c "systemctl show -P ExecStart systemd-nspawn@nginx.service | grep -q -- --network-veth"
check "nspawn@nginx forwards the port" sh -c "systemctl show -P ExecStart systemd-nspawn@nginx.service | grep -q -- --port=tcp:8080:80"
require "systemctl start systemd-nspawn@nginx" timeout 200 systemctl start systemd-nspawn@nginx
own_netns() { [ "$(readlink "/proc/$(leader nginx)/ns/net")" != "$(readlink /proc/1/ns/net)" ]; }
check "the container has its own network namespace" own_netns
# nspawn forwards the port for the host's own non-loopback addresses.
addr=$(ip -4 -o addr show scope global | awk '$2 !~ /^ve-/ {sub("/.*", "", $4); print $4; exit}')
if [ -z "$addr" ]; then
	fail "this machine has a global IPv4 address to reach the forwarded port on"
else
	t0=$(now)
	if wait_for 60 http_ok "http://$addr:8080/"; then
		pass "nginx answers on http://$addr:8080/ ($(since "$t0") s after start returned)"
		check "the page is the image's" sh -c "curl -s --max-time 2 http://$addr:8080/ | grep -q 'hello from sdme nginx v1'"
	else
		fail "nginx answers on http://$addr:8080/ within 60 s"
		info "veth: $(ip -br addr show | grep ve- | tr '\n' ';')"
		info "container: $(in_machine nginx ip -br addr 2>&1 | tr '\n' ';')"
		nft list ruleset 2>&1 | grep -i -B2 -A2 8080 | sed 's/^/     | /'
	fi
fi
check "nginx is not reachable on the host's port 80 (private network)" sh -c '! curl -s -o /dev/null --max-time 1 http://127.0.0.1:80/'
[ "$E2E_FAILED" = 0 ] || diag sdme-import@nginx systemd-nspawn@nginx systemd-networkd
finish
