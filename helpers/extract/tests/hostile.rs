//! Hostile layers: for each, nothing outside the root changes (canaries at
//! three levels above it keep content, mode, mtime and link count; no new
//! file appears), there is no panic, and the outcome is an error or a result
//! confined to the root.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{is_root, run, snapshot, Tar, E};
use sdme_extract::{Error, Stats, Whiteouts};
use tar::EntryType;

struct Sandbox {
    outer: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        let mut dir = outer.path().to_path_buf();
        for level in ["", "l1", "l2"] {
            if !level.is_empty() {
                dir = dir.join(level);
                fs::create_dir(&dir).unwrap();
            }
            let c = dir.join("canary.txt");
            fs::write(&c, b"canary").unwrap();
            fs::set_permissions(&c, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
            fs::create_dir(dir.join("canary_dir")).unwrap();
            fs::write(dir.join("canary_dir/inner"), b"inner").unwrap();
        }
        let root = dir.join("root");
        fs::create_dir(&root).unwrap();
        // Fixed times, so a touched canary shows.
        for p in walk_paths(outer.path()) {
            let times = rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 1000,
                    tv_nsec: 0,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: 1000,
                    tv_nsec: 0,
                },
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                &p,
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
        Sandbox { outer, root }
    }

    fn outer_abs(&self) -> String {
        self.outer.path().to_str().unwrap().to_string()
    }

    /// Applies the layers in order under `mode`; asserts nothing outside the
    /// root changed; returns the last result.
    fn layers(&self, w: Whiteouts, layers: &[Vec<u8>]) -> Result<Stats, Error> {
        let before = snapshot(self.outer.path(), Some(&self.root));
        let mut last = Ok(Stats::default());
        for l in layers {
            last = run(&self.root, l, w);
            if last.is_err() {
                break;
            }
        }
        let after = snapshot(self.outer.path(), Some(&self.root));
        assert_eq!(before, after, "something outside the root changed");
        last
    }

    fn apply(&self, layers: &[Vec<u8>]) -> Result<Stats, Error> {
        self.layers(Whiteouts::Apply, layers)
    }

    fn inside(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn walk_paths(p: &Path) -> Vec<PathBuf> {
    let mut v = vec![p.to_path_buf()];
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            v.extend(walk_paths(&e.unwrap().path()));
        }
    }
    v
}

#[test]
fn dotdot_names_are_clamped_to_the_root() {
    let s = Sandbox::new();
    let t = Tar::new()
        .file("../canary.txt", b"evil1")
        .file("../../canary.txt", b"evil2")
        .file("a/../../../../canary_dir/inner", b"evil3")
        .finish();
    s.apply(&[t]).unwrap();
    assert_eq!(fs::read(s.inside("canary.txt")).unwrap(), b"evil2");
    assert_eq!(fs::read(s.inside("canary_dir/inner")).unwrap(), b"evil3");
}

#[test]
fn absolute_names_land_inside_the_root() {
    let s = Sandbox::new();
    let abs = format!("{}/canary.txt", s.outer_abs());
    let t = Tar::new().file(&abs, b"evil").finish();
    s.apply(&[t]).unwrap();
    assert_eq!(
        fs::read(s.root.join(abs.trim_start_matches('/'))).unwrap(),
        b"evil"
    );
}

#[test]
fn cve_2021_29136_symlink_named_dot_is_refused() {
    for name in [".", "/.", "./", "..", "a/.."] {
        let s = Sandbox::new();
        let target = s.outer_abs();
        let t = Tar::new()
            .symlink(name, &target)
            .file("canary.txt", b"evil")
            .finish();
        let e = s.apply(&[t]).unwrap_err();
        assert!(e.to_string().contains("root"), "{name}: {e}");
        assert!(fs::symlink_metadata(&s.root).unwrap().is_dir());
    }
}

