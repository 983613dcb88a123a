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

/// A lock that imports and the launcher share and gc takes alone, so gc
/// never removes the layers of an import that has not written its record
/// yet, nor a generation a launcher chose before it recorded it in
/// `containers/NAME/generations`. Its descriptor is close-on-exec.
pub struct StoreLock(#[allow(dead_code)] std::fs::File);

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Where the host lists the ids it hands out itself (user-namespace
    /// ranges avoid them); tests point it elsewhere.
    pub host_files: crate::userns::HostIdFiles,
}

/// What a container of an image is started from ([`Store::root_stack`]).
#[derive(Debug, Clone)]
pub struct RootStack {
    /// The root's lower directories, lowest first.
    pub lowers: Vec<PathBuf>,
    /// Every generation they belong to, the base chain's first, the image's last.
    pub generations: Vec<String>,
    /// The image's own generation and record.
    pub generation: String,
    pub record: ImageRecord,
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
        Store {
            root: root.into(),
            host_files: Default::default(),
        }
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

    /// `NAME.HEX12`: the first 12 hex digits of the manifest digest after
    /// the image's name. It groups a manifest's generations for people; it
    /// never decides which manifest a generation holds (its record's full
    /// `manifest_digest` does, [`Store::generations_for`]).
    pub fn generation_prefix(name: &str, manifest_digest: &str) -> Result<String, String> {
        check_name(name)?;
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

    /// Complete generations of image `name` built from exactly
    /// `manifest_digest` (the full digest in their records; the name's
    /// 12-digit prefix only narrows the search), newest build first.
    /// A generation whose record cannot be read is never a match.
    pub fn generations_for(
        &self,
        name: &str,
        manifest_digest: &str,
    ) -> Result<Vec<(String, ImageRecord)>, String> {
        let prefix = Store::generation_prefix(name, manifest_digest)?;
        let images = self.images_dir();
        let rd = match std::fs::read_dir(&images) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", images.display())),
        };
        let mut found = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| format!("{}: {e}", images.display()))?;
            let Ok(generation) = entry.file_name().into_string() else {
                continue;
            };
            let Some(build) = build_of(&generation, &prefix) else {
                continue;
            };
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            if let Ok(Some(record)) = self.record(&generation) {
                if record.name == name && record.is_manifest(manifest_digest) {
                    found.push((build, generation, record));
                }
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(found.into_iter().map(|(_, g, r)| (g, r)).collect())
    }

    /// Moves the complete generation built in `tmp` (a directory in
    /// `images/`) to a name no entry has yet: `NAME.HEX12.N`, N one more
    /// than the highest build of that prefix present (an old-style
    /// `NAME.HEX12` counts as build 0). Nothing is ever replaced: the rename
    /// refuses an existing name (`RENAME_NOREPLACE`) and the next N is
    /// tried, so a generation in use is never rewritten. Returns the name.
    pub fn install_generation(
        &self,
        tmp: &Path,
        name: &str,
        manifest_digest: &str,
    ) -> Result<String, String> {
        let prefix = Store::generation_prefix(name, manifest_digest)?;
        let images = self.images_dir();
        let rd = std::fs::read_dir(&images).map_err(|e| format!("{}: {e}", images.display()))?;
        let mut highest = 0;
        for entry in rd {
            let entry = entry.map_err(|e| format!("{}: {e}", images.display()))?;
            if let Some(b) = entry
                .file_name()
                .to_str()
                .and_then(|g| build_of(g, &prefix))
            {
                highest = highest.max(b);
            }
        }
        for build in highest + 1..highest + 1000 {
            let generation = format!("{prefix}.{build}");
            let target = images.join(&generation);
            match rename_noreplace(tmp, &target) {
                Ok(()) => {
                    sync_dir(&images)?;
                    return Ok(generation);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(format!(
                        "moving {} to {}: {e}",
                        tmp.display(),
                        target.display()
                    ))
                }
            }
        }
        Err(format!(
            "{}: no free generation name after {prefix}.{highest}",
            images.display()
        ))
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
        sync_dir(&images)
    }

    /// The lower directories of the container root of image `name`, lowest
    /// first, following the base chain; with the generations used.
    pub fn root_lowers(&self, name: &str) -> Result<(Vec<PathBuf>, Vec<String>), String> {
        self.root_stack(name).map(|s| (s.lowers, s.generations))
    }

    /// The container root of image `name` as one consistent choice: each
    /// `images/NAME` of the chain is read once, so a switch by a concurrent
    /// import cannot mix two generations of one image.
    pub fn root_stack(&self, name: &str) -> Result<RootStack, String> {
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
        let (generation, record) = pending
            .into_iter()
            .next()
            .ok_or_else(|| format!("image {name}: empty base chain"))?;
        Ok(RootStack {
            lowers,
            generations,
            generation,
            record,
        })
    }

    /// The glue of image `name`'s app as another app of a container
    /// (`App=`), laid over that container's root: `extraglue/` of the
    /// generation, which imports before glue version 5 lack (the launcher
    /// refuses glue older than this sdme's anyway: `ImageRecord::check_glue`).
    pub fn extra_glue(&self, generation: &str, record: &ImageRecord) -> Result<PathBuf, String> {
        if !record.extra_glue {
            return Err(format!(
                "image {} was imported without the glue of an extra app (App=); import it again \
                 (systemctl restart sdme-import@{})",
                record.name, record.name
            ));
        }
        Ok(self.generation_dir(generation).join(EXTRA_GLUE))
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

/// A generation's glue for an app run besides a container's own (`App=`).
pub const EXTRA_GLUE: &str = "extraglue";

/// fsync a directory, so that the entries created or renamed in it are
/// durable.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("fsync {}: {e}", dir.display()))
}

/// fsync every regular file and directory of a tree (without following
/// symlinks), children before their directory: what a record declares
/// complete must be on disk before the record is.
pub fn sync_tree(path: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            sync_tree(&entry.path())?;
        }
        sync_dir(path)
    } else if meta.is_file() {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("fsync {}: {e}", path.display()))
    } else {
        // Symlinks and device nodes (whiteouts) live in their directory's
        // entries, which the directory's fsync covers.
        Ok(())
    }
}

