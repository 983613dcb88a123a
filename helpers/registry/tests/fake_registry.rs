//! The registry client against an in-process fake registry, for what a real
//! registry will not do on demand: token flows and expiry, cross-host
//! redirects, 429s, dropped connections, wrong digests and formats.

mod common;

use common::image::{self, read_all, Blob, Comp, TestImage};
use common::server::{Reply, Request, Server};
use sdme_registry::{open_source, ErrorKind, Notice, Platform, RegistriesConfFiles, SourceOptions};
use std::collections::HashMap;
use std::io::ErrorKind as IoKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REPO: &str = "test/img";

/// What a fake registry serves: manifests by tag or digest, blobs by digest.
#[derive(Default, Clone)]
struct Content {
    manifests: HashMap<String, (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
}

impl Content {
    fn with_image(mut self, tag: &str, img: &TestImage) -> Content {
        let m = (img.manifest_media_type.clone(), img.manifest.data.clone());
        self.manifests
            .insert(img.manifest.digest.clone(), m.clone());
        self.manifests.insert(tag.to_string(), m);
        self.blobs
            .insert(img.config.digest.clone(), img.config.data.clone());
        for l in &img.layers {
            self.blobs
                .insert(l.blob.digest.clone(), l.blob.data.clone());
        }
        self
    }

    fn with_index(mut self, tag: &str, index: &Blob) -> Content {
        let m = (
            "application/vnd.oci.image.index.v1+json".to_string(),
            index.data.clone(),
        );
        self.manifests.insert(index.digest.clone(), m.clone());
        self.manifests.insert(tag.to_string(), m);
        self
    }

    /// Serves `/v2/`, manifests and blobs (with Range support); 404 otherwise.
    fn serve(&self, req: &Request) -> Reply {
        self.serve_repo(REPO, req)
    }

