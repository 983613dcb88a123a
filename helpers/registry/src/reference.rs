//! Image references, parsed as distribution/reference parses them.

use crate::error::{Error, ErrorKind};

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host as written (`docker.io` for Docker Hub), with `:port` if any.
    pub domain: String,
    /// Repository path (`library/busybox` for Docker Hub official images).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes a reference (`busybox` → `docker.io/library/busybox:latest`).
    pub fn parse(s: &str) -> Result<Reference, Error> {
        Err(Error::new(
            ErrorKind::InvalidReference,
            format!("{s}: reference parsing not implemented yet"),
        ))
    }
}
