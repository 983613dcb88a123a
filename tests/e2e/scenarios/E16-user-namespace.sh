# E16: containers in user namespaces (PrivateUsers=yes, the default in a
# private network). Each gets a range of its own recorded in the store;
# root inside is host uid BASE; the shared layers are unchanged (owners as
# imported) and seen with their owners inside; the writable layer is owned
# in the range; the app runs as its own user (host uid BASE+33, www-data); an
# EnvironmentFile= secret reaches the app; a host-bind and a persistent
# volume keep their on-disk owners (idmapped), a volume on a file system
# without idmapped mounts is refused by name; the health check passes;
# journald and machinectl shell work; a container written without a
# namespace is shifted into one at its next start and back with
# PrivateUsers=no; a reset container gets its range back; a second
# container on the image shares every layer.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@web systemd-nspawn@web systemd-nspawn@web2 systemd-nspawn@legacy"
debian_base
# The host bind's directory on a tmpfs: the test host's own root is an
# overlayfs, which cannot be mounted idmapped (see badvol below).
mkdir -p /run/e16 /etc/sdme /srv/e16-overlay
echo "host file" >/run/e16/from-host
chown 0:0 /run/e16/from-host
install -m 0600 /dev/null /etc/sdme/web.env
echo "E16_SECRET=s3cret-$RANDOM" >/etc/sdme/web.env
descriptor web <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
EnvironmentFile=/etc/sdme/web.env
Volume=/run/e16:/srv/e16
Volume=/var/cache/e16
HealthCmd=/bin/sh -c 'test -e /etc/nginx/nginx.conf'
HealthIntervalSec=2s
EOD
descriptor web2 <<EOD
[Container]
Image=web
Network=private
EOD
descriptor legacy <<EOD
[Container]
Image=web
Network=private
PrivateUsers=no
EOD
step "daemon-reload" systemctl daemon-reload
require "systemctl start systemd-nspawn@web" timeout 200 systemctl start systemd-nspawn@web
up() { nsenter -t "$(leader "$1")" -n curl -sf -o /dev/null --max-time 2 http://127.0.0.1/; }
check "nginx answers inside web's network" wait_for 60 up web

range=$(cat /var/lib/sdme/containers/web/userns 2>/dev/null)
base=${range%% *}
check "web's range is recorded: '$range' (BASE 65536)" sh -c "[ '${range#* }' = 65536 ] && [ '$base' -ge 524288 ] && [ \$(( $base % 65536 )) = 0 ]"
check "its init runs as host uid $base" test "$(stat -c %u "/proc/$(leader web)")" = "$base"
check "inside, init is uid 0" test "$(in_machine web cat /proc/1/status | awk '/^Uid:/ { print $2 }')" = 0
# procs UID PATTERN: pids (as this host sees them) of processes of host
# uid UID whose command line matches PATTERN (the test host has no procps).
procs() {
	local d
	for d in /proc/[0-9]*; do
		[ "$(stat -c %u "$d" 2>/dev/null)" = "$1" ] || continue
		tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q "$2" && echo "${d#/proc/}"
	done
}
workers=$(procs "$((base + 33))" '^nginx: worker' | wc -l)
if [ "$workers" -gt 0 ]; then
	pass "nginx's $workers worker(s) run as its own user (www-data, 33): host uid $((base + 33))"
else
	fail "no nginx worker runs as host uid $((base + 33)); nginx processes: $(for d in /proc/[0-9]*; do tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q '^nginx' && echo "$(stat -c %u "$d"):$(tr '\0' ' ' <"$d/cmdline")"; done | tr '\n' ';')"
fi
# nginx rewrites its own environment block (its process titles), so the
# check is what the container's systemd reads for the app: the file is
# the container root's to read, and holds the secret.
secret=$(cut -d= -f2- /etc/sdme/web.env)
if in_machine web cat /run/sdme/environment 2>/dev/null | grep -qxF "E16_SECRET=\"$secret\""; then
	pass "the container's root reads the EnvironmentFile= secret (/run/sdme/environment)"
else
	fail "the container's root cannot read the secret in /run/sdme/environment"
fi
check "the environment file is owned by the container's root ($base), mode 0600" \
	test "$(stat -c '%u %a' /run/sdme-containers/web/environment)" = "$base 600"

# The layers: unchanged on disk, their owners as they are inside.
layer=$(find /var/lib/sdme/layers/sha256 -mindepth 3 -maxdepth 3 -path '*/etc/nginx' | head -1)
check "a layer of the image is on disk owned by 0 ($layer)" test "$(stat -c %u "$layer")" = 0
check "inside, /oci/root/etc/nginx is owned by root" test "$(in_machine web stat -c %U /oci/root/etc/nginx)" = root
check "inside, /etc/passwd of the base is owned by root" test "$(in_machine web stat -c %u /etc/passwd)" = 0
check "the writable layer is owned by the container's root" test "$(stat -c %u /var/lib/sdme/containers/web/root)" = "$base"
step "root writes a file inside" in_machine web sh -c 'echo x >/root/e16-file'
check "it lands in the writable layer as host uid $base" test "$(stat -c %u /var/lib/sdme/containers/web/root/root/e16-file)" = "$base"
check "the container records its layers' owner range" test "$(cat /var/lib/sdme/containers/web/owner)" = "$base 65536"

# Volumes: idmapped, so on-disk owners are those inside.
check "the host bind's file is root's inside" test "$(in_machine web stat -c %u /oci/root/srv/e16/from-host)" = 0
step "root writes into both volumes" in_machine web sh -c 'echo y >/oci/root/srv/e16/from-inside && echo z >/oci/root/var/cache/e16/v'
check "on the host the file is root's (0), not $base" test "$(stat -c %u /run/e16/from-inside)" = 0
check "in the persistent volume too" test "$(stat -c %u /var/lib/sdme/volumes/web/var-cache-e16/v)" = 0

healthy() { in_machine web systemctl show -P Result sdme-oci-health-check.service | grep -qx success && in_machine web journalctl -u sdme-oci-health-check.service -o cat --no-pager | grep -q '^Finished'; }
if wait_for 30 healthy; then
	pass "the health check ran and passed"
else
	fail "the health check ran and passed within 30 s: $(in_machine web systemctl status --no-pager sdme-oci-health.timer sdme-oci-health.service sdme-oci-health-check.service 2>&1 | tail -30 | tr '\n' '|')"
fi
check "the app's journal is readable from the host (journalctl -M web)" sh -c \
	'journalctl -M web -u sdme-oci-app --no-pager 2>/dev/null | grep -q .'
shell_out=$(timeout 30 machinectl shell web /bin/sh -c 'id -u >/run/e16-id' 2>&1 </dev/null)
if [ "$(in_machine web cat /run/e16-id 2>/dev/null)" = 0 ]; then
	pass "machinectl shell runs a command as root inside"
else
	fail "machinectl shell web: $shell_out"
fi

# A volume on a file system without idmapped mounts: a clear refusal.
descriptor badvol <<EOD
[Container]
Image=web
Network=private
Volume=/srv/e16-overlay:/data
EOD
step "daemon-reload" systemctl daemon-reload
check "a volume on overlayfs does not start" sh -c '! timeout 60 systemctl start systemd-nspawn@badvol'
check "the launcher names the volume and the way out" sh -c \
	"journalctl -u systemd-nspawn@badvol --no-pager | grep -q 'volume /data: /srv/e16-overlay cannot be mounted idmapped.*PrivateUsers=no'"

# A second container on the image: its own range, every layer shared.
layers_before=$(ls /var/lib/sdme/layers/sha256 | wc -l)
require "systemctl start systemd-nspawn@web2" timeout 120 systemctl start systemd-nspawn@web2
check "nginx answers inside web2" wait_for 60 up web2
base2=$(cut -d' ' -f1 /var/lib/sdme/containers/web2/userns 2>/dev/null)
check "web2 has another range ($base2, not $base)" sh -c "[ -n '$base2' ] && [ '$base2' != '$base' ]"
check "no layer was added or copied" test "$(ls /var/lib/sdme/layers/sha256 | wc -l)" = "$layers_before"
check "the layer is still owned by 0" test "$(stat -c %u "$layer")" = 0
step "stop web2" systemctl stop systemd-nspawn@web2

# A container written without a namespace moves into one, and back.
require "systemctl start systemd-nspawn@legacy (PrivateUsers=no)" timeout 120 systemctl start systemd-nspawn@legacy
check "legacy runs as host root" test "$(stat -c %u "/proc/$(leader legacy)")" = 0
step "root writes a file in legacy" in_machine legacy sh -c 'echo x >/root/legacy-file && chown 101:101 /root/legacy-file'
step "stop legacy" systemctl stop systemd-nspawn@legacy
sed -i '/^PrivateUsers=no$/d' /etc/sdme/legacy.oci
step "daemon-reload (legacy now has the default)" systemctl daemon-reload
require "systemctl start systemd-nspawn@legacy (in a namespace now)" timeout 120 systemctl start systemd-nspawn@legacy
base3=$(cut -d' ' -f1 /var/lib/sdme/containers/legacy/userns 2>/dev/null)
check "legacy got a range ($base3)" test -n "$base3"
check "its file was shifted: host uid $((base3 + 101))" test "$(stat -c %u /var/lib/sdme/containers/legacy/root/root/legacy-file 2>/dev/null)" = "$((base3 + 101))"
check "inside it is still 101's" test "$(in_machine legacy stat -c %u /root/legacy-file)" = 101
check "nginx answers in legacy" wait_for 60 up legacy
check "the journal says the layers moved" sh -c \
	"journalctl -u systemd-nspawn@legacy --no-pager | grep -q 'moving its owners from ids 0'"
step "stop legacy" systemctl stop systemd-nspawn@legacy
echo "PrivateUsers=no" >>/etc/sdme/legacy.oci
step "daemon-reload (legacy without a namespace again)" systemctl daemon-reload
require "systemctl start systemd-nspawn@legacy (PrivateUsers=no again)" timeout 120 systemctl start systemd-nspawn@legacy
check "its file is back at uid 101" test "$(stat -c %u /var/lib/sdme/containers/legacy/root/root/legacy-file)" = 101
check "its owner record says 0" test "$(cat /var/lib/sdme/containers/legacy/owner)" = "0 65536"

# A reset: the writable layer goes, the range comes back (name hash).
step "stop web" systemctl stop systemd-nspawn@web
step "reset web (rm -rf containers/web)" rm -rf /var/lib/sdme/containers/web
require "systemctl start systemd-nspawn@web after the reset" timeout 120 systemctl start systemd-nspawn@web
check "nginx answers after the reset" wait_for 60 up web
check "web has its range again ($base)" test "$(cut -d' ' -f1 /var/lib/sdme/containers/web/userns)" = "$base"
check "the reset removed root's file" sh -c '! test -e /var/lib/sdme/containers/web/root/root/e16-file'
check "nothing of the namespace is mounted on the host" sh -c '! grep -q /run/sdme-containers/ /proc/self/mountinfo'
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
