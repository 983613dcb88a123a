//! TLS trust: the system's CA bundle (or the built-in Mozilla roots when the
//! system has none) plus `--cert-dir` CAs: `DIR/*.crt` and the certs.d-style
//! `DIR/HOST[:PORT]/*.crt`.

use crate::error::{Error, ErrorKind};
use std::path::Path;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

fn pem_certs(path: &Path, out: &mut Vec<Certificate<'static>>) -> Result<(), Error> {
    let what = path.display().to_string();
    let data =
        std::fs::read(path).map_err(|e| Error::new(ErrorKind::Io, format!("{what}: {e}")))?;
    for item in ureq::tls::parse_pem(&data) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c.to_owned()),
            Ok(_) => {}
            Err(e) => return Err(Error::new(ErrorKind::Io, format!("{what}: bad PEM: {e}"))),
        }
    }
    Ok(())
}

fn crt_files(dir: &Path, out: &mut Vec<Certificate<'static>>) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::new(ErrorKind::Io, format!("{}: {e}", dir.display()))),
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt") && p.is_file())
        .collect();
    paths.sort();
    for p in paths {
        pem_certs(&p, out)?;
    }
    Ok(())
}

/// The TLS configuration for talking to `domain` (`host[:port]`).
pub fn config(tls_verify: bool, cert_dir: Option<&Path>, domain: &str) -> Result<TlsConfig, Error> {
    if !tls_verify {
        return Ok(TlsConfig::builder().disable_verification(true).build());
    }
    let mut certs = Vec::new();
    if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        pem_certs(bundle, &mut certs)?;
    }
    let system_found = !certs.is_empty();
    if let Some(dir) = cert_dir {
        if !dir.is_dir() {
            return Err(Error::new(
                ErrorKind::Io,
                format!("--cert-dir {}: not a directory", dir.display()),
            ));
        }
        crt_files(dir, &mut certs)?;
        crt_files(&dir.join(domain), &mut certs)?;
        let host = crate::reference::host_without_port(domain);
        if host != domain {
            crt_files(&dir.join(host), &mut certs)?;
        }
    }
    // Without a system bundle, extra CAs replace the built-in roots: ureq
    // cannot combine the two (documented in sdme-import(8)).
    let _ = system_found;
    let roots = if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&certs)
    };
    Ok(TlsConfig::builder().root_certs(roots).build())
}
