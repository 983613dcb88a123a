#!/bin/bash
# Offline test images for sdme: cached Debian trees (debootstrap) and OCI
# images packed from them with umoci, pushed with skopeo.
#
# Source it (`. tests/lib/images.sh`) and call the functions, or run it:
#   tests/lib/images.sh tree NAME [SUITE] print the cached tree's path (builds it)
#   tests/lib/images.sh oci NAME         print the OCI layout (DIR:TAG) of an image
#   tests/lib/images.sh push NAME REF [skopeo dest options...]
#
# Trees: base-systemd base-resolved outer nginx mariadb debian-nosystemd
# Images: debian-systemd debian-resolved debian-nosystemd nginx nginx-v2 nginx-v3 mariadb
#
# Two Debian suites are in play, chosen separately:
#   E2E_SUITE     the test *host*: the `outer` tree (and the base-systemd it
#                 is built from) that the end-to-end, connector and generator
#                 tiers boot as their systemd. Its systemd version is what
#                 the matrix varies: bookworm (252), trixie (257), forky.
#   IMAGES_SUITE  the application and base images pushed to the registry
#                 (debian-systemd, nginx, mariadb, ...). They stay bookworm by
#                 default: what sdme does with an image does not depend on
#                 the distribution inside it, and one set of images keeps the
#                 scenarios comparable across hosts.
# Both default to bookworm. `images_tree NAME SUITE` builds any tree from
# any suite (the connector tier boots base-systemd from E2E_SUITE).
#
# Every cache entry is keyed by a hash of the recipe that builds it (the bash
# text of the recipe function plus its parent's key), so editing a recipe
# rebuilds exactly what changed. Entries are built aside and renamed into
# place, under a lock, so concurrent test tiers share them safely.

SDME_TEST_CACHE=${SDME_TEST_CACHE:-/var/cache/sdme-tests}
IMAGES_SUITE=${IMAGES_SUITE:-bookworm}
E2E_SUITE=${E2E_SUITE:-bookworm}

images_log() { echo "images: $*" >&2; }
images_die() { echo "images: error: $*" >&2; return 1; }

# The Debian mirror this machine's apt uses (the only network CI reaches).
images_mirror() {
	if [ -n "${IMAGES_MIRROR:-}" ]; then echo "$IMAGES_MIRROR"; return; fi
	local m=""
	if [ -r /etc/apt/sources.list.d/debian.sources ]; then
		m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
		m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

# The suites the tests know. A suite newer than this machine's debootstrap
# (forky on Debian 12) is built with the `sid` script, as Debian's own
# testing chroots are.
images_suite_check() { # SUITE
	case $1 in
	bookworm | trixie | forky) ;;
	*) images_die "unknown Debian suite '$1' (bookworm, trixie or forky)"; return 1 ;;
	esac
}

images_debootstrap() { # TARGET [debootstrap options...]
	local target=$1 script=(); shift
	images_suite_check "$IMAGES_SUITE" || return 1
	[ -e "/usr/share/debootstrap/scripts/$IMAGES_SUITE" ] || script=(/usr/share/debootstrap/scripts/sid)
	mkdir -p "$SDME_TEST_CACHE/debs"
	debootstrap --variant=minbase --cache-dir="$SDME_TEST_CACHE/debs" "$@" \
		"$IMAGES_SUITE" "$target" "$(images_mirror)" "${script[@]}" >"$target.log" 2>&1 ||
		{ tail -20 "$target.log" >&2; images_die "debootstrap of $IMAGES_SUITE into $target failed (log: $target.log)"; }
}

