//! Against a real registry and real tools' output: run by tests/registry/run.sh,
//! which starts docker-registry, pushes images with skopeo and writes the
//! cases (one JSON object a line) to $SDME_TEST_REGISTRY_CASES. Ignored in a
//! plain `cargo test`; run alone it fails unless that environment is set.

use sdme_registry::{open_source, Platform, RegistriesConfFiles, SourceOptions};
use serde::Deserialize;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Deserialize, Debug)]
struct Case {
    name: String,
    source: String,
    platform: Option<String>,
    tls_verify: bool,
    cert_dir: Option<PathBuf>,
    authfile: Option<PathBuf>,
    expect_error: Option<String>,
    /// Text the error message must contain, when one is expected.
    expect_message: Option<String>,
    /// A registries.conf for this case only; none is read otherwise.
    registries_conf: Option<PathBuf>,
    manifest_digest: Option<String>,
    layers: Option<Vec<String>>,
    media_types: Option<Vec<String>>,
    diff_ids: Option<Vec<String>>,
}

fn options(c: &Case) -> SourceOptions {
    let mut o = SourceOptions::new();
    o.tls_verify = c.tls_verify;
    o.cert_dir = c.cert_dir.clone();
    o.authfile = c.authfile.clone();
    o.platform = c.platform.as_deref().map(|p| Platform::parse(p).unwrap());
    o.retries = Some(1);
    o.registries_conf = match &c.registries_conf {
        Some(p) => RegistriesConfFiles::File(p.clone()),
        None => RegistriesConfFiles::Off,
    };
    o
}

/// Resolves and reads every layer; returns (layers, uncompressed bytes, seconds).
fn run_case(c: &Case) -> Result<(usize, u64, f64), String> {
    let opts = options(c);
    let t0 = Instant::now();
    let outcome = open_source(&c.source, &opts).and_then(|s| s.resolve().map(|r| (s, r)));
    if let Some(want) = &c.expect_error {
        return match outcome {
            Ok(_) => Err(format!("expected a {want} error, but it resolved")),
            Err(e) if format!("{:?}", e.kind()) == *want => match &c.expect_message {
                Some(m) if !e.to_string().contains(m.as_str()) => {
                    Err(format!("the {want} error does not say {m:?}: {e}"))
                }
                _ => {
                    println!("  refused as expected: {e}");
                    Ok((0, 0, 0.0))
                }
            },
            Err(e) => Err(format!("expected a {want} error, got {:?}: {e}", e.kind())),
        };
    }
    let (src, r) = outcome.map_err(|e| format!("{e}"))?;
    if let Some(d) = &c.manifest_digest {
        if &r.manifest_digest != d {
            return Err(format!(
                "manifest digest {} != skopeo's {d}",
                r.manifest_digest
            ));
        }
    }
    let digests: Vec<String> = r.layers.iter().map(|l| l.digest.clone()).collect();
    let diff_ids: Vec<String> = r.layers.iter().map(|l| l.diff_id.clone()).collect();
    let media_types: Vec<String> = r.layers.iter().map(|l| l.media_type.clone()).collect();
    if let Some(want) = &c.layers {
        if &digests != want {
            return Err(format!("layer digests {digests:?} != skopeo's {want:?}"));
        }
    }
    if let Some(want) = &c.media_types {
        if &media_types != want {
            return Err(format!("media types {media_types:?} != {want:?}"));
        }
    }
    let want_diff_ids = match &c.diff_ids {
        Some(d) => d.clone(),
        None => {
            let p =
                std::env::var("SDME_TEST_DOCKER_ARCHIVE_DIFF_IDS").map_err(|e| e.to_string())?;
            serde_json::from_slice(&std::fs::read(p).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?
        }
    };
    if diff_ids != want_diff_ids {
        return Err(format!("diff_ids {diff_ids:?} != {want_diff_ids:?}"));
    }
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for l in &r.layers {
        let mut reader = src.open_layer(l).map_err(|e| e.to_string())?;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) => return Err(format!("layer {}: {e}", l.digest)),
            }
        }
    }
    Ok((r.layers.len(), total, t0.elapsed().as_secs_f64()))
}

#[test]
#[ignore = "needs the registry tier's environment: run tests/registry/run.sh"]
fn real_registry_cases() {
    let path = std::env::var("SDME_TEST_REGISTRY_CASES")
        .expect("SDME_TEST_REGISTRY_CASES is not set: run tests/registry/run.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let cases: Vec<Case> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(cases.len() >= 10, "too few cases in {path}");
    let mut failed = Vec::new();
    for c in &cases {
        println!("case {}: {}", c.name, c.source);
        match run_case(c) {
            Ok((layers, bytes, secs)) if bytes > 0 => println!(
                "  ok: {layers} layers' tar streams verified, {bytes} bytes in {secs:.3} s ({:.0} MB/s)",
                bytes as f64 / secs / 1e6
            ),
            Ok(_) => {}
            Err(e) => {
                println!("  FAILED: {e}");
                failed.push(c.name.clone());
            }
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}
