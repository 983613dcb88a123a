# E6: after the host reboots, a container whose descriptor says
# [Install] WantedBy=machines.target comes back by itself.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@nginx systemd-nspawn@nginx"
page_ok() { curl -s --max-time 2 http://127.0.0.1/ | grep -q "hello from sdme nginx v1"; }
if [ "$E2E_BOOT" = 1 ]; then
	debian_base
	descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]

[Install]
WantedBy=machines.target
EOD
	check "port 80 is free on this machine" sh -c '! ss -Htln "sport = :80" | grep -q .'
	systemctl daemon-reload
	check "generator linked nspawn@nginx into machines.target.wants" sh -c 'systemctl show -P Wants machines.target | grep -qw systemd-nspawn@nginx.service'
	require "systemctl start systemd-nspawn@nginx" timeout 200 systemctl start systemd-nspawn@nginx
	if wait_for 60 page_ok; then pass "page served before the reboot"; else fail "page served before the reboot"; fi
	[ "$E2E_FAILED" = 0 ] || { diag sdme-import@nginx systemd-nspawn@nginx; exit 1; }
	exit 100 # reboot the host
fi
info "host booted again (boot $E2E_BOOT)"
check "systemd-nspawn@nginx came back at boot" wait_for 60 systemctl is-active systemd-nspawn@nginx
t0=$(now)
if wait_for 60 page_ok; then pass "page served after the reboot ($(since "$t0") s after boot finished)"; else fail "page served after the reboot"; fi
check "the imported image survived the reboot in the store" test -e /var/lib/sdme/images/nginx
[ "$E2E_FAILED" = 0 ] || diag sdme-import@nginx systemd-nspawn@nginx machines.target
finish
