//! Entry metadata: what the tar says (header plus PAX records) and how it is
//! applied. Order matters: owner first (chown clears setuid/setgid and file
//! capabilities), then xattrs (so `security.capability` survives), then the
//! mode (so setuid/setgid/sticky survive), then times.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::{self, AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

/// Metadata of one entry, as the tar gives it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub atime: Option<Timespec>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    pub(crate) fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.atime.unwrap_or(self.mtime),
            last_modification: self.mtime,
        }
    }
}

/// Parses a PAX time (`SECONDS[.FRACTION]`, possibly negative).
pub(crate) fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nsec: i64 = 0;
    let mut scale = 100_000_000;
    for c in frac.chars() {
        let d = c.to_digit(10)? as i64;
        nsec += d * scale;
        scale /= 10;
    }
    if neg {
        if nsec == 0 {
            return Some(Timespec {
                tv_sec: -secs,
                tv_nsec: 0,
            });
        }
        return Some(Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nsec,
        });
    }
    Some(Timespec {
        tv_sec: secs,
        tv_nsec: nsec,
    })
}

/// What happens to an xattr of the image.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum XattrPolicy {
    Apply,
    /// The host's labels, not the image's: never copied.
    SkipSelinux,
    /// overlayfs metadata would change how the stacked layers are read
    /// (opaque dirs, redirects); only sdme writes it, never the image.
    SkipOverlay,
}

pub(crate) fn xattr_policy(name: &[u8]) -> XattrPolicy {
    if name == b"security.selinux" {
        XattrPolicy::SkipSelinux
    } else if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
        XattrPolicy::SkipOverlay
    } else {
        XattrPolicy::Apply
    }
}

/// Where to apply metadata: an open fd (regular files, directories) or a
/// name in a parent directory (symlinks, devices, FIFOs: opening those is
/// either impossible without following them or has side effects).
pub(crate) enum Target<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a [u8]),
}

/// Warnings that are reported once per kind, not once per file.
#[derive(Default)]
pub(crate) struct Warnings {
    seen: HashSet<(Vec<u8>, i32)>,
}

impl Warnings {
    fn xattr(&mut self, path: &str, name: &[u8], err: Errno) {
        if self.seen.insert((name.to_vec(), err.raw_os_error())) {
            eprintln!(
                "sdme-extract: warning: {path}: cannot set xattr {}: {err} (further such failures not reported)",
                String::from_utf8_lossy(name)
            );
        }
    }
}

/// chown (if `owner`), then xattrs. Mode and times are separate steps.
pub(crate) fn apply_owner_xattrs(
    target: &Target<'_>,
    meta: &Meta,
    owner: bool,
    path: &str,
    warnings: &mut Warnings,
) -> Result<(), String> {
    if owner {
        let (uid, gid) = (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
        match target {
            Target::Fd(fd) => fs::fchown(fd, uid, gid),
            Target::At(dir, name) => fs::chownat(dir, *name, uid, gid, AtFlags::SYMLINK_NOFOLLOW),
        }
        .map_err(|e| format!("cannot chown to {}:{}: {e}", meta.uid, meta.gid))?;
    }
    for (name, value) in &meta.xattrs {
        if xattr_policy(name) != XattrPolicy::Apply {
            continue;
        }
        let result = match target {
            Target::Fd(fd) => fs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()),
            // No fd-relative lsetxattr exists: go through the parent fd's
            // /proc entry; the last component is not followed (lsetxattr).
            Target::At(dir, base) => {
                let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
                p.extend_from_slice(base);
                fs::lsetxattr(p.as_slice(), name.as_slice(), value, XattrFlags::empty())
            }
        };
        if let Err(e) = result {
            // A binary without its capability fails at run time in a way that
            // is hard to trace back: as root this is an error.
            if owner && name.as_slice() == b"security.capability" {
                return Err(format!("cannot set security.capability: {e}"));
            }
            warnings.xattr(path, name, e);
        }
    }
    Ok(())
}