    /// Like [`Content::serve`], for the repository `repo` (a mirror's namespace path).
    fn serve_repo(&self, repo: &str, req: &Request) -> Reply {
        let path = req.path();
        if path == "/v2/" {
            return Reply::new(200, "{}");
        }
        let prefix = format!("/v2/{repo}/");
        let Some(rest) = path.strip_prefix(&prefix) else {
            return Reply::new(404, "no such repository");
        };
        if let Some(r) = rest.strip_prefix("manifests/") {
            return match self.manifests.get(r) {
                Some((mt, data)) => Reply::new(200, data.clone())
                    .header("Content-Type", mt.clone())
                    .header("Docker-Content-Digest", image::sha256(data)),
                None => Reply::new(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
            };
        }
        if let Some(d) = rest.strip_prefix("blobs/") {
            let Some(data) = self.blobs.get(d) else {
                return Reply::new(404, "blob unknown");
            };
            return range_reply(req, data);
        }
        Reply::new(404, "")
    }
}

fn range_reply(req: &Request, data: &[u8]) -> Reply {
    if let Some(r) = req.header("range") {
        let start: usize = r
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse()
            .unwrap();
        return Reply::new(206, data[start..].to_vec()).header(
            "Content-Range",
            format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
        );
    }
    Reply::new(200, data.to_vec())
}

/// Plain http allowed, quick retries, and no registries.conf of this machine's.
fn http_opts() -> SourceOptions {
    SourceOptions {
        tls_verify: false,
        retry_delay: Some(Duration::from_millis(20)),
        registries_conf: RegistriesConfFiles::Off,
        ..SourceOptions::new()
    }
}

fn simple_image() -> TestImage {
    let l1 = image::layer(&[("etc/hello", b"hello\n")], Comp::Gzip);
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let l2 = image::layer(&[("data/big", &big)], Comp::Gzip);
    image::image(vec![l1, l2], "amd64", false)
}

/// Resolves `source` and reads every layer, checking it against the test image.
fn pull_and_check(source: &str, opts: &SourceOptions, img: &TestImage) {
    let src = open_source(source, opts).unwrap();
    let resolved = src.resolve().unwrap();
    assert_eq!(resolved.manifest_digest, img.manifest.digest);
    assert_eq!(resolved.config_raw, img.config.data);
    assert_eq!(resolved.layers.len(), img.layers.len());
    for (got, want) in resolved.layers.iter().zip(&img.layers) {
        assert_eq!(got.digest, want.blob.digest);
        assert_eq!(got.diff_id, want.diff_id);
        let tar = read_all(&mut *src.open_layer(got).unwrap()).unwrap();
        assert_eq!(tar, want.tar);
    }
}

fn bearer_challenge(server: &str) -> String {
    format!(
        r#"Bearer realm="http://{server}/token",service="fake registry",scope="ignored, really""#
    )
}

#[test]
fn anonymous_bearer_token_expires_and_is_refreshed() {
    let img = simple_image();
    let content = Content::default().with_image("v1", &img);
    let issued = Arc::new(AtomicUsize::new(0));
    let used = Arc::new(AtomicUsize::new(0));
    let addr: Arc<Mutex<String>> = Arc::default();
    let (i2, u2, a2) = (issued.clone(), used.clone(), addr.clone());
    let server = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            let host = a2.lock().unwrap().clone();
            if req.path() == "/token" {
                let n = i2.fetch_add(1, Ordering::SeqCst) + 1;
                // Both reply spellings occur in the wild.
                return if n == 1 {
                    Reply::new(200, format!(r#"{{"token":"tok-{n}"}}"#))
                } else {
                    Reply::new(
                        200,
                        format!(r#"{{"access_token":"tok-{n}","expires_in":60}}"#),
                    )
                };
            }
            let current = format!("Bearer tok-{}", i2.load(Ordering::SeqCst));
            let ok = req.header("authorization") == Some(current.as_str());
            // The first token "expires" after three uses.
            let expired = current == "Bearer tok-1" && u2.load(Ordering::SeqCst) >= 3;
            if !ok || expired {
                return Reply::new(401, "").header("WWW-Authenticate", bearer_challenge(&host));
            }
            u2.fetch_add(1, Ordering::SeqCst);
            content.serve(req)
        }),
    );
    *addr.lock().unwrap() = server.host();
    pull_and_check(&format!("{}/{REPO}:v1", server.host()), &http_opts(), &img);
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "one token, then one refresh"
    );
    let tokens = server.requests_to("/token");
    for t in &tokens {
        assert_eq!(t.query("service").as_deref(), Some("fake registry"));
        // The challenge's own scope is used when it names one.
        assert_eq!(t.query("scope").as_deref(), Some("ignored, really"));
        assert!(
            t.header("authorization").is_none(),
            "anonymous token requests carry no credentials"
        );
    }
}

fn write_authfile(dir: &std::path::Path, host: &str, user: &str, pass: &str) -> std::path::PathBuf {
    let p = dir.join("auth.json");
    let auth = base64(&format!("{user}:{pass}"));
    std::fs::write(
        &p,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    p
}

fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn bearer_token_with_credentials_and_default_scope() {
    let img = simple_image();
    let content = Content::default().with_image("latest", &img);
    let addr: Arc<Mutex<String>> = Arc::default();
    let a2 = addr.clone();
    let server = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            let host = a2.lock().unwrap().clone();
            if req.path() == "/token" {
                return if req.header("authorization")
                    == Some(format!("Basic {}", base64("alice:s3cret")).as_str())
                {
                    Reply::new(200, r#"{"token":"alice-token"}"#)
                } else {
                    Reply::new(401, "bad credentials")
                };
            }
            if req.header("authorization") != Some("Bearer alice-token") {
                return Reply::new(401, "").header(
                    "WWW-Authenticate",
                    format!(r#"Bearer realm="http://{host}/token",service="svc""#),
                );
            }
            content.serve(req)
        }),
    );
    *addr.lock().unwrap() = server.host();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = http_opts();
    opts.authfile = Some(write_authfile(
        dir.path(),
        &server.host(),
        "alice",
        "s3cret",
    ));
    pull_and_check(&format!("{}/{REPO}", server.host()), &opts, &img);
    let t = &server.requests_to("/token")[0];
    assert_eq!(
        t.query("scope").as_deref(),
        Some("repository:test/img:pull")
    );

    // Wrong password: the token server refuses, and the error says so.
    opts.authfile = Some(write_authfile(dir.path(), &server.host(), "alice", "wrong"));
    let e = open_source(&format!("{}/{REPO}", server.host()), &opts)
        .unwrap()
        .resolve()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(
        e.to_string().contains("/token") && e.to_string().contains("401"),
        "{e}"
    );
}

#[test]
fn redirect_to_another_host_never_carries_authorization() {
    let img = simple_image();
    let content = Content::default().with_image("latest", &img);
    // The "CDN": a second listener on another loopback address.
    let cdn_content = content.clone();
    let cdn = Server::start(
        "127.0.0.2",
        Arc::new(move |req| {
            let digest = req.path().trim_start_matches("/cdn/");
            range_reply(req, &cdn_content.blobs[digest])
        }),
    );
    let cdn_url = cdn.url();
    let expected_auth = format!("Basic {}", base64("bob:pw"));
    let registry = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            if req.header("authorization") != Some(expected_auth.as_str()) {
                return Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="fake""#);
            }
            if let Some(d) = req.path().strip_prefix(&format!("/v2/{REPO}/blobs/")) {
                return Reply::new(307, "").header("Location", format!("{cdn_url}/cdn/{d}"));
            }
            content.serve(req)
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = http_opts();
    opts.authfile = Some(write_authfile(dir.path(), &registry.host(), "bob", "pw"));
    pull_and_check(&format!("{}/{REPO}", registry.host()), &opts, &img);
    let cdn_requests = cdn.requests();
    assert_eq!(
        cdn_requests.len(),
        3,
        "config and two layers came from the CDN"
    );
    for r in &cdn_requests {
        assert!(
            r.header("authorization").is_none(),
            "Authorization leaked to {}: {:?}",
            cdn.host(),
            r
        );
    }
    assert!(registry
        .requests_to(&format!("/v2/{REPO}/manifests/"))
        .iter()
        .all(|r| r.header("authorization").is_some()));
}

#[test]
fn bearer_tokens_and_credentials_stay_on_their_own_origin_across_redirects() {
    let img = simple_image();
    let content = Content::default().with_image("latest", &img);
    // Another loopback address: another host, for the CDN and the token mirror.
    let cdn_content = content.clone();
    let other = Server::start(
        "127.0.0.2",
        Arc::new(move |req| {
            if req.path() == "/token" {
                return Reply::new(200, r#"{"token":"carol-token"}"#);
            }
            let digest = req.path().trim_start_matches("/cdn/");
            range_reply(req, &cdn_content.blobs[digest])
        }),
    );
    let other_url = other.url();
    let addr: Arc<Mutex<String>> = Arc::default();
    let a2 = addr.clone();
    let registry = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            let host = a2.lock().unwrap().clone();
            if req.path() == "/token" {
                // The token service moved: its redirect must not carry the password.
                return Reply::new(307, "").header("Location", format!("{other_url}/token"));
            }
            if req.header("authorization") != Some("Bearer carol-token") {
                return Reply::new(401, "").header(
                    "WWW-Authenticate",
                    format!(r#"Bearer realm="http://{host}/token",service="svc""#),
                );
            }
            if let Some(d) = req.path().strip_prefix(&format!("/v2/{REPO}/blobs/")) {
                return Reply::new(307, "").header("Location", format!("{other_url}/cdn/{d}"));
            }
            content.serve(req)
        }),
    );
    *addr.lock().unwrap() = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = http_opts();
    opts.authfile = Some(write_authfile(dir.path(), &registry.host(), "carol", "pw"));
    pull_and_check(&format!("{}/{REPO}", registry.host()), &opts, &img);
    // The credentials went to the realm the registry named, and nowhere else.
    let basic = format!("Basic {}", base64("carol:pw"));
    let token_requests = registry.requests_to("/token");
    assert!(!token_requests.is_empty());
    assert!(token_requests
        .iter()
        .all(|r| r.header("authorization") == Some(basic.as_str())));
    let other_requests = other.requests();
    assert_eq!(
        other_requests.len(),
        token_requests.len() + 3,
        "tokens, then config and two layers from the CDN: {other_requests:?}"
    );
    for r in &other_requests {
        assert!(
            r.header("authorization").is_none(),
            "Authorization leaked to {}: {r:?}",
            other.host()
        );
    }
}

