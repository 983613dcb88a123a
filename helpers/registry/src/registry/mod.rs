//! The registry source: the distribution API over [`client::Client`].

mod blob;
mod challenge;
mod client;
mod tls;
mod url;

use crate::digest::verify_bytes;
use crate::error::{Error, ErrorKind};
use crate::media::MANIFEST_ACCEPT;
use crate::reference::Reference;
use crate::resolve::{Fetched, Fetcher, MAX_DOCUMENT_SIZE};
use crate::SourceOptions;
use client::Client;
use std::io::Read;
use std::sync::Arc;

pub struct Registry {
    reference: Reference,
    client: Arc<Client>,
}

impl Registry {
    pub fn connect(reference: Reference, opts: &SourceOptions) -> Result<Registry, Error> {
        let client = Client::connect(
            reference.api_host(),
            &reference.domain,
            &reference.path,
            opts,
        )
        .map_err(|e| e.context(&reference))?;
        Ok(Registry {
            reference,
            client: Arc::new(client),
        })
    }

    fn fetch_manifest(&self, reference: &str) -> Result<Fetched, Error> {
        let path = format!("/v2/{}/manifests/{reference}", self.reference.path);
        let what = format!("{}{path}", self.client.base());
        let resp = self
            .client
            .get(&path, &[("Accept", MANIFEST_ACCEPT.to_string())])?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.into_body();
        let raw = body
            .with_config()
            .limit(MAX_DOCUMENT_SIZE)
            .read_to_vec()
            .map_err(|e| Error::new(ErrorKind::Io, format!("{what}: {e}")))?;
        match status {
            200 => {}
            404 => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{what}: manifest unknown (404)"),
                ))
            }
            s => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "{what}: HTTP {s}: {}",
                        String::from_utf8_lossy(&raw)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ),
                ))
            }
        }
        let expected_digest = if reference.contains(':') {
            Some(reference.to_string())
        } else {
            // By tag: the registry's digest header, when it is a sha256, must match the bytes.
            if let Some(d) = header_digest.filter(|d| d.starts_with("sha256:")) {
                verify_bytes(&d, &raw, &format!("{what} (Docker-Content-Digest)"))?;
            }
            None
        };
        Ok(Fetched {
            raw,
            media_type: content_type,
            expected_digest,
        })
    }
}

impl Fetcher for Registry {
    fn describe(&self) -> String {
        self.reference.to_string()
    }

    fn root_manifest(&self) -> Result<Fetched, Error> {
        let mut f = self.fetch_manifest(self.reference.manifest_reference())?;
        f.expected_digest = self.reference.digest.clone();
        Ok(f)
    }

    fn manifest(&self, digest: &str) -> Result<Fetched, Error> {
        // It becomes a URL path segment: `sha256:../../x` must never be sent.
        crate::reference::validate_digest(digest).map_err(|why| {
            Error::new(ErrorKind::Integrity, format!("{}: {why}", self.reference))
        })?;
        self.fetch_manifest(digest)
    }

    fn blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>, Error> {
        crate::reference::validate_digest(digest).map_err(|why| {
            Error::new(ErrorKind::Integrity, format!("{}: {why}", self.reference))
        })?;
        Ok(Box::new(blob::BlobReader::open(
            self.client.clone(),
            digest,
            size,
        )?))
    }
}