#[test]
fn non_directory_entries_for_the_root_are_refused() {
    for kind in [EntryType::Regular, EntryType::Link, EntryType::Fifo] {
        let s = Sandbox::new();
        let t = Tar::new()
            .file("x", b"x")
            .raw(E {
                link: b"x",
                ..E::new(kind, "/")
            })
            .finish();
        assert!(s.apply(&[t]).is_err(), "{kind:?}");
    }
    // A directory entry for the root only updates the root's own metadata.
    let s = Sandbox::new();
    let t = Tar::new()
        .raw(E {
            mode: 0o700,
            ..E::new(EntryType::Directory, "../..")
        })
        .finish();
    s.apply(&[t]).unwrap();
    assert_eq!(fs::metadata(&s.root).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn writes_through_a_symlink_of_the_same_layer_are_confined() {
    let s = Sandbox::new();
    let abs = s.outer_abs();
    let t = Tar::new()
        .symlink("up", "../../..")
        .file("up/canary.txt", b"evil1")
        .symlink("slash", "/")
        .file(&format!("slash{abs}/canary.txt"), b"evil2")
        .finish();
    s.apply(&[t]).unwrap();
    // `up` resolves to the root itself; `slash/...` to the same path inside it.
    assert_eq!(fs::read(s.inside("canary.txt")).unwrap(), b"evil1");
    assert_eq!(
        fs::read(
            s.root
                .join(format!("{}/canary.txt", abs.trim_start_matches('/')))
        )
        .unwrap(),
        b"evil2"
    );
}

#[test]
fn writes_through_a_symlink_of_a_lower_layer_are_confined() {
    let s = Sandbox::new();
    let lower = Tar::new()
        .symlink("a", "/")
        .symlink("b", &s.outer_abs())
        .symlink("c", "../../../../l1")
        .finish();
    let upper = Tar::new().file("a/canary.txt", b"evil").finish();
    s.apply(&[lower.clone(), upper]).unwrap();
    assert_eq!(fs::read(s.inside("canary.txt")).unwrap(), b"evil");
    // `b` and `c` dangle inside the root: an error, not a write outside.
    let s = Sandbox::new();
    let lower2 = Tar::new().symlink("b", &s.outer_abs()).finish();
    assert!(s
        .apply(&[lower2, Tar::new().file("b/canary.txt", b"evil").finish()])
        .is_err());
    let s = Sandbox::new();
    let lower3 = Tar::new().symlink("c", "../../../../l1").finish();
    assert!(s
        .apply(&[lower3, Tar::new().file("c/canary.txt", b"evil").finish()])
        .is_err());
}

#[test]
fn hardlinks_to_outside_are_refused_or_confined() {
    let s = Sandbox::new();
    let abs = format!("{}/canary.txt", s.outer_abs());
    for target in ["../../canary.txt", "../../../l1/canary.txt", abs.as_str()] {
        let t = Tar::new().hardlink("h", target).finish();
        assert!(s.apply(&[t]).is_err(), "{target}");
    }
    // With a same-named file in the root, the link is to that one.
    let t = Tar::new()
        .file("canary.txt", b"mine")
        .hardlink("h", "../../../canary.txt")
        .finish();
    s.apply(&[t]).unwrap();
    assert_eq!(
        fs::metadata(s.inside("h")).unwrap().ino(),
        fs::metadata(s.inside("canary.txt")).unwrap().ino()
    );
}

#[test]
fn hardlink_through_a_symlinked_parent_is_confined() {
    let s = Sandbox::new();
    let t = Tar::new()
        .symlink("l", &s.outer_abs())
        .hardlink("h", "l/canary.txt")
        .finish();
    assert!(s.apply(&[t]).is_err());
    let t = Tar::new()
        .symlink("l2", "../..")
        .hardlink("h2", "l2/canary.txt")
        .finish();
    assert!(s.apply(&[t]).is_err());
}

#[test]
fn whiteout_through_a_symlinked_parent_is_confined() {
    let s = Sandbox::new();
    let lower = Tar::new()
        .symlink("link", &s.outer_abs())
        .symlink("rel", "../../..")
        .finish();
    let upper = Tar::new()
        .file("link/.wh.canary.txt", b"")
        .file("rel/.wh.canary.txt", b"")
        .file("rel/.wh.canary_dir", b"")
        .file("link/.wh..wh..opq", b"")
        .file("rel/.wh..wh..opq", b"")
        .finish();
    s.apply(&[lower, upper]).unwrap();
}

#[test]
fn rustsec_2026_0067_deferred_dir_metadata_never_follows_a_symlink() {
    for w in [Whiteouts::Apply, Whiteouts::Overlay] {
        let s = Sandbox::new();
        let abs = format!("{}/canary_dir", s.outer_abs());
        let t = Tar::new()
            .raw(E {
                mode: 0o777,
                mtime: 5,
                ..E::new(EntryType::Directory, "d")
            })
            .symlink("d", &abs)
            .raw(E {
                mode: 0o777,
                mtime: 5,
                ..E::new(EntryType::Directory, "e")
            })
            .symlink("e", "../../canary_dir")
            .raw(E {
                mode: 0o777,
                mtime: 5,
                ..E::new(EntryType::Directory, "./")
            })
            .finish();
        s.layers(w, &[t]).unwrap();
        assert!(fs::symlink_metadata(s.inside("d"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]
fn pax_size_larger_than_the_data_is_an_error() {
    let s = Sandbox::new();
    let t = Tar::new()
        .raw(E {
            data: b"short",
            pax: vec![("size", b"100000")],
            ..E::new(EntryType::Regular, "f")
        })
        .finish();
    let e = s.apply(&[t]).unwrap_err();
    assert!(e.to_string().contains('f'), "{e}");
}

#[test]
fn header_size_larger_than_the_data_is_an_error() {
    let s = Sandbox::new();
    let mut t = Tar::new();
    t.raw(E {
        data: b"short",
        size: Some(1 << 40),
        ..E::new(EntryType::Regular, "f")
    });
    let t = t.bytes(&[0u8; 512]).finish();
    assert!(s.apply(&[t]).is_err());
}

#[test]
fn absurd_sizes_are_errors_not_panics() {
    let s = Sandbox::new();
    for size in [u64::MAX, u64::MAX - 100, i64::MAX as u64] {
        let t = Tar::new()
            .raw(E {
                data: b"",
                size: Some(size),
                ..E::new(EntryType::Regular, "f")
            })
            .finish();
        assert!(s.apply(&[t]).is_err(), "{size}");
    }
    let t = Tar::new()
        .raw(E {
            data: b"",
            pax: vec![("size", b"18446744073709551615")],
            ..E::new(EntryType::Regular, "g")
        })
        .finish();
    assert!(s.apply(&[t]).is_err());
    let t = Tar::new()
        .raw(E {
            data: b"",
            pax: vec![("size", b"-1")],
            ..E::new(EntryType::Regular, "g")
        })
        .finish();
    let _ = s.apply(&[t]); // any outcome but a panic or an escape
}

#[test]
fn deep_nesting() {
    let s = Sandbox::new();
    // 10000 levels in one name: longer than PATH_MAX, an error.
    let deep = format!("{}f", "a/".repeat(10_000));
    let e = s
        .apply(&[Tar::new().file(&deep, b"x").finish()])
        .unwrap_err();
    assert!(!e.to_string().is_empty());
    // 1500 explicit directory levels, then a whiteout of the whole tree.
    let mut t = Tar::new();
    let mut p = String::new();
    for _ in 0..1500 {
        p.push_str("b/");
        t.dir(&p);
    }
    t.file(&format!("{p}leaf"), b"leaf");
    s.apply(&[t.finish()]).unwrap();
    assert!(s.inside(&format!("{p}leaf")).exists());
    s.apply(&[Tar::new().file(".wh.b", b"").finish()]).unwrap();
    assert!(!s.inside("b").exists());
}

#[test]
fn bad_whiteout_names_are_refused() {
    for name in [".wh.", "d/.wh.", ".wh..", ".wh...", "d/.wh..wh.plnk"] {
        let s = Sandbox::new();
        let t = Tar::new().file("d/x", b"x").file(name, b"").finish();
        assert!(s.apply(&[t]).is_err(), "{name}");
        assert!(s.inside("d/x").exists(), "{name} must not remove anything");
    }
}

#[test]
fn device_nodes_with_escape_paths_are_confined() {
    let s = Sandbox::new();
    let t = Tar::new()
        .node("../../../evil_null", EntryType::Char, 1, 3)
        .node(
            &format!("{}/evil_blk", s.outer_abs()),
            EntryType::Block,
            7,
            0,
        )
        .node("../../evil_fifo", EntryType::Fifo, 0, 0)
        .finish();
    let r = s.apply(&[t]);
    if is_root() {
        r.unwrap();
        assert!(fs::symlink_metadata(s.inside("evil_null")).is_ok());
        assert!(fs::symlink_metadata(s.inside("evil_fifo")).is_ok());
    } else {
        assert!(r.is_err());
    }
}

#[test]
fn symlink_loops_and_magic_links_are_errors() {
    let s = Sandbox::new();
    let t = Tar::new()
        .symlink("x", "y")
        .symlink("y", "x")
        .file("x/f", b"f")
        .finish();
    assert!(s.apply(&[t]).is_err());
    let s = Sandbox::new();
    let t = Tar::new()
        .symlink("p", "/proc/self/root")
        .file("p/canary.txt", b"evil")
        .finish();
    assert!(s.apply(&[t]).is_err());
    let s = Sandbox::new();
    let t = Tar::new()
        .symlink("q", "/proc/self/cwd")
        .hardlink("h", "q/canary.txt")
        .finish();
    assert!(s.apply(&[t]).is_err());
}

#[test]
fn entries_below_a_file_are_errors() {
    let s = Sandbox::new();
    let t = Tar::new().file("f", b"f").file("f/x", b"x").finish();
    let e = s.apply(&[t]).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
}

#[test]
fn corrupt_and_odd_tars_do_not_panic() {
    let s = Sandbox::new();
    // Bad checksum.
    let mut t = Tar::new().file("f", b"x").finish();
    t[148] ^= 0x55;
    assert!(s.apply(&[t]).is_err());
    // Truncated in the middle of a header and of data.
    let t = Tar::new().file("g", &[7u8; 3000]).finish();
    for cut in [100, 600, 2000] {
        assert!(s.apply(&[t[..cut].to_vec()]).is_err(), "{cut}");
    }
    // Non-UTF-8 and NUL-carrying names.
    let t = Tar::new()
        .raw(E {
            data: b"x",
            ..E::new(EntryType::Regular, "ok")
        })
        .finish();
    s.apply(&[t]).unwrap();
    let mut t = Tar::new();
    t.raw(E {
        name: b"caf\xe9",
        data: b"x",
        ..E::new(EntryType::Regular, "")
    });
    s.apply(&[t.finish()]).unwrap();
    let t = Tar::new()
        .raw(E {
            data: b"x",
            pax: vec![("path", b"nul\0/../../x")],
            ..E::new(EntryType::Regular, "n")
        })
        .finish();
    let _ = s.apply(&[t]);
    // Unknown entry type.
    let t = Tar::new()
        .raw(E {
            ..E::new(EntryType::new(b'Z'), "z")
        })
        .finish();
    assert!(s.apply(&[t]).is_err());
    // Random garbage.
    let mut g = vec![0u8; 4096];
    for (i, b) in g.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    assert!(s.apply(&[g]).is_err());
}

#[test]
fn hardlink_to_itself_does_not_lose_the_file() {
    let s = Sandbox::new();
    let t = Tar::new().file("f", b"data").hardlink("f", "f").finish();
    s.apply(&[t]).unwrap();
    assert_eq!(fs::read(s.inside("f")).unwrap(), b"data");
}

#[test]
fn overlay_mode_hostile_whiteouts_are_confined() {
    let s = Sandbox::new();
    let t = Tar::new()
        .symlink("link", &s.outer_abs())
        .file("link/.wh.canary.txt", b"")
        .file("../../.wh.canary_dir", b"")
        .finish();
    let r = s.layers(Whiteouts::Overlay, &[t]);
    if !is_root() {
        assert!(r.is_err());
    }
}

/// Deterministic mutations of a valid layer (some with the header checksums
/// repaired, so that parsing goes past them): never a panic, never a write
/// outside the root.
#[test]
fn mutated_layers_never_panic_or_escape() {
    let mut t = Tar::new();
    t.dir("d")
        .file("d/f", b"content of f")
        .symlink("d/s", "../..")
        .hardlink("d/h", "d/f")
        .raw(E {
            data: b"x",
            pax: vec![("SCHILY.xattr.user.a", b"v"), ("mtime", b"1.5")],
            ..E::new(EntryType::Regular, "d/p")
        })
        .file("d/.wh.gone", b"")
        .file("e/.wh..wh..opq", b"")
        .node("fifo", EntryType::Fifo, 0, 0);
    let good = t.finish();
    let mut seed: u64 = 0x5eed;
    let mut rand = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let s = Sandbox::new();
    for round in 0..400 {
        let mut m = good.clone();
        for _ in 0..1 + rand() % 6 {
            let i = rand() % m.len();
            m[i] = rand() as u8;
        }
        if round % 2 == 0 {
            // Repair every header checksum so the mutation reaches the parser.
            let mut off = 0;
            while off + 512 <= m.len() {
                let block = &mut m[off..off + 512];
                if block.iter().any(|&b| b != 0) && block[257..262] == *b"ustar" {
                    block[148..156].copy_from_slice(b"        ");
                    let sum: u32 = block.iter().map(|&b| b as u32).sum();
                    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                }
                off += 512;
            }
        }
        let _ = fs::remove_dir_all(&s.root);
        fs::create_dir(&s.root).unwrap();
        let _ = s.apply(&[m]);
    }
}

#[test]
fn entries_after_a_lone_zero_block_are_refused_not_ignored() {
    let s = Sandbox::new();
    let mut hidden = Tar::new();
    hidden.file("hidden", b"smuggled");
    let hidden = hidden.finish();
    let t = Tar::new()
        .file("seen", b"ok")
        .bytes(&[0u8; 512])
        .bytes(&hidden)
        .finish();
    let e = s.apply(&[t]).unwrap_err();
    assert!(e.to_string().contains("single zero block"), "{e}");
    // Two zero blocks end the archive; one zero block at the end of the
    // stream too.
    let mut two = Tar::new();
    two.file("a", b"1");
    let two = two.finish();
    assert!(s.apply(&[two]).is_ok());
    let one = Tar::new().file("b", b"2").bytes(&[0u8; 512]).unterminated();
    assert!(s.apply(&[one]).is_ok());
}
