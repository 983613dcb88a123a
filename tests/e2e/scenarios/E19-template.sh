# E19: a template with two instances running at once. site@.oci has the
# image (imported once, as "site") and the container; site@blog.oci is a
# symlink to it and "shop" is its DefaultInstance=; %i picks each one's
# pages (Volume=) and variable; a template drop-in reaches both, an
# instance's drop-in (the default one's too) only that one. Both machines (site-blog, site-shop) run side by
# side, each in its own network and user namespace, serving its own pages.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@site systemd-nspawn@site-blog systemd-nspawn@site-shop"
debian_base
# On a tmpfs: the test host's root is an overlayfs, which cannot be bound
# idmapped into a user namespace.
for i in blog shop; do mkdir -p /run/e19/$i; echo "<h1>e19 $i</h1>" >/run/e19/$i/index.html; done
descriptor site@ <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
Volume=/run/e19/%i:/var/www/html:ro
Environment=SITE=%i

[Install]
DefaultInstance=shop
EOD
ln -s site@.oci /etc/sdme/site@blog.oci
mkdir -p /etc/sdme/site@.oci.d /etc/sdme/site@blog.oci.d
printf '[Container]\nEnvironment=ALL=yes\n' >/etc/sdme/site@.oci.d/10-all.conf
printf '[Container]\nEnvironment=ONLY=blog\n' >/etc/sdme/site@blog.oci.d/10-only.conf
# The default instance has no NAME@INST.oci, but its drop-ins still apply.
mkdir -p /etc/sdme/site@shop.oci.d
printf '[Container]\nEnvironment=SHOP_ONLY=1\n' >/etc/sdme/site@shop.oci.d/10-shop.conf
step "daemon-reload" systemctl daemon-reload
check "the generator wrote one import and two containers" sh -c \
	'cd /run/systemd/generator && test -f sdme-import@site.service && test -f systemd-nspawn@site-blog.service.d/50-sdme.conf && test -f systemd-nspawn@site-shop.service.d/50-sdme.conf && ! ls | grep -q "sdme-import@site-"'
require "systemctl start systemd-nspawn@site-blog systemd-nspawn@site-shop (together)" \
	timeout 300 systemctl start systemd-nspawn@site-blog systemd-nspawn@site-shop
page() { nsenter -t "$(leader "site-$1")" -n curl -sf --max-time 2 http://127.0.0.1/; }
for i in blog shop; do
	serves() { page "$1" | grep -qx "<h1>e19 $1</h1>"; }
	check "site-$i serves its own page (Volume=/run/e19/%i)" wait_for 60 serves $i
done
check "both machines are registered at once" sh -c 'machinectl list --no-legend | grep -q "^site-blog " && machinectl list --no-legend | grep -q "^site-shop "'
check "both are active at the same time" systemctl is-active -q systemd-nspawn@site-blog systemd-nspawn@site-shop
check "the image was imported once, as site" sh -c 'test -L /var/lib/sdme/images/site && ! ls /var/lib/sdme/images | grep -q "^site-"'
check "each has its own writable layer" test -d /var/lib/sdme/containers/site-blog/root -a -d /var/lib/sdme/containers/site-shop/root
r1=$(cat /var/lib/sdme/containers/site-blog/userns 2>/dev/null); r2=$(cat /var/lib/sdme/containers/site-shop/userns 2>/dev/null)
check "each has its own user namespace range ('$r1' vs '$r2')" sh -c "[ -n '$r1' ] && [ -n '$r2' ] && [ '$r1' != '$r2' ]"
envof() { in_machine "site-$1" cat /run/sdme/environment; }
has() { envof "$1" | grep -qx "$2"; }
check "%i in Environment=: SITE=blog for blog" has blog 'SITE="blog"'
check "  ... and SITE=shop for shop" has shop 'SITE="shop"'
check "the template's drop-in reaches blog" has blog 'ALL="yes"'
check "  ... and shop" has shop 'ALL="yes"'
check "the instance's drop-in reaches blog" has blog 'ONLY="blog"'
lacks() { ! envof "$1" | grep -q "$2"; }
check "  ... and not shop" lacks shop 'ONLY="blog"'
check "the default instance's own drop-in reaches shop" has shop 'SHOP_ONLY="1"'
check "  ... and not blog" lacks blog SHOP_ONLY
# Stopping one leaves the other running.
systemctl stop systemd-nspawn@site-blog
check "stopping site-blog leaves site-shop serving" page shop
# A masked instance is gone at the next reload, the default one included.
ln -s /dev/null /etc/sdme/site@shop.oci
systemctl daemon-reload
check "masking site@shop.oci removes the default instance" test ! -e /run/systemd/generator/systemd-nspawn@site-shop.service.d/50-sdme.conf
[ "$E2E_FAILED" = 0 ] || diag sdme-import@site systemd-nspawn@site-blog systemd-nspawn@site-shop
finish
