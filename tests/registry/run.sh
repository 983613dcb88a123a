#!/bin/bash
# Registry tier: sdme-registry against a real registry (Debian's
# docker-registry on 127.0.0.1: http, https with a throw-away CA, https with
# htpasswd basic auth), with images built offline by fixtures.sh and pushed
# by skopeo in several formats (OCI, zstd, Docker v2s2, multi-arch index),
# plus the local transports (oci:, oci-archive:, docker-archive:). The Rust
# test helpers/registry/tests/real_registry.rs resolves each and reads every
# layer, checking digests and diff_ids against what skopeo reports.
# Exits non-zero on any failure, including a missing prerequisite.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
. tests/lib/registry.sh

for c in docker-registry skopeo umoci openssl htpasswd curl busybox python3 cargo; do
	command -v "$c" >/dev/null || { echo "registry tier: missing prerequisite: $c (run tests/deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sdme-registry-tier.XXXXXX")
cleanup() { registry_stop_all; rm -rf "$work"; }
trap cleanup EXIT

t0=$SECONDS
tests/registry/fixtures.sh "$work/layout"
L=$work/layout

registry_make_tls "$work/tls"
registry_make_htpasswd "$work/htpasswd" sdme-user 'pa:ss w0rd'
plain=$(registry_start "$work/reg-http")
tls=$(registry_start "$work/reg-https" --tls "$work/tls")
auth=$(registry_start "$work/reg-auth" --tls "$work/tls" --htpasswd "$work/htpasswd")

# --cert-dir layouts: certs.d style (DIR/HOST:PORT/ca.crt) and flat (DIR/*.crt).
mkdir -p "$work/certs.d/$tls" "$work/certs.d/$auth" "$work/flat-certs"
cp "$work/tls/ca.crt" "$work/certs.d/$tls/ca.crt"
cp "$work/tls/ca.crt" "$work/certs.d/$auth/ca.crt"
cp "$work/tls/ca.crt" "$work/flat-certs/sdme-test.crt"

b64() { printf '%s' "$1" | base64 -w0; }
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$auth" "$(b64 'sdme-user:pa:ss w0rd')" >"$work/auth.json"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$auth" "$(b64 'sdme-user:wrong')" >"$work/auth-wrong.json"

http_push=(--dest-tls-verify=false)
tls_push=(--dest-cert-dir "$work/certs.d/$tls")
auth_push=(--dest-cert-dir "$work/certs.d/$auth" --dest-creds 'sdme-user:pa:ss w0rd')
push() { # SRC DEST [skopeo options...]
	local src=$1 dest=$2; shift 2
	skopeo copy -q "$@" "$src" "$dest" >/dev/null
}
# zstd first: skopeo reuses (cross-repository mounts) blobs it has pushed
# before instead of recompressing them.
push "oci:$L:multi" "docker://$plain/sdme/zstd:1" "${http_push[@]}" --dest-compress-format zstd
push "oci:$L:busybox" "docker://$plain/sdme/busybox:1" "${http_push[@]}"
push "oci:$L:multi" "docker://$plain/sdme/multi:1" "${http_push[@]}"
push "oci:$L:multi" "docker://$plain/sdme/v2s2:1" "${http_push[@]}" --format v2s2
push "oci:$L:multiarch" "docker://$plain/sdme/multiarch:1" "${http_push[@]}" --all
push "oci:$L:big" "docker://$plain/sdme/big:1" "${http_push[@]}"
push "oci:$L:busybox" "docker://$tls/sdme/busybox:tls" "${tls_push[@]}"
push "oci:$L:multi" "docker://$auth/private/multi:1" "${auth_push[@]}"
# Mirrors (registries.conf): an origin and a pull-through mirror serving it
# under a namespace; the origin is stopped before the cases run.
origin=$(registry_start "$work/reg-origin")
mirror=$(registry_start "$work/reg-mirror")
push "oci:$L:busybox" "docker://$origin/sdme/mirrored:1" "${http_push[@]}"
push "oci:$L:busybox" "docker://$mirror/cache/sdme/mirrored:1" "${http_push[@]}"
nothing=127.0.0.1:$(registry_free_port)
# TLS verification stays on in these cases: only registries.conf's insecure allows plain http.
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n[[registry.mirror]]\nlocation = "%s/cache"\ninsecure = true\n' \
	"$origin" "$mirror" >"$work/mirror-serves.conf"
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n[[registry.mirror]]\nlocation = "%s/cache"\ninsecure = true\n' \
	"$plain" "$nothing" >"$work/mirror-down.conf"
