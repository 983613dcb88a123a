//! Problems found while generating, each naming the file and line it is
//! about, so an administrator can fix the descriptor.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as seen on the target system (`/etc/sdme/x.oci`).
    pub file: Option<String>,
    /// 1-based; 0 when the problem is about the whole file.
    pub line: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn at(file: &str, line: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            file: Some(file.to_string()),
            line,
            message: message.into(),
        }
    }

    pub fn general(message: impl Into<String>) -> Self {
        Diagnostic {
            file: None,
            line: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // File names are shown escaped: a hostile name must not forge log lines.
        match (&self.file, self.line) {
            (Some(file), 0) => write!(f, "{}: {}", file.escape_debug(), self.message),
            (Some(file), line) => write!(f, "{}:{line}: {}", file.escape_debug(), self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}
