//! The container's user namespace on the host side: idmapped views of the
//! shared layers, and the ownership of the container's own writable layers.
//!
//! Layers are shared by every image and container and are never chowned:
//! each container sees them through idmapped mounts (`open_tree` +
//! `mount_setattr(MOUNT_ATTR_IDMAP)` with a user namespace mapping its ids
//! `0…SIZE` to host ids `BASE…`), which overlayfs accepts as lower layers.
//! The mounts are made in a private mount namespace of the launcher whose
//! `/` is a recursive slave, so systemd-nspawn (executed next, same
//! process) sees them and the host never does: they vanish with nspawn.
//! The writable layers (the overlays' upper directories) cannot be idmapped
//! (overlayfs refuses an idmapped upper); they are owned in the range
//! itself, shifted once when a container's range changes.

use sdme_store::userns::IdRange;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// One idmapped view: `source` (a layer directory) mounted at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmapMount {
    pub source: PathBuf,
    pub target: PathBuf,
}

/// What the launcher must do before it executes systemd-nspawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub range: IdRange,
    pub mounts: Vec<IdmapMount>,
    /// Volume sources nspawn will bind with `idmap`: tried here first, so
    /// that a file system without idmapped mounts is named with its volume
    /// instead of failing inside nspawn ("Failed to map ids ...").
    pub idmapped_binds: Vec<(PathBuf, String)>,
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {set: IDMAP|RDONLY, userns})`:
/// rustix has no `mount_setattr`, so this one system call is made raw.
fn idmap_detached_mount(mount: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: the path is a valid NUL-terminated string, `attr` is a live
    // `struct mount_attr` of the size passed, and both descriptors are
    // borrowed for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A user namespace mapping `0…size` to `base…` (uids and gids), held by
/// its descriptor: a child process creates it and is gone again at once.
fn user_namespace(range: IdRange) -> Result<OwnedFd, String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new("/bin/cat");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec the child only makes the unshare
    // system call (async-signal-safe); the launcher has one thread.
    unsafe {
        cmd.pre_exec(|| {
            rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("creating a user namespace (/bin/cat in a new one): {e}"))?;
    let pid = child.id();
    let result = (|| {
        let map = format!("0 {} {}\n", range.base, range.size);
        for file in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|mut f| f.write_all(map.as_bytes()))
                .map_err(|e| format!("{path}: writing {:?}: {e}", map.trim()))?;
        }
        let path = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| format!("{path}: {e}"))
    })();
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Makes `plan`'s mounts, in a new private mount namespace of this process
/// (which systemd-nspawn, executed next, inherits).
pub fn apply(plan: &Plan) -> Result<(), String> {
    use rustix::mount::{MountPropagationFlags, MoveMountFlags, OpenTreeFlags};
    // SAFETY: the launcher is single-threaded here, and a new mount
    // namespace changes nothing any other code of this process relies on.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // Mounts made here must not reach the host; the host's still reach us
    // (machinectl bind).
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| format!("making / a recursive slave: {e}"))?;
    let userns = user_namespace(plan.range)?;
    for (source, volume) in &plan.idmapped_binds {
        let detached = rustix::mount::open_tree(
            rustix::fs::CWD,
            source,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(|e| format!("volume {volume}: {}: open_tree: {e}", source.display()))?;
        idmap_detached_mount(detached.as_fd(), userns.as_fd()).map_err(|e| {
            format!(
                "volume {volume}: {} cannot be mounted idmapped ({e}): its file system does not \
                 support idmapped mounts (ext4, xfs, btrfs and tmpfs from Linux 6.3 do; overlayfs \
                 and many network file systems do not); move it, or run the container with \
                 PrivateUsers=no",
                source.display()
            )
        })?;
        // Dropped unattached: nothing was mounted.
    }
    for m in &plan.mounts {
        std::fs::create_dir_all(&m.target).map_err(|e| format!("{}: {e}", m.target.display()))?;
        let tree = rustix::fs::CWD;
        let detached = rustix::mount::open_tree(
            tree,
            &m.source,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(|e| format!("{}: open_tree: {e}", m.source.display()))?;
        idmap_detached_mount(detached.as_fd(), userns.as_fd()).map_err(|e| {
            format!(
                "{}: idmapping the layer for ids {}…: {e} (user namespaces need idmapped \
                 mounts of the store's file system, Linux 5.19 or later for overlayfs; \
                 PrivateUsers=no runs the container without)",
                m.source.display(),
                plan.range.base
            )
        })?;
        rustix::mount::move_mount(
            detached.as_fd(),
            "",
            tree,
            &m.target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| format!("{}: move_mount: {e}", m.target.display()))?;
    }
    Ok(())
}

/// Host id of container id `id` in a range based at `from`, moved to the
/// range based at `to`; ids outside `from`'s first `size` are left as they
/// are (`size` is the smaller of the two ranges, so nothing lands in a
/// neighbour's range; both ranges end at or below 0xFFFF0000, so the sum
/// cannot wrap, and it is checked anyway).
fn shifted(id: u32, from: u32, to: u32, size: u32) -> u32 {
    match id.checked_sub(from) {
        Some(offset) if offset < size => to.checked_add(offset).unwrap_or(id),
        _ => id,
    }
}

/// Moves the owners of everything in `root` (itself included) from the
/// range based at `from` to the one based at `to` (`size` ids), without
/// following a symbolic link, leaving the tree or crossing into another
/// mount: each directory is opened beneath the root's descriptor with
/// `RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`, each entry opened `O_PATH |
/// O_NOFOLLOW` from its directory, checked and changed through that
/// descriptor (so a swap between the check and the change cannot redirect
/// it). Iterative (no recursion); a path longer than the kernel's limit
/// stops the shift with an error naming it. Modes are put back after each
/// chown (which clears setuid and setgid bits); hard links are shifted
/// once. The container is not running meanwhile (the launcher runs before
/// systemd-nspawn).
pub fn shift_tree(root: &Path, from: u32, to: u32, size: u32) -> Result<(), String> {
    use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
    use std::os::unix::ffi::OsStrExt;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root_fd = rustix::fs::open(root, flags, Mode::empty())
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let dev = rustix::fs::fstat(&root_fd)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .st_dev;
    let mut linked = std::collections::HashSet::new();
    let mut shift = Shift {
        from,
        to,
        size,
        dev,
        linked: &mut linked,
    };
    shift
        .entry(&root_fd, c".")
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let at = root.join(&rel);
        let err = |e: rustix::io::Errno| format!("{}: {e}", at.display());
        let dir = if rel.as_os_str().is_empty() {
            rustix::io::dup(&root_fd).map_err(err)?
        } else {
            let resolve = ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV;
            rustix::fs::openat2(&root_fd, &rel, flags, Mode::empty(), resolve).map_err(err)?
        };
        for entry in rustix::fs::Dir::read_from(&dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let child = || at.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            match shift.entry(&dir, name) {
                Ok(Some(FileType::Directory)) => {
                    pending.push(rel.join(std::ffi::OsStr::from_bytes(name.to_bytes())))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("{}: {e}", child().display())),
            }
        }
    }
    Ok(())
}