(cd "$L" && tar -cf "$work/layout.tar" .)
push "oci:$L:multi" "docker-archive:$work/multi-docker.tar:sdme/multi:1"
echo "registry tier: fixtures built and pushed in $((SECONDS - t0)) s" >&2

# Expected values, from skopeo's view of each image; one JSON object per case.
cases=$work/cases.jsonl
case_line() { # NAME SOURCE PLATFORM TLS_VERIFY CERT_DIR AUTHFILE EXPECT_ERROR INSPECT_REF [skopeo inspect options...]
	local name=$1 source=$2 platform=$3 verify=$4 certdir=$5 authfile=$6 experr=$7 ref=$8; shift 8
	# Files, not $(…): the digest covers the exact bytes, trailing newline included.
	: >"$work/raw" && : >"$work/config"
	if [ -n "$ref" ]; then
		skopeo inspect --raw "$@" "$ref" >"$work/raw"
		skopeo inspect --config --raw "$@" "$ref" >"$work/config"
	fi
	RAW=$work/raw CONFIG=$work/config REGCONF=${REGCONF:-} EXPMSG=${EXPMSG:-} python3 - "$name" "$source" "$platform" "$verify" "$certdir" "$authfile" "$experr" >>"$cases" <<'PY'
import hashlib, json, os, sys
name, source, platform, verify, certdir, authfile, experr = sys.argv[1:]
case = {"name": name, "source": source, "platform": platform or None, "tls_verify": verify == "yes",
        "cert_dir": certdir or None, "authfile": authfile or None, "expect_error": experr or None,
        "registries_conf": os.environ["REGCONF"] or None, "expect_message": os.environ["EXPMSG"] or None}
raw, config = open(os.environ["RAW"], "rb").read(), open(os.environ["CONFIG"], "rb").read()
if raw:
    m = json.loads(raw)
    if "manifests" in m:
        sys.exit("case %s: inspect an image manifest, not an index" % name)
    case["manifest_digest"] = "sha256:" + hashlib.sha256(raw).hexdigest()
    case["layers"] = [l["digest"] for l in m["layers"]]
    case["media_types"] = [l["mediaType"] for l in m["layers"]]
    case["diff_ids"] = json.loads(config)["rootfs"]["diff_ids"]
print(json.dumps(case))
PY
}
# The platform manifest inside the pushed index, by its digest.
arch_digest() { # ARCH
	skopeo inspect --raw --tls-verify=false "docker://$plain/sdme/multiarch:1" |
		python3 -c 'import json,sys; print(next(m["digest"] for m in json.load(sys.stdin)["manifests"] if m["platform"]["architecture"] == sys.argv[1]))' "$1"
}
H=(--tls-verify=false)
: >"$cases"
case_line busybox-http "$plain/sdme/busybox:1" "" no "" "" "" "docker://$plain/sdme/busybox:1" "${H[@]}"
case_line multi-http "$plain/sdme/multi:1" "" no "" "" "" "docker://$plain/sdme/multi:1" "${H[@]}"
case_line zstd "$plain/sdme/zstd:1" "" no "" "" "" "docker://$plain/sdme/zstd:1" "${H[@]}"
case_line docker-v2s2 "$plain/sdme/v2s2:1" "" no "" "" "" "docker://$plain/sdme/v2s2:1" "${H[@]}"
case_line multiarch-amd64 "$plain/sdme/multiarch:1" linux/amd64 no "" "" "" "docker://$plain/sdme/multiarch@$(arch_digest amd64)" "${H[@]}"
case_line multiarch-arm64 "$plain/sdme/multiarch:1" linux/arm64 no "" "" "" "docker://$plain/sdme/multiarch@$(arch_digest arm64)" "${H[@]}"
case_line multiarch-by-digest "$plain/sdme/multiarch@$(arch_digest arm64)" linux/amd64 no "" "" "" "docker://$plain/sdme/multiarch@$(arch_digest arm64)" "${H[@]}"
case_line big "$plain/sdme/big:1" "" no "" "" "" "docker://$plain/sdme/big:1" "${H[@]}"
case_line https-certs.d "$tls/sdme/busybox:tls" "" yes "$work/certs.d" "" "" "docker://$tls/sdme/busybox:tls" --cert-dir "$work/certs.d/$tls"
case_line https-flat-cert-dir "$tls/sdme/busybox:tls" "" yes "$work/flat-certs" "" "" "docker://$tls/sdme/busybox:tls" --cert-dir "$work/certs.d/$tls"
case_line https-no-verify "$tls/sdme/busybox:tls" "" no "" "" "" "docker://$tls/sdme/busybox:tls" "${H[@]}"
case_line basic-auth "$auth/private/multi:1" "" yes "$work/certs.d" "$work/auth.json" "" "docker://$auth/private/multi:1" --cert-dir "$work/certs.d/$auth" --creds 'sdme-user:pa:ss w0rd'
case_line oci-dir "oci:$L:multi" "" yes "" "" "" "oci:$L:multi"
case_line big-oci-dir "oci:$L:big" "" yes "" "" "" "oci:$L:big"
case_line oci-archive "oci-archive:$work/layout.tar:multi" "" yes "" "" "" "oci:$L:multi"
case_line oci-dir-index "oci:$L:multiarch" linux/arm64/v8 yes "" "" "" "oci:$L:arm64"
case_line docker-archive "docker-archive:$work/multi-docker.tar" "" yes "" "" "" ""
gzip -c "$work/multi-docker.tar" >"$work/multi-docker.tar.gz"
case_line docker-archive-gzip "docker-archive:$work/multi-docker.tar.gz" "" yes "" "" "" ""
# Refusals.
case_line https-unknown-ca "$tls/sdme/busybox:tls" "" yes "" "" Io ""
EXPMSG="cannot reach registry $plain: TLS handshake failed: the server does not speak TLS (if it serves plain http" \
	case_line http-with-tls-verify "$plain/sdme/busybox:1" "" yes "" "" Io ""
