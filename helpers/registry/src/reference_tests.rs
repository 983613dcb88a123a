//! Vectors written from the distribution/reference grammar and normalization rules.

use super::*;

const H64: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

fn ok(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
    let r = ok(s);
    (r.domain, r.path, r.tag, r.digest)
}

fn bad(s: &str) {
    let e = Reference::parse(s).expect_err(s);
    assert_eq!(e.kind(), ErrorKind::InvalidReference, "{s:?}: {e}");
}

fn p(
    d: &str,
    path: &str,
    t: Option<&str>,
    dg: Option<&str>,
) -> (String, String, Option<String>, Option<String>) {
    (d.into(), path.into(), t.map(Into::into), dg.map(Into::into))
}

#[test]
fn docker_hub_normalization() {
    assert_eq!(
        parts("busybox"),
        p("docker.io", "library/busybox", Some("latest"), None)
    );
    assert_eq!(
        parts("busybox:1.36"),
        p("docker.io", "library/busybox", Some("1.36"), None)
    );
    assert_eq!(
        parts("docker/docker"),
        p("docker.io", "docker/docker", Some("latest"), None)
    );
    assert_eq!(
        parts("library/debian"),
        p("docker.io", "library/debian", Some("latest"), None)
    );
    assert_eq!(
        parts("docker.io/debian"),
        p("docker.io", "library/debian", Some("latest"), None)
    );
    assert_eq!(
        parts("docker.io/library/debian"),
        p("docker.io", "library/debian", Some("latest"), None)
    );
    assert_eq!(
        parts("index.docker.io/debian"),
        p("docker.io", "library/debian", Some("latest"), None)
    );
    assert_eq!(
        parts("index.docker.io/docker/docker"),
        p("docker.io", "docker/docker", Some("latest"), None)
    );
    assert_eq!(
        parts("a/b/c/d"),
        p("docker.io", "a/b/c/d", Some("latest"), None)
    );
    assert_eq!(ok("busybox").api_host(), "registry-1.docker.io");
    assert_eq!(
        ok("busybox").to_string(),
        "docker.io/library/busybox:latest"
    );
}

