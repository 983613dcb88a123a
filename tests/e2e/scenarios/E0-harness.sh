# E0: the test host itself is what the other scenarios assume: systemd is
# PID 1 and running, sdme is installed where the Makefile puts it, the store
# is a real (non-overlay) directory, and the registry is reachable.
. /usr/local/lib/sdme-e2e/check.sh
check "systemd is PID 1" test "$(cat /proc/1/comm)" = systemd
check "system reached running/degraded" sh -c 'st=$(systemctl is-system-running); [ "$st" = running ] || [ "$st" = degraded ]'
check "generator installed" test -x /usr/lib/systemd/system-generators/sdme-generator
check "sdme-import installed" test -x /usr/bin/sdme-import
check "launcher installed" test -x /usr/libexec/sdme/sdme-nspawn
check "/var/lib/sdme is not on overlayfs" sh -c '[ "$(stat -f -c %T /var/lib/sdme)" != overlayfs ]'
check "machined answers" machinectl list
check "registry reachable at $E2E_REGISTRY" curl -sf "http://$E2E_REGISTRY/v2/"
finish
