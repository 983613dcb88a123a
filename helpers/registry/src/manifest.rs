//! Manifest formats: OCI manifest and index, Docker v2s2 manifest and manifest
//! list. Recognises (and refuses) schema1. Selects one platform from an index.

use crate::error::{Error, ErrorKind};
use crate::media;
use crate::Platform;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DescriptorPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

/// What a manifest document is.
#[derive(Debug)]
pub enum Parsed {
    /// An OCI index or Docker manifest list.
    Index(Vec<Descriptor>),
    /// An OCI or Docker v2s2 image manifest.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// Parses a manifest. `claims` are what others say the document is, as
/// `(who, media type)`: the transport's `Content-Type`, the descriptor that
/// named it. Against ambiguous manifests (CVE-2021-41190) the document must be
/// one thing only: never both `manifests` and `config`/`layers`, and its own
/// `mediaType` and every claim that names a manifest type must agree (claims
/// such as `application/json` say nothing and are ignored).
pub fn parse(raw: &[u8], claims: &[(&str, &str)], what: &str) -> Result<Parsed, Error> {
    let claims: Vec<(&str, &str)> = claims
        .iter()
        .map(|&(who, c)| (who, c.split(';').next().unwrap_or(c).trim()))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if claims
        .iter()
        .any(|(_, c)| matches!(*c, media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED))
    {
        return Err(schema1(what));
    }
    let doc: Raw = serde_json::from_slice(raw).map_err(|e| {
        Error::new(
            ErrorKind::Unsupported,
            format!("{what}: manifest is not valid JSON: {e}"),
        )
    })?;
    if doc.schema_version == Some(1) {
        return Err(schema1(what));
    }
    if doc.schema_version != Some(2) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{what}: unsupported manifest schemaVersion {:?}",
                doc.schema_version
            ),
        ));
    }
    if doc.manifests.is_some() && (doc.config.is_some() || doc.layers.is_some()) {
        return Err(Error::new(
            ErrorKind::Integrity,
            format!(
                "{what}: ambiguous document: it has both \"manifests\" (an index) and \
                 \"config\"/\"layers\" (an image manifest)"
            ),
        ));
    }
    if let Some(mt) = doc.media_type.as_deref().filter(|m| !is_manifest_type(m)) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("{what}: unsupported manifest media type {mt:?}"),
        ));
    }
    let mut known = doc
        .media_type
        .as_deref()
        .map(|m| ("the document's mediaType", m))
        .into_iter()
        .chain(claims.into_iter().filter(|(_, c)| is_manifest_type(c)));
    let declared = known.next();
    if let Some((who, mt)) = declared {
        if let Some((other, omt)) = known.find(|(_, c)| c != &mt) {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("{what}: ambiguous document: {who} is {mt:?} but {other} is {omt:?}"),
            ));
        }
    }
    let declared = declared.map(|(_, mt)| mt);
    let index_type = matches!(
        declared,
        Some(media::OCI_INDEX | media::DOCKER_MANIFEST_LIST)
    );
    let image_type = matches!(declared, Some(media::OCI_MANIFEST | media::DOCKER_MANIFEST));
    match (doc.manifests, doc.config, doc.layers) {
        (Some(m), None, None) if !image_type => Ok(Parsed::Index(m)),
        (None, Some(config), Some(layers)) if !index_type => Ok(Parsed::Image { config, layers }),
        _ => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{what}: not an image manifest or index (media type {:?})",
                declared.unwrap_or("")
            ),
        )),
    }
}

fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        media::OCI_MANIFEST
            | media::OCI_INDEX
            | media::DOCKER_MANIFEST
            | media::DOCKER_MANIFEST_LIST
    )
}

fn schema1(what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "{what}: Docker schema 1 manifests are not supported (deprecated since 2017); \
             push the image again with a current tool"
        ),
    )
}

/// True for entries that are not runnable images: buildkit attestations and
/// other artifacts attached to an index.
fn is_attestation(d: &Descriptor) -> bool {
    let unknown = d
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown");
    let reference_type = d
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("vnd.docker.reference.type"));
    unknown || reference_type
}

/// Picks the entry of an index for `want`: an exact (normalized) match first;
/// when no variant was asked for, the first entry of the same OS and architecture.
pub fn select_platform<'a>(
    entries: &'a [Descriptor],
    want: &Platform,
    what: &str,
) -> Result<&'a Descriptor, Error> {
    let images: Vec<&Descriptor> = entries.iter().filter(|d| !is_attestation(d)).collect();
    let normalized = |d: &Descriptor| {
        d.platform
            .as_ref()
            .map(|p| Platform::normalized(&p.os, &p.architecture, p.variant.as_deref()))
    };
    if let Some(d) = images.iter().find(|d| normalized(d).as_ref() == Some(want)) {
        return Ok(d);
    }
    if want.variant.is_none() {
        let same_arch = images.iter().find(|d| {
            normalized(d).is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
        });
        if let Some(d) = same_arch {
            return Ok(d);
        }
    }
    // An index of one image without platform information: that image.
    if let [only] = images.as_slice() {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let available: Vec<String> = images
        .iter()
        .filter_map(|d| normalized(d).map(|p| p.to_string()))
        .collect();
    Err(Error::new(
        ErrorKind::NotFound,
        format!(
            "{what}: no image for platform {want} (available: {})",
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        ),
    ))
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
