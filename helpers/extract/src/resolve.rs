//! Confined path resolution: every image path is resolved relative to the root
//! fd with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so `..` and
//! symlinks (absolute or relative) stay inside the root, as they would inside a
//! chroot. Only parent directories are resolved this way; the final component
//! is always handled by a `*at` call on the parent fd that does not follow it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::path::CleanPath;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` (a directory) below `root`, confined. `O_PATH` when `path_only`
/// (enough for a `*at` dirfd and needs no read permission).
pub(crate) fn open_dir(
    root: BorrowedFd<'_>,
    path: &CleanPath,
    path_only: bool,
) -> Result<OwnedFd, Errno> {
    let access = if path_only {
        OFlags::PATH
    } else {
        OFlags::RDONLY
    };
    let flags = access | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let rel = path.to_relative();
    // EAGAIN: the kernel saw a concurrent rename while resolving `..`; retry.
    let mut tries = 0;
    loop {
        match fs::openat2(root, rel, flags, Mode::empty(), RESOLVE) {
            Err(Errno::AGAIN) if tries < 16 => tries += 1,
            other => return other,
        }
    }
}

/// Opens the last component of a path in `parent` as a directory without
/// following it: a symlink there fails instead of being followed.
pub(crate) fn open_child_dir(
    parent: BorrowedFd<'_>,
    name: &[u8],
    path_only: bool,
) -> Result<OwnedFd, Errno> {
    let access = if path_only {
        OFlags::PATH
    } else {
        OFlags::RDONLY
    };
    fs::openat(
        parent,
        name,
        access | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Parent directories of the entries of one layer, with a one-entry cache
/// (tar entries come grouped by directory).
pub(crate) struct Parents {
    cached: Option<(CleanPath, OwnedFd)>,
}

/// Why a parent directory could not be had.
pub(crate) enum ParentError {
    /// Does not exist (only when not creating).
    Missing,
    /// A component is not a directory.
    NotDir(String),
    Other(String),
}

impl Parents {
    pub(crate) fn new() -> Self {
        Parents { cached: None }
    }

    /// Forgets the cached fd: call after removing or replacing a directory or a
    /// symlink, which may change what a path resolves to.
    pub(crate) fn invalidate(&mut self) {
        self.cached = None;
    }

    /// The directory `path` below `root`; with `create`, missing directories
    /// are made (mode 0755, as `mkdir -p`) and reported to `created`.
    pub(crate) fn get(
        &mut self,
        root: BorrowedFd<'_>,
        path: &CleanPath,
        create: bool,
        created: &mut dyn FnMut(&CleanPath),
    ) -> Result<BorrowedFd<'_>, ParentError> {
        let hit = matches!(&self.cached, Some((p, _)) if p == path);
        if !hit {
            let fd = match open_dir(root, path, true) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => make_dirs(root, path, created)?,
                Err(Errno::NOENT) => return Err(ParentError::Missing),
                Err(Errno::NOTDIR) => {
                    return Err(ParentError::NotDir(format!(
                        "parent {} is not a directory",
                        path.display()
                    )))
                }
                Err(e) => {
                    return Err(ParentError::Other(format!(
                        "cannot open parent directory {}: {e}",
                        path.display()
                    )))
                }
            };
            self.cached = Some((path.clone(), fd));
        }
        match &self.cached {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(ParentError::Other("internal: parent cache empty".into())),
        }
    }
}

/// `mkdir -p` below `root`: each prefix is resolved from the root (so a
/// symlink met on the way resolves as it would in a chroot), and a missing
/// component is made with `mkdirat` on the resolved fd of its parent.
fn make_dirs(
    root: BorrowedFd<'_>,
    path: &CleanPath,
    created: &mut dyn FnMut(&CleanPath),
) -> Result<OwnedFd, ParentError> {
    let mut cur = open_dir(root, &CleanPath::default(), true)
        .map_err(|e| ParentError::Other(format!("cannot open the root: {e}")))?;
    let mut prefix = CleanPath::default();
    for comp in path.components() {
        prefix = prefix.join(comp);
        cur = match open_dir(root, &prefix, true) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        return Err(ParentError::Other(format!(
                            "parent {} is a dangling symlink",
                            prefix.display()
                        )))
                    }
                    Err(e) => {
                        return Err(ParentError::Other(format!(
                            "cannot create parent directory {}: {e}",
                            prefix.display()
                        )))
                    }
                }
                // Explicit mode: the process umask must not decide it.
                let fd = open_child_dir(cur.as_fd(), comp, false).map_err(|e| {
                    ParentError::Other(format!("cannot open {}: {e}", prefix.display()))
                })?;
                let _ = fs::fchmod(&fd, Mode::from_raw_mode(0o755));
                created(&prefix);
                fd
            }
            Err(Errno::NOTDIR) => {
                return Err(ParentError::NotDir(format!(
                    "parent {} is not a directory",
                    prefix.display()
                )))
            }
            Err(e) => {
                return Err(ParentError::Other(format!(
                    "cannot open parent directory {}: {e}",
                    prefix.display()
                )))
            }
        };
    }
    Ok(cur)
}
