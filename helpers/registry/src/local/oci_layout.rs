//! An OCI image layout (index.json + blobs/ALG/HEX), from a directory or a tar.

use super::files::Files;
use crate::error::{Error, ErrorKind};
use crate::manifest::Descriptor;
use crate::resolve::{Fetched, Fetcher, MAX_DOCUMENT_SIZE};
use serde::Deserialize;
use std::io::Read;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

pub struct OciLayout {
    files: Box<dyn Files>,
    describe: String,
    root: Fetched,
}

impl OciLayout {
    pub fn open(
        files: Box<dyn Files>,
        tag: Option<&str>,
        describe: String,
    ) -> Result<OciLayout, Error> {
        let layout = files.read("oci-layout", 64 * 1024).map_err(|e| {
            Error::new(
                e.kind(),
                format!("{describe}: not an OCI image layout (oci-layout: {e})"),
            )
        })?;
        if !String::from_utf8_lossy(&layout).contains("imageLayoutVersion") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{describe}: oci-layout has no imageLayoutVersion"),
            ));
        }
        let index_raw = files
            .read("index.json", MAX_DOCUMENT_SIZE)
            .map_err(|e| e.context(&describe))?;
        let index: Index = serde_json::from_slice(&index_raw).map_err(|e| {
            Error::new(ErrorKind::Integrity, format!("{describe}: index.json: {e}"))
        })?;
        let tag_of = |d: &Descriptor| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .cloned()
        };
        let chosen = match tag {
            Some(t) => index
                .manifests
                .iter()
                .find(|d| tag_of(d).as_deref() == Some(t)),
            None if index.manifests.len() == 1 => index.manifests.first(),
            // Untagged entries only: index.json itself is the index to select from.
            None if index.manifests.iter().all(|d| tag_of(d).is_none()) => None,
            None => {
                let tags: Vec<String> = index.manifests.iter().filter_map(tag_of).collect();
                return Err(Error::new(
                    ErrorKind::InvalidReference,
                    format!(
                        "{describe}: several images in the layout, name one of: {}",
                        tags.join(", ")
                    ),
                ));
            }
        };
        let root = match (chosen, tag) {
            (Some(d), _) => {
                let raw = read_blob_bytes(files.as_ref(), &d.digest, &describe)?;
                Fetched {
                    raw,
                    media_type: (!d.media_type.is_empty()).then(|| d.media_type.clone()),
                    expected_digest: Some(d.digest.clone()),
                }
            }
            (None, Some(t)) => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{describe}: no image tagged {t:?} in index.json"),
                ))
            }
            (None, None) => Fetched {
                raw: index_raw,
                media_type: Some(crate::media::OCI_INDEX.to_string()),
                expected_digest: None,
            },
        };
        Ok(OciLayout {
            files,
            describe,
            root,
        })
    }
}

fn blob_path(digest: &str, describe: &str) -> Result<String, Error> {
    crate::reference::validate_digest(digest)
        .map_err(|why| Error::new(ErrorKind::Integrity, format!("{describe}: {why}")))?;
    Ok(format!("blobs/{}", digest.replacen(':', "/", 1)))
}

fn read_blob_bytes(files: &dyn Files, digest: &str, describe: &str) -> Result<Vec<u8>, Error> {
    files
        .read(&blob_path(digest, describe)?, MAX_DOCUMENT_SIZE)
        .map_err(|e| e.context(describe))
}

impl Fetcher for OciLayout {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn root_manifest(&self) -> Result<Fetched, Error> {
        Ok(Fetched {
            raw: self.root.raw.clone(),
            media_type: self.root.media_type.clone(),
            expected_digest: self.root.expected_digest.clone(),
        })
    }

    fn manifest(&self, digest: &str) -> Result<Fetched, Error> {
        Ok(Fetched {
            raw: read_blob_bytes(self.files.as_ref(), digest, &self.describe)?,
            media_type: None,
            expected_digest: Some(digest.to_string()),
        })
    }

    fn blob(&self, digest: &str, _size: u64) -> Result<Box<dyn Read + Send>, Error> {
        let (r, _) = self
            .files
            .open(&blob_path(digest, &self.describe)?)
            .map_err(|e| e.context(&self.describe))?;
        Ok(r)
    }
}