#[test]
fn bearer_realm_that_is_not_http_is_refused() {
    let server = Server::start(
        "127.0.0.1",
        Arc::new(|_| {
            Reply::new(401, "").header("WWW-Authenticate", r#"Bearer realm="file:///etc/shadow""#)
        }),
    );
    let e = open_source(&format!("{}/{REPO}", server.host()), &http_opts())
        .unwrap()
        .resolve()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(
        e.to_string().contains("file:///etc/shadow") && e.to_string().contains("not an http"),
        "{e}"
    );
}

#[test]
fn registry_without_credentials_for_basic_auth_says_so() {
    let server = Server::start(
        "127.0.0.1",
        Arc::new(|_| Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="fake""#)),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = http_opts();
    opts.authfile = Some(dir.path().join("empty.json"));
    std::fs::write(opts.authfile.as_ref().unwrap(), "{}").unwrap();
    let e = open_source(&format!("{}/{REPO}", server.host()), &opts)
        .unwrap()
        .resolve()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(
        e.to_string().contains("requires a user name and password"),
        "{e}"
    );
}

#[test]
fn too_many_requests_honours_retry_after_and_5xx_is_retried() {
    let img = simple_image();
    let content = Content::default().with_image("latest", &img);
    let manifest_calls = Arc::new(AtomicUsize::new(0));
    let config_calls = Arc::new(AtomicUsize::new(0));
    let (m2, c2) = (manifest_calls.clone(), config_calls.clone());
    let config_digest = img.config.digest.clone();
    let server = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            if req.path().contains("/manifests/") && m2.fetch_add(1, Ordering::SeqCst) == 0 {
                return Reply::new(429, "slow down").header("Retry-After", "1");
            }
            if req.path().ends_with(&config_digest) && c2.fetch_add(1, Ordering::SeqCst) < 2 {
                return Reply::new(503, "busy");
            }
            content.serve(req)
        }),
    );
    let t0 = Instant::now();
    pull_and_check(&format!("{}/{REPO}", server.host()), &http_opts(), &img);
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured ({:?})",
        t0.elapsed()
    );
    assert_eq!(manifest_calls.load(Ordering::SeqCst), 2);
    assert_eq!(config_calls.load(Ordering::SeqCst), 3);

    // A registry that never recovers: the last status is reported after the retries.
    let down = Server::start(
        "127.0.0.1",
        Arc::new(|req| {
            if req.path() == "/v2/" {
                Reply::new(200, "")
            } else {
                Reply::new(503, "down")
            }
        }),
    );
    let mut opts = http_opts();
    opts.retries = Some(2);
    let e = open_source(&format!("{}/{REPO}", down.host()), &opts)
        .unwrap()
        .resolve()
        .unwrap_err();
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(
        down.requests_to("/v2/test").len(),
        3,
        "one try and two retries"
    );
}

