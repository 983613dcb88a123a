# E18: secrets as systemd credentials. A plain Credential= and an
# EncryptedCredential= (systemd-creds, the host key) reach the app, which
# runs chrooted in /oci/root as www-data in a user namespace, at
# $CREDENTIALS_DIRECTORY inside its root; Secret= gives the plain one as an
# environment variable too. The app prints digests of what it read (never
# the values). Neither value is in a world-readable file on the host or in
# the container, in a unit, or on any process's command line; the
# encrypted one's plaintext is in no file on the host at all (decrypted
# into a memfd that nspawn read and no process still holds).
# e2e-push: debian-systemd e2e/debian-systemd:12
# e2e-push: nginx e2e/nginx:1
. /usr/local/lib/sdme-e2e/check.sh
E2E_UNITS="sdme-import@debian sdme-import@app systemd-nspawn@app"
debian_base
pw="e18-pw-$RANDOM$RANDOM-x"
tok="e18-tok-$RANDOM$RANDOM-y"
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
mkdir -p -m 0700 /etc/sdme/creds
install -m 0600 /dev/null /etc/sdme/creds/db
printf %s "$pw" >/etc/sdme/creds/db
# Encrypted with the host key (no TPM here), from stdin: the plaintext
# never touches a file.
systemd-creds setup >/dev/null 2>&1
encrypt() { printf %s "$tok" | systemd-creds encrypt --name=tls --with-key=host - /etc/sdme/creds/tls.cred; }
require "systemd-creds encrypt --name=tls --with-key=host" encrypt
chmod 0600 /etc/sdme/creds/tls.cred
descriptor app <<EOD
[Image]
Image=$E2E_REGISTRY/e2e/nginx:1
TLSVerify=no
Base=debian

[Container]
Network=private
User=www-data
Credential=db.password:/etc/sdme/creds/db
EncryptedCredential=tls:/etc/sdme/creds/tls.cred
Secret=db.password:DB_PASSWORD
Entrypoint=/bin/sh
EOD
cat >>/etc/sdme/app.oci <<'EOD'
Command=-c 'd=$CREDENTIALS_DIRECTORY; echo "e18 dir=$d uid=$(id -u)"; for f in db.password tls; do echo "e18 cred $f $(sha256sum <"$d/$f" | cut -d" " -f1)"; done; echo "e18 env $(printf %s "$DB_PASSWORD" | sha256sum | cut -d" " -f1)"; exec sleep infinity'
EOD
step "daemon-reload" systemctl daemon-reload
require "systemctl start systemd-nspawn@app" timeout 200 systemctl start systemd-nspawn@app
applog() { in_machine app journalctl --no-pager -o cat -u sdme-oci-app 2>/dev/null; }
printed() { applog | grep -qx "$1"; }
reported() { applog | grep -q '^e18 env '; }
check "the app ran (its report is in the container's journal)" wait_for 60 reported
check "CREDENTIALS_DIRECTORY is systemd's, seen inside the app's root, as www-data (33)" \
	printed "e18 dir=/run/credentials/sdme-oci-app.service uid=33"
check "the plain credential's contents reach the app" printed "e18 cred db.password $(sha "$pw")"
check "the encrypted credential arrives decrypted" printed "e18 cred tls $(sha "$tok")"
check "Secret= gives the plain one as DB_PASSWORD" printed "e18 env $(sha "$pw")"
loads() { test "$(in_machine app systemctl cat sdme-oci-app | grep -E '^LoadCredential=(db.password|tls)$' | wc -l)" = 2; }
check "the app service loads both (LoadCredential=)" loads
check "the container runs in a user namespace" test -s /var/lib/sdme/containers/app/userns

