//! Proxy environment variables and NO_PROXY. A test binary of its own: it
//! changes the process environment.

mod common;

use common::server::{Reply, Server};
use sdme_registry::{open_source, ErrorKind, SourceOptions};
use std::sync::Arc;

#[test]
fn http_proxy_is_used_unless_no_proxy_matches() {
    let registry = Server::start(
        "127.0.0.1",
        Arc::new(|req| {
            if req.path() == "/v2/" {
                Reply::new(200, "{}")
            } else {
                Reply::new(404, "unknown")
            }
        }),
    );
    // The "proxy" refuses everything, so a request through it fails visibly.
    let proxy = Server::start("127.0.0.2", Arc::new(|_| Reply::new(403, "proxy says no")));
    let opts = SourceOptions {
        tls_verify: false,
        retries: Some(0),
        ..SourceOptions::new()
    };
    let source = format!("{}/test/img:1", registry.host());
    for v in [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        std::env::remove_var(v);
    }

    std::env::set_var("HTTP_PROXY", proxy.url());
    let e = open_source(&source, &opts)
        .and_then(|s| s.resolve())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let seen = proxy.requests();
    assert!(!seen.is_empty(), "nothing went through the proxy");
    assert!(
        seen.iter().all(|r| r.target.contains(&registry.host())),
        "{seen:?}"
    );
    assert!(
        registry.requests().is_empty(),
        "the registry was contacted directly"
    );

    std::env::set_var("NO_PROXY", "localhost,127.0.0.1");
    let before = proxy.requests().len();
    let e = open_source(&source, &opts)
        .and_then(|s| s.resolve())
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::NotFound,
        "reached the registry directly: {e}"
    );
    assert_eq!(
        proxy.requests().len(),
        before,
        "NO_PROXY host went through the proxy"
    );
}
