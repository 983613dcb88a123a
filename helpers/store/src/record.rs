//! `image.json`: what an image generation is, written last so that its
//! presence marks the generation complete.

use crate::runconfig::RunConfig;
use crate::Kind;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bumped when the glue sdme generates changes, so that a re-import with the
/// same manifest regenerates it.
pub const GLUE_VERSION: u32 = 6;

/// The app service as generated, for the launcher's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Entrypoint + cmd as written to `ExecStart=` (argv[0] resolved).
    pub argv: Vec<String>,
    pub workdir: String,
    /// Numeric `uid:gid` or empty for root.
    pub user: String,
    pub health: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub name: String,
    /// The `SOURCE` argument of the import.
    pub source: String,
    /// Normalized reference, for messages.
    pub reference: String,
    /// The full manifest digest (`sha256:` + 64 hex digits): what the
    /// generation holds, whatever its directory is called.
    pub manifest_digest: String,
    /// `--mode=` as requested (`auto`, `base`, …) and the resulting kind.
    pub mode: String,
    pub kind: Kind,
    /// Descriptor name of the base image (apps and connectors).
    pub base: Option<String>,
    /// The image's own layers (`diff_id`s), lowest first.
    pub layers: Vec<String>,
    /// Whether the generation holds `systemd/`, the layer that installed systemd.
    pub systemd_layer: bool,
    /// Whether the generation holds `appglue/`, laid over the app's layers.
    pub app_glue: bool,
    /// Whether the generation holds `extraglue/`, laid over the root of a
    /// container that runs this app besides its own (`App=`).
    #[serde(default)]
    pub extra_glue: bool,
    pub app: Option<AppInfo>,
    pub glue_version: u32,
    /// The run configuration (`config` of the image configuration).
    pub config: RunConfig,
    /// The whole image configuration as fetched.
    pub image_config: serde_json::Value,
}

impl ImageRecord {
    pub fn load(path: &Path) -> Result<ImageRecord, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: invalid image record: {e}", path.display()))
    }

    /// Writes the record atomically and durably (temporary file, fsync,
    /// rename, fsync of the directory).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        use std::io::Write;
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| format!("encoding image record: {e}"))?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("{}: {e}", path.display()))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        crate::sync_dir(dir)
    }

    /// Whether this generation holds manifest `digest`: the full digests
    /// compared, never a prefix of a directory name.
    pub fn is_manifest(&self, digest: &str) -> bool {
        self.manifest_digest == digest
    }

    /// An application's glue as this sdme writes it. Glue from before an
    /// upgrade has other units, which the launcher's drop-ins do not fit
    /// (version 5's health check ran in the container's root, with the
    /// image's environment): the image is imported again first, which
    /// re-glues it from the store without fetching anything.
    pub fn check_glue(&self) -> Result<(), String> {
        if self.kind == Kind::Base || self.glue_version == GLUE_VERSION {
            return Ok(());
        }
        Err(format!(
            "image {name}'s glue is from an older sdme (version {old}, this one writes {GLUE_VERSION}); \
             import it again: systemctl restart sdme-import@{name}",
            name = self.name,
            old = self.glue_version
        ))
    }

    /// Whether an existing generation was built for the same request.
    pub fn same_request(&self, mode: &str, base: Option<&str>) -> bool {
        self.glue_version == GLUE_VERSION && self.mode == mode && self.base.as_deref() == base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_a_file() {
        let raw = br#"{"config":{"Cmd":["nginx"],"ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers"}}"#;
        let r = ImageRecord {
            name: "nginx".into(),
            source: "oci:/tmp/x:latest".into(),
            reference: "oci:/tmp/x:latest".into(),
            manifest_digest: format!("sha256:{}", "ab".repeat(32)),
            mode: "auto".into(),
            kind: Kind::App,
            base: Some("debian".into()),
            layers: vec![format!("sha256:{}", "01".repeat(32))],
            systemd_layer: false,
            app_glue: true,
            extra_glue: true,
            app: Some(AppInfo {
                argv: vec!["/usr/sbin/nginx".into()],
                workdir: "/".into(),
                user: "101:101".into(),
                health: false,
            }),
            glue_version: GLUE_VERSION,
            config: RunConfig::from_image_config(raw).unwrap(),
            image_config: serde_json::from_slice(raw).unwrap(),
        };
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("image.json");
        r.save(&p).unwrap();
        assert_eq!(ImageRecord::load(&p).unwrap(), r);
        assert!(r.same_request("auto", Some("debian")));
        assert!(!r.same_request("app", Some("debian")));
        assert!(!r.same_request("auto", None));
        // Glue from an older sdme is refused for an app, not for a base.
        assert!(r.check_glue().is_ok());
        let mut old = r.clone();
        old.glue_version = GLUE_VERSION - 1;
        let e = old.check_glue().unwrap_err();
        assert!(e.contains("systemctl restart sdme-import@nginx"), "{e}");
        old.kind = Kind::Base;
        assert!(old.check_glue().is_ok());
        std::fs::write(&p, b"{").unwrap();
        assert!(ImageRecord::load(&p).unwrap_err().contains("image.json"));
    }
}
