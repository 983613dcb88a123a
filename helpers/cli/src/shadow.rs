//! Checking an edit of the descriptors before it is made: the search path
//! is copied into a private temporary root, the generator's library judges
//! the copy, the edit is applied to the copy, the generator judges it
//! again, and every diagnostic the edit adds refuses it (the generator's
//! own messages, naming file:line as on the real system). Nothing under
//! the real root is written until this passed.
//!
//! The copy keeps what the generator looks at (`NAME.oci`, `NAME.oci.d/`,
//! `*.conf` in those; nothing else, such as environment files beside
//! them): regular files (their contents), symlinks to `/dev/null` (masks), directories (`NAME.oci.d`),
//! and the contents of any other symlink's target, read with the kernel
//! confining it to the root (`openat2(RESOLVE_IN_ROOT)`) as the generator
//! reads it. Both runs see the same copy, so anything it renders
//! differently (a FIFO becomes an empty directory) cannot make a change look
//! better or worse than it is.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use sdme_generator::search::{MAX_FILE_SIZE, SEARCH_DIRS};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// One change to the search path, paths relative to the root
/// (`etc/sdme/web.oci`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Write {
        path: String,
        contents: Vec<u8>,
    },
    /// A file or a whole directory.
    Remove {
        path: String,
    },
}

/// A private directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Result<TempDir, String> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = base.join(format!(
                ".sdme-{what}-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot create a directory in {}: {e}",
                        base.display()
                    ))
                }
            }
        }
        Err(format!("cannot create a directory in {}", base.display()))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Refuses `edits` if the generator would report anything new after them.
pub fn check(root: &Path, edits: &[Edit]) -> Result<(), String> {
    let shadow = TempDir::new("check")?;
    copy_search_path(root, shadow.path())?;
    let before = sdme_generator::descriptors(shadow.path()).diagnostics;
    for edit in edits {
        apply(shadow.path(), edit)?;
    }
    let after = sdme_generator::descriptors(shadow.path()).diagnostics;
    let new = new_diagnostics(
        &before.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        &after.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    );
    if new.is_empty() {
        return Ok(());
    }
    Err(format!(
        "refused: sdme-generator would report, after this change:\n{}",
        new.iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// What `after` has that `before` does not (counting repeats).
pub fn new_diagnostics(before: &[String], after: &[String]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for d in before {
        *seen.entry(d).or_default() += 1;
    }
    let mut new = Vec::new();
    for d in after {
        match seen.get_mut(d.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => new.push(d.clone()),
        }
    }
    new
}

/// Applies one edit below `root` (the shadow or the real one).
pub fn apply(root: &Path, edit: &Edit) -> Result<(), String> {
    match edit {
        Edit::Write { path, contents } => write_atomic(&root.join(path), contents),
        Edit::Remove { path } => {
            let p = root.join(path);
            match std::fs::symlink_metadata(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("{}: {e}", p.display())),
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p)
                    .map_err(|e| format!("cannot remove {}: {e}", p.display())),
                Ok(_) => std::fs::remove_file(&p)
                    .map_err(|e| format!("cannot remove {}: {e}", p.display())),
            }
        }
    }
}

/// A temporary file beside `path`, synced and renamed onto it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| format!("{}: no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: no file name", path.display()))?;
    let tmp = dir.join(format!(".{name}.sdme-tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

fn open_root(root: &Path) -> Result<OwnedFd, String> {
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open root directory {}: {e}", root.display()))
}

/// Copies the three search directories under `root` to `to`.
pub fn copy_search_path(root: &Path, to: &Path) -> Result<(), String> {
    let root_fd = open_root(root)?;
    for dir in SEARCH_DIRS {
        copy_entry(root, &root_fd, &format!("/{dir}"), to, 0)?;
    }
    Ok(())
}

/// Copies the entry at `shown` (absolute in the root) into `to`; `depth`
/// 0 is a search directory, 1 its entries, 2 a drop-in directory's.
fn copy_entry(
    root: &Path,
    root_fd: &OwnedFd,
    shown: &str,
    to: &Path,
    depth: u8,
) -> Result<(), String> {
    let src = root.join(shown.trim_start_matches('/'));
    let dst = to.join(shown.trim_start_matches('/'));
    let meta = match std::fs::symlink_metadata(&src) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", src.display())),
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        if target == Path::new("/dev/null") {
            return symlink(&target, &dst);
        }
        // Another link: what the generator would read through it.
        match read_in_root(root_fd, shown) {
            Ok(Resolved::File(bytes)) => return write_plain(&dst, &bytes),
            Ok(Resolved::Null) => return symlink(Path::new("/dev/null"), &dst),
            Ok(Resolved::Dir) if depth < 2 => {
                mkdir(&dst)?;
                return copy_children(root, root_fd, shown, to, depth);
            }
            // Unreadable here: the link as it is, which the generator
            // then judges in both runs alike.
            _ => return symlink(&target, &dst),
        }
    }
    if meta.is_dir() {
        mkdir(&dst)?;
        if depth < 2 {
            copy_children(root, root_fd, shown, to, depth)?;
        }
        return Ok(());
    }
    if meta.is_file() {
        return match read_in_root(root_fd, shown)? {
            Resolved::File(bytes) => write_plain(&dst, &bytes),
            _ => mkdir(&dst),
        };
    }
    // A FIFO, socket or device: never opened; unreadable in both runs.
    mkdir(&dst)
}

fn copy_children(
    root: &Path,
    root_fd: &OwnedFd,
    shown: &str,
    to: &Path,
    depth: u8,
) -> Result<(), String> {
    let src = root.join(shown.trim_start_matches('/'));
    let rd = std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    let mut names: Vec<String> = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| format!("{}: {e}", src.display()))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    // Only what the generator reads: no env files or secrets that live
    // beside the descriptors are copied.
    let wanted = |n: &str| match depth {
        0 => n.ends_with(".oci") || n.ends_with(".oci.d"),
        _ => n.ends_with(".conf"),
    };
    for name in names.into_iter().filter(|n| wanted(n)) {
        copy_entry(root, root_fd, &format!("{shown}/{name}"), to, depth + 1)?;
    }
    Ok(())
}

enum Resolved {
    File(Vec<u8>),
    /// A character device: `/dev/null` reached through more links.
    Null,
    Dir,
    Other,
}

fn read_in_root(root_fd: &OwnedFd, shown: &str) -> Result<Resolved, String> {
    let fd = rustix::fs::openat2(
        root_fd,
        shown,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| format!("{shown}: {e}"))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| format!("{shown}: {e}"))?;
    use rustix::fs::FileType;
    Ok(match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {
            let mut bytes = Vec::new();
            std::fs::File::from(fd)
                .take(MAX_FILE_SIZE + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("{shown}: {e}"))?;
            Resolved::File(bytes)
        }
        FileType::CharacterDevice => Resolved::Null,
        FileType::Directory => Resolved::Dir,
        _ => Resolved::Other,
    })
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn write_plain(p: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = p.parent() {
        mkdir(dir)?;
    }
    std::fs::write(p, bytes).map_err(|e| format!("{}: {e}", p.display()))
}

fn symlink(target: &Path, p: &Path) -> Result<(), String> {
    if let Some(dir) = p.parent() {
        mkdir(dir)?;
    }
    std::os::unix::fs::symlink(target, p).map_err(|e| format!("{}: {e}", p.display()))
}
