# E31: auto-update with rollback, shaped like Quadlet's auto-update system
# test. web says AutoUpdate=registry, other runs the same reference
# without it. v2 pushed under the tag -> the timer's service updates web,
# which serves v2, one journal line with both digests; v3 (fails its health
# check) pushed -> web is rolled back and still serves v2, the journal says
# so; other is never touched; --dry-run lists what would change.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e31/web:v1
# e2e-push: nginx-v2 e31/web:v2
# e2e-push: nginx-v3 e31/web:v3
# e2e-timeout: 600
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-auto-update.service systemd-nspawn@web systemd-nspawn@other"
debian_base
mt=application/vnd.oci.image.manifest.v1+json
tag() { # FROM TO: the registry's tag TO now names FROM's manifest
	curl -sf -H "Accept: $mt" "http://$E2E_REGISTRY/v2/e31/web/manifests/$1" -o /tmp/e31-m.json &&
		curl -sf -X PUT -H "Content-Type: $mt" --data-binary @/tmp/e31-m.json "http://$E2E_REGISTRY/v2/e31/web/manifests/$2"
}
require "tag v1 as latest" tag v1 latest
for n in web other; do
	descriptor $n <<EOD
[Image]
Image=$E2E_REGISTRY/e31/web:latest
TLSVerify=no
Base=debian
$( [ $n = web ] && echo AutoUpdate=registry )

[Container]
Network=private
HealthCmd=/bin/sh -c 'test ! -e /var/www/html/broken'
HealthIntervalSec=1s
HealthRetries=3
EOD
done
systemctl daemon-reload
for n in web other; do require "systemctl start systemd-nspawn@$n" timeout 200 systemctl start systemd-nspawn@$n; done
page() { nsenter -t "$(leader "$1")" -n curl -s --max-time 2 http://127.0.0.1/; }
digest() { tr -d ' \n' <"/var/lib/sdme/images/$1/image.json" | grep -o '"manifest_digest":"[^"]*"' | cut -d'"' -f4; }
serves() { page "$1" | grep -q "hello from sdme nginx $2"; }
# (The health check looks at a file, not at nginx: the page may take a moment.)
check "web serves v1" wait_for 10 serves web v1
other_since=$(systemctl show -P ActiveEnterTimestampMonotonic systemd-nspawn@other)
other_image=$(readlink /var/lib/sdme/images/other)
d1=$(digest web)
check "the timer is shipped, not enabled" sh -c "systemctl cat sdme-auto-update.timer >/dev/null && ! systemctl is-enabled -q sdme-auto-update.timer"
check "dry run with nothing new: up to date" sh -c "sdme-import auto-update --dry-run --image=web | grep -qx 'auto-update: web: up to date ($d1)'"

# v2: updated, restarted, serving v2; the journal has both digests.
require "push v2 under the tag" tag v2 latest
d2=$(curl -sfI -H "Accept: $mt" "http://$E2E_REGISTRY/v2/e31/web/manifests/v2" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest" {print $2}')
check "dry run lists the update ($d1 -> $d2)" sh -c "sdme-import auto-update --dry-run --image=web | grep -qx 'auto-update: web: would update $d1 -> $d2; would restart: web'"
check "the dry run changed nothing" test "$(digest web)" = "$d1"
check "systemctl start sdme-auto-update.service" timeout 300 systemctl start sdme-auto-update.service
check "web's image is v2" test "$(digest web)" = "$d2"
check "web serves v2" wait_for 10 serves web v2
check "one journal line says so, with both digests" sh -c "journalctl -b -u sdme-auto-update.service -o cat --no-pager | grep -q '^auto-update: web: updated $d1 -> $d2 (.*); restarted: web$'"

# v3 fails its health check: rolled back to v2, said in the journal.
require "push v3 (broken) under the tag" tag v3 latest
d3=$(curl -sfI -H "Accept: $mt" "http://$E2E_REGISTRY/v2/e31/web/manifests/v3" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest" {print $2}')
if timeout 300 systemctl start sdme-auto-update.service; then
	fail "the service reports the rollback (fails)"
else
	pass "the service reports the rollback (fails)"
fi
check "web's image is v2 again" test "$(digest web)" = "$d2"
check "web is running and ready" systemctl is-active -q systemd-nspawn@web
check "web still serves v2" wait_for 10 serves web v2
no_v3_file() { ! in_machine web test -e /oci/root/var/www/html/broken; }
check "... without v3's file" no_v3_file
check "the journal says it rolled back, with both digests" sh -c "journalctl -b -u sdme-auto-update.service -o cat --no-pager | grep -q '^auto-update: web: rolled back $d3 -> $d2 (.*): web was not ready with the new image'"

# The rejected manifest is not tried again while the tag still names it.
web_since=$(systemctl show -P ActiveEnterTimestampMonotonic systemd-nspawn@web)
check "the next run succeeds" timeout 300 systemctl start sdme-auto-update.service
check "... without trying v3 again" sh -c "journalctl -b -u sdme-auto-update.service -o cat --no-pager | grep -q '^auto-update: web: $d3 was rolled back before; not tried again'"
check "... and without restarting web" test "$(systemctl show -P ActiveEnterTimestampMonotonic systemd-nspawn@web)" = "$web_since"
check "the service names only the images that opt in (the generator's drop-in)" sh -c "systemctl cat sdme-auto-update.service | grep -q -- '--image=web' && ! systemctl cat sdme-auto-update.service | grep -q -- '--image=other'"

# other (no AutoUpdate=) was never touched.
check "other was never restarted" test "$(systemctl show -P ActiveEnterTimestampMonotonic systemd-nspawn@other)" = "$other_since"
check "other's image is what it was" test "$(readlink /var/lib/sdme/images/other)" = "$other_image"
[ "$E2E_FAILED" = 0 ] || { diag $E2E_UNITS; journalctl -b -u sdme-auto-update.service --no-pager | tail -30 >>"$E2E_OUT/diag.log"; }
finish
