//! Builds small test images in memory: layer tars, gzip/zstd blobs, config,
//! manifest, index.

use sha2::{Digest, Sha256};
use std::io::Write;

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone)]
pub struct Blob {
    pub data: Vec<u8>,
    pub digest: String,
}

impl Blob {
    pub fn new(data: Vec<u8>) -> Blob {
        Blob {
            digest: sha256(&data),
            data,
        }
    }
}

#[derive(Clone)]
pub struct TestLayer {
    pub tar: Vec<u8>,
    pub diff_id: String,
    pub blob: Blob,
    pub media_type: String,
}

pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn compress(data: &[u8], c: Comp) -> Vec<u8> {
    match c {
        Comp::None => data.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

pub fn layer(files: &[(&str, &[u8])], c: Comp) -> TestLayer {
    let tar = tar_of(files);
    let media_type = match c {
        Comp::None => "application/vnd.oci.image.layer.v1.tar",
        Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
    .to_string();
    TestLayer {
        diff_id: sha256(&tar),
        blob: Blob::new(compress(&tar, c)),
        tar,
        media_type,
    }
}

#[derive(Clone)]
pub struct TestImage {
    pub layers: Vec<TestLayer>,
    pub config: Blob,
    pub manifest: Blob,
    pub manifest_media_type: String,
}

pub fn image(layers: Vec<TestLayer>, arch: &str, docker: bool) -> TestImage {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = Blob::new(
        serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Entrypoint": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap(),
    );
    let (mt, config_mt) = if docker {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
        )
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        )
    };
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| {
            let media_type = if docker && l.media_type.ends_with("+gzip") {
                "application/vnd.docker.image.rootfs.diff.tar.gzip".to_string()
            } else {
                l.media_type.clone()
            };
            serde_json::json!({"mediaType": media_type, "digest": l.blob.digest, "size": l.blob.data.len()})
        })
        .collect();
    let manifest = Blob::new(
        serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": config_mt, "digest": config.digest, "size": config.data.len()},
            "layers": layer_descs,
        }))
        .unwrap(),
    );
    TestImage {
        layers,
        config,
        manifest,
        manifest_media_type: mt.to_string(),
    }
}

/// An OCI index over `images` with their platforms (`os/arch[/variant]`), plus an attestation entry.
pub fn index(images: &[(&TestImage, &str)]) -> Blob {
    let mut manifests: Vec<_> = images
        .iter()
        .map(|(img, p)| {
            let parts: Vec<&str> = p.split('/').collect();
            let mut platform = serde_json::json!({"os": parts[0], "architecture": parts[1]});
            if let Some(v) = parts.get(2) {
                platform["variant"] = serde_json::json!(v);
            }
            serde_json::json!({"mediaType": img.manifest_media_type, "digest": img.manifest.digest,
                "size": img.manifest.data.len(), "platform": platform})
        })
        .collect();
    manifests.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": images[0].0.manifest.digest, "size": images[0].0.manifest.data.len(),
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}));
    Blob::new(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests}))
        .unwrap(),
    )
}

/// Reads a layer to the end; returns the bytes or the error.
pub fn read_all(r: &mut dyn std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}