#[test]
fn dropped_connection_mid_blob_resumes_with_range() {
    let img = simple_image();
    let big = img.layers[1].blob.clone();
    let cut = big.data.len() / 3;
    let content = Content::default().with_image("latest", &img);
    let drops = Arc::new(AtomicUsize::new(0));
    let d2 = drops.clone();
    let big_digest = big.digest.clone();
    let server = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            let reply = content.serve(req);
            // Drop the first two transfers of the big layer part-way.
            if req.path().ends_with(&big_digest) && d2.fetch_add(1, Ordering::SeqCst) < 2 {
                return reply.cut_after(cut);
            }
            reply
        }),
    );
    pull_and_check(&format!("{}/{REPO}", server.host()), &http_opts(), &img);
    let blob_reqs = server.requests_to(&format!("/v2/{REPO}/blobs/{}", big.digest));
    assert_eq!(blob_reqs.len(), 3, "{blob_reqs:?}");
    assert!(blob_reqs[0].header("range").is_none());
    assert_eq!(
        blob_reqs[1].header("range"),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(
        blob_reqs[2].header("range"),
        Some(format!("bytes={}-", 2 * cut).as_str())
    );
}

fn layer_error(source: &str, layer_index: usize) -> std::io::Error {
    let src = open_source(source, &http_opts()).unwrap();
    let r = src.resolve().unwrap();
    let mut reader = src.open_layer(&r.layers[layer_index]).unwrap();
    read_all(&mut *reader).unwrap_err()
}

#[test]
fn wrong_blob_digest_is_refused_while_streaming() {
    let img = simple_image();
    let mut content = Content::default().with_image("latest", &img);
    // Same size, different bytes, still a valid gzip: only the digest can tell.
    let mut evil = image::layer(&[("etc/hellO", b"hello\n")], Comp::Gzip)
        .blob
        .data;
    evil.resize(img.layers[0].blob.data.len(), 0);
    content
        .blobs
        .insert(img.layers[0].blob.digest.clone(), evil);
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let e = layer_error(&format!("{}/{REPO}", server.host()), 0);
    assert_eq!(e.kind(), IoKind::InvalidData, "{e}");
    assert!(e.to_string().contains(&img.layers[0].blob.digest), "{e}");
}

#[test]
fn layer_size_limits_come_from_the_options() {
    let img = simple_image();
    let mut content = Content::default().with_image("latest", &img);
    // Layer 0 is served with 4 MiB more than its descriptor announces.
    let mut long = img.layers[0].blob.data.clone();
    long.extend(vec![0u8; 4 << 20]);
    content.blobs.insert("long".into(), long);
    let digest0 = img.layers[0].blob.digest.clone();
    let server = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            if req.path().ends_with(&digest0) {
                let mut r = req.clone();
                r.target = format!("/v2/{REPO}/blobs/long");
                return content.serve(&r);
            }
            content.serve(req)
        }),
    );
    let mut opts = http_opts();
    // Layer 1 decompresses to a little over 600 kB.
    opts.max_layer_size = Some(100_000);
    let src = open_source(&format!("{}/{REPO}", server.host()), &opts).unwrap();
    let r = src.resolve().unwrap();
    let e = match src.open_layer(&r.layers[0]) {
        Ok(mut l) => read_all(&mut *l).unwrap_err().to_string(),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
            e.to_string()
        }
    };
    assert!(
        e.contains(&r.layers[0].digest) && e.contains("more data than"),
        "{e}"
    );
    let e = read_all(&mut *src.open_layer(&r.layers[1]).unwrap()).unwrap_err();
    assert_eq!(e.kind(), IoKind::InvalidData);
    let m = e.to_string();
    assert!(
        m.contains(&r.layers[1].digest) && m.contains("limit of 100000 bytes"),
        "{m}"
    );
    // The default limits let the same layer through.
    let src = open_source(&format!("{}/{REPO}", server.host()), &http_opts()).unwrap();
    let tar = read_all(&mut *src.open_layer(&r.layers[1]).unwrap()).unwrap();
    assert_eq!(tar, img.layers[1].tar);
}

#[test]
fn wrong_diff_id_is_refused() {
    let mut img = simple_image();
    // A config whose diff_id for layer 0 is another layer's.
    img = image::image(
        vec![
            image::TestLayer {
                diff_id: img.layers[1].diff_id.clone(),
                ..img.layers[0].clone()
            },
            img.layers[1].clone(),
        ],
        "amd64",
        false,
    );
    let content = Content::default().with_image("latest", &img);
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let e = layer_error(&format!("{}/{REPO}", server.host()), 0);
    assert_eq!(e.kind(), IoKind::InvalidData);
    assert!(e.to_string().contains("diff_id"), "{e}");
}

#[test]
fn truncated_gzip_is_refused() {
    // The registry faithfully serves a blob that is itself a cut-off gzip stream.
    let full = image::layer(&[("f", &vec![42u8; 100_000][..])], Comp::Gzip);
    let cut = Blob::new(full.blob.data[..full.blob.data.len() / 2].to_vec());
    let layer = image::TestLayer { blob: cut, ..full };
    let img = image::image(vec![layer], "amd64", false);
    let content = Content::default().with_image("latest", &img);
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let e = layer_error(&format!("{}/{REPO}", server.host()), 0);
    assert_eq!(e.kind(), IoKind::InvalidData, "{e}");
}

