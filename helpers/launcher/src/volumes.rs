//! Persistent volumes: the host directories under `volumes/MACHINE/` that
//! back a container's anonymous `--volume=CONTAINER` and every volume its
//! image declares (`Volumes` of the image configuration) that no `--volume`
//! covers. A new volume starts as a copy of what the image holds at that
//! path (Docker's behaviour), so e.g. a data directory the image prepared
//! with its owner, mode and initial files is there on the first start.

use sdme_launch::Volume;
use sdme_store::merged::{MergedView, Node};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The normalized form of an image's declared volume path (`/a//b/` →
/// `/a/b`), or `None` for one that is not absolute or has `.`/`..`
/// components (Docker refuses those).
pub fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\n') {
        return None;
    }
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether a volume at `target` provides `path`: the same path, or a parent
/// of it (the user's volume then holds that directory, and a volume on top
/// would hide what the user put there).
fn covers(target: &str, path: &str) -> bool {
    let target = normalize(target).unwrap_or_default();
    target == "/"
        || path == target
        || path
            .strip_prefix(&target)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The image's declared volumes that none of `volumes` covers, normalized,
/// in the image's order. Invalid paths are reported through `warn`.
pub fn uncovered(
    declared: &[String],
    volumes: &[Volume],
    warn: &mut dyn FnMut(String),
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in declared {
        let Some(path) = normalize(raw) else {
            warn(format!(
                "ignoring the image's volume {raw:?}: not an absolute path"
            ));
            continue;
        };
        let covered = volumes.iter().any(|v| match v {
            Volume::Bind { container, .. } | Volume::Anonymous { container } => {
                covers(container, &path)
            }
        });
        if !covered && !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

/// The directory name of the volume at container path `path`: components
/// joined by `-`; bytes other than ASCII letters, digits, `_` and `.` (and
/// a leading `.`) as `%XX`. One-to-one, so two paths never share a volume,
/// and free of `:` and `\`, which `systemd-nspawn --bind=` would parse.
pub fn dir_name(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        for (j, b) in part.bytes().enumerate() {
            if b.is_ascii_alphanumeric() || b == b'_' || (b == b'.' && j > 0) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02x}"));
            }
        }
    }
    out
}

/// A bind's mount point `path` in `root` (the app's root, or the
/// container's): systemd-nspawn resolves it following symlinks relative to
/// the *container's* root, not the app's, so a symlink at any component,
/// shipped by the image or planted by the container in its writable layer,
/// would move the mount elsewhere (over the container's own `/etc`, say).
/// Every existing component must be a directory (the last may also be a
/// file, for a file bind); missing ones nspawn creates.
pub fn check_mount_point(root: &MergedView, path: &str) -> Result<(), String> {
    let mut prefix = String::new();
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, comp) in components.iter().enumerate() {
        prefix.push('/');
        prefix.push_str(comp);
        let resolved = root
            .resolve(&prefix, false)
            .map_err(|e| format!("volume {path}: {prefix}: {e}"))?;
        match resolved.map(|r| r.node) {
            None => return Ok(()),
            Some(Node::Dir(_)) => {}
            Some(Node::Other { metadata, .. }) => {
                let last = i + 1 == components.len();
                if metadata.file_type().is_symlink() {
                    return Err(format!(
                        "volume {path}: {prefix} is a symlink in the container's tree; a volume's path must not go through one"
                    ));
                }
                if !(last && metadata.is_file()) {
                    return Err(format!("volume {path}: {prefix} is not a directory"));
                }
            }
        }
    }
    Ok(())
}

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// The volume directory for container path `path` under `volumes_dir`
/// (`volumes/MACHINE`), created on first use as a copy of `image`'s
/// content at `path` (an empty directory when the image has none).
/// Built aside and renamed into place, so an interrupted first start
/// leaves no half-filled volume behind.
pub fn ensure(
    volumes_dir: &Path,
    path: &str,
    image: Option<&MergedView>,
) -> Result<PathBuf, String> {
    let name = dir_name(path);
    let dir = volumes_dir.join(&name);
    if dir.symlink_metadata().is_ok() {
        return Ok(dir);
    }
    std::fs::create_dir_all(volumes_dir).map_err(|e| err(volumes_dir, e))?;
    let tmp = volumes_dir.join(format!(".tmp.{name}"));
    sdme_store::remove_tree(&tmp)?;
    std::fs::create_dir(&tmp).map_err(|e| err(&tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| err(&tmp, e))?;
    if let Some(view) = image {
        let resolved = view
            .resolve(path, true)
            .map_err(|e| format!("the image's {path}: {e}"))?;
        if let Some(r) = resolved {
            if let Node::Dir(layers) = &r.node {
                copy_tree(view, &r.components, layers, &tmp).map_err(|e| {
                    format!(
                        "copying the image's {path} into volume {}: {e}",
                        dir.display()
                    )
                })?;
            }
        }
    }
    std::fs::rename(&tmp, &dir).map_err(|e| err(&dir, e))?;
    Ok(dir)
}

/// Copies the merged directory (`components`, `layers`) onto the existing
/// directory `dest`: files, directories, symlinks, FIFOs and device nodes
/// with owner, mode and modification time (not xattrs). Iterative, so a deep
/// tree cannot exhaust the stack; directory metadata is applied last, deepest
/// first, so that read-only directories can still be filled.
fn copy_tree(
    view: &MergedView,
    components: &[OsString],
    layers: &[usize],
    dest: &Path,
) -> io::Result<()> {
    let mut dirs: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    let mut stack: Vec<(Vec<OsString>, Vec<usize>, PathBuf)> =
        vec![(components.to_vec(), layers.to_vec(), dest.to_path_buf())];
    while let Some((comps, layers, to)) = stack.pop() {
        if let Some(&top) = layers.last() {
            dirs.push((
                to.clone(),
                std::fs::symlink_metadata(view.path_in_layer(top, &comps))?,
            ));
        }
        for (name, node) in view.read_dir(&comps, &layers)? {
            let mut child = comps.clone();
            child.push(name.clone());
            let target = to.join(&name);
            match node {
                Node::Dir(child_layers) => {
                    std::fs::create_dir(&target)?;
                    stack.push((child, child_layers, target));
                }
                Node::Other { layer, metadata } => {
                    copy_entry(&view.path_in_layer(layer, &child), &metadata, &target)?
                }
            }
        }
    }
    for (dir, m) in dirs.iter().rev() {
        std::os::unix::fs::lchown(dir, Some(m.uid()), Some(m.gid()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
        set_mtime(dir, m)?;
    }
    Ok(())
}

fn copy_entry(from: &Path, m: &std::fs::Metadata, to: &Path) -> io::Result<()> {
    use rustix::fs::{FileType, Mode};
    let kind = FileType::from_raw_mode(m.mode());
    match kind {
        FileType::RegularFile => {
            std::fs::copy(from, to)?;
        }
        FileType::Symlink => {
            std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
            return std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()));
        }
        FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                to,
                kind,
                Mode::from_raw_mode(m.mode() & 0o7777),
                m.rdev(),
            )?;
        }
        // A socket is only a name without its server; nothing to copy.
        _ => return Ok(()),
    }
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))?;
    // After chown, which clears set-id bits.
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
    if kind == FileType::RegularFile {
        set_mtime(to, m)?;
    }
    Ok(())
}

