//! Removal below a parent fd, never following symlinks, in constant fds: a
//! deep tree (thousands of levels) is walked down and back up with one open
//! directory at a time instead of one fd per level.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Removes `name` in `parent`, whatever it is (a directory with its whole tree).
/// A missing `name` is not an error.
pub(crate) fn remove_any(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => remove_tree(parent, name),
        Err(e) => Err(e),
    }
}

/// One level of the walk: the directory's name in its parent and the
/// subdirectories still to remove.
struct Level {
    name: CString,
    pending: Vec<CString>,
}

/// Removes the directory `name` in `parent` and everything below it.
pub(crate) fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let top = CString::new(name).map_err(|_| Errno::INVAL)?;
    let mut cur = open_nofollow_dir(parent, &top)?;
    let mut stack = vec![Level {
        pending: clear_files(&cur)?,
        name: top,
    }];
    loop {
        let Some(level) = stack.last_mut() else {
            return Ok(());
        };
        if let Some(sub) = level.pending.pop() {
            match open_nofollow_dir(cur.as_fd(), &sub) {
                Ok(fd) => {
                    cur = fd;
                    stack.push(Level {
                        pending: clear_files(&cur)?,
                        name: sub,
                    });
                }
                // Replaced by a non-directory meanwhile: remove it as such.
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                    fs::unlinkat(&cur, sub.as_c_str(), AtFlags::empty())?
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        // `cur` is empty: go up and remove it.
        let done = stack.pop().map(|l| l.name).unwrap_or_default();
        if stack.is_empty() {
            drop(cur);
            return match fs::unlinkat(parent, done.as_c_str(), AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(e),
            };
        }
        let up = fs::openat(
            &cur,
            c"..",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        cur = up;
        fs::unlinkat(&cur, done.as_c_str(), AtFlags::REMOVEDIR)?;
    }
}

fn open_nofollow_dir(parent: BorrowedFd<'_>, name: &CString) -> Result<OwnedFd, Errno> {
    fs::openat(
        parent,
        name.as_c_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Unlinks every non-directory in `dir`; returns the subdirectories' names.
fn clear_files(dir: &OwnedFd) -> Result<Vec<CString>, Errno> {
    let mut subdirs = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => {
                let st = fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(st.st_mode) == FileType::Directory
            }
            _ => false,
        };
        if is_dir {
            subdirs.push(name.to_owned());
        } else {
            match fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(subdirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn removes_a_deep_tree_with_few_fds() {
        let tmp = tempfile::tempdir().unwrap();
        let root = File::open(tmp.path()).unwrap();
        // 3000 levels: more than the default fd limit of 1024.
        let mut fd: OwnedFd = root.try_clone().unwrap().into();
        fs::mkdirat(&fd, "top", Mode::from_raw_mode(0o755)).unwrap();
        fd = open_nofollow_dir(fd.as_fd(), &CString::new("top").unwrap()).unwrap();
        for _ in 0..3000 {
            fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
            std::fs::write(
                format!("/proc/self/fd/{}/f", std::os::fd::AsRawFd::as_raw_fd(&fd)),
                b"x",
            )
            .unwrap();
            fd = open_nofollow_dir(fd.as_fd(), &CString::new("d").unwrap()).unwrap();
        }
        drop(fd);
        remove_any(root.as_fd(), b"top").unwrap();
        assert!(!tmp.path().join("top").exists());
    }

    #[test]
    fn does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"k").unwrap();
        std::fs::create_dir(tmp.path().join("t")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("t/link")).unwrap();
        let root = File::open(tmp.path()).unwrap();
        remove_any(root.as_fd(), b"t").unwrap();
        assert!(outside.path().join("keep").exists());
        assert!(!tmp.path().join("t").exists());
    }
}