#[test]
fn other_registries_get_no_library_prefix() {
    assert_eq!(
        parts("localhost/debian"),
        p("localhost", "debian", Some("latest"), None)
    );
    assert_eq!(
        parts("localhost:5000/debian:12"),
        p("localhost:5000", "debian", Some("12"), None)
    );
    assert_eq!(
        parts("127.0.0.1/x"),
        p("127.0.0.1", "x", Some("latest"), None)
    );
    assert_eq!(
        parts("192.168.0.1:8000/a/b"),
        p("192.168.0.1:8000", "a/b", Some("latest"), None)
    );
    assert_eq!(
        parts("foo.com/bar"),
        p("foo.com", "bar", Some("latest"), None)
    );
    assert_eq!(
        parts("test:5000/repo"),
        p("test:5000", "repo", Some("latest"), None)
    );
    assert_eq!(
        parts("sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
        p(
            "sub-dom1.foo.com",
            "bar/baz/quux",
            Some("some-long-tag"),
            None
        )
    );
    assert_eq!(
        parts("b.gcr.io/test.example.com/my-app:test.example.com"),
        p(
            "b.gcr.io",
            "test.example.com/my-app",
            Some("test.example.com"),
            None
        )
    );
    assert_eq!(
        parts("xn--n3h.com/myimage:xn--n3h.com"),
        p("xn--n3h.com", "myimage", Some("xn--n3h.com"), None)
    );
    assert_eq!(ok("foo.com:8000/bar").api_host(), "foo.com:8000");
    // An uppercase first component can only be a host: namespaces are lowercase.
    assert_eq!(parts("Foo/bar"), p("Foo", "bar", Some("latest"), None));
}

#[test]
fn without_slash_the_colon_is_a_tag() {
    assert_eq!(
        parts("test.com:5000"),
        p("docker.io", "library/test.com", Some("5000"), None)
    );
    assert_eq!(
        parts("foo_bar.com:8080"),
        p("docker.io", "library/foo_bar.com", Some("8080"), None)
    );
    assert_eq!(
        parts("test_com"),
        p("docker.io", "library/test_com", Some("latest"), None)
    );
}

#[test]
fn ipv6_hosts() {
    assert_eq!(
        parts("[::1]:5000/repo"),
        p("[::1]:5000", "repo", Some("latest"), None)
    );
    assert_eq!(
        parts("[2001:db8::1]/repo:tag"),
        p("[2001:db8::1]", "repo", Some("tag"), None)
    );
    assert_eq!(
        parts("[2001:db8:1:2:3:4:5:6]:443/a/b"),
        p("[2001:db8:1:2:3:4:5:6]:443", "a/b", Some("latest"), None)
    );
    assert!(ok("[::1]:5000/repo").is_loopback());
    bad("[fe80::1%eth0]:5000/repo");
    bad("2001:db8::1/repo");
    bad("[::1]:/repo");
    bad("[]:5000/repo");
    bad("[::1]:5000");
}

#[test]
fn digests_and_tags() {
    let d = format!("sha256:{H64}");
    assert_eq!(
        parts(&format!("repo@{d}")),
        p("docker.io", "library/repo", None, Some(&d))
    );
    assert_eq!(
        parts(&format!("test:5000/repo@{d}")),
        p("test:5000", "repo", None, Some(&d))
    );
    let r = ok(&format!("test:5000/repo:tag@{d}"));
    assert_eq!(
        (r.tag.as_deref(), r.digest.as_deref()),
        (Some("tag"), Some(d.as_str()))
    );
    assert_eq!(r.manifest_reference(), d);
    assert_eq!(r.to_string(), format!("test:5000/repo:tag@{d}"));
    let sha512 = format!("sha512:{}", "f".repeat(128));
    assert_eq!(
        ok(&format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}")).digest,
        Some(sha512)
    );
    assert_eq!(ok("lowercase:Uppercase").tag.as_deref(), Some("Uppercase"));
    assert_eq!(ok("a:_tag").tag.as_deref(), Some("_tag"));
    ok(&format!("a:{}", "t".repeat(128)));
    bad(&format!("a:{}", "t".repeat(129)));
    bad("a:.tag");
    bad("a:-tag");
    bad("a:ta@g");
    bad("a:");
    bad(&format!("validname@invaliddigest:{H64}"));
    bad(&format!("repo@sha256:{}", &H64[1..]));
    bad(&format!("repo@sha256:{}", H64.to_uppercase()));
    bad("repo@sha256:xyz");
    bad("repo@sha256");
    bad("repo@");
    bad(&format!("@sha256:{H64}"));
}

#[test]
fn malformed_names() {
    bad("");
    bad(":justtag");
    bad("aa/asdf$$^/aa");
    bad("Uppercase:tag");
    bad("test:5000/Uppercase/lowercase:tag");
    bad("docker.io/Foo");
    bad("a//b");
    bad("a/");
    bad("/a");
    bad("-a/b");
    bad("a-/b");
    bad("a/b-");
    bad("a/.b");
    bad("a/b..c");
    bad("a/b___c");
    bad("-host.com/a");
    bad("host-.com/a");
    bad("host..com/a");
    bad("host:port/a");
    bad("host:/a");
    bad(H64);
    ok("a/b__c");
    ok("a/b---c");
    ok("a/b.c_d-e");
}

#[test]
fn name_length_limit_counts_the_path_only() {
    // distribution/reference v0.6: 255 characters of path, whatever the host's length.
    let path_255 = format!("{}a", "a/".repeat(127));
    assert_eq!(path_255.len(), 255);
    let long_host = format!("{}.example.com:5000", "h".repeat(60));
    ok(&format!("{long_host}/{path_255}:tag-not-counted"));
    ok(&format!("{long_host}/{path_255}@sha256:{H64}"));
    bad(&format!("{long_host}/{path_255}b"));
    bad(&format!("{long_host}/a{path_255}"));
    // Docker Hub's implied `library/` is part of the path it counts.
    let short = "a".repeat(255 - "library/".len());
    assert_eq!(ok(&short).path.len(), 255);
    bad(&format!("{short}b"));
    let e = Reference::parse(&format!("{long_host}/a{path_255}")).unwrap_err();
    assert!(e.to_string().contains("longer than 255"), "{e}");
}

#[test]
fn loopback_detection() {
    assert!(ok("localhost:5000/a").is_loopback());
    assert!(ok("127.0.0.2:5000/a").is_loopback());
    assert!(!ok("example.com/a").is_loopback());
    assert!(!ok("busybox").is_loopback());
}

#[test]
fn hostile_digests_are_refused() {
    validate_digest(&format!("sha256:{H64}")).unwrap();
    validate_digest(&format!("sha512:{}", "0".repeat(128))).unwrap();
    for d in [
        "sha256:../../x".to_string(),
        format!("sha256:../../{}", &H64[6..]),
        format!("sha256:{}/..", &H64[3..]),
        format!("sha256:{}", &H64[1..]),
        format!("sha256:{H64}0"),
        format!("sha256:{}", H64.to_uppercase()),
        format!("SHA256:{H64}"),
        format!("md5:{}", &H64[..32]),
        format!("blake3:{H64}"),
        format!("sha512:{H64}"),
        format!("sha256:{H64}\n"),
        format!("sha256:{}%2f", &H64[3..]),
        format!("/sha256:{H64}"),
        H64.to_string(),
        String::new(),
    ] {
        assert!(validate_digest(&d).is_err(), "{d:?} was accepted");
    }
}