#[test]
fn manifest_digest_mismatch_is_refused() {
    let img = simple_image();
    let other = image::image(vec![img.layers[0].clone()], "amd64", false);
    let mut content = Content::default().with_image("latest", &img);
    // Asked for by digest, the registry returns different bytes.
    content.manifests.insert(
        img.manifest.digest.clone(),
        (img.manifest_media_type.clone(), other.manifest.data.clone()),
    );
    let server = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            let mut reply = content.serve(req);
            if req.path().ends_with("/manifests/latest") {
                // And by tag, a Docker-Content-Digest that does not match the body.
                reply.headers.retain(|(k, _)| k != "Docker-Content-Digest");
                reply = reply.header("Docker-Content-Digest", image::sha256(b"something else"));
            }
            reply
        }),
    );
    let e = open_source(
        &format!("{}/{REPO}@{}", server.host(), img.manifest.digest),
        &http_opts(),
    )
    .unwrap()
    .resolve()
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity);
    assert!(
        e.to_string().contains("digest mismatch") && e.to_string().contains(&img.manifest.digest),
        "{e}"
    );
    let e = open_source(&format!("{}/{REPO}:latest", server.host()), &http_opts())
        .unwrap()
        .resolve()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity);
    assert!(e.to_string().contains("Docker-Content-Digest"), "{e}");
}

/// Digests a hostile registry might put in a document, each of which must be
/// refused before it becomes a URL path segment.
fn hostile_digests() -> Vec<String> {
    let hex = "ab".repeat(32);
    vec![
        "sha256:../../x".to_string(),
        format!("sha256:../../../../{}", &hex[12..]),
        format!("sha256:{}", &hex[2..]),
        format!("sha256:{}", hex.to_uppercase()),
        format!("blake9:{hex}"),
        format!("sha256:{hex}?x=1"),
    ]
}

#[test]
fn hostile_digests_in_documents_are_never_requested() {
    let img = simple_image();
    for bad in hostile_digests() {
        let mut content = Content::default().with_image("good", &img);
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": bad, "size": 100, "platform": {"os": "linux", "architecture": "amd64"}}]});
        let index = Blob::new(serde_json::to_vec(&index).unwrap());
        content = content.with_index("index", &index);
        let mut doc: serde_json::Value = serde_json::from_slice(&img.manifest.data).unwrap();
        doc["config"]["digest"] = serde_json::json!(bad);
        let bad_config = serde_json::to_vec(&doc).unwrap();
        let mut doc: serde_json::Value = serde_json::from_slice(&img.manifest.data).unwrap();
        doc["layers"][1]["digest"] = serde_json::json!(bad);
        let bad_layer = serde_json::to_vec(&doc).unwrap();
        let mt = img.manifest_media_type.clone();
        content
            .manifests
            .insert("config".into(), (mt.clone(), bad_config));
        content.manifests.insert("layer".into(), (mt, bad_layer));
        let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
        let mut opts = http_opts();
        opts.platform = Some(Platform::parse("linux/amd64").unwrap());
        for tag in ["index", "config", "layer"] {
            let e = open_source(&format!("{}/{REPO}:{tag}", server.host()), &opts)
                .unwrap()
                .resolve()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Integrity, "{tag} {bad}: {e}");
            assert!(e.to_string().contains(&bad), "{tag} {bad}: {e}");
        }
        // Only the three tags were asked for: no manifest by the bad digest, no blob at all.
        let paths: Vec<String> = server
            .requests()
            .iter()
            .filter(|r| r.path() != "/v2/")
            .map(|r| r.target.clone())
            .collect();
        assert_eq!(
            paths,
            ["index", "config", "layer"].map(|t| format!("/v2/{REPO}/manifests/{t}")),
            "{bad}"
        );
    }
}

#[test]
fn manifests_served_as_something_else_are_refused() {
    let img = simple_image();
    let mut content = Content::default().with_image("good", &img);
    // By tag, a manifest body whose Content-Type says index.
    content.manifests.insert(
        "served-as-index".into(),
        (
            "application/vnd.oci.image.index.v1+json".into(),
            img.manifest.data.clone(),
        ),
    );
    // An index whose entry promises an index where the registry has a manifest.
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": img.manifest.digest, "size": img.manifest.data.len(),
            "platform": {"os": "linux", "architecture": "amd64"}}]});
    let index = Blob::new(serde_json::to_vec(&index).unwrap());
    content = content.with_index("promised-index", &index);
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let mut opts = http_opts();
    opts.platform = Some(Platform::parse("linux/amd64").unwrap());
    pull_and_check(&format!("{}/{REPO}:good", server.host()), &opts, &img);
    for tag in ["served-as-index", "promised-index"] {
        let e = open_source(&format!("{}/{REPO}:{tag}", server.host()), &opts)
            .unwrap()
            .resolve()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity, "{tag}: {e}");
        assert!(e.to_string().contains("ambiguous"), "{tag}: {e}");
    }
}

#[test]
fn schema1_is_refused_with_a_clear_message() {
    let mut content = Content::default();
    content.manifests.insert(
        "old".into(),
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
            br#"{"schemaVersion":1,"name":"test/img","tag":"old","architecture":"amd64","fsLayers":[],"history":[]}"#.to_vec(),
        ),
    );
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let e = open_source(&format!("{}/{REPO}:old", server.host()), &http_opts())
        .unwrap()
        .resolve()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("schema 1"), "{e}");
}

