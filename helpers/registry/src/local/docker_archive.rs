//! `docker save` archives: manifest.json naming a config file and layer tars.
//! A Docker v2s2 manifest is synthesized from them, so the rest of the
//! pipeline (and its verification) is the same as for any other source.

use super::files::Files;
use crate::digest::{sha256_of, Hasher};
use crate::error::{Error, ErrorKind};
use crate::media::{self, sniff_compression};
use crate::resolve::{Fetched, Fetcher, MAX_DOCUMENT_SIZE};
use crate::Compression;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigRootfs {
    rootfs: Rootfs,
}

#[derive(Deserialize)]
struct Rootfs {
    diff_ids: Vec<String>,
}

pub struct DockerArchive {
    files: Box<dyn Files>,
    describe: String,
    manifest: Vec<u8>,
    /// digest → path inside the archive
    paths: HashMap<String, String>,
}

impl DockerArchive {
    pub fn open(
        files: Box<dyn Files>,
        name: Option<&str>,
        describe: String,
    ) -> Result<DockerArchive, Error> {
        let what = format!("{describe}: manifest.json");
        let raw = files
            .read("manifest.json", MAX_DOCUMENT_SIZE)
            .map_err(|e| e.context(&describe))?;
        let entries: Vec<Entry> = serde_json::from_slice(&raw)
            .map_err(|e| Error::new(ErrorKind::Integrity, format!("{what}: {e}")))?;
        let entry = match name {
            Some(n) => entries.iter().find(|e| {
                e.repo_tags
                    .iter()
                    .flatten()
                    .any(|t| t == n || t.strip_prefix("docker.io/") == Some(n))
            }),
            None if entries.len() == 1 => entries.first(),
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidReference,
                    format!(
                    "{what}: {} images in the archive; name one as docker-archive:FILE:NAME:TAG",
                    entries.len()
                ),
                ))
            }
        }
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{what}: no image named {name:?}"),
            )
        })?;

        let config_raw = files
            .read(&entry.config, MAX_DOCUMENT_SIZE)
            .map_err(|e| e.context(&describe))?;
        let config_digest = sha256_of(&config_raw);
        let rootfs: ConfigRootfs = serde_json::from_slice(&config_raw).map_err(|e| {
            Error::new(
                ErrorKind::Integrity,
                format!("{describe}: {}: {e}", entry.config),
            )
        })?;
        if rootfs.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "{describe}: {} layers but {} diff_ids in the config",
                    entry.layers.len(),
                    rootfs.rootfs.diff_ids.len()
                ),
            ));
        }
        let mut paths = HashMap::from([(config_digest.clone(), entry.config.clone())]);
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&rootfs.rootfs.diff_ids) {
            let (mut r, size) = files.open(path).map_err(|e| e.context(&describe))?;
            let mut head = [0u8; 4];
            let n = read_head(&mut r, &mut head)
                .map_err(|e| Error::new(ErrorKind::Io, format!("{describe}: {path}: {e}")))?;
            let compression = sniff_compression(&head[..n]);
            let digest = match (compression, blob_name_digest(path)) {
                // Legacy layers are plain tars: the blob digest is the diff_id (checked while streaming).
                (Compression::None, _) => diff_id.clone(),
                (_, Some(d)) => d,
                (_, None) => hash_file(files.as_ref(), path).map_err(|e| e.context(&describe))?,
            };
            let media_type = match compression {
                Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
                Compression::Gzip => media::DOCKER_LAYER_GZIP,
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            paths.insert(digest.clone(), path.clone());
            layers
                .push(serde_json::json!({"mediaType": media_type, "size": size, "digest": digest}));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::DOCKER_MANIFEST,
            "config": {"mediaType": media::DOCKER_CONFIG, "size": config_raw.len(), "digest": config_digest},
            "layers": layers,
        }))
        .map_err(|e| Error::new(ErrorKind::Io, format!("{describe}: {e}")))?;
        Ok(DockerArchive {
            files,
            describe,
            manifest,
            paths,
        })
    }
}

fn read_head(r: &mut dyn Read, head: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `blobs/sha256/HEX` (newer `docker save`) names its digest.
fn blob_name_digest(path: &str) -> Option<String> {
    let hex = path.strip_prefix("blobs/sha256/")?;
    let d = format!("sha256:{hex}");
    crate::reference::validate_digest(&d).ok().map(|_| d)
}

fn hash_file(files: &dyn Files, path: &str) -> Result<String, Error> {
    let (mut r, _) = files.open(path)?;
    let mut h = Hasher::for_digest(&sha256_of(b""))?;
    let mut buf = vec![0u8; crate::layer_stream::BUFFER_SIZE];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) => return Err(Error::new(ErrorKind::Io, format!("{path}: {e}"))),
        }
    }
    Ok(h.finish())
}

impl Fetcher for DockerArchive {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn root_manifest(&self) -> Result<Fetched, Error> {
        Ok(Fetched {
            raw: self.manifest.clone(),
            media_type: Some(media::DOCKER_MANIFEST.to_string()),
            expected_digest: None,
        })
    }

    fn manifest(&self, digest: &str) -> Result<Fetched, Error> {
        Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{}: no manifest {digest} in a docker archive",
                self.describe
            ),
        ))
    }

    fn blob(&self, digest: &str, _size: u64) -> Result<Box<dyn Read + Send>, Error> {
        let path = self.paths.get(digest).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{}: no blob {digest}", self.describe),
            )
        })?;
        let (r, _) = self
            .files
            .open(path)
            .map_err(|e| e.context(&self.describe))?;
        Ok(r)
    }
}
