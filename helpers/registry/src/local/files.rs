//! Reading named files from a directory, or in place from an uncompressed tar.

use crate::error::{Error, ErrorKind};
use crate::layer_stream::Limits;
use crate::media::sniff_compression;
use crate::Compression;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A set of files addressed by relative, '/'-separated paths.
pub trait Files: Send + Sync {
    /// Opens `path`, returning the stream and its size.
    fn open(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64), Error>;

    /// Reads a whole small file.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let (r, size) = self.open(path)?;
        if size > limit {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{path}: {size} bytes is too large"),
            ));
        }
        let mut data = Vec::with_capacity(size as usize);
        r.take(limit)
            .read_to_end(&mut data)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{path}: {e}")))?;
        Ok(data)
    }
}

fn not_found(what: &str, e: &io::Error) -> Error {
    let kind = if e.kind() == io::ErrorKind::NotFound {
        ErrorKind::NotFound
    } else {
        ErrorKind::Io
    };
    Error::new(kind, format!("{what}: {e}"))
}

/// Files in a directory.
pub struct DirFiles {
    root: PathBuf,
}

impl DirFiles {
    pub fn new(root: &Path) -> Result<DirFiles, Error> {
        let meta =
            std::fs::metadata(root).map_err(|e| not_found(&root.display().to_string(), &e))?;
        if !meta.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidReference,
                format!("{}: not a directory", root.display()),
            ));
        }
        Ok(DirFiles {
            root: root.to_path_buf(),
        })
    }
}

impl Files for DirFiles {
    fn open(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
        let full = self.root.join(path);
        let what = full.display().to_string();
        let file = File::open(&full).map_err(|e| not_found(&what, &e))?;
        let size = file.metadata().map_err(|e| not_found(&what, &e))?.len();
        Ok((Box::new(file), size))
    }
}

enum TarEntry {
    File { offset: u64, size: u64 },
    Link(String),
}

/// Files inside a tar, read in place by offset with positional reads (so any
/// number of streams can read at once). A compressed tar is first
/// decompressed into an unnamed temporary file, which vanishes with us.
pub struct TarFiles {
    path: PathBuf,
    file: Arc<File>,
    entries: HashMap<String, TarEntry>,
}

/// `./a//b/` → `a/b`.
fn clean(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Resolves `target` relative to the directory of `from` (for symlinks in docker archives).
fn resolve_relative(from: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = from.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// An unnamed file in the temporary directory (`O_TMPFILE`): nothing to clean up.
fn unnamed_temp_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let fd = rustix::fs::open(
        &dir,
        rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Counts the compressed bytes a decoder has taken.
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Free space the temporary directory must keep while an archive is
/// decompressed into it: whatever else uses /tmp must not be starved.
const TEMP_RESERVE: u64 = 256 << 20;

/// Decompresses a gzip or zstd archive into an unnamed temporary file,
/// bounded as layers are (`limits`: total size and ratio to the compressed
/// bytes read so far) and by the free space of the temporary directory, so
/// that a small archive cannot fill the disk before anything is verified.
fn decompress_to_temp(
    file: File,
    compression: Compression,
    limits: &Limits,
    what: &str,
) -> Result<File, Error> {
    let io_err = |e: io::Error| Error::new(ErrorKind::Io, format!("{what}: decompressing: {e}"));
    let read = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted = Counting {
        inner: file,
        count: read.clone(),
    };
    let input = io::BufReader::with_capacity(crate::layer_stream::BUFFER_SIZE, counted);
    let mut decoder: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(io_err)?)
        }
        Compression::None => return Err(io_err(io::Error::other("not compressed"))),
    };
    let mut out = unnamed_temp_file().map_err(io_err)?;
    let mut buf = vec![0u8; crate::layer_stream::BUFFER_SIZE];
    let (mut written, mut checked_space_at) = (0u64, 0u64);
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        written += n as u64;
        if let Some(why) = limits.exceeded(written, read.get()) {
            return Err(Error::new(ErrorKind::Integrity, format!("{what}: {why}")));
        }
        out.write_all(&buf[..n]).map_err(io_err)?;
        if written - checked_space_at >= 64 << 20 {
            checked_space_at = written;
            let fs = rustix::fs::fstatvfs(&out).map_err(|e| io_err(e.into()))?;
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            if free < TEMP_RESERVE {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "{what}: decompressing: the temporary directory {} has less than {} MiB free after {written} bytes; \
                         set TMPDIR to a larger file system or import the uncompressed archive",
                        std::env::temp_dir().display(),
                        TEMP_RESERVE >> 20
                    ),
                ));
            }
        }
    }
    out.seek(SeekFrom::Start(0)).map_err(io_err)?;
    Ok(out)
}

impl TarFiles {
    pub fn index(path: &Path, limits: &Limits) -> Result<TarFiles, Error> {
        let what = path.display().to_string();
        let mut file = File::open(path).map_err(|e| not_found(&what, &e))?;
        let mut head = [0u8; 4];
        let n = file.read(&mut head).map_err(|e| not_found(&what, &e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| not_found(&what, &e))?;
        let file = match sniff_compression(&head[..n]) {
            Compression::None => file,
            c => decompress_to_temp(file, c, limits, &what)?,
        };
        let mut archive = tar::Archive::new(io::BufReader::with_capacity(64 * 1024, &file));
        let mut entries = HashMap::new();
        let bad = |e: io::Error| {
            Error::new(
                ErrorKind::Integrity,
                format!("{what}: not a valid tar archive: {e}"),
            )
        };
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            let kind = entry.header().entry_type();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            let value = match (kind, link) {
                (tar::EntryType::Symlink, Some(l)) => TarEntry::Link(resolve_relative(&name, &l)),
                (tar::EntryType::Link, Some(l)) => TarEntry::Link(clean(&l)),
                (k, _) if k.is_file() => TarEntry::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                _ => continue,
            };
            entries.insert(name, value);
        }
        drop(archive);
        Ok(TarFiles {
            path: path.to_path_buf(),
            file: Arc::new(file),
            entries,
        })
    }
}

/// A window of a shared file, read with `pread` so that readers never disturb each other.
struct Window {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Files for TarFiles {
    fn open(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
        let mut name = clean(path);
        let what = format!("{}: {name}", self.path.display());
        for _ in 0..16 {
            match self.entries.get(&name) {
                Some(TarEntry::Link(target)) => name = target.clone(),
                Some(TarEntry::File { offset, size }) => {
                    let window = Window {
                        file: self.file.clone(),
                        pos: *offset,
                        end: offset + size,
                    };
                    return Ok((Box::new(window), *size));
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("{what}: no such file in the archive"),
                    ))
                }
            }
        }
        Err(Error::new(
            ErrorKind::Integrity,
            format!("{what}: too many levels of links"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unnamed_temp_file_is_close_on_exec() {
        // A decompressed archive must not leak into a credential helper or anything else exec'd.
        let f = unnamed_temp_file().unwrap();
        let flags = rustix::io::fcntl_getfd(&f).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
}