fn set_mtime(path: &Path, m: &std::fs::Metadata) -> io::Result<()> {
    let time = |s: i64, ns: i64| {
        let d = std::time::Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32);
        std::time::UNIX_EPOCH + d
    };
    let times = std::fs::FileTimes::new()
        .set_accessed(time(m.atime(), m.atime_nsec()))
        .set_modified(time(m.mtime(), m.mtime_nsec()));
    std::fs::File::open(path)?.set_times(times)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn declared_volumes_are_normalized_and_covered_ones_dropped() {
        let mut warnings = Vec::new();
        let declared: Vec<String> = [
            "/var/lib/mysql/",
            "/data",
            "//cache//x",
            "rel",
            "/a/../b",
            "/data",
            "/srv/sub",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let volumes = vec![
            Volume::Anonymous {
                container: "/data".into(),
            },
            Volume::Bind {
                host: "/h".into(),
                container: "/srv".into(),
                read_only: false,
            },
        ];
        let out = uncovered(&declared, &volumes, &mut |w| warnings.push(w));
        assert_eq!(out, vec!["/var/lib/mysql", "/cache/x"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        // A volume below a declared one does not cover it; a sibling with
        // a common prefix neither.
        let v = vec![Volume::Anonymous {
            container: "/var/lib/mysql/x".into(),
        }];
        assert_eq!(
            uncovered(&["/var/lib/mysql".into()], &v, &mut |_| {}),
            vec!["/var/lib/mysql"]
        );
        let v = vec![Volume::Anonymous {
            container: "/var/lib/my".into(),
        }];
        assert_eq!(
            uncovered(&["/var/lib/mysql".into()], &v, &mut |_| {}),
            vec!["/var/lib/mysql"]
        );
    }

    #[test]
    fn dir_names_are_one_to_one_and_safe_for_nspawn() {
        assert_eq!(dir_name("/var/lib/mysql"), "var-lib-mysql");
        assert_eq!(dir_name("/a-b"), "a%2db");
        assert_eq!(dir_name("/a/b"), "a-b");
        assert_ne!(dir_name("/a_b"), dir_name("/a-b"));
        assert_eq!(dir_name("/.hidden/x.y"), "%2ehidden-x.y");
        assert_eq!(dir_name("/a:b\\c"), "a%3ab%5cc");
        assert_eq!(dir_name("/"), "-");
        assert_eq!(dir_name("/ü"), "%c3%bc");
    }

    fn write(p: &Path, s: &str, mode: u32) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_volume_is_a_copy_of_the_image_content_and_is_kept_after() {
        let t = tempfile::tempdir().unwrap();
        let (l0, l1) = (t.path().join("l0"), t.path().join("l1"));
        write(&l0.join("var/lib/db/base.conf"), "lower", 0o640);
        write(&l0.join("var/lib/db/sub/deep"), "deep", 0o600);
        write(&l1.join("var/lib/db/base.conf"), "upper", 0o644);
        std::os::unix::fs::symlink("base.conf", l1.join("var/lib/db/link")).unwrap();
        fs::set_permissions(l1.join("var/lib/db"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(l0.join("var/lib/db/sub"), fs::Permissions::from_mode(0o500)).unwrap();
        let view = MergedView::new(vec![l0, l1]);
        let vols = t.path().join("volumes/web");
        let dir = ensure(&vols, "/var/lib/db", Some(&view)).unwrap();
        assert_eq!(dir, vols.join("var-lib-db"));
        assert_eq!(fs::read_to_string(dir.join("base.conf")).unwrap(), "upper");
        assert_eq!(fs::read_to_string(dir.join("sub/deep")).unwrap(), "deep");
        assert_eq!(
            fs::read_link(dir.join("link")).unwrap(),
            Path::new("base.conf")
        );
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o750);
        assert_eq!(mode(&dir.join("sub")), 0o500);
        assert_eq!(mode(&dir.join("base.conf")), 0o644);
        assert_eq!(mode(&dir.join("sub/deep")), 0o600);
        assert_eq!(
            fs::metadata(dir.join("base.conf")).unwrap().mtime(),
            fs::metadata(t.path().join("l1/var/lib/db/base.conf"))
                .unwrap()
                .mtime()
        );
        // Later starts keep what the container wrote.
        fs::write(dir.join("data"), "mine").unwrap();
        let again = ensure(&vols, "/var/lib/db", Some(&view)).unwrap();
        assert_eq!(fs::read_to_string(again.join("data")).unwrap(), "mine");
        assert!(!vols.join(".tmp.var-lib-db").exists());
        fs::set_permissions(dir.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn a_path_the_image_lacks_gives_an_empty_directory_and_leftovers_go() {
        let t = tempfile::tempdir().unwrap();
        let l0 = t.path().join("l0");
        write(&l0.join("etc/x"), "", 0o644);
        let view = MergedView::new(vec![l0]);
        let vols = t.path().join("volumes/m");
        fs::create_dir_all(vols.join(".tmp.data/half")).unwrap();
        let dir = ensure(&vols, "/data", Some(&view)).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert!(!vols.join(".tmp.data").exists());
        // A file where the image has no directory: an empty volume as well.
        let file = ensure(&vols, "/etc/x", Some(&view)).unwrap();
        assert!(file.is_dir() && fs::read_dir(&file).unwrap().count() == 0);
    }

    #[test]
    fn mount_points_through_symlinks_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let (l0, upper) = (t.path().join("l0"), t.path().join("upper"));
        fs::create_dir_all(l0.join("var/lib/db")).unwrap();
        fs::create_dir_all(l0.join("etc")).unwrap();
        fs::write(l0.join("etc/hosts"), "").unwrap();
        std::os::unix::fs::symlink("/etc", l0.join("data")).unwrap();
        std::os::unix::fs::symlink("../etc", l0.join("var/rel")).unwrap();
        // Planted by the container's root in its writable layer.
        fs::create_dir_all(upper.join("srv")).unwrap();
        std::os::unix::fs::symlink("/etc", upper.join("srv/www")).unwrap();
        let view = MergedView::new(vec![l0, upper]);
        for ok in [
            "/var/lib/db",
            "/var/lib/db/new/deeper",
            "/new",
            "/etc/hosts",
        ] {
            assert!(check_mount_point(&view, ok).is_ok(), "{ok}");
        }
        for bad in ["/data", "/data/x", "/var/rel", "/srv/www", "/srv/www/html"] {
            let e = check_mount_point(&view, bad).unwrap_err();
            assert!(e.contains("symlink"), "{bad}: {e}");
        }
        assert!(check_mount_point(&view, "/etc/hosts/x")
            .unwrap_err()
            .contains("not a directory"));
    }

    #[test]
    fn whiteouts_are_not_copied() {
        assert!(
            rustix::process::geteuid().is_root(),
            "whiteouts_are_not_copied needs root for mknod (make test runs as root)"
        );
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (l0, l1) = (t.path().join("l0"), t.path().join("l1"));
        write(&l0.join("data/gone"), "x", 0o644);
        write(&l0.join("data/kept"), "x", 0o644);
        fs::create_dir_all(l1.join("data")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            l1.join("data/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let view = MergedView::new(vec![l0, l1]);
        let dir = ensure(&t.path().join("v"), "/data", Some(&view)).unwrap();
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("kept")]);
    }
}
