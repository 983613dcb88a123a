# E20: a registry mirror serves while the origin is down. The system's
# containers-registries.conf(5) drop-in (/etc/containers/registries.conf.d/)
# gives the origin two mirrors: one down, then a pull-through cache holding
# the origin's repositories under origin-cache/. The import of
# ORIGIN/e2e/nginx:1 says it gives up on the dead mirror, pulls from the
# live one, and the container runs; the image is recorded under its own
# (origin) name. The same reference with RegistriesConf=no fails, naming
# the origin: it really is down. Set up by E20-mirror.host.
# e2e-push: debian-systemd e2e/debian-systemd:12
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@web systemd-nspawn@web sdme-import@direct"
origin=$E2E_ORIGIN mirror=$E2E_MIRROR dead=$E2E_DEAD_MIRROR
info "origin $origin (stopped), mirrors $dead (down), $mirror/origin-cache"
down() { ! curl -s -o /dev/null --max-time 2 "http://$origin/v2/"; }
check "the origin is down" down
debian_base
mkdir -p /etc/containers/registries.conf.d
cat >/etc/containers/registries.conf.d/50-e20.conf <<EOC
[[registry]]
prefix = "$origin"
location = "$origin"
insecure = true

[[registry.mirror]]
location = "$dead/origin-cache"
insecure = true

[[registry.mirror]]
location = "$mirror/origin-cache"
insecure = true
EOC
descriptor web <<EOD
[Image]
Image=$origin/e2e/nginx:1
Base=debian
Retries=0

[Container]
Network=private
EOD
descriptor direct <<EOD
[Image]
Image=$origin/e2e/nginx:1
RegistriesConf=no
TLSVerify=no
Retries=0
EOD
step "daemon-reload" systemctl daemon-reload
require "systemctl start systemd-nspawn@web (imported through the mirror)" timeout 240 systemctl start systemd-nspawn@web
up() { nsenter -t "$(leader web)" -n curl -sf -o /dev/null --max-time 2 http://127.0.0.1/; }
check "nginx from the mirror answers" wait_for 60 up
log() { journalctl -b --no-pager -o cat -u "sdme-import@$1"; }
info "import said: $(log web | grep -m3 -E 'mirror|pulling' | tr '\n' '|')"
says() { log "$1" | grep -qF -- "$2"; }
check "the import gave up on the dead mirror and tried the next" says web "mirror $dead/origin-cache/e2e/nginx:1"
check "  ... and pulled from the live one" says web "$origin/e2e/nginx:1: pulling from mirror $mirror/origin-cache/e2e/nginx:1"
recorded() { grep -qF "\"$origin/e2e/nginx:1\"" /var/lib/sdme/images/web/image.json; }
check "the image is recorded under the origin's name" recorded
check "without registries.conf the import fails (the origin is down)" sh -c '! timeout 120 systemctl start sdme-import@direct'
check "  ... naming the origin and the refused connection" sh -c \
	"journalctl -b --no-pager -o cat -u sdme-import@direct | grep -F '$origin' | grep -qiE 'refused|connect'"
info "without registries.conf: $(log direct | grep -m1 'sdme-import:')"
[ "$E2E_FAILED" = 0 ] || diag sdme-import@web systemd-nspawn@web sdme-import@direct
finish
