# E7: a new version of the image is pushed under the same tag; re-running
# the import (Pull=always) and restarting the container serves the new page,
# and the unchanged base layer is not stored twice.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e7/nginx:current
# e2e-push: nginx-v2 e7/nginx:next
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@nginx systemd-nspawn@nginx"
debian_base
descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e7/nginx:current
TLSVerify=no
Base=debian
Pull=always

[Container]
EOD
page() { curl -s --max-time 2 http://127.0.0.1/; }
page_is() { page | grep -q "hello from sdme nginx $1"; }
check "port 80 is free on this machine" sh -c '! ss -Htln "sport = :80" | grep -q .'
systemctl daemon-reload
require "systemctl start systemd-nspawn@nginx" timeout 200 systemctl start systemd-nspawn@nginx
if wait_for 60 page_is v1; then pass "version 1 is served"; else fail "version 1 is served (got: $(page | head -c 200))"; fi
img1=$(readlink /var/lib/sdme/images/nginx)
layers1=$(ls /var/lib/sdme/layers/sha256 2>/dev/null | wc -l)
# Push version 2 under the tag the descriptor names: copy the manifest of
# :next to :current (its blobs are already in the repository).
mt=application/vnd.oci.image.manifest.v1+json
push_v2() {
	curl -sf -H "Accept: $mt" "http://$E2E_REGISTRY/v2/e7/nginx/manifests/next" -o /tmp/m.json &&
		curl -sf -X PUT -H "Content-Type: $mt" --data-binary @/tmp/m.json "http://$E2E_REGISTRY/v2/e7/nginx/manifests/current"
}
check "version 2 pushed as e7/nginx:current" push_v2
check "systemctl restart sdme-import@nginx" timeout 200 systemctl restart sdme-import@nginx
img2=$(readlink /var/lib/sdme/images/nginx)
check "the image now points at a new manifest ($img1 -> $img2)" test -n "$img2" -a "$img1" != "$img2"
layers2=$(ls /var/lib/sdme/layers/sha256 2>/dev/null | wc -l)
check "only the new layer was added to the store ($layers1 -> $layers2 layers)" test "$layers2" = $((layers1 + 1))
# The container only wants its import: re-importing leaves the running
# container alone (still version 1) until the user restarts it, and that
# restart must be quick.
if page_is v1; then pass "the running container still serves version 1 after the re-import"; else fail "the running container still serves version 1 after the re-import (got: $(page | head -c 200))"; fi
check "systemctl restart systemd-nspawn@nginx within 30 s" timeout 30 systemctl restart systemd-nspawn@nginx
if wait_for 60 page_is v2; then pass "version 2 is served after the restart"; else fail "version 2 is served after the restart (got: $(page | head -c 200))"; fi
[ "$E2E_FAILED" = 0 ] || diag sdme-import@nginx systemd-nspawn@nginx
finish
