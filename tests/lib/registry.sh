#!/bin/bash
# Shell helpers to run Debian's docker-registry (distribution) on loopback for
# tests: plain http, https with a throw-away CA, htpasswd (bcrypt) basic auth.
# Source it: `. tests/lib/registry.sh`. Every function returns non-zero on
# failure and says why on stderr.
#
#   registry_make_tls DIR            CA + server cert for 127.0.0.1/localhost:
#                                    DIR/ca.crt, DIR/server.crt, DIR/server.key,
#                                    and DIR/certs.d/127.0.0.1:PORT-style use is
#                                    up to the caller (ca.crt works as --cert-dir)
#   registry_make_htpasswd FILE USER PASS
#   registry_start DIR [--tls CERTDIR] [--htpasswd FILE]
#                                    starts a registry storing in DIR; prints
#                                    its address 127.0.0.1:PORT
#   registry_stop DIR                stops the registry started in DIR (by PID)
#   registry_stop_all                stops every registry started by this shell
#
# Typical use:
#   . tests/lib/registry.sh
#   trap registry_stop_all EXIT
#   addr=$(registry_start "$work/reg") || exit 1
#   skopeo copy --dest-tls-verify=false oci:layout:tag "docker://$addr/name:tag"

# Directories of started registries, one a line. A file, not a variable:
# registry_start usually runs in a $(…) subshell. ($$ is the sourcing shell's PID.)
REGISTRY_LIST=${REGISTRY_LIST:-${TMPDIR:-/tmp}/sdme-registries.$$}

registry_log() { echo "registry: $*" >&2; }

registry_need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || { registry_log "missing command: $c"; return 1; }
	done
}

# A free TCP port on 127.0.0.1 (the kernel's choice; a tiny race is harmless in tests).
registry_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

registry_make_tls() {
	local d=$1
	registry_need openssl || return 1
	mkdir -p "$d" || return 1
	(
		set -e
		cd "$d"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 \
			-subj "/CN=sdme test CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
			-subj "/CN=127.0.0.1" 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out server.crt -days 7 -extfile ext.cnf 2>/dev/null
		rm -f server.csr ext.cnf ca.srl
	) || { registry_log "making TLS material in $d failed"; return 1; }
}

registry_make_htpasswd() {
	local file=$1 user=$2 pass=$3
	registry_need htpasswd || return 1
	htpasswd -Bbn "$user" "$pass" >"$file" 2>/dev/null ||
		{ registry_log "htpasswd for $user failed"; return 1; }
}

registry_start() {
	local dir=$1; shift
	local tls="" htpasswd=""
	while [ $# -gt 0 ]; do
		case $1 in
		--tls) tls=$2; shift 2 ;;
		--htpasswd) htpasswd=$2; shift 2 ;;
		*) registry_log "registry_start: unknown option $1"; return 1 ;;
		esac
	done
	registry_need docker-registry curl python3 || return 1
	mkdir -p "$dir/storage" || return 1
	local port; port=$(registry_free_port) || return 1
	local addr=127.0.0.1:$port
	{
		echo "version: 0.1"
		echo "log: {level: warn, accesslog: {disabled: true}}"
		echo "storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}}"
		echo "http:"
		echo "  addr: $addr"
		if [ -n "$tls" ]; then
			echo "  tls: {certificate: $tls/server.crt, key: $tls/server.key}"
		fi
		if [ -n "$htpasswd" ]; then
			echo "auth: {htpasswd: {realm: sdme-test, path: $htpasswd}}"
		fi
	} >"$dir/config.yml"
	docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	echo $! >"$dir/pid"
	echo "$dir" >>"$REGISTRY_LIST"
	local scheme=http curl_tls=()
	if [ -n "$tls" ]; then scheme=https; curl_tls=(--cacert "$tls/ca.crt"); fi
	local i
	for i in $(seq 100); do
		# Any HTTP answer (200, or 401 with auth) means it is serving.
		if curl -s "${curl_tls[@]}" -o /dev/null -w '%{http_code}' "$scheme://$addr/v2/" 2>/dev/null | grep -qE '^(200|401)$'; then
			registry_log "up at $scheme://$addr (pid $(cat "$dir/pid"), dir $dir)"
			echo "$addr"
			return 0
		fi
		kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
		sleep 0.05
	done
	registry_log "docker-registry in $dir did not start; log:"
	cat "$dir/log" >&2
	registry_stop "$dir"
	return 1
}

registry_stop() {
	local dir=$1 pid
	pid=$(cat "$dir/pid" 2>/dev/null) || return 0
	if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ]; then
		kill "$pid" 2>/dev/null
		local i
		for i in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
	fi
	rm -f "$dir/pid"
	# Forget it; the list file goes with the last entry.
	if [ -f "$REGISTRY_LIST" ]; then
		grep -vxF -- "$dir" "$REGISTRY_LIST" >"$REGISTRY_LIST.new" || true
		if [ -s "$REGISTRY_LIST.new" ]; then mv -f "$REGISTRY_LIST.new" "$REGISTRY_LIST"; else rm -f "$REGISTRY_LIST" "$REGISTRY_LIST.new"; fi
	fi
	return 0
}

registry_stop_all() {
	local d
	[ -f "$REGISTRY_LIST" ] || return 0
	while read -r d; do registry_stop "$d"; done <"$REGISTRY_LIST"
	rm -f "$REGISTRY_LIST"
}
