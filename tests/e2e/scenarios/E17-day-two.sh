# E17: day two with the sdme command only: install descriptors from a
# directory (a typo refused first), pull with progress, start, ls and
# ls --json (units, generation, digest, health), status and its exit codes,
# logs (-n, -f), exec in the app's root as the app (uid, working
# directory, the descriptor's environment, exit status, a terminal),
# images, reset (the writable layer goes, the volume stays), rm (refused
# while another descriptor needs it, then removed with its drop-ins).
# Everything that changes the system is an sdme command; the checks look
# at the store and systemd directly.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
# e2e-timeout: 360
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@web systemd-nspawn@web"
src=/root/e17
mkdir -p "$src/web.oci.d"
cat >"$src/debian.oci" <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/debian-systemd:12
TLSVerify=no
EOD
# The nginx image, running a shell instead of nginx: as uid 33 (www-data),
# in a private network (so no port clash and a user namespace).
cat >"$src/web.oci" <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
User=33
WorkingDirectory=/var/www/html
Volume=/data
Entrypoint=/bin/sh -c "echo e17-app-started; exec sleep infinity"
HealthCmd=/bin/true
HealthIntervalSec=2s
EOD
printf '[Container]\nEnvironment="E17_GREETING=hello from e17"\n' >"$src/web.oci.d/10-env.conf"

# A typo first: refused with the generator's words, nothing written.
out=$(sdme install "$src/web.oci" 2>&1); rc=$?
check "install of web alone is refused (exit 1): its Base=debian does not exist yet" \
	sh -c "[ $rc = 1 ] && printf '%s' \"\$1\" | grep -q 'web.oci:4: Base=debian: no descriptor named debian'" _ "$out"
check "nothing was written" test ! -e /etc/sdme/web.oci
require "sdme install $src (both descriptors and the drop-in, then daemon-reload)" sdme install "$src"
check "the files are in /etc/sdme" test -f /etc/sdme/debian.oci -a -f /etc/sdme/web.oci -a -f /etc/sdme/web.oci.d/10-env.conf
check "systemd has the units (daemon-reload ran)" systemctl cat sdme-import@web.service systemd-nspawn@web.service
out=$(sdme connector add web nosuch 2>&1); rc=$?
check "sdme connector add web nosuch is refused (exit 1) with the generator's message" \
	sh -c "[ $rc = 1 ] && printf '%s' \"\$1\" | grep -q 'Connector=nosuch: no descriptor named nosuch'" _ "$out"
check "and wrote no drop-in" sh -c '! ls /etc/sdme/web.oci.d | grep -q connector'

# pull: the import runs (its base first) and its output is shown.
t0=$(now)
sdme pull web >"$E2E_OUT/pull.log" 2>&1; rc=$?
info "sdme pull web: $(since "$t0") s (exit $rc)"; sed 's/^/     | /' "$E2E_OUT/pull.log" | tail -8
require "sdme pull web exits 0" test "$rc" = 0
check "pull showed the import's output and the unit's state" grep -q 'sdme-import@web.service: active (exited)' "$E2E_OUT/pull.log"
check "the import unit is active" systemctl is-active sdme-import@web.service
check "sdme pull of a descriptor that does not exist: exit 4" sh -c 'sdme pull nosuch; [ $? = 4 ]'

