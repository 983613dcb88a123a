//! Tar entry names turned into clean relative paths inside the root.
//!
//! A name is split on `/`; empty and `.` components are dropped and `..` is
//! applied lexically, clamped at the root (as `filepath.Clean("/" + name)` does
//! in the Go tools). The result never contains `.`, `..` or `/` components, so
//! every component is one plain name for a `*at` call.

/// A cleaned path: its components, none of them empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct CleanPath(Vec<Vec<u8>>);

impl CleanPath {
    pub(crate) fn parse(raw: &[u8]) -> CleanPath {
        let mut comps: Vec<Vec<u8>> = Vec::new();
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    comps.pop();
                }
                name => comps.push(name.to_vec()),
            }
        }
        CleanPath(comps)
    }

    /// The root itself.
    #[cfg(test)]
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn components(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// The parent path and the last component; `None` for the root.
    pub(crate) fn split_last(&self) -> Option<(CleanPath, &[u8])> {
        let (last, parent) = self.0.split_last()?;
        Some((CleanPath(parent.to_vec()), last))
    }

    pub(crate) fn join(&self, name: &[u8]) -> CleanPath {
        let mut comps = self.0.clone();
        comps.push(name.to_vec());
        CleanPath(comps)
    }

    /// The path as bytes relative to the root (`.` for the root), for `openat2`.
    pub(crate) fn to_relative(&self) -> Vec<u8> {
        if self.0.is_empty() {
            return b".".to_vec();
        }
        self.0.join(&b'/')
    }

    /// Every proper ancestor, nearest last (excluding the root).
    pub(crate) fn ancestors(&self) -> impl Iterator<Item = CleanPath> + '_ {
        (1..self.0.len()).map(|n| CleanPath(self.0[..n].to_vec()))
    }

    /// For messages.
    pub(crate) fn display(&self) -> String {
        if self.0.is_empty() {
            return "/".to_string();
        }
        String::from_utf8_lossy(&self.to_relative()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(raw: &str) -> Vec<String> {
        CleanPath::parse(raw.as_bytes())
            .components()
            .iter()
            .map(|c| String::from_utf8(c.clone()).unwrap())
            .collect()
    }

    #[test]
    fn dot_and_empty_components_are_dropped() {
        assert_eq!(comps("./a//b/./c/"), ["a", "b", "c"]);
    }

    #[test]
    fn dotdot_is_clamped_at_the_root() {
        assert_eq!(comps("../../etc/passwd"), ["etc", "passwd"]);
        assert_eq!(comps("/a/../../b"), ["b"]);
        assert_eq!(comps("a/b/../c"), ["a", "c"]);
    }

    #[test]
    fn root_spellings_are_the_root() {
        for raw in ["", ".", "./", "/", "/.", "..", "a/..", "/../."] {
            assert!(CleanPath::parse(raw.as_bytes()).is_root(), "{raw:?}");
        }
    }

    #[test]
    fn ancestors_exclude_root_and_self() {
        let p = CleanPath::parse(b"a/b/c");
        let a: Vec<_> = p.ancestors().map(|x| x.display()).collect();
        assert_eq!(a, ["a", "a/b"]);
    }
}