#[test]
fn index_selects_the_requested_platform() {
    let amd = simple_image();
    let arm = image::image(
        vec![image::layer(&[("arm", b"64")], Comp::Zstd)],
        "arm64",
        true,
    );
    let idx = image::index(&[(&amd, "linux/amd64"), (&arm, "linux/arm64/v8")]);
    let content = Content::default()
        .with_image("amd", &amd)
        .with_image("arm", &arm)
        .with_index("multi", &idx);
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let source = format!("{}/{REPO}:multi", server.host());
    let mut opts = http_opts();
    opts.platform = Some(Platform::parse("linux/aarch64").unwrap());
    pull_and_check(&source, &opts, &arm);
    opts.platform = Some(Platform::parse("linux/amd64").unwrap());
    pull_and_check(&source, &opts, &amd);
    opts.platform = Some(Platform::parse("linux/riscv64").unwrap());
    let e = open_source(&source, &opts).unwrap().resolve().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("linux/arm64") && !e.to_string().contains("unknown"),
        "{e}"
    );
}

#[test]
fn media_type_must_match_the_content() {
    let mut img = simple_image();
    img.layers[0].media_type = "application/vnd.oci.image.layer.v1.tar+zstd".into();
    let img = image::image(img.layers, "amd64", false);
    let content = Content::default().with_image("latest", &img);
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let src = open_source(&format!("{}/{REPO}", server.host()), &http_opts()).unwrap();
    let r = src.resolve().unwrap();
    let e = src.open_layer(&r.layers[0]).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity);
    assert!(
        e.to_string().contains("Zstd") && e.to_string().contains("Gzip"),
        "{e}"
    );
}

#[test]
fn tls_verify_refuses_plain_http_even_on_localhost() {
    let server = Server::start("127.0.0.1", Arc::new(|_| Reply::new(200, "{}")));
    let opts = SourceOptions {
        retries: Some(0),
        registries_conf: RegistriesConfFiles::Off,
        ..SourceOptions::new()
    };
    let e = resolve_error(&format!("{}/{REPO}", server.host()), &opts);
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(server.requests_to("/v2/").is_empty(), "plain http was used");
}

#[test]
fn a_stalled_server_times_out() {
    let server = Server::start(
        "127.0.0.1",
        Arc::new(|req| {
            if req.path() != "/v2/" {
                std::thread::sleep(Duration::from_secs(3));
            }
            Reply::new(200, "{}")
        }),
    );
    let opts = SourceOptions {
        timeout_read: Some(Duration::from_millis(300)),
        retries: Some(0),
        ..http_opts()
    };
    let t0 = Instant::now();
    let e = open_source(&format!("{}/{REPO}", server.host()), &opts)
        .unwrap()
        .resolve()
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string().contains("/manifests/latest") && e.to_string().contains("timed out"),
        "{e}"
    );
}

/// `open_source` then `resolve`, expecting an error.
fn resolve_error(source: &str, opts: &SourceOptions) -> sdme_registry::Error {
    match open_source(source, opts).and_then(|s| s.resolve()) {
        Ok(_) => panic!("{source} resolved"),
        Err(e) => e,
    }
}

/// A notice that records its lines.
fn recording_notice() -> (Notice, Arc<Mutex<Vec<String>>>) {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let l2 = lines.clone();
    (
        Notice(Arc::new(move |line: &str| {
            l2.lock().unwrap().push(line.to_string())
        })),
        lines,
    )
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn message_connection_refused_names_the_reference_once_and_says_it_retried() {
    let port = closed_port();
    let (notice, lines) = recording_notice();
    let opts = SourceOptions {
        retries: Some(2),
        retry_delay: Some(Duration::from_millis(10)),
        notice: Some(notice),
        ..http_opts()
    };
    let e = resolve_error(&format!("127.0.0.1:{port}/x:1"), &opts);
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!(
        e.to_string(),
        format!(
            "127.0.0.1:{port}/x:1: cannot reach registry 127.0.0.1:{port}: connection refused \
             (after 2 retries)"
        )
    );
    assert_eq!(
        *lines.lock().unwrap(),
        [
            format!(
                "http://127.0.0.1:{port}/v2/: connection refused; retrying in 0.0 s (retry 1 of 2)"
            ),
            format!(
                "http://127.0.0.1:{port}/v2/: connection refused; retrying in 0.0 s (retry 2 of 2)"
            ),
        ]
    );
}

#[test]
fn message_tls_to_a_plain_http_server_gives_the_plain_http_hint() {
    // What a Go registry (net/http) answers to a TLS ClientHello on its plain port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                  Connection: close\r\n\r\n400 Bad Request",
            );
        }
    });
    let opts = SourceOptions {
        retries: Some(3),
        registries_conf: RegistriesConfFiles::Off,
        ..SourceOptions::new()
    };
    let e = resolve_error(&format!("{host}/{REPO}:1"), &opts);
    assert_eq!(
        e.to_string(),
        format!(
            "{host}/{REPO}:1: cannot reach registry {host}: TLS handshake failed: the server does \
             not speak TLS (if it serves plain http: --tls-verify=no (TLSVerify=no), or insecure \
             = true for it in registries.conf)"
        ),
        "not retried either: it would not change"
    );
}