require "sdme start web" timeout 200 sdme start web
# The test host has no JSON tool: serde_json's pretty output has one key a
# line; block NAME_KEY VALUE prints the array element whose NAME_KEY is VALUE.
block() { awk -v k="$1" -v v="$2" '/^  \{/ { b = "" } { b = b $0 "\n" } /^  \}/ { if (index(b, "\n    \"" k "\": \"" v "\",\n")) printf "%s", b }'; }
# has KEY VALUE: a line "KEY": VALUE (VALUE as JSON) in stdin.
has() { grep -qE "^ *\"$1\": $2,?\$"; }
web_has() { sdme ls --json | block name web | has "$@"; }
if wait_for 60 web_has health '"healthy"'; then pass "sdme ls --json: web is healthy"; else fail "sdme ls --json: web healthy within 60 s"; sdme ls --json | block name web | sed 's/^/     | /'; fi
check "ls --json: web is a container" web_has kind '"container"'
check "ls --json: its unit is running" web_has sub '"running"'
gen=$(readlink /var/lib/sdme/images/web)
check "ls --json: the generation is images/web's ($gen)" web_has generation "\"$gen\""
digest=$(grep -o '"manifest_digest": *"sha256:[0-9a-f]*"' "/var/lib/sdme/images/$gen/image.json" | grep -o 'sha256:[0-9a-f]*')
check "ls --json: the digest is its record's ($digest)" web_has manifest_digest "\"$digest\""
debian_has() { sdme ls --json | block name debian | has "$@"; }
check "ls --json: debian is a base" debian_has kind '"base"'
check "ls --json: web's drop-in is listed" sh -c "sdme ls --json | grep -qx '      \"/etc/sdme/web.oci.d/10-env.conf\"'"
check "sdme ls: the table's web line" sh -c "sdme ls | grep -E '^web +container +running +exited +healthy +$gen '"

# status: exit 0 running, facts and systemctl's view; -v shows the commands.
out=$(sdme status web 2>&1); rc=$?
check "sdme status web exits 0" test "$rc" = 0
check "sdme status web: generation, health and the unit's status" sh -c \
	"printf '%s' \"\$1\" | grep -q 'generation: $gen' && printf '%s' \"\$1\" | grep -q 'health: healthy' && printf '%s' \"\$1\" | grep -q 'systemd-nspawn@web.service'" _ "$out"
check "sdme -v status web prints the systemctl commands" sh -c "sdme -v status web 2>&1 | grep -q '^+ systemctl status --no-pager'"
check "sdme status nosuch: exit 4" sh -c 'sdme status nosuch >/dev/null 2>&1; [ $? = 4 ]'

# logs: the app's own output.
logs_ok() { sdme logs web -n 100 | grep -q e17-app-started; }
check "sdme logs web -n 100 shows the app's output" wait_for 20 logs_ok
check "sdme logs -f web follows (stopped by timeout)" sh -c 'timeout 5 sdme logs -f web >/tmp/e17-follow; [ $? = 124 ] && grep -q e17-app-started /tmp/e17-follow'

# exec: in the app's root, as the app.
check "exec: uid 33 (User=)" test "$(sdme exec web id -u)" = 33
check "exec: the working directory (WorkingDirectory=)" test "$(sdme exec web pwd)" = /var/www/html
check "exec: the drop-in's environment" test "$(sdme exec web sh -c 'echo "$E17_GREETING"')" = "hello from e17"
check "exec: the image's PATH" sh -c "sdme exec web sh -c 'echo \$PATH' | grep -q /usr/local/sbin"
check "exec: the app's root (nginx is there, not in the base)" sdme exec web test -x /usr/sbin/nginx
check "exec: the command's exit status" sh -c 'sdme exec web sh -c "exit 7"; [ $? = 7 ]'
check "exec -i: stdin reaches the command" test "$(echo piped | sdme exec -i web cat)" = piped
check "exec without -i: stdin is empty" test "$(echo piped | sdme exec web cat)" = ""
# -t: a terminal for the command, when sdme has one (script(1) gives it
# one). The host's machined of systemd 252 opens the terminal outside the
# container's user namespace, so the container's systemd cannot give it to
# uid 33 (208/STDIN); sdme says so. Newer hosts (257) give it.
host_systemd=$(systemctl --version | awk 'NR == 1 { print $2 }')
# The marker is computed by the command (tty-42), so the title systemd-run
# 257 sets from the command line (tty-$((6*7))) cannot stand in for it.
tty_run() { script -qec "sdme exec -t web sh -c 'test -t 0 && echo tty-\$((6*7))'; echo rc=\$?" /dev/null </dev/null 2>&1 | tr -d '\r'; }
tty_yes() { out=$(tty_run); printf '%s\n' "$out" | cat -v; printf '%s' "$out" | grep -q 'tty-42' && printf '%s' "$out" | grep -q 'rc=0$'; }
tty_explained() { out=$(tty_run); printf '%s\n' "$out" | cat -v; printf '%s' "$out" | grep -q 'rc=208$' && printf '%s' "$out" | grep -q "could not give the terminal to user 33"; }
if [ "$host_systemd" -le 252 ]; then
	check "exec -t on systemd $host_systemd: refused by the container's systemd (208), and sdme says why" tty_explained
