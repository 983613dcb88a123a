# E12: nothing in use is deleted or rewritten. While the nginx container
# runs, its image is re-glued (the descriptor's Mode= changes: no network
# needed) and the shipped, sandboxed sdme-gc.service runs: the container
# keeps running and serving, every overlay directory it mounted still exists
# and the generation it uses is unchanged; the import switched to a new
# generation with a new name. After a restart the container runs on the new
# generation, and the next gc frees the old one.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@nginx systemd-nspawn@nginx sdme-gc.service"
S=/var/lib/sdme
debian_base
nginx_descriptor() {
	descriptor nginx <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian
Mode=$1

[Container]
EOD
}
# The store directories the container's overlays were mounted from (lower,
# upper), one a line, read from the mount table of its PID 1 (which also
# shows the outer host's own overlay root: not the store's).
mounted_dirs() {
	local pid
	pid=$(leader nginx) && [ -n "$pid" ] || return 1
	grep ' - overlay ' "/proc/$pid/mountinfo" | grep -o -E '(lowerdir|upperdir)=[^,]*' |
		sed -E 's/^[a-z]+=//' | tr ':' '\n' | grep "^$S/" | sort -u
}
all_exist() { local d; for d in "$@"; do [ -d "$d" ] || { echo "missing: $d"; return 1; }; done; }
# A fingerprint of a tree: every entry's path, type, mode, owner, size and
# content digest.
tree_sum() { (cd "$1" && find . -printf '%p %y %m %U:%G %s %l\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) | sha256sum; }
gc_log() { journalctl -b --no-pager -o cat -u sdme-gc.service; }
page_ok() { curl -s --max-time 2 http://127.0.0.1/ | grep -q "hello from sdme nginx v1"; }

check "port 80 is free on this machine" sh -c '! ss -Htln "sport = :80" | grep -q .'
nginx_descriptor auto
systemctl daemon-reload
require "systemctl start systemd-nspawn@nginx" timeout 200 systemctl start systemd-nspawn@nginx
require "nginx answers" wait_for 60 page_ok
old=$(readlink $S/images/nginx)
pid1=$(leader nginx)
dirs1=$(mounted_dirs)
info "generation $old; container leader $pid1; $(echo "$dirs1" | grep -c .) store directories in its overlays"
check "the container's overlays include layers of the store" sh -c "echo '$dirs1' | grep -q '^$S/layers/sha256/'"
check "the container's overlays include the generation's glue ($old)" sh -c "echo '$dirs1' | grep -qx '$S/images/$old/glue' && echo '$dirs1' | grep -qx '$S/images/$old/appglue'"
check "containers/nginx/generations names $old" grep -qx "$old" $S/containers/nginx/generations
sum1=$(tree_sum "$S/images/$old")

# Re-glue: Mode=auto -> Mode=app regenerates the glue from the store.
nginx_descriptor app
systemctl daemon-reload
check "systemctl restart sdme-import@nginx (re-glue)" timeout 120 systemctl restart sdme-import@nginx
new=$(readlink $S/images/nginx)
check "the re-glue made a new generation with a new name ($old -> $new)" test -n "$new" -a "$new" != "$old"
check "the new generation holds the same manifest (full digest)" sh -c \
	"[ \"\$(grep -o '\"manifest_digest\": *\"[^\"]*\"' $S/images/$old/image.json)\" = \"\$(grep -o '\"manifest_digest\": *\"[^\"]*\"' $S/images/$new/image.json)\" ]"
check "the new generation records Mode=app" grep -q '"mode": "app"' "$S/images/$new/image.json"

# gc, the shipped sandboxed unit, while the container runs on the old generation.
check "systemctl start sdme-gc.service succeeds under its sandbox" timeout 120 systemctl start sdme-gc.service
check "sdme-gc.service reported what it did" wait_for 10 sh -c 'journalctl -b --no-pager -o cat -u sdme-gc.service | grep -q "^freed "'
gc_log | sed 's/^/     gc| /'
check "gc did not remove the generation in use ($old)" sh -c "! journalctl -b --no-pager -o cat -u sdme-gc.service | grep -qx 'removed images/$old'"
check "the container is still active" systemctl is-active systemd-nspawn@nginx
check "it is the same container (leader $pid1)" test "$(leader nginx)" = "$pid1"
check "nginx still answers" page_ok
# shellcheck disable=SC2086
check "every directory its overlays were mounted from still exists" all_exist $dirs1
check "the generation in use is unchanged, byte for byte" test "$(tree_sum "$S/images/$old")" = "$sum1"
check "the container's app still runs inside" in_machine nginx systemctl is-active sdme-oci-app.service

# After a restart the container runs on the new generation; gc frees the old.
check "systemctl restart systemd-nspawn@nginx" timeout 60 systemctl restart systemd-nspawn@nginx
check "nginx answers after the restart" wait_for 60 page_ok
dirs2=$(mounted_dirs)
check "the restarted container's overlays use the new generation ($new)" sh -c "echo '$dirs2' | grep -qx '$S/images/$new/glue' && ! echo '$dirs2' | grep -q '/images/$old/'"
check "containers/nginx/generations names $new, not $old" sh -c "grep -qx '$new' $S/containers/nginx/generations && ! grep -qx '$old' $S/containers/nginx/generations"
check "systemctl start sdme-gc.service (again)" timeout 120 systemctl start sdme-gc.service
check "the second gc removed the old generation" wait_for 10 sh -c "journalctl -b --no-pager -o cat -u sdme-gc.service | grep -qx 'removed images/$old'"
check "images/$old is gone" test ! -e "$S/images/$old"
# shellcheck disable=SC2086
check "every directory the running container uses still exists" all_exist $dirs2
check "nginx still answers after the second gc" page_ok
[ "$E2E_FAILED" = 0 ] || diag sdme-import@nginx systemd-nspawn@nginx sdme-gc.service
finish