/// Removes the xattrs of an existing directory that its new entry does not
/// list: a directory entry states the directory's whole metadata (umoci does
/// the same). xattrs the image never controls (SELinux label, overlayfs
/// metadata written by sdme itself) stay.
pub(crate) fn drop_unlisted_xattrs(fd: BorrowedFd<'_>, meta: &Meta) -> Result<(), String> {
    let mut buf = vec![0u8; 4096];
    let n = loop {
        match fs::flistxattr(fd, &mut buf) {
            Ok(n) => break n,
            Err(Errno::RANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            Err(Errno::NOTSUP) => return Ok(()),
            Err(e) => return Err(format!("cannot list xattrs: {e}")),
        }
    };
    for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if xattr_policy(name) != XattrPolicy::Apply || meta.xattrs.iter().any(|(k, _)| k == name) {
            continue;
        }
        match fs::fremovexattr(fd, name) {
            Ok(()) | Err(Errno::NODATA) => {}
            Err(e) => {
                return Err(format!(
                    "cannot remove xattr {}: {e}",
                    String::from_utf8_lossy(name)
                ))
            }
        }
    }
    Ok(())
}

pub(crate) fn apply_mode(target: &Target<'_>, mode: u32) -> Result<(), String> {
    let m = Mode::from_raw_mode(mode & 0o7777);
    match target {
        Target::Fd(fd) => fs::fchmod(fd, m),
        // Devices and FIFOs only (symlinks have no mode on Linux). chmodat
        // would follow a symlink put there since the node was made, so the
        // node is pinned by an O_PATH fd that does not follow the name and
        // changed through its /proc/self/fd link, which names that inode.
        Target::At(dir, name) => chmod_node(*dir, name, m),
    }
    .map_err(|e| format!("cannot chmod {:o}: {e}", mode & 0o7777))
}

fn chmod_node(dir: BorrowedFd<'_>, name: &[u8], m: Mode) -> Result<(), Errno> {
    let fd = fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let kind = fs::FileType::from_raw_mode(fs::fstat(&fd)?.st_mode);
    if !matches!(
        kind,
        fs::FileType::CharacterDevice
            | fs::FileType::BlockDevice
            | fs::FileType::Fifo
            | fs::FileType::Socket
    ) {
        return Err(Errno::LOOP);
    }
    fs::chmod(format!("/proc/self/fd/{}", fd.as_raw_fd()), m)
}

pub(crate) fn apply_times(target: &Target<'_>, meta: &Meta) -> Result<(), String> {
    let times = meta.times();
    match target {
        Target::Fd(fd) => fs::futimens(fd, &times),
        Target::At(dir, name) => fs::utimensat(dir, *name, &times, AtFlags::SYMLINK_NOFOLLOW),
    }
    .map_err(|e| format!("cannot set times: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time(b"12"),
            Some(Timespec {
                tv_sec: 12,
                tv_nsec: 0
            })
        );
        assert_eq!(
            parse_pax_time(b"1.5"),
            Some(Timespec {
                tv_sec: 1,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(Timespec {
                tv_sec: -2,
                tv_nsec: 750_000_000
            })
        );
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(parse_pax_time(b"1.x"), None);
        // More than nine fraction digits: truncated, no overflow.
        assert_eq!(
            parse_pax_time(b"3.1234567891234"),
            Some(Timespec {
                tv_sec: 3,
                tv_nsec: 123_456_789
            })
        );
    }

    #[test]
    fn xattr_policy_skips_selinux_and_overlay() {
        assert_eq!(xattr_policy(b"security.selinux"), XattrPolicy::SkipSelinux);
        assert_eq!(
            xattr_policy(b"trusted.overlay.opaque"),
            XattrPolicy::SkipOverlay
        );
        assert_eq!(xattr_policy(b"security.capability"), XattrPolicy::Apply);
        assert_eq!(xattr_policy(b"user.foo"), XattrPolicy::Apply);
    }
}
