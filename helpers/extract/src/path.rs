//! Tar entry names turned into clean relative paths inside the root.
//!
//! A name is split on `/`; empty and `.` components are dropped and `..` is
//! applied lexically, clamped at the root (as `filepath.Clean("/" + name)` does
//! in the Go tools). The result never contains `.`, `..` or `/` components, so
//! every component is one plain name for a `*at` call.

/// A cleaned path, stored joined by `/` (empty for the root) so that hashing
/// and comparing a deep path is one slice operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct CleanPath(Vec<u8>);

impl CleanPath {
    pub(crate) fn parse(raw: &[u8]) -> CleanPath {
        let mut out: Vec<u8> = Vec::with_capacity(raw.len());
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                    out.truncate(cut);
                }
                name => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(name);
                }
            }
        }
        CleanPath(out)
    }

    /// The root itself.
    #[cfg(test)]
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// The parent path and the last component; `None` for the root.
    pub(crate) fn split_last(&self) -> Option<(CleanPath, &[u8])> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => (CleanPath(self.0[..i].to_vec()), &self.0[i + 1..]),
            None => (CleanPath::default(), &self.0[..]),
        })
    }

    pub(crate) fn join(&self, name: &[u8]) -> CleanPath {
        let mut out = self.0.clone();
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(name);
        CleanPath(out)
    }

    /// The path relative to the root (`.` for the root), for `openat2`.
    pub(crate) fn to_relative(&self) -> &[u8] {
        if self.0.is_empty() {
            b"."
        } else {
            &self.0
        }
    }

    /// Every proper ancestor except the root, nearest first.
    pub(crate) fn ancestors(&self) -> impl Iterator<Item = CleanPath> + '_ {
        self.0
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, &b)| b == b'/')
            .map(|(i, _)| CleanPath(self.0[..i].to_vec()))
    }

    /// For messages: very long paths (a hostile layer's) are shortened in
    /// the middle so that one error stays one readable line.
    pub(crate) fn display(&self) -> String {
        const KEEP: usize = 160;
        if self.0.is_empty() {
            return "/".to_string();
        }
        let s = String::from_utf8_lossy(&self.0);
        let chars: Vec<char> = s.chars().collect();
        if chars.len() <= 2 * KEEP + 20 {
            return s.into_owned();
        }
        let head: String = chars[..KEEP].iter().collect();
        let tail: String = chars[chars.len() - KEEP..].iter().collect();
        format!("{head}…({} characters)…{tail}", chars.len() - 2 * KEEP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(raw: &str) -> Vec<String> {
        CleanPath::parse(raw.as_bytes())
            .components()
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
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
    fn long_paths_are_shortened_for_messages() {
        let p = CleanPath::parse("a/".repeat(5000).as_bytes());
        let d = p.display();
        assert!(d.len() < 400, "{}", d.len());
        assert!(d.starts_with("a/a/") && d.ends_with("/a/a"));
        assert_eq!(CleanPath::parse(b"x/y").display(), "x/y");
    }

    #[test]
    fn ancestors_exclude_root_and_self_nearest_first() {
        let p = CleanPath::parse(b"a/b/c");
        let a: Vec<_> = p.ancestors().map(|x| x.display()).collect();
        assert_eq!(a, ["a/b", "a"]);
    }
}
