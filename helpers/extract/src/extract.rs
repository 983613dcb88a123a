//! The extraction loop: one tar entry at a time, written below the root fd.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use tar::EntryType;

use crate::reader::{Entry, TarReader};

use crate::meta::{self, Meta, Target, Warnings};
use crate::path::CleanPath;
use crate::remove;
use crate::resolve::{self, ParentError, Parents};
use crate::{Error, Options, Stats, Whiteouts};

/// Read buffer in front of the (decompressing) source, and copy buffer.
const BUF_SIZE: usize = 1 << 20;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// A directory whose mode and times are applied after the whole layer, so
/// that read-only directories can still be filled and their mtimes are not
/// changed by later entries. Identified by device and inode, so that nothing
/// is applied if the path has meanwhile become something else (a symlink
/// replacing the directory must never be followed).
struct DeferredDir {
    path: CleanPath,
    dev: u64,
    ino: u64,
    meta: Meta,
}

pub(crate) struct Extractor<'r> {
    root: BorrowedFd<'r>,
    opts: Options,
    parents: Parents,
    /// Apply mode: paths written by this layer and their ancestors; a
    /// whiteout never removes them (whiteouts hide lower layers only).
    upper: HashSet<CleanPath>,
    deferred: Vec<DeferredDir>,
    warnings: Warnings,
    buf: Vec<u8>,
    stats: Stats,
    /// Path of the last entry read, for errors in the archive after it.
    last: Option<String>,
    /// Apply mode: directories changed by this layer, by device and inode,
    /// with their path and times before the change.
    touched: HashMap<(u64, u64), (CleanPath, fs::Timestamps)>,
    last_touched: Option<CleanPath>,
}

fn err(path: &CleanPath, message: impl Into<String>) -> Error {
    Error::new(Some(path.display()), message)
}

impl<'r> Extractor<'r> {
    pub(crate) fn new(root: BorrowedFd<'r>, opts: &Options) -> Self {
        Extractor {
            root,
            opts: *opts,
            parents: Parents::new(),
            upper: HashSet::new(),
            deferred: Vec::new(),
            warnings: Warnings::default(),
            buf: vec![0; BUF_SIZE],
            stats: Stats::default(),
            last: None,
            touched: HashMap::new(),
            last_touched: None,
        }
    }

