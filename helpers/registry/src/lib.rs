//! Image sources: references, registry client, auth, local layouts, verified blob streams.
//!
//! The one entry point is [`open_source`]: it turns a source string (a registry
//! reference or `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`)
//! into an [`ImageSource`] that resolves the image for one platform and streams
//! each layer decompressed, verifying every digest on the way. A registry
//! reference goes through containers-registries.conf(5) first
//! ([`registries_conf`]: short names, mirrors, blocked and insecure registries).
//!
//! It may use the network (registries, credential helpers it is told to
//! run) and read the local layouts, registries.conf files and auth files it
//! is given; it must never
//! write anywhere but its own temporary files, and never send credentials
//! to a host other than the one they are for.

mod auth;
mod digest;
mod error;
mod layer_stream;
mod local;
mod manifest;
mod media;
mod platform;
pub mod reference;
pub mod registries_conf;
mod registry;
mod resolve;

pub use error::{Error, ErrorKind};
pub use platform::Platform;
pub use registry::Notice;

use std::path::PathBuf;

/// How to reach an image source. [`SourceOptions::new`] and `Default` agree:
/// TLS verification on, everything else at its default.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Verify TLS certificates and refuse plain http. `false` allows plain
    /// http and unverified https, for every registry host including localhost.
    /// `true` still lets registries.conf mark a registry or mirror `insecure`,
    /// unless `tls_verify_pinned`.
    pub tls_verify: bool,
    /// `tls_verify` was said explicitly (`--tls-verify=yes`): registries.conf's
    /// `insecure = true` is then ignored, as podman does.
    pub tls_verify_pinned: bool,
    /// Which containers-registries.conf(5) files decide mirrors, remapped
    /// locations, blocked and insecure registries and short names.
    pub registries_conf: RegistriesConfFiles,
    /// Where retries and abandoned mirrors are told, one line each; silent if `None`.
    pub notice: Option<Notice>,
    /// Extra CA certificates: `DIR/*.crt`, and `DIR/HOST:PORT/ca.crt` (certs.d style).
    pub cert_dir: Option<PathBuf>,
    /// Credentials file (containers-auth.json format); overrides the search path.
    pub authfile: Option<PathBuf>,
    /// Platform to select from an index or manifest list; the host's if `None`.
    pub platform: Option<Platform>,
    /// `User-Agent` header value; `sdme/VERSION` if `None`.
    pub user_agent: Option<String>,
    /// Retries of a request after 429, 5xx or a transport error; 4 if `None`.
    pub retries: Option<u32>,
    /// First retry delay, doubled each time (`Retry-After` wins); 500 ms if `None`.
    pub retry_delay: Option<std::time::Duration>,
    /// TCP connect timeout; 30 s if `None`.
    pub timeout_connect: Option<std::time::Duration>,
    /// Longest wait for any single read from the network; 60 s if `None`.
    pub timeout_read: Option<std::time::Duration>,
    /// Largest decompressed size of one layer, in bytes; 128 GiB if `None`.
    pub max_layer_size: Option<u64>,
    /// Largest ratio of a layer's decompressed bytes to the compressed bytes
    /// read so far, once past 1 GiB decompressed; 1100 if `None`.
    pub max_layer_ratio: Option<u64>,
}

impl SourceOptions {
    /// Options with TLS verification on and everything else default.
    pub fn new() -> Self {
        SourceOptions {
            tls_verify: true,
            tls_verify_pinned: false,
            registries_conf: RegistriesConfFiles::System,
            notice: None,
            cert_dir: None,
            authfile: None,
            platform: None,
            user_agent: None,
            retries: None,
            retry_delay: None,
            timeout_connect: None,
            timeout_read: None,
            max_layer_size: None,
            max_layer_ratio: None,
        }
    }
}

/// Which registries.conf files a pull reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistriesConfFiles {
    /// `/etc/containers/registries.conf` and `registries.conf.d/*.conf`, if present.
    System,
    /// None: a reference is pulled from exactly where it names (short names: docker.io).
    Off,
    /// This one file, which must exist (no drop-in directory).
    File(PathBuf),
}

// By hand, not derived: a derived Default would turn TLS verification off.
impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions::new()
    }
}

/// Layer compression, detected from the blob's magic bytes and checked against its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One layer of a resolved image, in manifest order (lowest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Digest of the blob as stored (compressed), `sha256:…`.
    pub digest: String,
    /// Size of the stored blob in bytes, from the manifest.
    pub size: u64,
    pub media_type: String,
    /// Digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Compression announced by the media type.
    pub compression: Compression,
}

/// An image resolved to one platform's manifest, with manifest and config verified.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Normalized reference (or local source description), for messages.
    pub reference: String,
    /// `sha256:…` of `manifest_raw`.
    pub manifest_digest: String,
    /// The raw bytes of the platform manifest actually used.
    pub manifest_raw: Vec<u8>,
    /// The raw bytes of the image configuration.
    pub config_raw: Vec<u8>,
    pub config: oci_spec::image::ImageConfiguration,
    pub layers: Vec<Layer>,
}

/// Where an image comes from: a registry or a local layout/archive.
pub trait ImageSource: Send + Sync {
    /// Normalized reference, for messages.
    fn describe(&self) -> String;
    /// Index/list → platform manifest; manifest and config verified.
    fn resolve(&self) -> Result<ResolvedImage, Error>;
    /// Uncompressed tar stream of one layer. Compressed digest and diff_id are verified while
    /// streaming; on mismatch/truncation the reader returns io::ErrorKind::InvalidData (read it to EOF).
    fn open_layer(&self, layer: &Layer) -> Result<Box<dyn std::io::Read + Send>, Error>;
}

/// Opens an image source: a registry reference (`[HOST[:PORT]/]NAME[:TAG][@DIGEST]`),
/// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker-archive:FILE`.
pub fn open_source(source: &str, opts: &SourceOptions) -> Result<Box<dyn ImageSource>, Error> {
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let limits = layer_stream::Limits::from_options(opts);
    if let Some(dir) = source.strip_prefix("oci:") {
        return local::open_oci_dir(dir, platform, limits);
    }
    if let Some(file) = source.strip_prefix("oci-archive:") {
        return local::open_oci_archive(file, platform, limits);
    }
    if let Some(file) = source.strip_prefix("docker-archive:") {
        return local::open_docker_archive(file, platform, limits);
    }
    let fetcher =
        registry::Registry::open(source.strip_prefix("docker://").unwrap_or(source), opts)?;
    Ok(Box::new(resolve::Resolver {
        fetcher,
        platform,
        limits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_verify_tls() {
        assert!(SourceOptions::default().tls_verify);
        assert!(SourceOptions::new().tls_verify);
        let d = SourceOptions {
            retries: Some(1),
            ..Default::default()
        };
        assert!(d.tls_verify, "struct update from Default keeps TLS on");
    }
}
