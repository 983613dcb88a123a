//! Layer extraction with OCI image-spec semantics, confined to a root directory by fd.
//!
//! [`extract`] reads one uncompressed layer tar and writes it below `root`.
//! Every path of the image is resolved relative to the root fd with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so neither `..`, absolute
//! names nor symlinks in the image can make it write outside the root.
//! [`confined::Tree`] offers the same confinement for sdme's own writes into
//! trees an image or a container controls.
//!
//! It owns only file system operations below a root fd it is given; it must
//! never resolve a path from the image against anything but that root.

pub mod confined;
mod extract;
mod meta;
mod path;
mod reader;
mod remove;
mod resolve;

use std::fmt;
use std::os::fd::BorrowedFd;

/// How whiteout entries (`.wh.NAME`, `.wh..wh..opq`) are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Flatten: a whiteout deletes the lower entry it names inside `root`
    /// (umoci unpack semantics); nothing of the marker itself is written.
    Apply,
    /// Write one layer directory in overlayfs format: `.wh.X` becomes a 0:0
    /// character device `X`, `.wh..wh..opq` becomes the xattr
    /// `trusted.overlay.opaque="y"` on its directory.
    Overlay,
}

/// What [`extract`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub whiteouts: Whiteouts,
    /// Apply the numeric owners of the tar (true when running as root).
    pub preserve_ownership: bool,
}

/// What one [`extract`] call wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tar entries processed (including whiteouts and directories).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

/// An extraction failure: the entry path (if any) and what went wrong.
#[derive(Debug)]
pub struct Error {
    path: Option<String>,
    message: String,
}

impl Error {
    pub(crate) fn new(path: Option<String>, message: impl Into<String>) -> Self {
        Error {
            path,
            message: message.into(),
        }
    }

    /// The entry path of the tar the error is about, if it is about one.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// Extracts one uncompressed layer tar below `root`.
pub fn extract(
    tar: &mut dyn std::io::Read,
    root: BorrowedFd<'_>,
    opts: &Options,
) -> Result<Stats, Error> {
    extract::Extractor::new(root, opts).run(tar)
}

/// Removes `name` in the directory `parent` and, if it is a directory,
/// everything below it, never following symlinks and with a constant number
/// of open fds however deep the tree is. A missing `name` is not an error.
pub fn remove_all(parent: BorrowedFd<'_>, name: &std::ffi::OsStr) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    remove::remove_any(parent, name.as_bytes()).map_err(std::io::Error::from)
}
