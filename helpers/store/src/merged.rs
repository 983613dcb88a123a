//! Read-only lookups in the merged view of a stack of overlayfs-format layer
//! directories, without mounting anything: whiteouts (0:0 character devices),
//! opaque directories (`trusted.overlay.opaque=y`) and symlinks (resolved
//! inside the stack, never on the host) behave as in the mounted overlay.

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

const MAX_SYMLINKS: usize = 40;

/// What a path resolves to in the merged view.
#[derive(Debug, Clone)]
pub enum Node {
    /// A directory; the layers (indexes, lowest first) that contribute to it.
    Dir(Vec<usize>),
    /// Anything else, from the topmost layer that has it.
    Other { layer: usize, metadata: Metadata },
}

/// A path resolved in the merged view: its canonical components and node.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub components: Vec<OsString>,
    pub node: Node,
}

/// A stack of layer directories, lowest first.
#[derive(Debug, Clone)]
pub struct MergedView {
    layers: Vec<PathBuf>,
}

pub fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut buf), Ok(n) if n >= 1 && buf[0] == b'y')
}

impl MergedView {
    pub fn new(layers: Vec<PathBuf>) -> MergedView {
        MergedView { layers }
    }

    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    fn host_path(&self, layer: usize, components: &[OsString]) -> PathBuf {
        let mut p = self.layers[layer].clone();
        p.extend(components);
        p
    }