#[test]
fn message_refused_connection_has_no_tls_hint_with_verification_on() {
    let port = closed_port();
    let opts = SourceOptions {
        retries: Some(0),
        registries_conf: RegistriesConfFiles::Off,
        ..SourceOptions::new()
    };
    let e = resolve_error(&format!("127.0.0.1:{port}/x:1"), &opts);
    assert_eq!(
        e.to_string(),
        format!("127.0.0.1:{port}/x:1: cannot reach registry 127.0.0.1:{port}: connection refused")
    );
}

#[test]
fn message_401_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("auth.json");
    std::fs::write(&empty, "{}").unwrap();
    let server = Server::start(
        "127.0.0.1",
        Arc::new(|_| Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="reg""#)),
    );
    let host = server.host();
    let opts = SourceOptions {
        authfile: Some(empty),
        ..http_opts()
    };
    let e = resolve_error(&format!("{host}/{REPO}:1"), &opts);
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert_eq!(
        e.to_string(),
        format!(
            "{host}/{REPO}:1: registry {host} requires a user name and password, and no \
             credentials for {host} were found (see --authfile, AuthFile=)"
        )
    );
    // A 401 with no challenge at all.
    let bare = Server::start(
        "127.0.0.1",
        Arc::new(|req| {
            if req.path() == "/v2/" {
                Reply::new(200, "{}")
            } else {
                Reply::new(401, "")
            }
        }),
    );
    let host = bare.host();
    let e = resolve_error(&format!("{host}/{REPO}:1"), &opts);
    assert_eq!(
        e.to_string(),
        format!(
            "{host}/{REPO}:1: not authorized (HTTP 401): no credentials for {host} were found \
             (see --authfile, AuthFile=)"
        )
    );
}

#[test]
fn message_404_manifest() {
    let img = simple_image();
    let content = Content::default().with_image("latest", &img);
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let host = server.host();
    let e = resolve_error(&format!("{host}/{REPO}:nope"), &http_opts());
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        format!(
            "{host}/{REPO}:nope: not found: registry {host} has no manifest \"nope\" (HTTP 404)"
        )
    );
}

#[test]
fn message_digest_mismatch() {
    let img = simple_image();
    let other = image::image(vec![img.layers[0].clone()], "amd64", false);
    let mut content = Content::default().with_image("latest", &img);
    content.manifests.insert(
        img.manifest.digest.clone(),
        (img.manifest_media_type.clone(), other.manifest.data.clone()),
    );
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let host = server.host();
    let d = &img.manifest.digest;
    let e = resolve_error(&format!("{host}/{REPO}@{d}"), &http_opts());
    assert_eq!(e.kind(), ErrorKind::Integrity);
    assert_eq!(
        e.to_string(),
        format!(
            "{host}/{REPO}@{d}: manifest {d}: digest mismatch: expected {d}, got {}",
            other.manifest.digest
        )
    );
}

/// Writes `text` as a registries.conf and returns options that read only it.
fn with_conf(dir: &std::path::Path, text: &str) -> SourceOptions {
    let p = dir.join("registries.conf");
    std::fs::write(&p, text).unwrap();
    SourceOptions {
        registries_conf: RegistriesConfFiles::File(p),
        ..http_opts()
    }
}