    pub(crate) fn run(mut self, tar: &mut dyn Read) -> Result<Stats, Error> {
        let mut reader = TarReader::new(BufReader::with_capacity(BUF_SIZE, tar));
        loop {
            let entry = match reader.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(m) => return Err(Error::new(self.last.clone(), m)),
            };
            self.last = Some(CleanPath::parse(&entry.path).display());
            self.entry(&entry, &mut reader)?;
        }
        // Read the source to its end: a verifying reader (digest, diff_id)
        // reports a mismatch only there.
        let mut rest = reader.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink())
            .map_err(|e| Error::new(None, format!("reading past the end of the tar: {e}")))?;
        self.finish_dirs()?;
        Ok(self.stats)
    }

    fn entry<R: Read>(&mut self, entry: &Entry, data: &mut TarReader<R>) -> Result<(), Error> {
        let kind = entry.kind;
        let path = CleanPath::parse(&entry.path);
        self.stats.entries += 1;
        let meta = &entry.meta;
        let Some((parent, base)) = path.split_last() else {
            return self.root_entry(kind, meta, &path);
        };
        let base = base.to_vec();
        if base.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(&parent, &base, &path);
        }
        match kind {
            EntryType::Directory => self.directory(&parent, &base, &path, meta),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(&parent, &base, &path, entry, data)
            }
            EntryType::Symlink => {
                let target = entry
                    .link
                    .as_deref()
                    .ok_or_else(|| err(&path, "symlink without a target"))?;
                self.symlink(&parent, &base, &path, meta, target)
            }
            EntryType::Link => {
                let target = entry
                    .link
                    .as_deref()
                    .ok_or_else(|| err(&path, "hardlink without a target"))?;
                self.hardlink(&parent, &base, &path, target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let dev = fs::makedev(entry.dev.0, entry.dev.1);
                self.node(&parent, &base, &path, meta, kind, dev)
            }
            other => Err(err(
                &path,
                format!("unsupported tar entry type {:?}", other.as_byte() as char),
            )),
        }
    }

    /// An entry naming the root itself: a directory updates the root's
    /// metadata (as umoci does); anything else would replace the root and is
    /// refused.
    fn root_entry(&mut self, kind: EntryType, meta: &Meta, path: &CleanPath) -> Result<(), Error> {
        if kind != EntryType::Directory {
            return Err(err(
                path,
                "entry resolves to the root itself and is not a directory; refused",
            ));
        }
        let fd = resolve::open_dir(self.root, path, false)
            .map_err(|e| err(path, format!("cannot open the root: {e}")))?;
        self.dir_metadata(fd, path, meta)
    }

    /// The parent directory of an entry, made if missing (`mkdir -p`).
    fn parent_fd(&mut self, parent: &CleanPath) -> Result<OwnedFd, Error> {
        let upper = &mut self.upper;
        let track = self.opts.whiteouts == Whiteouts::Apply;
        let fd = self
            .parents
            .get(self.root, parent, true, &mut |p| {
                if track {
                    insert_with_ancestors(upper, p);
                }
            })
            .map_err(|e| match e {
                ParentError::Missing => err(parent, "missing"),
                ParentError::NotDir(m) | ParentError::Other(m) => err(parent, m),
            })?;
        let fd = fd
            .try_clone_to_owned()
            .map_err(|e| err(parent, format!("dup: {e}")))?;
        self.note_touched(fd.as_fd(), parent);
        Ok(fd)
    }

    /// Apply mode: remembers the times of a directory this layer is about to
    /// change (add to, remove from), so that a lower layer's directory keeps
    /// its times unless this layer lists it (umoci does the same).
    fn note_touched(&mut self, dir: BorrowedFd<'_>, path: &CleanPath) {
        if self.opts.whiteouts != Whiteouts::Apply || self.last_touched.as_ref() == Some(path) {
            return;
        }
        if let Ok(st) = fs::fstat(dir) {
            let times = fs::Timestamps {
                last_access: fs::Timespec {
                    tv_sec: st.st_atime,
                    tv_nsec: st.st_atime_nsec as _,
                },
                last_modification: fs::Timespec {
                    tv_sec: st.st_mtime,
                    tv_nsec: st.st_mtime_nsec as _,
                },
            };
            self.touched
                .entry((st.st_dev, st.st_ino))
                .or_insert_with(|| (path.clone(), times));
        }
        self.last_touched = Some(path.clone());
    }

    fn mark_upper(&mut self, path: &CleanPath) {
        if self.opts.whiteouts != Whiteouts::Apply {
            return;
        }
        insert_with_ancestors(&mut self.upper, path);
    }

    /// Clears the way for a new non-directory (or a directory over a
    /// non-directory): whatever is at `name` goes, a directory with its tree.
    /// Returns the old file type, if there was something.
    fn clear(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &CleanPath,
    ) -> Result<Option<(FileType, u64)>, Error> {
        let st = match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(err(path, format!("cannot stat: {e}"))),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if matches!(ft, FileType::Directory | FileType::Symlink) {
            // What other paths resolve to may change.
            self.parents.invalidate();
        }
        remove::remove_any(dir, name)
            .map_err(|e| err(path, format!("cannot remove the old entry: {e}")))?;
        Ok(Some((ft, st.st_rdev)))
    }

    fn directory(
        &mut self,
        parent: &CleanPath,
        base: &[u8],
        path: &CleanPath,
        meta: &Meta,
    ) -> Result<(), Error> {
        let pfd = self.parent_fd(parent)?;
        let existing = fs::statat(&pfd, base, AtFlags::SYMLINK_NOFOLLOW).ok();
        let mut replaced_whiteout = false;
        let mut merged = false;
        match existing.map(|st| (FileType::from_raw_mode(st.st_mode), st.st_rdev)) {
            Some((FileType::Directory, _)) => merged = true,
            Some(_) => {
                if let Some((FileType::CharacterDevice, 0)) = self.clear(pfd.as_fd(), base, path)? {
                    replaced_whiteout = self.opts.whiteouts == Whiteouts::Overlay;
                }
                self.mkdir(&pfd, base, path)?;
            }
            None => self.mkdir(&pfd, base, path)?,
        }
        let fd = resolve::open_child_dir(pfd.as_fd(), base, false)
            .map_err(|e| err(path, format!("cannot open the directory: {e}")))?;
        if merged {
            meta::drop_unlisted_xattrs(fd.as_fd(), meta).map_err(|m| err(path, m))?;
        }
        if replaced_whiteout {
            // A directory over a whiteout of the same layer replaces the
            // lower one: in overlayfs terms it is opaque.
            set_opaque(fd.as_fd()).map_err(|m| err(path, m))?;
        }
        self.mark_upper(path);
        self.dir_metadata(fd, path, meta)
    }

    fn owner_xattrs(
        &mut self,
        target: &Target,
        meta: &Meta,
        path: &CleanPath,
    ) -> Result<(), Error> {
        let display = path.display();
        meta::apply_owner_xattrs(
            target,
            meta,
            self.opts.preserve_ownership,
            &display,
            &mut self.warnings,
        )
        .map_err(|m| err(path, m))
    }

    /// A non-directory's metadata, in the order that keeps it: owner first
    /// (chown clears setuid bits and capabilities), then xattrs, mode, times.
    fn entry_metadata(
        &mut self,
        target: &Target,
        meta: &Meta,
        path: &CleanPath,
        with_mode: bool,
    ) -> Result<(), Error> {
        self.owner_xattrs(target, meta, path)?;
        if with_mode {
            meta::apply_mode(target, meta.mode).map_err(|m| err(path, m))?;
        }
        meta::apply_times(target, meta).map_err(|m| err(path, m))
    }

    fn mkdir(&mut self, pfd: &OwnedFd, base: &[u8], path: &CleanPath) -> Result<(), Error> {
        // 0700 until the layer is done; the real mode is applied last.
        fs::mkdirat(pfd, base, Mode::from_raw_mode(0o700))
            .map_err(|e| err(path, format!("cannot create the directory: {e}")))
    }

    fn dir_metadata(&mut self, fd: OwnedFd, path: &CleanPath, meta: &Meta) -> Result<(), Error> {
        self.owner_xattrs(&Target::Fd(fd.as_fd()), meta, path)?;
        let st = fs::fstat(&fd).map_err(|e| err(path, format!("fstat: {e}")))?;
        self.deferred.push(DeferredDir {
            path: path.clone(),
            dev: st.st_dev,
            ino: st.st_ino,
            meta: Meta {
                xattrs: Vec::new(),
                ..meta.clone()
            },
        });
        Ok(())
    }

    fn regular<R: Read>(
        &mut self,
        parent: &CleanPath,
        base: &[u8],
        path: &CleanPath,
        entry: &Entry,
        data: &mut TarReader<R>,
    ) -> Result<(), Error> {
        let meta = &entry.meta;
        let pfd = self.parent_fd(parent)?;
        self.clear(pfd.as_fd(), base, path)?;
        let fd = fs::openat(
            &pfd,
            base,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| err(path, format!("cannot create the file: {e}")))?;
        // Content: contiguous, or the chunks of a sparse file at their offsets.
        let plain = [(0, entry.size)];
        let chunks: &[(u64, u64)] = match &entry.sparse {
            Some((chunks, _)) => chunks,
            None => &plain,
        };
        for &(offset, len) in chunks {
            self.copy_chunk(&fd, offset, len, data, path)?;
        }
        if let Some((_, real_size)) = entry.sparse {
            fs::ftruncate(&fd, real_size).map_err(|e| err(path, format!("truncate: {e}")))?;
        }
        self.stats.bytes += entry.size;
        self.mark_upper(path);
        let target = Target::Fd(fd.as_fd());
        self.entry_metadata(&target, meta, path, true)
    }

    fn copy_chunk<R: Read>(
        &mut self,
        fd: &OwnedFd,
        mut offset: u64,
        len: u64,
        data: &mut TarReader<R>,
        path: &CleanPath,
    ) -> Result<(), Error> {
        let mut left = len;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = data
                .read_data(&mut self.buf[..want])
                .map_err(|e| err(path, format!("reading the content: {e}")))?;
            if n == 0 {
                return Err(err(
                    path,
                    format!("truncated: the tar declares {len} bytes, the stream ends before"),
                ));
            }
            write_all_at(fd, &self.buf[..n], offset)
                .map_err(|e| err(path, format!("writing: {e}")))?;
            offset += n as u64;
            left -= n as u64;
        }
        Ok(())
    }

    fn symlink(
        &mut self,
        parent: &CleanPath,
        base: &[u8],
        path: &CleanPath,
        meta: &Meta,
        target: &[u8],
    ) -> Result<(), Error> {
        let pfd = self.parent_fd(parent)?;
        self.clear(pfd.as_fd(), base, path)?;
        // Stored verbatim: an absolute target is the image's, and it is only
        // ever resolved confined (openat2) by this crate.
        fs::symlinkat(target, &pfd, base)
            .map_err(|e| err(path, format!("cannot create the symlink: {e}")))?;
        self.parents.invalidate();
        self.mark_upper(path);
        let t = Target::At(pfd.as_fd(), base);
        // A symlink has no mode of its own on Linux.
        self.entry_metadata(&t, meta, path, false)
    }

    fn hardlink(
        &mut self,
        parent: &CleanPath,
        base: &[u8],
        path: &CleanPath,
        target: &[u8],
    ) -> Result<(), Error> {
        let tpath = CleanPath::parse(target);
        let Some((tparent, tbase)) = tpath.split_last() else {
            return Err(err(path, "hardlink to the root itself; refused"));
        };
        let tfd = resolve::open_dir(self.root, &tparent, true).map_err(|e| {
            err(
                path,
                format!("hardlink target {}: parent: {e}", tpath.display()),
            )
        })?;
        let tst = fs::statat(&tfd, tbase, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| err(path, format!("hardlink target {}: {e}", tpath.display())))?;
        if FileType::from_raw_mode(tst.st_mode) == FileType::Directory {
            return Err(err(
                path,
                format!("hardlink target {} is a directory", tpath.display()),
            ));
        }
        let pfd = self.parent_fd(parent)?;
        if let Ok(st) = fs::statat(&pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
            if st.st_dev == tst.st_dev && st.st_ino == tst.st_ino {
                self.mark_upper(path);
                return Ok(()); // already that file
            }
        }
        self.clear(pfd.as_fd(), base, path)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        fs::linkat(&tfd, tbase, &pfd, base, AtFlags::empty())
            .map_err(|e| err(path, format!("cannot link to {}: {e}", tpath.display())))?;
        self.mark_upper(path);
        Ok(())
    }

    fn node(
        &mut self,
        parent: &CleanPath,
        base: &[u8],
        path: &CleanPath,
        meta: &Meta,
        kind: EntryType,
        dev: u64,
    ) -> Result<(), Error> {
        let pfd = self.parent_fd(parent)?;
        self.clear(pfd.as_fd(), base, path)?;
        let ft = match kind {
            EntryType::Char => FileType::CharacterDevice,
            EntryType::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        fs::mknodat(&pfd, base, ft, Mode::from_raw_mode(0o600), dev)
            .map_err(|e| err(path, format!("cannot create the {ft:?} node: {e}")))?;
        self.mark_upper(path);
        let t = Target::At(pfd.as_fd(), base);
        self.entry_metadata(&t, meta, path, true)
    }

    fn whiteout(&mut self, parent: &CleanPath, base: &[u8], path: &CleanPath) -> Result<(), Error> {
        if base == OPAQUE_MARKER {
            return match self.opts.whiteouts {
                Whiteouts::Apply => self.apply_opaque(parent, path),
                Whiteouts::Overlay => self.overlay_opaque(parent, path),
            };
        }
        let name = &base[WHITEOUT_PREFIX.len()..];
        if name.is_empty() || name == b"." || name == b".." || name.starts_with(WHITEOUT_PREFIX) {
            // `.wh.` alone would white out its own directory; `.wh..wh.*`
            // other than the opaque marker are AUFS internals.
            return Err(err(path, "invalid whiteout name; refused"));
        }
        match self.opts.whiteouts {
            Whiteouts::Apply => self.apply_whiteout(parent, name, path),
            Whiteouts::Overlay => self.overlay_whiteout(parent, name, path),
        }
    }

    /// Removes the lower entry `name` in `parent` (Apply mode).
    fn apply_whiteout(
        &mut self,
        parent: &CleanPath,
        name: &[u8],
        path: &CleanPath,
    ) -> Result<(), Error> {
        let pfd = match self.parents.get(self.root, parent, false, &mut |_| {}) {
            Ok(fd) => fd
                .try_clone_to_owned()
                .map_err(|e| err(path, format!("dup: {e}")))?,
            // Nothing below to hide (a non-directory of this layer may
            // already have replaced the directory: umoci repack writes that).
            Err(ParentError::Missing) | Err(ParentError::NotDir(_)) => return Ok(()),
            Err(ParentError::Other(m)) => return Err(err(path, m)),
        };
        self.note_touched(pfd.as_fd(), parent);
        let target = parent.join(name);
        let st = match fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(err(path, format!("cannot stat the whited-out entry: {e}"))),
        };
        if !self.upper.contains(&target) {
            self.clear(pfd.as_fd(), name, path)?;
            return Ok(());
        }
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            // Written by this layer: keep it, but hide what lower layers had in it.
            let fd = resolve::open_child_dir(pfd.as_fd(), name, false)
                .map_err(|e| err(path, format!("cannot open: {e}")))?;
            self.clear_lower(fd, &target, path)?;
        }
        Ok(())
    }

    /// Opaque directory (Apply mode): removes everything lower layers put in
    /// it, keeping what this layer wrote, wherever the marker is in the tar.
    fn apply_opaque(&mut self, dir: &CleanPath, path: &CleanPath) -> Result<(), Error> {
        let fd = match resolve::open_dir(self.root, dir, false) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
            Err(e) => return Err(err(path, format!("cannot open the opaque directory: {e}"))),
        };
        self.clear_lower(fd, dir, path)
    }

    fn clear_lower(
        &mut self,
        dir: OwnedFd,
        dir_path: &CleanPath,
        path: &CleanPath,
    ) -> Result<(), Error> {
        self.note_touched(dir.as_fd(), dir_path);
        let mut names = Vec::new();
        let listing =
            fs::Dir::read_from(&dir).map_err(|e| err(path, format!("cannot list: {e}")))?;
        for entry in listing {
            let entry = entry.map_err(|e| err(path, format!("cannot list: {e}")))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        for name in names {
            let child = dir_path.join(&name);
            if !self.upper.contains(&child) {
                self.clear(dir.as_fd(), &name, path)?;
                continue;
            }
            match resolve::open_child_dir(dir.as_fd(), &name, false) {
                Ok(sub) => self.clear_lower(sub, &child, path)?,
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => {}
                Err(e) => return Err(err(path, format!("cannot open {}: {e}", child.display()))),
            }
        }
        Ok(())
    }

    /// `.wh.NAME` in overlayfs format: a 0:0 character device, unless this
    /// layer already has `NAME` (the whiteout hides lower layers only; a
    /// directory of this layer then becomes opaque).
    fn overlay_whiteout(
        &mut self,
        parent: &CleanPath,
        name: &[u8],
        path: &CleanPath,
    ) -> Result<(), Error> {
        // Below a non-directory of this layer: that already hides everything.
        if let Err(ParentError::NotDir(_)) = self.parents.get(self.root, parent, false, &mut |_| {})
        {
            return Ok(());
        }
        let pfd = self.parent_fd(parent)?;
        match fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    let fd = resolve::open_child_dir(pfd.as_fd(), name, false)
                        .map_err(|e| err(path, format!("cannot open: {e}")))?;
                    set_opaque(fd.as_fd()).map_err(|m| err(path, m))?;
                }
                Ok(())
            }
            Err(Errno::NOENT) => fs::mknodat(
                &pfd,
                name,
                FileType::CharacterDevice,
                Mode::empty(),
                fs::makedev(0, 0),
            )
            .map_err(|e| err(path, format!("cannot create the whiteout device: {e}"))),
            Err(e) => Err(err(path, format!("cannot stat: {e}"))),
        }
    }

    fn overlay_opaque(&mut self, dir: &CleanPath, path: &CleanPath) -> Result<(), Error> {
        if let Some((parent, _)) = dir.split_last() {
            // Make the directory (and its parents) if the marker comes first.
            let pfd = self.parent_fd(&parent)?;
            let base = dir.components().last().unwrap_or_default().to_vec();
            if let Err(Errno::NOENT) = fs::statat(&pfd, base.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
            {
                self.mkdir(&pfd, &base, path)?;
                // Default directory metadata until (if) the tar names the directory.
                let fd = resolve::open_child_dir(pfd.as_fd(), &base, false)
                    .map_err(|e| err(path, format!("cannot open: {e}")))?;
                let _ = fs::fchmod(&fd, Mode::from_raw_mode(0o755));
            }
        }
        let fd = resolve::open_dir(self.root, dir, false)
            .map_err(|e| err(path, format!("cannot open the opaque directory: {e}")))?;
        set_opaque(fd.as_fd()).map_err(|m| err(path, m))
    }

    /// Applies directories' modes and times, after every other entry, through
    /// an fd checked to be the very directory the entry made.
    fn finish_dirs(&mut self) -> Result<(), Error> {
        let deferred = std::mem::take(&mut self.deferred);
        // Lower directories this layer changed without listing them get
        // their times back; the ones it lists get the listed times below.
        let listed: HashSet<(u64, u64)> = deferred.iter().map(|d| (d.dev, d.ino)).collect();
        for ((dev, ino), (path, times)) in std::mem::take(&mut self.touched) {
            if listed.contains(&(dev, ino)) {
                continue;
            }
            let Ok(fd) = resolve::open_dir(self.root, &path, true) else {
                continue;
            };
            match fs::fstat(&fd) {
                Ok(st) if st.st_dev == dev && st.st_ino == ino => {}
                _ => continue,
            }
            // O_PATH descriptors do not take futimens; go through the
            // descriptor's own /proc entry (never a path of the image).
            let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            let _ = fs::utimensat(fs::CWD, proc.as_str(), &times, AtFlags::empty());
        }
        for d in &deferred {
            let fd = match d.path.split_last() {
                None => resolve::open_dir(self.root, &d.path, false),
                Some((parent, base)) => resolve::open_dir(self.root, &parent, true)
                    .and_then(|p| resolve::open_child_dir(p.as_fd(), base, false)),
            };
            // Gone or replaced (by a symlink, say): nothing to apply.
            let Ok(fd) = fd else { continue };
            let Ok(st) = fs::fstat(&fd) else { continue };
            if st.st_dev != d.dev || st.st_ino != d.ino {
                continue;
            }
            let t = Target::Fd(fd.as_fd());
            meta::apply_mode(&t, d.meta.mode).map_err(|m| err(&d.path, m))?;
            meta::apply_times(&t, &d.meta).map_err(|m| err(&d.path, m))?;
        }
        Ok(())
    }
}

/// Adds `path` and its ancestors to the set. Invariant: every path in the
/// set has its ancestors in it too, so the walk up stops at the first one
/// already there (deep trees stay linear).
fn insert_with_ancestors(set: &mut HashSet<CleanPath>, path: &CleanPath) {
    if !set.insert(path.clone()) {
        return;
    }
    for a in path.ancestors() {
        if !set.insert(a) {
            break;
        }
    }
}

fn set_opaque(dir: BorrowedFd<'_>) -> Result<(), String> {
    fs::fsetxattr(dir, OVERLAY_OPAQUE, b"y", fs::XattrFlags::empty())
        .map_err(|e| format!("cannot set {OVERLAY_OPAQUE}: {e}"))
}

fn write_all_at(fd: &OwnedFd, mut data: &[u8], mut offset: u64) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::pwrite(fd, data, offset) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => {
                data = &data[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
