# E22: a pod: a client container in the database container's network
# namespace (Network=container:db) reaches mariadb on 127.0.0.1; it has a
# user namespace of its own (the launcher joins db's network namespace for
# it, as the host's root, before systemd-nspawn), starts after db and stops
# with it.
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: mariadb e2e/mariadb:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@db systemd-nspawn@db systemd-nspawn@cli"
debian_base
PW=pod-pw-$$
descriptor db <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/mariadb:1
TLSVerify=no
Base=debian

[Container]
Network=private
Environment=MARIADB_ROOT_PASSWORD=$PW
EOD
# (/run: a tmpfs, which can be bound idmapped into the member's user
# namespace; this host's / is an overlayfs, which cannot)
mkdir -p /run/e2e-probe
cat >/run/e2e-probe/probe.sh <<'EOF'
#!/bin/sh
until out=$(mariadb -h 127.0.0.1 -P 3306 -uroot -p"$PW" -N -e 'select 40 + 2' 2>&1); do
	echo "probe: not yet: $out"
	sleep 1
done
echo "probe: db answered $out on localhost"
exec sleep infinity
EOF
chmod 755 /run/e2e-probe/probe.sh
descriptor cli <<EOD
[Container]
Image=db
Network=container:db
Entrypoint=/bin/sh
Command=/probe/probe.sh
Volume=/run/e2e-probe:/probe:ro
Environment=PW=$PW
EOD
systemctl daemon-reload
check "nspawn@cli binds to nspawn@db" sh -c "systemctl show -P BindsTo systemd-nspawn@cli.service | grep -qw systemd-nspawn@db.service"
check "nspawn@cli starts after nspawn@db" sh -c "systemctl show -P After systemd-nspawn@cli.service | grep -qw systemd-nspawn@db.service"
# Starting the member alone does not start db (BindsTo= pulls it in).
require "systemctl start systemd-nspawn@cli (pulls in db)" timeout 300 systemctl start systemd-nspawn@cli
check "db is running" systemctl is-active systemd-nspawn@db
netns() { readlink "/proc/$(leader "$1")/ns/net"; }
same_netns() { [ -n "$(netns db)" ] && [ "$(netns db)" = "$(netns cli)" ]; }
check "cli and db share one network namespace" wait_for 30 same_netns
check "which is not the host's" sh -c "[ \"\$(readlink /proc/$(leader db)/ns/net)\" != \"\$(readlink /proc/1/ns/net)\" ]"
# uid_map: "0 BASE SIZE": the container's root is host id BASE.
root_id() { awk '$1 == 0 { print $2 }' "/proc/$(leader "$1")/uid_map"; }
own_userns() { local c d; c=$(root_id cli) && d=$(root_id db) && [ -n "$c" ] && [ "$c" != 0 ] && [ "$c" != "$d" ]; }
check "cli has a user namespace of its own (its root is not the host's, nor db's)" own_userns
check "cli's user namespace is not db's" sh -c "[ \"\$(readlink /proc/$(leader cli)/ns/user)\" != \"\$(readlink /proc/$(leader db)/ns/user)\" ]"
app_reached() { in_machine cli journalctl -b --no-pager -u sdme-oci-app | grep -q 'probe: db answered 42 on localhost'; }
t0=$(now)
if wait_for 150 app_reached; then
	pass "the client app reached the database on 127.0.0.1 ($(since "$t0") s)"
else
	fail "the client app reached the database on 127.0.0.1 within 150 s"
	in_machine cli journalctl --no-pager -u sdme-oci-app | tail -8 | sed 's/^/     | /'
fi
# A restarted db has a new namespace: the restart reaches cli (BindsTo=),
# which joins the new one.
old_ns=$(netns db)
cli_before=$(systemctl show -P InvocationID systemd-nspawn@cli)
t_restart=$(date '+%Y-%m-%d %H:%M:%S')
check "systemctl restart systemd-nspawn@db" timeout 120 systemctl restart systemd-nspawn@db
# (a new namespace may get the old one's inode number again: the
# invocation tells the restart, the link tells the namespace)
new_ns() { [ "$(systemctl show -P InvocationID systemd-nspawn@cli)" != "$cli_before" ] && same_netns; }
check "cli was restarted, into db's new network namespace" wait_for 60 new_ns
if ! new_ns; then
	info "cli invocation before $cli_before, now $(systemctl show -P InvocationID systemd-nspawn@cli); netns db $(netns db) cli $(netns cli) old $old_ns"
	journalctl --no-pager -o short-monotonic --since "$t_restart" -u systemd-nspawn@cli -u systemd-nspawn@db | grep -E 'systemd\[1\]|sdme-nspawn: ' | sed 's/^/     | /'
fi
check "cli is running again" wait_for 60 systemctl is-active -q systemd-nspawn@cli
# (and booted: systemd-nspawn 257 can report the start while the leader
# is still its child, which a stop request then misses)
check "after the restart, the client app reached the database again" wait_for 150 app_reached
check "systemctl stop systemd-nspawn@db" timeout 60 systemctl stop systemd-nspawn@db
check "cli stopped with db" sh -c '! systemctl is-active -q systemd-nspawn@cli'
[ "$E2E_FAILED" = 0 ] || diag $E2E_UNITS
finish