/// The build number of generation `generation` if it is one of `prefix`
/// (`NAME.HEX12`): 0 for the old-style `NAME.HEX12`, N for `NAME.HEX12.N`.
pub fn build_of(generation: &str, prefix: &str) -> Option<u64> {
    let rest = generation.strip_prefix(prefix)?;
    if rest.is_empty() {
        return Some(0);
    }
    let n = rest.strip_prefix('.')?;
    if n.is_empty() || n.len() > 18 || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0')
    {
        return None;
    }
    n.parse().ok()
}

/// `renameat2(RENAME_NOREPLACE)`; where the file system lacks it, a plain
/// rename of the directory, which refuses a non-empty directory too (every
/// generation holds its record). `AlreadyExists` when the name is taken.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    let taken = || std::io::Error::from(std::io::ErrorKind::AlreadyExists);
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(taken()),
        Err(Errno::INVAL | Errno::NOSYS) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(taken());
            }
            match rustix::fs::rename(from, to) {
                Ok(()) => Ok(()),
                Err(Errno::EXIST | Errno::NOTEMPTY | Errno::NOTDIR | Errno::ISDIR) => Err(taken()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
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
            Store::generation_prefix("nginx", &d).unwrap(),
            "nginx.a1a1a1a1a1a1"
        );
        assert!(Store::generation_prefix("../x", &d).is_err());
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

    fn record_json(name: &str, digest: &str) -> String {
        format!(
            r#"{{"name":"{name}","source":"s","reference":"s","manifest_digest":"{digest}","mode":"auto",
            "kind":"base","base":null,"layers":[],"systemd_layer":false,"app_glue":false,"app":null,
            "glue_version":3,"config":{{}},"image_config":{{}}}}"#
        )
    }

    /// A complete generation built aside, as the importer leaves it.
    fn built(s: &Store, tag: &str, name: &str, digest: &str) -> PathBuf {
        let tmp = s.images_dir().join(format!("{TMP_PREFIX}{tag}"));
        std::fs::create_dir_all(tmp.join("glue")).unwrap();
        std::fs::write(tmp.join("image.json"), record_json(name, digest)).unwrap();
        tmp
    }

    #[test]
    fn build_numbers_follow_the_prefix_only() {
        let p = "a.0123456789ab";
        assert_eq!(build_of("a.0123456789ab", p), Some(0));
        assert_eq!(build_of("a.0123456789ab.1", p), Some(1));
        assert_eq!(build_of("a.0123456789ab.27", p), Some(27));
        for other in [
            "a.0123456789abc",
            "a.0123456789ab.",
            "a.0123456789ab.01",
            "a.0123456789ab.1x",
            "a.0123456789ab.1.2",
            "b.0123456789ab.1",
        ] {
            assert_eq!(build_of(other, p), None, "{other}");
        }
    }

    #[test]
    fn every_build_gets_a_new_name_and_nothing_is_replaced() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(t.path());
        let d = format!("sha256:{}", "ab".repeat(32));
        std::fs::create_dir_all(s.images_dir()).unwrap();
        // An old store: a generation named the old way is build 0.
        let legacy = s.generation_dir("x.abababababab");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("image.json"), record_json("x", &d)).unwrap();
        let g1 = s
            .install_generation(&built(&s, "1", "x", &d), "x", &d)
            .unwrap();
        assert_eq!(g1, "x.abababababab.1");
        let g2 = s
            .install_generation(&built(&s, "2", "x", &d), "x", &d)
            .unwrap();
        assert_eq!(g2, "x.abababababab.2");
        // A name taken meanwhile (another import) is skipped, not replaced.
        let taken = s.generation_dir("x.abababababab.3");
        std::fs::create_dir_all(&taken).unwrap();
        std::fs::write(taken.join("marker"), "mine").unwrap();
        let tmp = built(&s, "4", "x", &d);
        assert_eq!(
            rename_noreplace(&tmp, &taken).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        let g4 = s.install_generation(&tmp, "x", &d).unwrap();
        assert_eq!(g4, "x.abababababab.4");
        assert_eq!(
            std::fs::read_to_string(taken.join("marker")).unwrap(),
            "mine"
        );
        assert!(legacy.join("image.json").is_file() && !tmp.exists());
        let all: Vec<String> = s
            .generations_for("x", &d)
            .unwrap()
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        // Newest first; the dir without a record is no match.
        assert_eq!(all, [g4.as_str(), &g2, &g1, "x.abababababab"]);
    }

    #[test]
    fn generations_match_by_the_full_manifest_digest() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(t.path());
        std::fs::create_dir_all(s.images_dir()).unwrap();
        // Two manifests sharing their first 12 hex digits.
        let d1 = format!("sha256:{}{}", "c".repeat(12), "1".repeat(52));
        let d2 = format!("sha256:{}{}", "c".repeat(12), "2".repeat(52));
        let g1 = s
            .install_generation(&built(&s, "1", "x", &d1), "x", &d1)
            .unwrap();
        assert!(s.generations_for("x", &d2).unwrap().is_empty());
        let g2 = s
            .install_generation(&built(&s, "2", "x", &d2), "x", &d2)
            .unwrap();
        assert_ne!(g1, g2);
        assert!(g1.starts_with("x.cccccccccccc.") && g2.starts_with("x.cccccccccccc."));
        let found = s.generations_for("x", &d1).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, g1);
        assert_eq!(found[0].1.manifest_digest, d1);
        assert_eq!(s.generations_for("x", &d2).unwrap()[0].0, g2);
        // Another image's record under a matching name is no match either.
        let odd = s.generation_dir("x.cccccccccccc.9");
        std::fs::create_dir_all(&odd).unwrap();
        std::fs::write(odd.join("image.json"), record_json("y", &d1)).unwrap();
        assert_eq!(s.generations_for("x", &d1).unwrap().len(), 1);
    }
}