struct Shift<'a> {
    from: u32,
    to: u32,
    size: u32,
    /// The tree's file system: entries on another (mount points) are left.
    dev: u64,
    linked: &'a mut std::collections::HashSet<(u64, u64)>,
}

impl Shift<'_> {
    /// Shifts one entry of `dir`; its type, or `None` when it was left
    /// alone (another mount, a hard link already shifted).
    fn entry(
        &mut self,
        dir: &OwnedFd,
        name: &std::ffi::CStr,
    ) -> rustix::io::Result<Option<rustix::fs::FileType>> {
        use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if st.st_dev != self.dev {
            return Ok(None);
        }
        if kind != FileType::Directory
            && st.st_nlink > 1
            && !self.linked.insert((st.st_dev, st.st_ino))
        {
            return Ok(None);
        }
        let (uid, gid) = (
            shifted(st.st_uid, self.from, self.to, self.size),
            shifted(st.st_gid, self.from, self.to, self.size),
        );
        if (uid, gid) != (st.st_uid, st.st_gid) {
            rustix::fs::chownat(
                &fd,
                c"",
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::EMPTY_PATH,
            )?;
            if kind == FileType::RegularFile && st.st_mode & 0o6000 != 0 {
                // Through the O_PATH descriptor's /proc link: the same
                // inode, whatever its name points to now.
                let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
                rustix::fs::chmod(link.as_str(), Mode::from_raw_mode(st.st_mode & 0o7777))?;
            }
        }
        Ok(Some(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn ids_move_between_ranges_and_others_stay() {
        assert_eq!(shifted(0, 0, 0x80000, 0x10000), 0x80000);
        assert_eq!(shifted(65535, 0, 0x80000, 0x10000), 0x8FFFF);
        assert_eq!(shifted(65536, 0, 0x80000, 0x10000), 65536);
        assert_eq!(shifted(0x80005, 0x80000, 0, 0x10000), 5);
        assert_eq!(shifted(7, 0x80000, 0, 0x10000), 7);
        // Never past the smaller range, never wrapping.
        assert_eq!(shifted(0x70000000, 65536, 0x90000000, 0x10000), 0x70000000);
        assert_eq!(
            shifted(u32::MAX - 1, 0, u32::MAX - 10, 0xFFFF_FFFF),
            u32::MAX - 1
        );
    }

    /// Needs root (chown); the unit tier runs as root in CI.
    #[test]
    fn a_tree_is_shifted_in_place_without_following_links() {
        if !rustix::process::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the unit tier as root"
            );
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("upper");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(&outside, "x").unwrap();
        std::fs::write(root.join("a/b/c/file"), "data").unwrap();
        std::fs::write(root.join("suid"), "x").unwrap();
        std::os::unix::fs::chown(root.join("suid"), Some(0), Some(0)).unwrap();
        std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        std::fs::hard_link(root.join("a/b/c/file"), root.join("hardlink")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/escape")).unwrap();
        std::os::unix::fs::lchown(root.join("a/b"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::chown(&outside, Some(0), Some(0)).unwrap();

        shift_tree(&root, 0, 0x90000, 0x10000).unwrap();
        let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!((meta("").uid(), meta("").gid()), (0x90000, 0x90000));
        assert_eq!(meta("a/b").uid(), 0x90000 + 1000);
        assert_eq!(meta("a/b/c/file").uid(), 0x90000, "hard link shifted once");
        assert_eq!(meta("suid").mode() & 0o7777, 0o4755, "setuid kept");
        assert_eq!(meta("a/escape").uid(), 0x90000, "the link itself");
        assert_eq!(
            std::fs::metadata(&outside).unwrap().uid(),
            0,
            "its target untouched"
        );
        // And back.
        shift_tree(&root, 0x90000, 0, 0x10000).unwrap();
        assert_eq!(meta("a/b").uid(), 1000);
        assert_eq!(meta("hardlink").uid(), 0);
        // The root itself must not be a symlink.
        std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
        assert!(shift_tree(&t.path().join("link"), 0, 0x90000, 0x10000).is_err());
    }
}
