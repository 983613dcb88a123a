# E1: a base descriptor and an nginx descriptor; starting the container pulls
# in both imports; the page is served to the host; nginx's access log reaches
# the container's journal.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@nginx systemd-nspawn@nginx"
debian_base
descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
EOD
check "port 80 is free on this machine (the container shares its network)" sh -c '! ss -Htln "sport = :80" | grep -q .'
step "daemon-reload" systemctl daemon-reload
check "generator emitted sdme-import@debian.service" systemctl cat sdme-import@debian.service
check "generator emitted sdme-import@nginx.service" systemctl cat sdme-import@nginx.service
check "nspawn@nginx runs the sdme launcher" sh -c 'systemctl cat systemd-nspawn@nginx.service | grep -q /usr/libexec/sdme/sdme-nspawn'
require "systemctl start systemd-nspawn@nginx (pulls in the imports)" timeout 200 systemctl start systemd-nspawn@nginx
# In the host's network, exposing port 80: no user namespace, and why.
check "nginx (port 80, host network) runs without a user namespace, as the journal says" sh -c \
	"journalctl -u systemd-nspawn@nginx --no-pager | grep -q 'no user namespace: image nginx exposes port 80' && test \"\$(stat -c %u /proc/\$(machinectl show --property=Leader --value nginx))\" = 0"
check "sdme-import@debian is active" systemctl is-active sdme-import@debian
check "sdme-import@nginx is active" systemctl is-active sdme-import@nginx
t0=$(now)
if wait_for 60 http_ok http://127.0.0.1/; then
	pass "nginx answers on http://127.0.0.1/ ($(since "$t0") s after start returned)"
else
	fail "nginx answers on http://127.0.0.1/ within 60 s"
fi
check "the page is the image's" sh -c 'curl -s --max-time 2 http://127.0.0.1/ | grep -q "hello from sdme nginx v1"'
token=e2e-token-$RANDOM$RANDOM
curl -s -o /dev/null --max-time 2 "http://127.0.0.1/$token" || true
if wait_for 15 sh -c "journalctl -M nginx --no-pager | grep -q $token"; then
	pass "access log line is in the container's journal (journalctl -M nginx)"
	journalctl -M nginx --no-pager | grep "$token" | head -2 | sed 's/^/     | /'
else
	fail "access log line for /$token is in the container's journal (journalctl -M nginx)"
	info "via nsenter: $(in_machine nginx journalctl --no-pager 2>&1 | grep -c "$token") matching lines"
	in_machine nginx systemctl status --no-pager sdme-oci-app 2>&1 | head -15 | sed 's/^/     | /'
fi
[ "$E2E_FAILED" = 0 ] || diag sdme-import@debian sdme-import@nginx systemd-nspawn@nginx
finish
