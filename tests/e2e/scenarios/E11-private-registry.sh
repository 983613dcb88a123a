# E11: an image from a private registry over HTTPS with a self-signed CA
# (CertDir=) and basic auth (AuthFile=); without them the import fails and
# says why. The registry and its credentials are set up by E11-private-registry.host.
# e2e-push: debian-systemd e2e/debian-systemd:12
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@web systemd-nspawn@web"
reg=$E2E_PRIVATE_REGISTRY
check "the credentials file is root-only" test "$(stat -c %a /etc/sdme/private-auth.json)" = 600
debian_base
descriptor web <<EOD
[Image]
Image=$reg/private/nginx:1
Base=debian
CertDir=/etc/sdme/certs/$reg
AuthFile=/etc/sdme/private-auth.json

[Container]
Network=private
EOD
descriptor nocreds <<EOD
[Image]
Image=$reg/private/nginx:1
CertDir=/etc/sdme/certs/$reg
EOD
descriptor noca <<EOD
[Image]
Image=$reg/private/nginx:1
AuthFile=/etc/sdme/private-auth.json
EOD
systemctl daemon-reload
require "systemctl start systemd-nspawn@web (import over https with auth)" timeout 200 systemctl start systemd-nspawn@web
app_ok() { nsenter -t "$(leader web)" -n curl -sf -o /dev/null --max-time 2 http://127.0.0.1/; }
if wait_for 60 app_ok; then pass "nginx from the private registry answers"; else fail "nginx from the private registry answers within 60 s"; fi
import_log() { journalctl -b --no-pager -u "sdme-import@$1" -o cat; }
check "without credentials the import fails" sh -c '! timeout 60 systemctl start sdme-import@nocreds'
check "... and says it was refused authorisation" sh -c "journalctl -b --no-pager -o cat -u sdme-import@nocreds | grep -Eiq 'auth|401|credential|denied'"
check "without the CA the import fails" sh -c '! timeout 60 systemctl start sdme-import@noca'
check "... and says the certificate is not trusted" sh -c "journalctl -b --no-pager -o cat -u sdme-import@noca | grep -Eiq 'certif|tls|x509|issuer'"
info "without credentials: $(import_log nocreds | grep -m1 'sdme-import:')"
info "without the CA: $(import_log noca | grep -m1 'sdme-import:')"
if [ "$E2E_FAILED" != 0 ]; then
	import_log nocreds | tail -5 | sed 's/^/     nocreds | /'
	import_log noca | tail -5 | sed 's/^/     noca | /'
	diag $E2E_UNITS
fi
finish