else
	check "exec -t on systemd $host_systemd: the command has a terminal" tty_yes
fi
check "exec -t without a terminal is refused (exit 1)" sh -c 'sdme exec -t web true </dev/null; [ $? = 1 ]'

check "exec: the command's options are its own" test "$(sdme exec web -- sh -c 'echo -n x')" = x
check "sdme -v exec prints systemd-run and busctl" sh -c "sdme -v exec web true 2>&1 | grep -q '^+ systemd-run --machine=web' && sdme -v exec web true 2>&1 | grep -q '^+ busctl --machine=web'"

# images: generations, sizes, users.
img() { sdme images --json | block generation "$gen"; }
img_has() { img | has "$@"; }
img_used_by_web() { img | grep -A1 '"containers": \[' | grep -qx '      "web"'; }
img_own() { img | grep -qE '"own_bytes": [1-9]'; }
check "sdme images --json: $gen is current" img_has current true
check "sdme images --json: $gen is used by web" img_used_by_web
check "sdme images --json: $gen has a size of its own" img_own
check "sdme images: debian's generation is used by web too" sh -c "sdme images | grep -E '^debian .* web '"

# reset: writable layer gone, volume kept.
check "write into the writable layer" sdme exec web sh -c 'echo x > /tmp/e17-layer'
check "it is in containers/web/app" test -e /var/lib/sdme/containers/web/app/tmp/e17-layer
vol=/var/lib/sdme/volumes/web/data
token=e17-$RANDOM$RANDOM
check "the volume exists ($vol)" test -d "$vol"
echo "$token" >"$vol/marker"
require "sdme reset web" timeout 200 sdme reset web
check "the container runs again after the reset" systemctl is-active systemd-nspawn@web.service
check "the layer's file is gone (host side)" test ! -e /var/lib/sdme/containers/web/app/tmp/e17-layer
up() { sdme exec web true; }
check "exec works after the reset" wait_for 30 up
check "the layer's file is gone (inside)" sdme exec web test ! -e /tmp/e17-layer
check "the volume kept its file" test "$(sdme exec web cat /data/marker)" = "$token"

# stop: status says inactive (3); rm refuses what another needs.
check "sdme stop web" sdme stop web
check "sdme status web of a stopped container: exit 3" sh -c 'sdme status web >/dev/null 2>&1; [ $? = 3 ]'
out=$(sdme rm debian 2>&1); rc=$?
check "sdme rm debian is refused (exit 1): web's Base= needs it" \
	sh -c "[ $rc = 1 ] && printf '%s' \"\$1\" | grep -q 'Base=debian: no descriptor named debian'" _ "$out"
check "debian.oci is still there" test -f /etc/sdme/debian.oci
require "sdme rm web" sdme rm web
check "web's descriptor and drop-ins are gone" test ! -e /etc/sdme/web.oci -a ! -e /etc/sdme/web.oci.d
check "systemd no longer has web's drop-in (daemon-reload ran)" sh -c '! systemctl cat systemd-nspawn@web.service 2>/dev/null | grep -q sdme-nspawn'
check "sdme status web: exit 4" sh -c 'sdme status web >/dev/null 2>&1; [ $? = 4 ]'
check "the store keeps the volume (rm deletes no data)" test -f "$vol/marker"
check "sdme rm debian now" sdme rm debian
check "sdme ls --json is empty" test "$(sdme ls --json)" = "[]"
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
