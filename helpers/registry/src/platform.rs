//! Platforms (`os/arch[/variant]`), normalized the way containerd's platforms package does.

use crate::error::{Error, ErrorKind};
use std::fmt;

/// A target platform, normalized: `x86_64` → `amd64`, `aarch64` → `arm64` (variant `v8` dropped), …
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `OS/ARCH[/VARIANT]` (or `ARCH` alone, meaning linux) and normalizes it.
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            Error::new(
                ErrorKind::InvalidReference,
                format!("invalid platform {s:?}: expected OS/ARCH[/VARIANT]"),
            )
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return Err(bad()),
        };
        Ok(Platform::normalized(os, arch, variant))
    }

    /// The platform this program was built for.
    pub fn host() -> Platform {
        Platform::normalized(std::env::consts::OS, std::env::consts::ARCH, None)
    }

    /// Builds a platform from raw (possibly non-canonical) names.
    pub fn normalized(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let arch = arch.to_ascii_lowercase();
        let variant = variant
            .map(str::to_ascii_lowercase)
            .filter(|v| !v.is_empty());
        let (architecture, variant) = match (arch.as_str(), variant.as_deref()) {
            ("i386" | "i486" | "i586" | "i686", _) => ("386".to_string(), None),
            ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64".to_string(), None),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_string(), v.map(String::from)),
            ("aarch64" | "arm64", Some("8" | "v8") | None) => ("arm64".to_string(), None),
            ("aarch64" | "arm64", Some(v)) => ("arm64".to_string(), Some(v.to_string())),
            ("armhf", _) => ("arm".to_string(), Some("v7".to_string())),
            ("armel", _) => ("arm".to_string(), Some("v6".to_string())),
            ("arm", None | Some("7" | "v7")) => ("arm".to_string(), Some("v7".to_string())),
            ("arm", Some("5" | "6" | "8")) => ("arm".to_string(), variant.map(|v| format!("v{v}"))),
            (a, v) => (a.to_string(), v.map(String::from)),
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Platform::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalization() {
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/amd64/v1"), "linux/amd64");
        assert_eq!(p("linux/amd64/v3"), "linux/amd64/v3");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/arm64/8"), "linux/arm64");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/armhf"), "linux/arm/v7");
        assert_eq!(p("linux/armel"), "linux/arm/v6");
        assert_eq!(p("linux/arm/6"), "linux/arm/v6");
        assert_eq!(p("linux/i686"), "linux/386");
        assert_eq!(p("Linux/AMD64"), "linux/amd64");
        assert_eq!(p("arm64"), "linux/arm64");
        assert_eq!(p("linux/s390x"), "linux/s390x");
        for bad in ["", "linux/", "/amd64", "a/b/c/d", "linux//v7"] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
        let host = Platform::host();
        assert_eq!(host.os, std::env::consts::OS);
        assert_ne!(host.architecture, "x86_64");
        assert_ne!(host.architecture, "aarch64");
    }
}