#[test]
fn mirrors_are_tried_in_order_then_the_origin() {
    let img = simple_image();
    let content = Content::default().with_image("1", &img);
    // Mirror 1 is down; mirror 2 has no such image (404); mirror 3 fails with 503; the origin serves.
    let down = closed_port();
    let c404 = Content::default();
    let empty = Server::start(
        "127.0.0.1",
        Arc::new(move |req| c404.serve_repo("cache/test/img", req)),
    );
    let failing = Server::start(
        "127.0.0.1",
        Arc::new(|req| {
            if req.path() == "/v2/" {
                Reply::new(200, "{}")
            } else {
                Reply::new(503, "busy")
            }
        }),
    );
    let c = content.clone();
    let origin = Server::start("127.0.0.1", Arc::new(move |req| c.serve(req)));
    let dir = tempfile::tempdir().unwrap();
    let (notice, lines) = recording_notice();
    let opts = SourceOptions {
        notice: Some(notice),
        retries: Some(3),
        ..with_conf(
            dir.path(),
            &format!(
                "[[registry]]\nlocation = \"{o}\"\ninsecure = true\n\
                 [[registry.mirror]]\nlocation = \"127.0.0.1:{down}/cache\"\ninsecure = true\n\
                 [[registry.mirror]]\nlocation = \"{e}/cache\"\ninsecure = true\n\
                 [[registry.mirror]]\nlocation = \"{f}\"\ninsecure = true\n",
                o = origin.host(),
                e = empty.host(),
                f = failing.host()
            ),
        )
    };
    let source = format!("{}/{REPO}:1", origin.host());
    pull_and_check(&source, &opts, &img);
    // The mirrors were given up at once (no retries: the next source is the retry).
    assert_eq!(empty.requests_to("/v2/cache/test/img/manifests/1").len(), 1);
    assert_eq!(
        failing
            .requests_to(&format!("/v2/{REPO}/manifests/1"))
            .len(),
        1
    );
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].starts_with(&format!("mirror 127.0.0.1:{down}/cache/{REPO}:1: cannot reach registry 127.0.0.1:{down}: connection refused; trying mirror {}/cache/{REPO}:1 next", empty.host())), "{}", lines[0]);
    assert!(
        lines[1].contains("not found")
            && lines[1].ends_with(&format!("trying mirror {}/{REPO}:1 next", failing.host())),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("HTTP 503") && lines[2].ends_with(&format!("trying {source} next")),
        "{}",
        lines[2]
    );

    // The origin down as well: one error listing every source in order.
    let origin_down = closed_port();
    let opts = SourceOptions {
        notice: None,
        retries: Some(0),
        ..with_conf(
            dir.path(),
            &format!(
                "[[registry]]\nlocation = \"127.0.0.1:{origin_down}\"\ninsecure = true\n\
                 [[registry.mirror]]\nlocation = \"127.0.0.1:{down}/cache\"\ninsecure = true\n\
                 [[registry.mirror]]\nlocation = \"{e}/cache\"\ninsecure = true\n\
                 [[registry.mirror]]\nlocation = \"{f}\"\ninsecure = true\n",
                e = empty.host(),
                f = failing.host()
            ),
        )
    };
    let source = format!("127.0.0.1:{origin_down}/{REPO}:1");
    let e = resolve_error(&source, &opts);
    assert_eq!(
        e.kind(),
        ErrorKind::Io,
        "the origin's failure decides the kind"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{source}: no source could serve it: \
             mirror 127.0.0.1:{down}/cache/{REPO}:1: cannot reach registry 127.0.0.1:{down}: connection refused; \
             mirror {e}/cache/{REPO}:1: not found: registry {e} has no manifest \"1\" (HTTP 404); \
             mirror {f}/{REPO}:1: manifest \"1\": HTTP 503 from registry {f}: busy; \
             {source}: cannot reach registry 127.0.0.1:{origin_down}: connection refused",
            e = empty.host(),
            f = failing.host()
        )
    );
}

#[test]
fn a_pull_through_mirror_serves_several_hosts_with_its_own_credentials() {
    let img = simple_image();
    let content = Content::default().with_image("1", &img);
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let s2 = seen.clone();
    let c = content.clone();
    // One mirror for two origins, under a namespace per origin; it wants basic auth.
    let mirror = Server::start(
        "127.0.0.1",
        Arc::new(move |req| {
            if req.path() == "/v2/" {
                return Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="mirror""#);
            }
            s2.lock()
                .unwrap()
                .push(req.header("authorization").map(str::to_string));
            for ns in ["cache/docker.io", "cache/quay.io"] {
                if req.path().starts_with(&format!("/v2/{ns}/")) {
                    return c.serve_repo(&format!("{ns}/{REPO}"), req);
                }
            }
            Reply::new(404, "")
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    // Credentials for the mirror's host and (different ones) for the origins: only the mirror's may be sent.
    let authfile = dir.path().join("auth.json");
    std::fs::write(
        &authfile,
        format!(
            r#"{{"auths":{{"{m}":{{"auth":"{a}"}},"docker.io":{{"auth":"{b}"}},"quay.io":{{"auth":"{b}"}}}}}}"#,
            m = mirror.host(),
            a = base64("mirror-user:mirror-pass"),
            b = base64("origin-user:origin-pass")
        ),
    )
    .unwrap();
    let opts = SourceOptions {
        authfile: Some(authfile),
        ..with_conf(
            dir.path(),
            &format!(
                "[[registry]]\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{m}/cache/docker.io\"\ninsecure = true\n\
                 [[registry]]\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"{m}/cache/quay.io\"\ninsecure = true\n",
                m = mirror.host()
            ),
        )
    };
    // The origins are never contacted: the mirror has the images (they would
    // need the network, which a test never uses).
    pull_and_check(&format!("docker.io/{REPO}:1"), &opts, &img);
    pull_and_check(&format!("quay.io/{REPO}:1"), &opts, &img);
    let want = format!("Basic {}", base64("mirror-user:mirror-pass"));
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|a| a.as_deref() == Some(want.as_str())),
        "{seen:?}"
    );
}

#[test]
fn insecure_in_registries_conf_allows_plain_http_unless_tls_verify_is_pinned() {
    let img = simple_image();
    let content = Content::default().with_image("1", &img);
    let server = Server::start("127.0.0.1", Arc::new(move |req| content.serve(req)));
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
        server.host()
    );
    let source = format!("{}/{REPO}:1", server.host());
    let opts = SourceOptions {
        tls_verify: true,
        retries: Some(0),
        ..with_conf(dir.path(), &conf)
    };
    pull_and_check(&source, &opts, &img);
    let pinned = SourceOptions {
        tls_verify_pinned: true,
        ..opts.clone()
    };
    assert_eq!(resolve_error(&source, &pinned).kind(), ErrorKind::Io);
    // Blocked: refused before anything is contacted.
    let before = server.requests().len();
    let blocked = with_conf(dir.path(), &format!("{conf}blocked = true\n"));
    let e = resolve_error(&source, &blocked);
    assert_eq!(e.kind(), ErrorKind::Blocked);
    assert_eq!(server.requests().len(), before);
}