    /// The entry `name` inside the merged directory `dir` (made of `dir_layers`).
    fn child(
        &self,
        dir: &[OsString],
        dir_layers: &[usize],
        name: &OsStr,
    ) -> io::Result<Option<Node>> {
        let mut dirs = Vec::new();
        let mut comps = dir.to_vec();
        comps.push(name.to_owned());
        for &layer in dir_layers.iter().rev() {
            let path = self.host_path(layer, &comps);
            let m = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if e.raw_os_error() == Some(20) => continue, // ENOTDIR
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            };
            if is_whiteout(&m) {
                break;
            }
            if m.is_dir() {
                dirs.push(layer);
                if is_opaque(&path) {
                    break;
                }
            } else if dirs.is_empty() {
                return Ok(Some(Node::Other { layer, metadata: m }));
            } else {
                break;
            }
        }
        if dirs.is_empty() {
            Ok(None)
        } else {
            dirs.reverse();
            Ok(Some(Node::Dir(dirs)))
        }
    }

    /// Resolves `path` (absolute or relative to the root). Symlinks in the
    /// middle are always followed, the last one only if `follow` is set.
    pub fn resolve(&self, path: &str, follow: bool) -> io::Result<Option<Resolved>> {
        let all: Vec<usize> = (0..self.layers.len()).collect();
        let mut cur: Vec<OsString> = Vec::new();
        let mut nodes: Vec<Node> = vec![Node::Dir(all)];
        let mut queue: std::collections::VecDeque<OsString> = components(Path::new(path));
        let mut links = 0;
        while let Some(comp) = queue.pop_front() {
            if comp == ".." {
                if !cur.is_empty() {
                    cur.pop();
                    nodes.pop();
                }
                continue;
            }
            let Some(Node::Dir(dir_layers)) = nodes.last() else {
                return Ok(None);
            };
            let dir_layers = dir_layers.clone();
            match self.child(&cur, &dir_layers, &comp)? {
                None => return Ok(None),
                Some(Node::Other { layer, metadata })
                    if metadata.file_type().is_symlink() && (follow || !queue.is_empty()) =>
                {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(io::Error::other(format!(
                            "{path}: too many levels of symbolic links"
                        )));
                    }
                    let mut link_path = self.host_path(layer, &cur);
                    link_path.push(&comp);
                    let target = std::fs::read_link(&link_path)?;
                    if target.is_absolute() {
                        cur.clear();
                        nodes.truncate(1);
                    }
                    let mut rest = components(&target);
                    rest.extend(queue);
                    queue = rest;
                }
                Some(node) => {
                    cur.push(comp);
                    nodes.push(node);
                }
            }
        }
        let node = nodes.pop().unwrap_or(Node::Dir(Vec::new()));
        Ok(Some(Resolved {
            components: cur,
            node,
        }))
    }

    /// The host path of a non-directory entry (symlinks followed).
    pub fn file_path(&self, path: &str) -> io::Result<Option<(PathBuf, Metadata)>> {
        Ok(match self.resolve(path, true)? {
            Some(Resolved {
                components,
                node: Node::Other { layer, metadata },
            }) => Some((self.host_path(layer, &components), metadata)),
            _ => None,
        })
    }

    /// Contents of a regular file, `None` if it does not exist or is not a file.
    pub fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match self.file_path(path)? {
            Some((p, m)) if m.is_file() => std::fs::read(&p).map(Some),
            _ => Ok(None),
        }
    }

    pub fn exists(&self, path: &str) -> bool {
        matches!(self.resolve(path, false), Ok(Some(_)))
    }

    /// Metadata of a directory as seen in the merged view (its topmost layer's).
    pub fn dir_metadata(&self, path: &str) -> io::Result<Option<Metadata>> {
        match self.resolve(path, true)? {
            Some(Resolved {
                components,
                node: Node::Dir(layers),
            }) => match layers.last() {
                Some(&top) => std::fs::metadata(self.host_path(top, &components)).map(Some),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// The entries of the merged directory `dir` (canonical components, as
    /// in [`Resolved`]) made of `layers`, sorted by name: whiteouts and what
    /// they hide left out, opaque directories respected.
    pub fn read_dir(
        &self,
        dir: &[OsString],
        layers: &[usize],
    ) -> io::Result<Vec<(OsString, Node)>> {
        let mut names = std::collections::BTreeSet::new();
        for &layer in layers {
            let path = self.host_path(layer, dir);
            let entries = match std::fs::read_dir(&path) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            };
            for entry in entries {
                names.insert(entry?.file_name());
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(node) = self.child(dir, layers, &name)? {
                out.push((name, node));
            }
        }
        Ok(out)
    }

    /// The host path of `components` in `layer`.
    pub fn path_in_layer(&self, layer: usize, components: &[OsString]) -> PathBuf {
        self.host_path(layer, components)
    }

    /// Finds an executable for `name` like execvp does with `PATH` (a name
    /// with a slash is taken as a path); returns the absolute path as the
    /// container sees it.
    pub fn find_program(&self, name: &str, path_env: &str, workdir: &str) -> Option<String> {
        let is_exec = |p: &str| match self.file_path(p) {
            Ok(Some((_, m))) => m.is_file() && m.mode() & 0o111 != 0,
            _ => false,
        };
        if name.contains('/') {
            let abs = if name.starts_with('/') {
                name.to_string()
            } else {
                format!("{}/{}", workdir.trim_end_matches('/'), name)
            };
            return is_exec(&abs).then_some(abs);
        }
        path_env
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{}", d.trim_end_matches('/'), name))
            .find(|p| is_exec(p))
    }
}

fn components(path: &Path) -> std::collections::VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn upper_layers_win_and_symlinks_resolve_inside_the_stack() {
        let t = tempfile::tempdir().unwrap();
        let (l0, l1) = (t.path().join("l0"), t.path().join("l1"));
        write(&l0.join("usr/lib/systemd/systemd"), "bin");
        symlink("usr/lib", l0.join("lib")).unwrap();
        write(&l0.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
        write(
            &l1.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:100:101::/:/bin/sh\n",
        );
        std::fs::create_dir_all(l1.join("etc/alt")).unwrap();
        symlink("/etc/passwd", l1.join("etc/alt/pw")).unwrap();
        let v = MergedView::new(vec![l0, l1]);
        assert!(v
            .read("/etc/passwd")
            .unwrap()
            .unwrap()
            .ends_with(b"app:x:100:101::/:/bin/sh\n"));
        assert!(v.file_path("/lib/systemd/systemd").unwrap().is_some());
        // An absolute symlink resolves in the stack, not on the host.
        assert!(v.read("/etc/alt/pw").unwrap().unwrap().starts_with(b"root"));
        assert!(v.exists("/etc/alt/pw"));
        assert!(!v.exists("/nope"));
        assert!(
            matches!(v.resolve("/etc", true).unwrap().unwrap().node, Node::Dir(ref l) if l.len() == 2)
        );
    }

    #[test]
    fn whiteouts_hide_lower_entries() {
        assert!(
            rustix::process::geteuid().is_root(),
            "whiteouts_hide_lower_entries needs root for mknod (make test runs as root)"
        );
        let t = tempfile::tempdir().unwrap();
        let (l0, l1) = (t.path().join("l0"), t.path().join("l1"));
        write(&l0.join("usr/bin/tool"), "x");
        write(&l0.join("opt/a/keep"), "x");
        std::fs::create_dir_all(l1.join("usr/bin")).unwrap();
        std::fs::create_dir_all(l1.join("opt/a")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            l1.join("usr/bin/tool"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        rustix::fs::lsetxattr(
            l1.join("opt/a"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let v = MergedView::new(vec![l0, l1]);
        assert!(!v.exists("/usr/bin/tool"));
        assert!(!v.exists("/opt/a/keep"));
        assert!(v.exists("/opt/a"));
    }

    #[test]
    fn finds_programs_on_path() {
        let t = tempfile::tempdir().unwrap();
        let l0 = t.path().join("l0");
        write(&l0.join("usr/local/bin/entry.sh"), "#!/bin/sh");
        write(&l0.join("usr/bin/notexec"), "");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            l0.join("usr/local/bin/entry.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let v = MergedView::new(vec![l0]);
        let path = "/usr/local/sbin:/usr/local/bin:/usr/bin";
        assert_eq!(
            v.find_program("entry.sh", path, "/").as_deref(),
            Some("/usr/local/bin/entry.sh")
        );
        assert_eq!(v.find_program("notexec", path, "/"), None);
        assert_eq!(
            v.find_program("/usr/local/bin/entry.sh", "", "/")
                .as_deref(),
            Some("/usr/local/bin/entry.sh")
        );
        assert_eq!(
            v.find_program("./bin/entry.sh", "", "/usr/local")
                .as_deref(),
            Some("/usr/local/./bin/entry.sh")
        );
    }
}
