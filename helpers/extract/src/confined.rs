//! Writes below a directory that an image or a container controls (a glue
//! layer over an image, a container's writable layer, a volume, a base's
//! tree): the tree is opened once, every parent is resolved from that fd
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, and the last
//! component is created or changed with `*at` calls that never follow it.
//! Whatever symlinks the tree holds, nothing outside it is created, written,
//! chmod-ed or chown-ed. Paths are cleaned lexically (`..` stops at the root).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self, AtFlags, Mode, OFlags};
use rustix::fs::{Gid, Uid};
use rustix::io::Errno;

use crate::path::CleanPath;
use crate::resolve::{open_child_dir, open_dir};

/// A tree opened for confined writes.
pub struct Tree {
    fd: OwnedFd,
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// The parent's fd and the last component of `path`; the root has none.
fn parent_of(root: BorrowedFd<'_>, path: &CleanPath) -> io::Result<(OwnedFd, Vec<u8>)> {
    let (parent, name) = path
        .split_last()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the tree's root itself"))?;
    let fd = open_dir(root, &parent, true).map_err(io_err)?;
    Ok((fd, name.to_vec()))
}

impl Tree {
    /// Opens `dir` (a path sdme itself owns: the store, a runtime directory).
    pub fn open(dir: &Path) -> io::Result<Tree> {
        let fd = fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        Ok(Tree { fd })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Creates the directory `path` if it does not exist (its parent must),
    /// with `mode` and, when given, owner; returns whether it was created.
    /// An existing entry must be a directory (after confined resolution).
    pub fn make_dir(&self, path: &str, mode: u32, owner: Option<(u32, u32)>) -> io::Result<bool> {
        let clean = CleanPath::parse(path.as_bytes());
        if clean.split_last().is_none() {
            return Ok(false);
        }
        let (parent, name) = parent_of(self.fd(), &clean)?;
        let created = match fs::mkdirat(&parent, name.as_slice(), Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(io_err(e)),
        };
        // The new directory is opened from its parent without following
        // its name, so a swap after mkdirat cannot redirect fchown/fchmod.
        let dir = if created {
            open_child_dir(parent.as_fd(), &name, false).map_err(io_err)?
        } else {
            open_dir(self.fd(), &clean, false).map_err(io_err)?
        };
        if created {
            if let Some((uid, gid)) = owner {
                fs::fchown(&dir, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(io_err)?;
            }
            // After chown, which clears set-id bits; mkdirat applied the umask.
            fs::fchmod(&dir, Mode::from_raw_mode(mode & 0o7777)).map_err(io_err)?;
        }
        Ok(created)
    }

    /// Creates `path` and every missing parent as directories with `mode`
    /// (and `owner`, for those it creates).
    pub fn make_dirs(&self, path: &str, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
        let clean = CleanPath::parse(path.as_bytes());
        let mut so_far = CleanPath::default();
        for comp in clean.components() {
            so_far = so_far.join(comp);
            let text = String::from_utf8_lossy(so_far.to_relative()).into_owned();
            self.make_dir(&text, mode, owner)?;
        }
        Ok(())
    }

    /// Writes a regular file at `path` (its parent must exist), replacing a
    /// non-directory entry there without following it.
    pub fn write_file(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        use std::io::Write;
        let clean = CleanPath::parse(path.as_bytes());
        let (parent, name) = parent_of(self.fd(), &clean)?;
        match fs::unlinkat(&parent, name.as_slice(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err(e)),
        }
        let fd = fs::openat(
            &parent,
            name.as_slice(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io_err)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(contents)?;
        if let Some((uid, gid)) = owner {
            fs::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(io_err)?;
        }
        fs::fchmod(&file, Mode::from_raw_mode(mode & 0o7777)).map_err(io_err)?;
        file.sync_all()
    }

    /// Makes `path` a symlink to `target` (its parent must exist), replacing
    /// a non-directory entry there atomically: the link is made under a
    /// temporary name and renamed over it, so readers see the old entry or
    /// the new link, never neither.
    pub fn symlink(&self, path: &str, target: &str) -> io::Result<()> {
        let clean = CleanPath::parse(path.as_bytes());
        let (parent, name) = parent_of(self.fd(), &clean)?;
        let mut tmp = format!(".tmp.sdme-{}-", std::process::id()).into_bytes();
        tmp.extend_from_slice(&name);
        match fs::unlinkat(&parent, tmp.as_slice(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err(e)),
        }
        fs::symlinkat(target, &parent, tmp.as_slice()).map_err(io_err)?;
        fs::renameat(&parent, tmp.as_slice(), &parent, name.as_slice()).map_err(|e| {
            let _ = fs::unlinkat(&parent, tmp.as_slice(), AtFlags::empty());
            io_err(e)
        })
    }

    /// Whether `path` exists in the tree, without following its last component.
    pub fn exists(&self, path: &str) -> io::Result<bool> {
        let clean = CleanPath::parse(path.as_bytes());
        if clean.split_last().is_none() {
            return Ok(true);
        }
        let (parent, name) = match parent_of(self.fd(), &clean) {
            Ok(found) => found,
            // A missing parent means a missing entry; any other failure
            // (a loop, a magic link, EACCES) is an error, not "absent".
            Err(e)
                if e.raw_os_error() == Some(Errno::NOENT.raw_os_error())
                    || e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e),
        };
        match fs::statat(&parent, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Changes the mode of the directory `path`.
    pub fn set_dir_mode(&self, path: &str, mode: u32) -> io::Result<()> {
        let clean = CleanPath::parse(path.as_bytes());
        let dir = open_dir(self.fd(), &clean, false).map_err(io_err)?;
        fs::fchmod(&dir, Mode::from_raw_mode(mode & 0o7777)).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A tree whose every entry points outside it, and a canary outside.
    fn hostile() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("canary"), "untouched").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        for (link, target) in [
            ("abs", outside.to_str().unwrap()),
            ("slash", "/"),
            ("rel", "../outside"),
            ("canary", "../outside/canary"),
            ("dotdot", "../../../../.."),
        ] {
            std::os::unix::fs::symlink(target, tree.join(link)).unwrap();
        }
        (t, tree, outside)
    }

    fn untouched(outside: &Path) {
        let names: Vec<_> = std::fs::read_dir(outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["canary"]);
        assert_eq!(
            std::fs::read_to_string(outside.join("canary")).unwrap(),
            "untouched"
        );
        let mode = std::fs::metadata(outside).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn symlinks_in_the_tree_stay_in_the_tree() {
        let (_t, tree_path, outside) = hostile();
        let tree = Tree::open(&tree_path).unwrap();
        // An absolute link names a path inside the tree, which does not exist.
        assert!(tree.make_dirs("/abs/x/y", 0o755, None).is_err());
        assert!(tree.write_file("abs/file", b"data", 0o644, None).is_err());
        assert!(tree.set_dir_mode("abs", 0o777).is_err());
        tree.make_dirs("/slash/x/y", 0o755, None).unwrap();
        tree.make_dirs("rel/../../z", 0o755, None).unwrap();
        tree.make_dirs("dotdot/w", 0o755, None).unwrap();
        tree.write_file("/slash/file", b"data", 0o644, None)
            .unwrap();
        tree.write_file("canary", b"replaced", 0o644, None).unwrap();
        assert!(tree.symlink("rel/link", "/etc").is_err());
        tree.symlink("dotdot/link", "/etc").unwrap();
        untouched(&outside);
        // `slash` and `dotdot` resolve to the tree's root: what was written
        // through them is there.
        assert!(tree_path.join("x/y").is_dir());
        assert_eq!(
            std::fs::read_to_string(tree_path.join("file")).unwrap(),
            "data"
        );
        // The last component is never followed: the link was replaced.
        assert_eq!(
            std::fs::read_to_string(tree_path.join("canary")).unwrap(),
            "replaced"
        );
        assert!(tree_path.join("z").is_dir() && tree_path.join("w").is_dir());
        assert!(tree.exists("link").unwrap());
    }

    #[test]
    fn modes_and_existing_directories() {
        let t = tempfile::tempdir().unwrap();
        let tree = Tree::open(t.path()).unwrap();
        assert!(tree.make_dir("d", 0o1777, None).unwrap());
        assert!(!tree.make_dir("d", 0o700, None).unwrap());
        assert_eq!(
            std::fs::metadata(t.path().join("d")).unwrap().mode() & 0o7777,
            0o1777
        );
        tree.write_file("d/f", b"", 0o4755, None).unwrap();
        assert_eq!(
            std::fs::metadata(t.path().join("d/f")).unwrap().mode() & 0o7777,
            0o4755
        );
        std::fs::write(t.path().join("plain"), "").unwrap();
        assert!(tree.make_dir("plain", 0o755, None).is_err());
        assert!(tree.write_file("missing/f", b"", 0o644, None).is_err());
        assert!(!tree.exists("nope").unwrap());
    }
}
