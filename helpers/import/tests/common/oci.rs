//! Small OCI image layouts built in the test itself (no umoci), byte for
//! byte the same on every run: one uncompressed layer and a configuration
//! the test chooses, including configurations no image builder would write.

use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;

pub enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
}

fn sha256(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

pub fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::File(path, data, mode) => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
            Entry::Dir(path, mode) => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
            Entry::Symlink(path, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn blob(dir: &Path, data: &[u8]) -> String {
    let hex = sha256(data);
    fs::write(dir.join("blobs/sha256").join(&hex), data).unwrap();
    format!("sha256:{hex}")
}

/// Writes an OCI layout at `dir` with one image tagged `latest` whose
/// configuration's `config` is `run_config` (any JSON, hostile or not), and
/// returns its `oci:` source.
pub fn layout(dir: &Path, layer_tar: &[u8], run_config: serde_json::Value) -> String {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layer_digest = blob(dir, layer_tar);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": run_config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = blob(dir, &config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_bytes.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_tar.len(),
        }],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = blob(dir, &manifest_bytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    format!("oci:{}:latest", dir.display())
}
