//! Resolution shared by every source: the root manifest, through an index to
//! one platform's manifest, then the config; every document verified against
//! the digest that named it.

use crate::digest::{sha256_of, verify_bytes};
use crate::error::{Error, ErrorKind};
use crate::manifest::{self, Parsed};
use crate::{layer_stream, media, ImageSource, Layer, Platform, ResolvedImage};
use std::io::Read;

/// Largest manifest or config accepted (they are small JSON documents).
pub const MAX_DOCUMENT_SIZE: u64 = 8 * 1024 * 1024;

/// Refuses a digest a document names before it is used for anything (a URL
/// path, a file name in a layout, a map key): containers/image CVE-2024-3727.
fn check_digest(digest: &str, what: &str) -> Result<(), Error> {
    crate::reference::validate_digest(digest)
        .map_err(|why| Error::new(ErrorKind::Integrity, format!("{what}: {why}")))
}

/// A manifest document as fetched.
pub struct Fetched {
    pub raw: Vec<u8>,
    /// Media type from the transport (HTTP `Content-Type`, descriptor), if any.
    pub media_type: Option<String>,
    /// Digest the document must have, if the source named one.
    pub expected_digest: Option<String>,
}

/// What a concrete source must provide; [`Resolver`] does the rest.
pub trait Fetcher: Send + Sync {
    fn describe(&self) -> String;
    /// The manifest (or index) the source string points at.
    fn root_manifest(&self) -> Result<Fetched, Error>;
    /// A manifest named by digest from an index.
    fn manifest(&self, digest: &str) -> Result<Fetched, Error>;
    /// A raw blob stream (not yet verified).
    fn blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>, Error>;
    /// False when media types are synthesized rather than recorded (docker-archive).
    fn media_types_are_authoritative(&self) -> bool {
        true
    }
}

/// Implements [`ImageSource`] over any [`Fetcher`].
pub struct Resolver<F> {
    pub fetcher: F,
    pub platform: Platform,
    pub limits: layer_stream::Limits,
}

impl<F: Fetcher> Resolver<F> {
    fn read_small_blob(&self, digest: &str, size: u64, what: &str) -> Result<Vec<u8>, Error> {
        if size > MAX_DOCUMENT_SIZE {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{what}: {size} bytes is too large for a JSON document"),
            ));
        }
        let mut data = Vec::with_capacity(size as usize);
        self.fetcher
            .blob(digest, size)?
            .take(size + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{what}: reading: {e}")))?;
        if data.len() as u64 != size {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("{what}: expected {size} bytes, got {}", data.len()),
            ));
        }
        verify_bytes(digest, &data, what)?;
        Ok(data)
    }
}

impl<F: Fetcher> ImageSource for Resolver<F> {
    fn describe(&self) -> String {
        self.fetcher.describe()
    }

    fn resolve(&self) -> Result<ResolvedImage, Error> {
        // First: a registry knows which name it serves only once a source has the manifest.
        let mut doc = self.fetcher.root_manifest()?;
        let source = self.fetcher.describe();
        // The media type the index entry promised for `doc`, once we follow one.
        let mut promised: Option<String> = None;
        // An index may point to another index; two levels is all anyone nests.
        for _ in 0..3 {
            let what = match &doc.expected_digest {
                Some(d) => format!("{source}: manifest {d}"),
                None => format!("{source}: manifest"),
            };
            if let Some(expected) = &doc.expected_digest {
                verify_bytes(expected, &doc.raw, &what)?;
            }
            let claims: Vec<(&str, &str)> = [
                (
                    "the media type it was served with",
                    doc.media_type.as_deref(),
                ),
                ("the index entry's mediaType", promised.as_deref()),
            ]
            .into_iter()
            .filter_map(|(who, mt)| Some((who, mt?)))
            .collect();
            match manifest::parse(&doc.raw, &claims, &what)? {
                Parsed::Index(entries) => {
                    let entry = manifest::select_platform(&entries, &self.platform, &what)?;
                    check_digest(&entry.digest, &what)?;
                    let mut next = self.fetcher.manifest(&entry.digest)?;
                    if next.raw.len() as u64 != entry.size {
                        return Err(Error::new(
                            ErrorKind::Integrity,
                            format!(
                                "{source}: manifest {}: index says {} bytes, got {}",
                                entry.digest,
                                entry.size,
                                next.raw.len()
                            ),
                        ));
                    }
                    next.expected_digest = Some(entry.digest.clone());
                    promised = (!entry.media_type.is_empty()).then(|| entry.media_type.clone());
                    doc = next;
                }
                Parsed::Image { config, layers } => {
                    return self.finish(&source, doc.raw, config, layers);
                }
            }
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("{source}: indexes nested too deeply"),
        ))
    }

    fn open_layer(&self, layer: &Layer) -> Result<Box<dyn Read + Send>, Error> {
        let raw = self.fetcher.blob(&layer.digest, layer.size)?;
        layer_stream::open(
            raw,
            layer,
            &self.fetcher.describe(),
            self.fetcher.media_types_are_authoritative(),
            &self.limits,
        )
    }
}

impl<F: Fetcher> Resolver<F> {
    fn finish(
        &self,
        source: &str,
        manifest_raw: Vec<u8>,
        config: manifest::Descriptor,
        layers: Vec<manifest::Descriptor>,
    ) -> Result<ResolvedImage, Error> {
        if !media::is_config(&config.media_type) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{source}: not a container image: config media type {:?}",
                    config.media_type
                ),
            ));
        }
        check_digest(&config.digest, &format!("{source}: config"))?;
        for d in &layers {
            check_digest(&d.digest, &format!("{source}: layer"))?;
        }
        let what = format!("{source}: config {}", config.digest);
        let config_raw = self.read_small_blob(&config.digest, config.size, &what)?;
        let parsed: oci_spec::image::ImageConfiguration = serde_json::from_slice(&config_raw)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!("{what}: not a valid image configuration: {e}"),
                )
            })?;
        let diff_ids = parsed.rootfs().diff_ids();
        if diff_ids.len() != layers.len() {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "{source}: manifest lists {} layers but the config has {} diff_ids",
                    layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let layers = layers
            .into_iter()
            .zip(diff_ids)
            .map(|(d, diff_id)| {
                let compression = media::layer_compression(&d.media_type).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "{source}: layer {}: unsupported media type {:?}",
                            d.digest, d.media_type
                        ),
                    )
                })?;
                crate::reference::validate_digest(diff_id).map_err(|why| {
                    Error::new(ErrorKind::Integrity, format!("{what}: diff_id: {why}"))
                })?;
                Ok(Layer {
                    digest: d.digest,
                    size: d.size,
                    media_type: d.media_type,
                    diff_id: diff_id.clone(),
                    compression,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(ResolvedImage {
            reference: source.to_string(),
            manifest_digest: sha256_of(&manifest_raw),
            manifest_raw,
            config_raw,
            config: parsed,
            layers,
        })
    }
}