# Common clean-up for every tree: no machine id (nested containers refuse to
# link journals when ids collide), no package caches.
images_finish_tree() {
	local t=$1
	: >"$t/etc/machine-id"
	rm -f "$t/var/lib/dbus/machine-id"
	rm -rf "$t"/var/cache/apt/*.bin "$t"/var/cache/apt/archives/*.deb
}

# Valid-Until is not checked: the machine's mirror may be a dated snapshot,
# whose testing (forky) Release file has expired though its signature is
# good (debootstrap does not check the date either).
images_chroot_apt() { # TREE PACKAGES...
	local t=$1; shift
	printf '#!/bin/sh\nexit 101\n' >"$t/usr/sbin/policy-rc.d"; chmod +x "$t/usr/sbin/policy-rc.d"
	mount -t proc proc "$t/proc" || return 1
	local rc=0
	DEBIAN_FRONTEND=noninteractive chroot "$t" apt-get -qq -o Acquire::Check-Valid-Until=false update >>"$t.log" 2>&1 &&
		DEBIAN_FRONTEND=noninteractive chroot "$t" apt-get -y -qq --no-install-recommends install "$@" >>"$t.log" 2>&1 || rc=$?
	umount "$t/proc"
	rm -f "$t/usr/sbin/policy-rc.d"
	rm -rf "$t"/var/lib/apt/lists/*
	[ $rc = 0 ] || { tail -20 "$t.log" >&2; images_die "apt-get install $* in $t failed"; }
}

# ---- tree recipes: each builds into $1 (an empty, not yet existing dir) ----

# The Debian base OS image: has systemd, boots under nspawn. networkd is
# enabled so a container on a veth (Network=private) gets its address by
# DHCP from the host's networkd, as on a systemd host set up for containers;
# it skips itself in containers on the host network (no CAP_NET_ADMIN).
recipe_base_systemd() {
	images_debootstrap "$1" --include=systemd,dbus || return 1
	ln -sf /lib/systemd/system/systemd-networkd.service "$1/etc/systemd/system/multi-user.target.wants/"
	mkdir -p "$1/etc/systemd/system/sockets.target.wants"
	ln -sf /lib/systemd/system/systemd-networkd.socket "$1/etc/systemd/system/sockets.target.wants/"
	images_finish_tree "$1"
}
parent_base_systemd=""

# The base with systemd-resolved (its package points /etc/resolv.conf at the
# stub): containers in a zone (Network=zone:) answer and ask machine names
# by LLMNR with it (E21).
recipe_base_resolved() {
	local t=$1
	cp -a --reflink=auto "$(images_tree base-systemd)" "$t" || return 1
	images_chroot_apt "$t" systemd-resolved || return 1
	images_finish_tree "$t"
}
parent_base_resolved=base-systemd

# The systemd "host" the end-to-end tests boot: base + nspawn + tools.
# It shares the machine's network namespace, so networkd stays off unless a
# scenario turns it on, and then it leaves foreign routes and rules alone and
# neither masquerades nor forwards: it only serves the containers' veths.
recipe_outer() {
	local t=$1
	cp -a --reflink=auto "$(images_tree base-systemd)" "$t" || return 1
	images_chroot_apt "$t" systemd-container curl iproute2 nftables || return 1
	rm -f "$t/etc/systemd/system/multi-user.target.wants/systemd-networkd.service" \
		"$t/etc/systemd/system/sockets.target.wants/systemd-networkd.socket" \
		"$t"/etc/systemd/system/timers.target.wants/*
	mkdir -p "$t/etc/systemd/networkd.conf.d" "$t/etc/systemd/network"
	printf '[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n' \
		>"$t/etc/systemd/networkd.conf.d/50-sdme-tests.conf"
	printf '[Match]\nName=ve-*\nDriver=veth\n\n[Network]\nAddress=0.0.0.0/28\nLinkLocalAddressing=no\nDHCPServer=yes\nIPv6AcceptRA=no\n' \
		>"$t/etc/systemd/network/80-container-ve.network"
	images_finish_tree "$t"
}
parent_outer=base-systemd

# nginx as the official image lays it out: logs go to stdout/stderr.
recipe_nginx() {
	images_debootstrap "$1" --include=nginx-light || return 1
	echo '<h1>hello from sdme nginx v1</h1>' >"$1/var/www/html/index.html"
	ln -sf /dev/stdout "$1/var/log/nginx/access.log"
	ln -sf /dev/stderr "$1/var/log/nginx/error.log"
	images_finish_tree "$1"
}
parent_nginx=""

# mariadb with a first-start entrypoint like the official image's.
recipe_mariadb() {
	images_debootstrap "$1" --include=mariadb-server || return 1
	printf '[mysqld]\nbind-address = 0.0.0.0\nskip-name-resolve\n' >"$1/etc/mysql/mariadb.conf.d/99-sdme-test.cnf"
	rm -rf "$1"/var/lib/mysql/* "$1"/run/mysqld
	cat >"$1/usr/local/bin/docker-entrypoint.sh" <<'EOS'
#!/bin/sh
# Minimal take on the official mariadb entrypoint: initialise the data
# directory on first start, set root's password from MARIADB_ROOT_PASSWORD,
# then exec the server so it is the main process.
set -e
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
	[ -n "$MARIADB_ROOT_PASSWORD" ] || { echo "entrypoint: MARIADB_ROOT_PASSWORD is not set" >&2; exit 1; }
	chown mysql:mysql /var/lib/mysql
	mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db --skip-name-resolve --force >/dev/null
	pw=$(printf '%s' "$MARIADB_ROOT_PASSWORD" | sed "s/'/''/g")
	mariadbd --user=mysql --datadir=/var/lib/mysql --bootstrap --skip-networking <<EOSQL
FLUSH PRIVILEGES;
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$pw');
CREATE USER 'root'@'%' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
EOSQL
	echo "entrypoint: initialised /var/lib/mysql"
fi
# The server refuses to run as root; the official image drops to mysql too.
if [ "$1" = mariadbd ] && [ "$(id -u)" = 0 ]; then set -- "$@" --user=mysql; fi
exec "$@"
EOS
	chmod 755 "$1/usr/local/bin/docker-entrypoint.sh"
	images_finish_tree "$1"
}
parent_mariadb=""

# A Debian base image as Docker Hub ships it: no systemd.
recipe_debian_nosystemd() {
	images_debootstrap "$1" || return 1
	images_finish_tree "$1"
}
parent_debian_nosystemd=""

images_fn() { echo "${1//-/_}"; }

# Cache key: hash of the recipe text, the suite, and the parent's key.
images_tree_key() {
	local name=$1 fn parent pkey=""
	fn=$(images_fn "$name")
	declare -F "recipe_$fn" >/dev/null || { images_die "unknown tree '$name'"; return 1; }
	parent=parent_$fn; parent=${!parent}
	[ -z "$parent" ] || pkey=$(images_tree_key "$parent") || return 1
	{ declare -f "recipe_$fn"; declare -f images_finish_tree images_debootstrap images_chroot_apt
	  echo "$IMAGES_SUITE $pkey"; } | sha256sum | cut -c1-12
}

images_locked() { # LOCKNAME command...
	local lock=$SDME_TEST_CACHE/locks/$1; shift
	mkdir -p "$SDME_TEST_CACHE/locks"
	(
		flock -w 1800 9 || { images_die "timed out waiting for lock $lock"; exit 1; }
		"$@"
	) 9>"$lock"
}

# The suite a tree is built from unless the caller names one: the host tree
# follows E2E_SUITE, everything else IMAGES_SUITE. A tree's parent is built
# from the same suite as the tree (images_tree sets IMAGES_SUITE locally, and
# bash's dynamic scope hands it to the recipe).
images_default_suite() { # NAME
	case $1 in
	outer) echo "$E2E_SUITE" ;;
	*) echo "$IMAGES_SUITE" ;;
	esac
}

# Prints the path of tree NAME (from SUITE), building it on a cache miss.
# Each suite has its own directory, so suites never evict each other.
images_tree() { # NAME [SUITE]
	# (the right-hand side is read before the local shadows the caller's)
	local name=$1 key dir IMAGES_SUITE=${2:-$(images_default_suite "$1")}
	images_suite_check "$IMAGES_SUITE" || return 1
	key=$(images_tree_key "$name") || return 1
	dir=$SDME_TEST_CACHE/trees/$IMAGES_SUITE/$name-$key
	[ -d "$dir" ] || images_locked "tree-$IMAGES_SUITE-$name" images_build_tree "$name" "$dir" >&2 || return 1
	echo "$dir"
}

# The systemd version in a built tree (from its dpkg database), e.g. 257.13-1.
images_systemd_version() { # TREE
	dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${Version}' systemd 2>/dev/null ||
		images_die "no systemd package in $1"
}

images_build_tree() {
	local name=$1 dir=$2 tmp t0=$SECONDS
	[ -d "$dir" ] && return 0
	mkdir -p "$(dirname "$dir")"
	tmp=$dir.tmp
	rm -rf "$tmp" "$tmp.log"
	images_log "building tree $name from $IMAGES_SUITE (recipe $(basename "$dir"))"
	"recipe_$(images_fn "$name")" "$tmp" || { rm -rf "$tmp"; return 1; }
	mv "$tmp.log" "$dir.log" 2>/dev/null
	mv "$tmp" "$dir"
	images_log "tree $name ready in $((SECONDS - t0)) s"
	# Old versions of this tree are dead weight.
	local old
	for old in "$(dirname "$dir")/$name"-*; do
		case $old in "$dir"|"$dir.log") ;; *.tmp|*.log) ;; *) [ -d "$old" ] && rm -rf "$old" "$old.log" ;; esac
	done
}

# ---- OCI images ----------------------------------------------------------

# image NAME -> "TREE|umoci config options" ; the options are split on '|'.
images_spec() {
	case $1 in
	debian-systemd) echo "base-systemd|--config.cmd=/bin/bash" ;;
	debian-resolved) echo "base-resolved|--config.cmd=/bin/bash" ;;
	debian-nosystemd) echo "debian-nosystemd|--config.cmd=/bin/bash" ;;
	nginx | nginx-v2 | nginx-v3) echo "nginx|--config.entrypoint=/usr/sbin/nginx|--config.cmd=-g|--config.cmd=daemon off;|--config.exposedports=80/tcp|--config.stopsignal=SIGQUIT" ;;
	mariadb) echo "mariadb|--config.entrypoint=/usr/local/bin/docker-entrypoint.sh|--config.cmd=mariadbd|--config.exposedports=3306/tcp|--config.volume=/var/lib/mysql" ;;
	*) images_die "unknown image '$1'" ;;
	esac
}

# Layer tars as Docker's writer makes them: xattrs (ACLs included) as binary
# SCHILY.xattr.* records, no GNU SCHILY.acl.* text records.
images_tar_tree() { # TREE OUT.tar
	tar --numeric-owner --xattrs --xattrs-include='*' --sort=name \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" \
		--exclude=./proc/* --exclude=./sys/* --exclude=./dev/* --exclude=./run/* --exclude=./tmp/* \
		--exclude=./var/cache/apt/* --exclude=./var/lib/apt/lists/* -cf "$2" .
}

images_build_oci() { # NAME LAYOUT
	local name=$1 layout=$2 spec tree tmp opts=() t0=$SECONDS
	[ -d "$layout" ] && return 0
	spec=$(images_spec "$name") || return 1
	tree=$(images_tree "${spec%%|*}") || return 1
	IFS='|' read -r -a opts <<<"${spec#*|}"
	tmp=$layout.tmp
	rm -rf "$tmp" "$tmp.layer.tar"; mkdir -p "$(dirname "$layout")"
	if [ "$name" = nginx-v3 ]; then
		# Version 3 is version 2 plus a marker that health checks of the
		# tests look for: a "broken" update.
		local v2 l3=$tmp.l3
		v2=$(images_oci nginx-v2) || return 1
		cp -a "${v2%:*}" "$tmp" || return 1
		mkdir -p "$l3/var/www/html"
		echo broken >"$l3/var/www/html/broken"
		tar --numeric-owner -C "$l3" -cf "$tmp.layer.tar" ./var/www/html/broken || return 1
		rm -rf "$l3"
	elif [ "$name" = nginx-v2 ]; then
		# Version 2 is version 1 plus a layer that only changes the page, so
		# the two share their first layer as real image updates do.
		local v1 l2=$tmp.l2
		v1=$(images_oci nginx) || return 1
		cp -a "${v1%:*}" "$tmp" || return 1
		mkdir -p "$l2/var/www/html"
		echo '<h1>hello from sdme nginx v2</h1>' >"$l2/var/www/html/index.html"
		tar --numeric-owner -C "$l2" -cf "$tmp.layer.tar" ./var/www/html/index.html || return 1
		rm -rf "$l2"
	else
		umoci init --layout "$tmp" && umoci new --image "$tmp:latest" || return 1
		images_tar_tree "$tree" "$tmp.layer.tar" || { rm -rf "$tmp" "$tmp.layer.tar"; return 1; }
	fi
	umoci raw add-layer --image "$tmp:latest" "$tmp.layer.tar" || { rm -rf "$tmp" "$tmp.layer.tar"; return 1; }
	rm -f "$tmp.layer.tar"
	umoci config --image "$tmp:latest" --author sdme-tests \
		--config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${opts[@]}" &&
		umoci gc --layout "$tmp" || { rm -rf "$tmp"; return 1; }
	mv "$tmp" "$layout"
	images_log "image $name packed in $((SECONDS - t0)) s"
}

# Prints "LAYOUT:latest" for image NAME, packing it on a cache miss. Images
# are built from IMAGES_SUITE.
images_oci() {
	local name=$1 spec tkey key layout
	images_suite_check "$IMAGES_SUITE" || return 1
	spec=$(images_spec "$name") || return 1
	tkey=$(images_tree_key "${spec%%|*}") || return 1
	key=$({ echo "$name $spec $tkey"; declare -f images_build_oci images_tar_tree; } | sha256sum | cut -c1-12)
	# (flat, not per suite: the key covers the tree's suite, and nothing prunes
	# old layouts; tests/unpack/run.sh looks for oci/NAME-*)
	layout=$SDME_TEST_CACHE/oci/$name-$key
	[ -d "$layout" ] || images_locked "oci-$IMAGES_SUITE-$name" images_build_oci "$name" "$layout" >&2 || return 1
	echo "$layout:latest"
}

# images_push NAME DEST_REF [skopeo copy options...]  (plain http by default)
images_push() {
	local name=$1 ref=$2 src; shift 2
	src=$(images_oci "$name") || return 1
	[ $# -gt 0 ] || set -- --dest-tls-verify=false
	skopeo copy -q "$@" "oci:$src" "docker://$ref" >&2 || images_die "skopeo push of $name to $ref failed"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -uo pipefail
	cmd=${1:-}; shift || true
	case $cmd in
	tree) images_tree "$@" ;;
	oci) images_oci "$@" ;;
	push) images_push "$@" ;;
	all) for t in base-systemd base-resolved outer nginx mariadb debian-nosystemd; do images_tree "$t" >/dev/null || exit 1; done
	     for i in debian-systemd debian-resolved debian-nosystemd nginx nginx-v2 nginx-v3 mariadb; do images_oci "$i" >/dev/null || exit 1; done ;;
	systemd-version) images_systemd_version "$(images_tree "$@")" && echo ;;
	*) echo "usage: $0 tree NAME [SUITE] | systemd-version NAME [SUITE] | oci NAME | push NAME REF [skopeo options] | all" >&2; exit 2 ;;
	esac
fi