# Patterns come from a 0600 file or a pipe, never an argument (this scan
# must not put the values on a command line itself).
pat=$(mktemp); chmod 600 "$pat"; printf '%s\n%s\n' "$pw" "$tok" >"$pat"
tokpat=$(mktemp); chmod 600 "$tokpat"; printf '%s\n' "$tok" >"$tokpat"
readable() { while read -r f; do [ "$("$@" stat -c %A "$f" 2>/dev/null | cut -c8)" = r ] && echo "$f"; done; }
leaks=$( { grep -rlsF -f "$pat" /run /var/lib/sdme /etc /tmp | grep -vxF "$pat" | readable | sed 's/^/host:/'
	printf '%s\n%s\n' "$pw" "$tok" | in_machine app grep -rlsF -f /dev/stdin /run /etc /oci | readable in_machine app | sed 's/^/container:/'; } 2>/dev/null)
if [ -z "$leaks" ]; then pass "neither value is in a world-readable file (host /run /var/lib/sdme /etc /tmp; container /run /etc /oci)"; else fail "world-readable: $leaks"; fi
rt=$(grep -rlsF -f "$pat" /run/sdme-containers/app)
check "the host runtime dir holds the plain value only in its 0600 environment file (Secret=): '$rt'" \
	test "$rt" = /run/sdme-containers/app/environment
# (owned by the container's root: host uid BASE of its range)
check "  ... which is 0600, owned by the container's root, in a 0700 directory" test \
	"$(stat -c %a:%u /run/sdme-containers/app/environment) $(stat -c %a /run/sdme-containers/app)" = "600:$(cut -d' ' -f1 /var/lib/sdme/containers/app/userns) 700"
tokfiles=$(grep -rlsF -f "$tokpat" /run /var/lib/sdme /etc /tmp /var/tmp /root 2>/dev/null | grep -vxF -e "$tokpat" -e "$pat")
check "the encrypted credential's plaintext is in no file on the host: '$tokfiles'" test -z "$tokfiles"
units=$( { systemctl cat systemd-nspawn@app sdme-import@app; in_machine app systemctl cat sdme-oci-app; } 2>&1 | grep -cF -f "$pat")
check "no unit, host or container, holds either value" test "$units" = 0
args=$(for c in /proc/[0-9]*/cmdline; do tr '\0' ' ' <"$c" 2>/dev/null | grep -qF -f "$pat" && echo "$c"; done)
check "no process's command line holds either value (host /proc, the container's included): '$args'" test -z "$args"
# nspawn's host process may keep the inherited descriptor (it is root's,
# as are the key and the encrypted file); nothing in the container may.
nspawn_pid=$(systemctl show --property=MainPID --value systemd-nspawn@app)
holders=$(for d in /proc/[0-9]*/fd; do p=${d#/proc/}; p=${p%/fd}; ls -l "$d" 2>/dev/null | grep -q 'memfd:sdme-credential' && echo "$p"; done)
info "the memfd is held by: $(echo $holders) (systemd-nspawn is $nspawn_pid)"
check "no process but systemd-nspawn on the host holds the decrypted memfd" test -z "$(echo "$holders" | grep -vx "$nspawn_pid")"
nspawn_args=$(tr '\0' '\n' <"/proc/$(systemctl show --property=MainPID --value systemd-nspawn@app)/cmdline" | grep -- '--load-credential=')
info "nspawn got: $(echo $nspawn_args)"
check "nspawn reads the plain credential from its file" grep -qx -- '--load-credential=db.password:/etc/sdme/creds/db' <<<"$nspawn_args"
check "  ... and the encrypted one, decrypted, from the launcher's memfd" grep -qx -- '--load-credential=tls:/proc/self/fd/[0-9]*' <<<"$nspawn_args"
rm -f "$pat" "$tokpat"

# A wrong name is refused by systemd-creds: the start fails, naming the setting.
sed -i 's|^EncryptedCredential=tls:|EncryptedCredential=other:|; s|^Secret=.*||' /etc/sdme/app.oci
systemctl daemon-reload
systemctl stop systemd-nspawn@app
check "a credential encrypted under another name fails the start" sh -c '! timeout 100 systemctl start systemd-nspawn@app'
check "  ... and the journal says which setting" sh -c \
	"journalctl -b --no-pager -u systemd-nspawn@app | grep -q 'EncryptedCredential=other:/etc/sdme/creds/tls.cred: systemd-creds decrypt failed'"
[ "$E2E_FAILED" = 0 ] || diag sdme-import@app systemd-nspawn@app
finish