case_line auth-wrong-password "$auth/private/multi:1" "" yes "$work/certs.d" "$work/auth-wrong.json" Unauthorized ""
echo '{}' >"$work/empty.json"
case_line auth-missing "$auth/private/multi:1" "" yes "$work/certs.d" "$work/empty.json" Unauthorized ""
case_line unknown-tag "$plain/sdme/busybox:nope" "" no "" "" NotFound ""

# The mirror serves, the origin is down (stopped below, before the cases run).
REGCONF=$work/mirror-serves.conf case_line mirror-serves-origin-down "$origin/sdme/mirrored:1" "" yes "" "" "" "docker://$origin/sdme/mirrored:1" "${H[@]}"
# The mirror is down (nothing listens), the origin serves.
REGCONF=$work/mirror-down.conf case_line mirror-down-origin-serves "$plain/sdme/busybox:1" "" yes "" "" "" "docker://$plain/sdme/busybox:1" "${H[@]}"
# Both fail: the error lists the mirror, then the origin.
REGCONF=$work/mirror-serves.conf EXPMSG="$origin/sdme/nosuch:1: no source could serve it: mirror $mirror/cache/sdme/nosuch:1: not found: registry $mirror has no manifest \"1\" (HTTP 404); $origin/sdme/nosuch:1: cannot reach registry $origin: connection refused" \
	case_line mirror-and-origin-fail "$origin/sdme/nosuch:1" "" yes "" "" Io ""
registry_stop "$work/reg-origin"
if curl -s -o /dev/null "http://$origin/v2/"; then
	echo "registry tier: the origin registry $origin still answers after being stopped" >&2
	exit 1
fi

# The fixtures must really cover what they claim (skopeo may silently reuse blobs).
grep '"name": "zstd"' "$cases" | grep -q 'tar+zstd' || { echo "registry tier: the zstd image has no zstd layer" >&2; exit 1; }
grep '"name": "docker-v2s2"' "$cases" | grep -q 'rootfs.diff.tar.gzip' || { echo "registry tier: the v2s2 image is not Docker v2s2" >&2; exit 1; }

# The docker-archive's diff_ids (its manifest is synthesized: no digest to compare).
skopeo inspect --config --raw "docker-archive:$work/multi-docker.tar" |
	python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["rootfs"]["diff_ids"]))' >"$work/docker-archive-diff-ids.json"

echo "registry tier: $(wc -l <"$cases") cases" >&2
SDME_TEST_REGISTRY=1 SDME_TEST_REGISTRY_CASES=$cases SDME_TEST_DOCKER_ARCHIVE_DIFF_IDS=$work/docker-archive-diff-ids.json \
	cargo test -q -p sdme-registry --release --locked --test real_registry -- --ignored --nocapture --test-threads=1
