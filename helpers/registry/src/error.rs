//! The crate's error: a kind for callers that must branch, and a message that
//! names what failed and where (URL, reference, digest, path).

use std::fmt;

/// What class of failure an [`Error`] is, for callers that must branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The source string or reference is malformed.
    InvalidReference,
    /// The image, tag, manifest or blob does not exist.
    NotFound,
    /// Authentication was required and failed or was refused.
    Unauthorized,
    /// A digest, size or format check failed: the content is not what was promised.
    Integrity,
    /// A format the crate refuses (schema1, unknown media type, no matching platform…).
    Unsupported,
    /// Network, TLS, HTTP or local I/O failure.
    Io,
    /// A containers-registries.conf(5) file is unreadable or malformed.
    Config,
    /// registries.conf blocks the registry the reference names.
    Blocked,
}

/// An error with a kind and a message naming what failed and where.
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
        }))
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Prefixes the message with more context (`"{context}: {message}"`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.0.message = format!("{context}: {}", self.0.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}: {})", self.0.kind, self.0.message)
    }
}

impl std::error::Error for Error {}
