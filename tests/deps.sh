#!/bin/bash
# Installs what building and testing sdme needs on Debian 12 (as root).
# Idempotent: does nothing when everything is already there.
set -euo pipefail
pkgs=(make pkg-config systemd systemd-container debootstrap docker-registry skopeo umoci
      podman runc curl openssl apache2-utils busybox-static python3 iproute2 bc
      dpkg-dev binutils lintian)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "deps: cargo (Rust toolchain) is required" >&2; exit 1; }
