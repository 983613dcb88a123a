//! The store's layout (`/var/lib/sdme`), see HACKING.md: content-addressed
//! layers, image generations with their record and glue, the symlink per name.

use crate::record::ImageRecord;
use crate::Kind;
use std::path::{Path, PathBuf};

pub const DEFAULT_STORE: &str = "/var/lib/sdme";
/// Prefix of every temporary entry; `gc` removes stale ones.
pub const TMP_PREFIX: &str = ".tmp.";
/// The store root is private: layers hold the images' setuid binaries and
/// device nodes, containers' upper layers whatever their root wrote, and
/// volumes the apps' data; no host user but root may reach any of it.
/// (Containers reach their connector directories through bind mounts.)
pub const ROOT_MODE: u32 = 0o700;

/// A lock that imports share and gc takes alone, so gc never removes the
/// layers of an import that has not written its record yet.
pub struct StoreLock(#[allow(dead_code)] std::fs::File);

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The 64 hex digits of a `sha256:` digest, refusing anything else (the
/// digest becomes a path).
pub fn digest_hex(digest: &str) -> Result<&str, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("unsupported digest {digest:?}: only sha256 is stored"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("malformed digest {digest:?}"));
    }
    Ok(hex)
}

/// Names become file names: no `/`, no leading `.`, nothing odd.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid image name {name:?}"))
    }
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the root if needed and makes it private ([`ROOT_MODE`]),
    /// also when an older sdme or an administrator left it open.
    pub fn ensure_root(&self) -> Result<(), String> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let shown = |e: std::io::Error| format!("{}: {e}", self.root.display());
        if let Some(parent) = self.root.parent() {
            std::fs::create_dir_all(parent).map_err(shown)?;
        }
        match std::fs::DirBuilder::new()
            .mode(ROOT_MODE)
            .create(&self.root)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(shown(e)),
        }
        let meta = std::fs::metadata(&self.root).map_err(shown)?;
        if !meta.is_dir() {
            return Err(format!(
                "{}: the store is not a directory",
                self.root.display()
            ));
        }
        if meta.permissions().mode() & 0o7777 != ROOT_MODE {
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(ROOT_MODE))
                .map_err(shown)?;
        }
        Ok(())
    }

    /// Takes the store lock, shared (imports, the launcher) or exclusive (gc).
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock, String> {
        self.ensure_root()?;
        let path = self.root.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&f, op).map_err(|e| format!("locking {}: {e}", path.display()))?;
        Ok(StoreLock(f))
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers/sha256")
    }

    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, String> {
        Ok(self.layers_dir().join(digest_hex(diff_id)?))
    }

    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    pub fn connectors_dir(&self) -> PathBuf {
        self.root.join("connectors")
    }

    /// `NAME.MANIFESTHEX12`.
    pub fn generation_name(name: &str, manifest_digest: &str) -> Result<String, String> {
        Ok(format!("{name}.{}", &digest_hex(manifest_digest)?[..12]))
    }

    pub fn generation_dir(&self, generation: &str) -> PathBuf {
        self.images_dir().join(generation)
    }

    /// The generation `images/NAME` points to, if any.
    pub fn current_generation(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.images_dir().join(name)).ok()?;
        let target = target.to_str()?;
        (!target.contains('/')).then(|| target.to_string())
    }

    /// The record of a complete generation, `None` if it is absent or unfinished.
    pub fn record(&self, generation: &str) -> Result<Option<ImageRecord>, String> {
        let path = self.generation_dir(generation).join("image.json");
        if !path.exists() {
            return Ok(None);
        }
        ImageRecord::load(&path).map(Some)
    }

    /// The current, complete image `name`.
    pub fn image(&self, name: &str) -> Result<(String, ImageRecord), String> {
        check_name(name)?;
        let not_imported =
            || format!("image {name} is not imported; run systemctl start sdme-import@{name}");
        let generation = self.current_generation(name).ok_or_else(not_imported)?;
        let record = self.record(&generation)?.ok_or_else(not_imported)?;
        Ok((generation, record))
    }

    /// Points `images/NAME` at `generation` atomically: a new symlink under a
    /// temporary name, renamed over the old one.
    pub fn switch(&self, name: &str, generation: &str) -> Result<(), String> {
        let images = self.images_dir();
        let tmp = images.join(format!("{TMP_PREFIX}link.{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(generation, &tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, images.join(name))
            .map_err(|e| format!("switching images/{name}: {e}"))?;
        sync_dir(&images);
        Ok(())
    }

    /// The lower directories of the container root of image `name`, lowest
    /// first, following the base chain; with the generations used.
    pub fn root_lowers(&self, name: &str) -> Result<(Vec<PathBuf>, Vec<String>), String> {
        let mut chain = Vec::new();
        let mut current = name.to_string();
        let mut pending: Vec<(String, ImageRecord)> = Vec::new();
        loop {
            if chain.contains(&current) || chain.len() > 16 {
                return Err(format!(
                    "image {name}: the base chain loops ({})",
                    chain.join(" → ")
                ));
            }
            chain.push(current.clone());
            let (generation, record) = self.image(&current)?;
            let base = record.base.clone();
            let kind = record.kind;
            pending.push((generation, record));
            match (kind, base) {
                (Kind::Base, _) => break,
                (_, Some(b)) => current = b,
                (_, None) => {
                    return Err(format!(
                        "image {current} is an application image without a base: set Base= to a base OS image"
                    ))
                }
            }
        }
        let mut lowers = Vec::new();
        let mut generations = Vec::new();
        for (generation, record) in pending.iter().rev() {
            let dir = self.generation_dir(generation);
            if record.kind == Kind::Base {
                for diff_id in &record.layers {
                    lowers.push(self.layer_dir(diff_id)?);
                }
                if record.systemd_layer {
                    lowers.push(dir.join("systemd"));
                }
            }
            lowers.push(dir.join("glue"));
            generations.push(generation.clone());
        }
        Ok((lowers, generations))
    }

    /// The lower directories of the app root (`/oci/root`), lowest first.
    pub fn app_lowers(
        &self,
        generation: &str,
        record: &ImageRecord,
    ) -> Result<Vec<PathBuf>, String> {
        let mut lowers = Vec::new();
        for diff_id in &record.layers {
            lowers.push(self.layer_dir(diff_id)?);
        }
        if record.app_glue {
            lowers.push(self.generation_dir(generation).join("appglue"));
        }
        Ok(lowers)
    }
}

/// fsync a directory so a rename in it is durable; best effort.
pub fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// `rm -rf`, tolerating absence.
pub fn remove_tree(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir_all(path).map_err(|e| format!("removing {}: {e}", path.display()))
        }
        Ok(_) => {
            std::fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_root_is_created_private_and_tightened() {
        let t = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let fresh = Store::new(t.path().join("a/store"));
        drop(fresh.lock(false).unwrap());
        assert_eq!(mode(fresh.root()), 0o700);
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(Store::new(&open).lock(true).unwrap());
        assert_eq!(mode(&open), 0o700);
        std::fs::write(t.path().join("file"), "").unwrap();
        assert!(Store::new(t.path().join("file")).lock(false).is_err());
    }

    #[test]
    fn digests_and_names_are_checked_before_becoming_paths() {
        let d = format!("sha256:{}", "a1".repeat(32));
        assert_eq!(digest_hex(&d).unwrap().len(), 64);
        assert!(digest_hex("sha256:../../etc").is_err());
        assert!(digest_hex("sha512:abcd").is_err());
        assert_eq!(
            Store::generation_name("nginx", &d).unwrap(),
            "nginx.a1a1a1a1a1a1"
        );
        assert!(check_name("nginx").is_ok() && check_name("my-app_2.x").is_ok());
        assert!(
            check_name("../x").is_err()
                && check_name(".hidden").is_err()
                && check_name("").is_err()
        );
    }

    #[test]
    fn switch_replaces_the_symlink() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(t.path());
        std::fs::create_dir_all(s.images_dir()).unwrap();
        s.switch("x", "x.000000000001").unwrap();
        assert_eq!(s.current_generation("x").as_deref(), Some("x.000000000001"));
        s.switch("x", "x.000000000002").unwrap();
        assert_eq!(s.current_generation("x").as_deref(), Some("x.000000000002"));
        let e = s.image("x").unwrap_err();
        assert_eq!(
            e,
            "image x is not imported; run systemctl start sdme-import@x"
        );
    }
}
