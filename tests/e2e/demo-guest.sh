# Runs inside the demo's systemd host (see demo.sh).
. /usr/local/lib/sdme-e2e/check.sh
show() { echo; echo "\$ $*"; "$@"; }
cat >/etc/sdme/debian.oci <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/debian-systemd:12
TLSVerify=no
EOD
cat >/etc/sdme/nginx.oci <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
EOD
show head -50 /etc/sdme/debian.oci /etc/sdme/nginx.oci
echo
t0=$(now); show systemctl daemon-reload; t_reload=$(since "$t0")
t0=$(now); show systemctl start systemd-nspawn@nginx; rc=$?; t_start=$(since "$t0")
t0=$(now); wait_for 60 http_ok http://127.0.0.1/; t_page=$(since "$t0")
show curl -s --max-time 5 http://127.0.0.1/
show systemctl status --no-pager sdme-import@debian sdme-import@nginx systemd-nspawn@nginx
echo
echo "in the host:"
printf '  %-58s %6s s\n' "systemctl daemon-reload (runs the generator)" "$t_reload" \
	"systemctl start systemd-nspawn@nginx (imports + boot)" "$t_start" \
	"then until the first HTTP 200" "$t_page"
if [ $rc = 0 ] && curl -s --max-time 5 http://127.0.0.1/ | grep -q 'hello from sdme nginx'; then
	echo "DEMO OK"
else
	echo "DEMO FAILED"
	diag sdme-import@debian sdme-import@nginx systemd-nspawn@nginx
	exit 1
fi
