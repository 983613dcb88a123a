//! The overlayfs format checked against the kernel: layers extracted one
//! directory each (`Whiteouts::Overlay`) and stacked by a real overlayfs
//! mount must show the same tree as the layers flattened (`Whiteouts::Apply`).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{is_root, run, Tar, E};
use sdme_extract::Whiteouts;
use tar::EntryType;

fn layers() -> Vec<Vec<u8>> {
    let l1 = Tar::new()
        .dir("etc")
        .file("etc/keep", b"keep")
        .file("etc/gone", b"gone")
        .dir("tree")
        .file("tree/a", b"a")
        .file("tree/sub/b", b"b")
        .dir("opq")
        .file("opq/lower", b"lower")
        .dir("opq2")
        .file("opq2/lower", b"lower")
        .dir("d2f")
        .file("d2f/child", b"c")
        .file("f2d", b"file")
        .file("again", b"lower")
        .dir("redo")
        .file("redo/lower", b"l")
        .dir("redo2")
        .file("redo2/lower", b"l")
        .file("h", b"hard")
        .hardlink("h2", "h")
        .finish();
    let l2 = Tar::new()
        .dir("etc")
        .file("etc/.wh.gone", b"")
        .file("etc/new", b"new")
        .file(".wh.tree", b"")
        .dir("opq")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/upper", b"upper")
        .dir("opq2")
        .file("opq2/upper", b"upper")
        .file("opq2/.wh..wh..opq", b"")
        .file("d2f", b"now a file")
        .raw(E {
            mode: 0o700,
            ..E::new(EntryType::Directory, "f2d")
        })
        .file("f2d/inside", b"i")
        .file("again", b"upper")
        .file(".wh.again", b"")
        .file(".wh.redo", b"")
        .dir("redo")
        .file("redo/upper", b"u")
        .dir("redo2")
        .file("redo2/upper", b"u")
        .file(".wh.redo2", b"") // after the directory of its own layer
        .symlink("link", "/etc/keep")
        .finish();
    let l3 = Tar::new()
        .file("etc/.wh.new", b"")
        .file("opq/.wh.upper", b"")
        .file("opq/third", b"3")
        .node("fifo", EntryType::Fifo, 0, 0)
        .finish();
    vec![l1, l2, l3]
}

/// Path → type, mode, owner, content or target, rdev (what overlayfs must
/// present as the flattened tree has it; inode numbers and directory times
/// differ by design).
fn view(top: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![top.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let what = if ft.is_symlink() {
            format!("-> {:?}", fs::read_link(&p).unwrap())
        } else if ft.is_file() {
            format!("{:?} mtime {}", fs::read(&p).unwrap(), md.mtime())
        } else if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            "dir".to_string()
        } else {
            format!("rdev {}", md.rdev())
        };
        out.insert(
            p.strip_prefix(top).unwrap().to_path_buf(),
            format!("{:o} {}:{} {what}", md.mode(), md.uid(), md.gid()),
        );
    }
    out
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn overlay_layers_stacked_by_the_kernel_equal_the_flattened_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = layers();
    if !is_root() {
        // Whiteout devices and trusted.* xattrs need root: an error, not a wrong tree.
        fs::create_dir(tmp.path().join("l")).unwrap();
        assert!(run(&tmp.path().join("l"), &layers[1], Whiteouts::Overlay).is_err());
        return;
    }
    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).unwrap();
    let mut dirs = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        run(&flat, l, Whiteouts::Apply).unwrap();
        let d = tmp.path().join(format!("l{i}"));
        fs::create_dir(&d).unwrap();
        run(&d, l, Whiteouts::Overlay).unwrap();
        dirs.push(d);
    }
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    // lowerdir lists the topmost layer first.
    let lower: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
    let data = std::ffi::CString::new(format!("lowerdir={}", lower.join(":"))).unwrap();
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        data.as_c_str(),
    )
    .expect("mounting overlayfs (root, kernel with overlay)");
    let _guard = Unmount(merged.clone());
    let (a, b) = (view(&flat), view(&merged));
    let mut diffs = Vec::new();
    for k in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if k.as_os_str().is_empty() {
            continue; // the mount point itself
        }
        if a.get(k) != b.get(k) {
            diffs.push(format!("{k:?}: flat {:?} overlay {:?}", a.get(k), b.get(k)));
        }
    }
    assert!(
        diffs.is_empty(),
        "overlay differs from flattened:\n{}",
        diffs.join("\n")
    );
    // The cases are really there.
    assert!(!merged.join("tree").exists() && !merged.join("opq/lower").exists());
    assert_eq!(fs::read(merged.join("opq/third")).unwrap(), b"3");
    assert_eq!(fs::read(merged.join("again")).unwrap(), b"upper");
    assert!(merged.join("redo/upper").exists() && !merged.join("redo/lower").exists());
    assert!(merged.join("redo2/upper").exists() && !merged.join("redo2/lower").exists());
}
