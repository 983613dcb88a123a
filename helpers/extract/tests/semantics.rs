//! One test per extraction rule (image-spec layer semantics).

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::{apply, is_root, run, Tar, E};
use sdme_extract::Whiteouts;
use tar::EntryType;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
fn md(p: impl AsRef<Path>) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap()
}
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(p, name, &mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

#[test]
fn regular_file_content_mode_and_mtime() {
    let d = tmp();
    let t = Tar::new()
        .raw(E {
            data: b"hello",
            mode: 0o640,
            mtime: 1234567890,
            ..E::new(EntryType::Regular, "etc/f")
        })
        .finish();
    let stats = apply(d.path(), &t).unwrap();
    assert_eq!(fs::read(d.path().join("etc/f")).unwrap(), b"hello");
    let m = md(d.path().join("etc/f"));
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(m.mtime(), 1234567890);
    assert_eq!(stats.entries, 1);
    assert_eq!(stats.bytes, 5);
    // A missing parent is made 0755.
    assert_eq!(md(d.path().join("etc")).mode() & 0o7777, 0o755);
}

#[test]
fn special_bits_survive_chown() {
    let d = tmp();
    let t = Tar::new()
        .raw(E {
            mode: 0o4755,
            uid: 1234,
            gid: 5678,
            data: b"x",
            ..E::new(EntryType::Regular, "suid")
        })
        .raw(E {
            mode: 0o2755,
            uid: 1234,
            gid: 5678,
            data: b"x",
            ..E::new(EntryType::Regular, "sgid")
        })
        .raw(E {
            mode: 0o1777,
            uid: 1234,
            gid: 5678,
            ..E::new(EntryType::Directory, "tmp")
        })
        .finish();
    apply(d.path(), &t).unwrap();
    assert_eq!(md(d.path().join("suid")).mode() & 0o7777, 0o4755);
    assert_eq!(md(d.path().join("sgid")).mode() & 0o7777, 0o2755);
    assert_eq!(md(d.path().join("tmp")).mode() & 0o7777, 0o1777);
    let uid = if is_root() {
        1234
    } else {
        rustix::process::geteuid().as_raw()
    };
    assert_eq!(md(d.path().join("suid")).uid(), uid);
    assert_eq!(md(d.path().join("tmp")).uid(), uid);
    if is_root() {
        assert_eq!(md(d.path().join("sgid")).gid(), 5678);
    }
}

#[test]
fn large_owner_ids_from_pax() {
    let d = tmp();
    let t = Tar::new()
        .raw(E {
            data: b"x",
            pax: vec![("uid", b"4000000000"), ("gid", b"3000000")],
            ..E::new(EntryType::Regular, "big")
        })
        .finish();
    apply(d.path(), &t).unwrap();
    if is_root() {
        assert_eq!(md(d.path().join("big")).uid(), 4_000_000_000);
        assert_eq!(md(d.path().join("big")).gid(), 3_000_000);
    }
}

#[test]
fn directory_mode_and_mtime_are_applied_last() {
    let d = tmp();
    let t = Tar::new()
        .raw(E {
            mode: 0o555,
            mtime: 1000,
            ..E::new(EntryType::Directory, "ro")
        })
        .file("ro/inside", b"written after its read-only parent")
        .finish();
    apply(d.path(), &t).unwrap();
    let m = md(d.path().join("ro"));
    assert_eq!(m.mode() & 0o7777, 0o555);
    assert_eq!(
        m.mtime(),
        1000,
        "child creation must not bump the dir mtime"
    );
    assert!(d.path().join("ro/inside").exists());
}

#[test]
fn pax_mtime_with_fraction_and_long_names() {
    let d = tmp();
    let long = format!("{}/f", "x".repeat(150));
    let long_target = format!("/{}", "y".repeat(200));
    let t = Tar::new()
        .raw(E {
            data: b"x",
            pax: vec![("mtime", b"1700000000.25")],
            ..E::new(EntryType::Regular, &long)
        })
        .symlink("l", &long_target)
        .finish();
    apply(d.path(), &t).unwrap();
    let m = md(d.path().join(&long));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 250_000_000));
    assert_eq!(
        fs::read_link(d.path().join("l")).unwrap().to_str().unwrap(),
        long_target
    );
}

#[test]
fn symlinks_are_verbatim_with_their_own_mtime() {
    let d = tmp();
    let t = Tar::new()
        .raw(E {
            link: b"/etc/passwd",
            mtime: 4242,
            ..E::new(EntryType::Symlink, "abs")
        })
        .symlink("rel", "../x/y")
        .finish();
    apply(d.path(), &t).unwrap();
    assert_eq!(
        fs::read_link(d.path().join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(d.path().join("rel")).unwrap(),
        Path::new("../x/y")
    );
    assert_eq!(md(d.path().join("abs")).mtime(), 4242);
}

#[test]
fn writes_through_a_symlinked_parent_stay_in_the_root() {
    let d = tmp();
    let t = Tar::new()
        .dir("usr")
        .dir("usr/lib")
        .symlink("lib", "/usr/lib")
        .file("lib/libx.so", b"so")
        .finish();
    apply(d.path(), &t).unwrap();
    assert_eq!(fs::read(d.path().join("usr/lib/libx.so")).unwrap(), b"so");
}

#[test]
fn hardlinks_share_the_inode_within_and_across_layers() {
    let d = tmp();
    apply(d.path(), &Tar::new().file("a", b"data").finish()).unwrap();
    apply(
        d.path(),
        &Tar::new()
            .file("b", b"bb")
            .hardlink("b2", "b")
            .hardlink("a2", "./a")
            .finish(),
    )
    .unwrap();
    assert_eq!(md(d.path().join("b")).ino(), md(d.path().join("b2")).ino());
    assert_eq!(md(d.path().join("a")).ino(), md(d.path().join("a2")).ino());
    assert_eq!(md(d.path().join("a")).nlink(), 2);
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink() {
    let d = tmp();
    let t = Tar::new()
        .file("f", b"f")
        .symlink("s", "f")
        .hardlink("h", "s")
        .finish();
    apply(d.path(), &t).unwrap();
    assert!(md(d.path().join("h")).file_type().is_symlink());
}

#[test]
fn hardlink_to_missing_or_directory_is_an_error() {
    let d = tmp();
    let e = apply(d.path(), &Tar::new().hardlink("h", "nope").finish()).unwrap_err();
    assert!(e.to_string().contains("h"), "{e}");
    let e = apply(d.path(), &Tar::new().dir("dd").hardlink("h", "dd").finish()).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
}

#[test]
fn devices_and_fifos() {
    if !is_root() {
        // mknod of devices needs CAP_MKNOD: the error must name the entry.
        let d = tmp();
        let e = apply(
            d.path(),
            &Tar::new().node("dev/null", EntryType::Char, 1, 3).finish(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("dev/null"));
        return;
    }
    let d = tmp();
    let t = Tar::new()
        .node("dev/null", EntryType::Char, 1, 3)
        .node("dev/loop0", EntryType::Block, 7, 0)
        .raw(E {
            mode: 0o620,
            ..E::new(EntryType::Fifo, "run/fifo")
        })
        .finish();
    apply(d.path(), &t).unwrap();
    let n = md(d.path().join("dev/null"));
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
    assert!(md(d.path().join("dev/loop0")).file_type().is_block_device());
    assert_eq!(
        md(d.path().join("dev/loop0")).rdev(),
        rustix::fs::makedev(7, 0)
    );
    let f = md(d.path().join("run/fifo"));
    assert!(f.file_type().is_fifo());
    assert_eq!(f.mode() & 0o7777, 0o620);
}

#[test]
fn xattrs_applied_selinux_and_overlay_skipped() {
    let d = tmp();
    // A v2 file capability: cap_net_raw effective+permitted.
    let cap: &[u8] = &[
        0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let t = Tar::new()
        .raw(E {
            data: b"bin",
            mode: 0o755,
            uid: 0,
            pax: vec![
                ("SCHILY.xattr.user.note", b"hi"),
                ("SCHILY.xattr.security.capability", cap),
                (
                    "SCHILY.xattr.security.selinux",
                    b"system_u:object_r:bin_t:s0",
                ),
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ],
            ..E::new(EntryType::Regular, "ping")
        })
        .finish();
    apply(d.path(), &t).unwrap();
    let p = d.path().join("ping");
    assert_eq!(xattr(&p, "user.note").as_deref(), Some(&b"hi"[..]));
    if is_root() {
        assert_eq!(xattr(&p, "security.capability").as_deref(), Some(cap));
        assert_eq!(xattr(&p, "trusted.overlay.opaque"), None);
    }
    // The host's SELinux label (if any) is not the image's.
    assert_ne!(
        xattr(&p, "security.selinux").as_deref(),
        Some(&b"system_u:object_r:bin_t:s0"[..])
    );
}

#[test]
fn whiteout_removes_lower_file_and_tree() {
    let d = tmp();
    apply(
        d.path(),
        &Tar::new()
            .file("a/f", b"1")
            .file("a/g", b"2")
            .file("t/x/y/z", b"3")
            .finish(),
    )
    .unwrap();
    apply(
        d.path(),
        &Tar::new()
            .file("a/.wh.f", b"")
            .file("./.wh.t", b"")
            .finish(),
    )
    .unwrap();
    assert!(!d.path().join("a/f").exists());
    assert!(d.path().join("a/g").exists());
    assert!(!d.path().join("t").exists());
    // Whiteout of something that does not exist: nothing to do.
    apply(
        d.path(),
        &Tar::new()
            .file("nope/.wh.x", b"")
            .file(".wh.zz", b"")
            .finish(),
    )
    .unwrap();
    assert!(!d.path().join("nope").exists());
}

#[test]
fn whiteout_never_removes_entries_of_its_own_layer() {
    let d = tmp();
    apply(
        d.path(),
        &Tar::new()
            .file("f", b"lower")
            .file("dir/lower", b"l")
            .finish(),
    )
    .unwrap();
    // Entry before its whiteout, and a directory re-created in the same layer.
    let t = Tar::new()
        .file("f", b"upper")
        .file(".wh.f", b"")
        .dir("dir")
        .file("dir/new", b"n")
        .file(".wh.dir", b"")
        .finish();
    apply(d.path(), &t).unwrap();
    assert_eq!(fs::read(d.path().join("f")).unwrap(), b"upper");
    assert!(d.path().join("dir/new").exists());
    assert!(
        !d.path().join("dir/lower").exists(),
        "lower content of a whited-out dir goes"
    );
}

#[test]
fn opaque_marker_anywhere_in_the_layer() {
    let d = tmp();
    apply(
        d.path(),
        &Tar::new()
            .file("o/lower", b"l")
            .file("o/sub/lower2", b"l")
            .file("p/lower", b"l")
            .finish(),
    )
    .unwrap();
    // Marker after this layer's entries in o/, before them in p/.
    let t = Tar::new()
        .file("o/new", b"n")
        .file("o/sub/new2", b"n")
        .file("o/.wh..wh..opq", b"")
        .file("p/.wh..wh..opq", b"")
        .file("p/new", b"n")
        .finish();
    apply(d.path(), &t).unwrap();
    assert!(!d.path().join("o/lower").exists());
    assert!(!d.path().join("o/sub/lower2").exists());
    assert!(d.path().join("o/new").exists());
    assert!(d.path().join("o/sub/new2").exists());
    assert!(!d.path().join("p/lower").exists());
    assert!(d.path().join("p/new").exists());
    assert!(!d.path().join("o/.wh..wh..opq").exists());
}

#[test]
fn file_replaces_dir_and_dir_replaces_file() {
    let d = tmp();
    apply(
        d.path(),
        &Tar::new()
            .file("x/deep/f", b"1")
            .file("y", b"2")
            .symlink("z", "x")
            .finish(),
    )
    .unwrap();
    apply(
        d.path(),
        &Tar::new()
            .file("x", b"now a file")
            .dir_mode("y", 0o700)
            .dir("z")
            .finish(),
    )
    .unwrap();
    assert_eq!(fs::read(d.path().join("x")).unwrap(), b"now a file");
    assert!(md(d.path().join("y")).is_dir());
    assert_eq!(md(d.path().join("y")).mode() & 0o7777, 0o700);
    assert!(
        md(d.path().join("z")).is_dir(),
        "a dir replaces a symlink, not its target"
    );
}

#[test]
fn dir_over_dir_merges_and_updates_metadata() {
    let d = tmp();
    apply(
        d.path(),
        &Tar::new()
            .dir_mode("m", 0o755)
            .file("m/keep", b"k")
            .finish(),
    )
    .unwrap();
    let t = Tar::new()
        .raw(E {
            mode: 0o750,
            mtime: 77,
            ..E::new(EntryType::Directory, "m")
        })
        .finish();
    apply(d.path(), &t).unwrap();
    assert!(d.path().join("m/keep").exists());
    assert_eq!(md(d.path().join("m")).mode() & 0o7777, 0o750);
    assert_eq!(md(d.path().join("m")).mtime(), 77);
}

#[test]
fn root_dir_entry_updates_root_metadata() {
    let d = tmp();
    let t = Tar::new()
        .raw(E {
            mode: 0o750,
            mtime: 99,
            ..E::new(EntryType::Directory, "./")
        })
        .file("f", b"x")
        .finish();
    apply(d.path(), &t).unwrap();
    assert_eq!(md(d.path()).mode() & 0o7777, 0o750);
    assert_eq!(md(d.path()).mtime(), 99);
}

#[test]
fn overlay_format_whiteouts_and_opaque() {
    if !is_root() {
        return assert!(run(
            tmp().path(),
            &Tar::new().file(".wh.x", b"").finish(),
            Whiteouts::Overlay
        )
        .is_err());
    }
    let d = tmp();
    let t = Tar::new()
        .file("etc/.wh.gone", b"")
        .dir("o")
        .file("o/.wh..wh..opq", b"")
        .file("kept", b"k")
        .file(".wh.kept", b"") // after its own entry: no device
        .file(".wh.redo", b"")
        .dir("redo") // dir over its own whiteout: opaque
        .file(".wh.later", b"")
        .finish();
    run(d.path(), &t, Whiteouts::Overlay).unwrap();
    let w = md(d.path().join("etc/gone"));
    assert!(w.file_type().is_char_device());
    assert_eq!(w.rdev(), 0);
    assert_eq!(
        xattr(&d.path().join("o"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(md(d.path().join("kept")).is_file());
    assert!(md(d.path().join("redo")).is_dir());
    assert_eq!(
        xattr(&d.path().join("redo"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!d.path().join("o/.wh..wh..opq").exists());
    assert!(md(d.path().join("later")).file_type().is_char_device());
}

#[test]
fn overlay_opaque_marker_before_its_directory() {
    assert!(
        is_root(),
        "overlay format needs root (trusted xattrs); make test runs as root"
    );
    let d = tmp();
    let t = Tar::new()
        .file("q/.wh..wh..opq", b"")
        .dir_mode("q", 0o710)
        .finish();
    run(d.path(), &t, Whiteouts::Overlay).unwrap();
    assert_eq!(
        xattr(&d.path().join("q"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(md(d.path().join("q")).mode() & 0o7777, 0o710);
}

#[test]
fn reads_the_source_to_its_end() {
    struct Counting<'a>(&'a [u8], usize);
    impl std::io::Read for Counting<'_> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(b)?;
            self.1 += n;
            Ok(n)
        }
    }
    let d = tmp();
    let mut t = Tar::new().file("f", b"x").finish();
    t.extend_from_slice(&[0u8; 10000]); // padding some writers add
    let len = t.len();
    let mut r = Counting(&t, 0);
    let dir = fs::File::open(d.path()).unwrap();
    sdme_extract::extract(
        &mut r,
        std::os::fd::AsFd::as_fd(&dir),
        &common::opts(Whiteouts::Apply),
    )
    .unwrap();
    assert_eq!(r.1, len);
}

#[test]
fn source_errors_fail_the_extraction() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "digest mismatch",
            ))
        }
    }
    let d = tmp();
    let dir = fs::File::open(d.path()).unwrap();
    let e = sdme_extract::extract(
        &mut Failing,
        std::os::fd::AsFd::as_fd(&dir),
        &common::opts(Whiteouts::Apply),
    )
    .unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
}

#[test]
fn binary_xattr_values_may_hold_newlines() {
    let d = tmp();
    let value: &[u8] = b"a\nb=c\n\x00\x0a";
    let t = Tar::new()
        .raw(E {
            data: b"x",
            pax: vec![("SCHILY.xattr.user.bin", value), ("mtime", b"77")],
            ..E::new(EntryType::Regular, "f")
        })
        .finish();
    apply(d.path(), &t).unwrap();
    assert_eq!(
        xattr(&d.path().join("f"), "user.bin").as_deref(),
        Some(value)
    );
    assert_eq!(
        md(d.path().join("f")).mtime(),
        77,
        "records after the binary one are read too"
    );
}

#[test]
fn gnu_long_names_and_links() {
    let d = tmp();
    let name = format!("{}/file", "g".repeat(200));
    let target = format!("/{}", "t".repeat(300));
    let mut t = Tar::new();
    for (kind, data) in [
        (EntryType::GNULongName, &name),
        (EntryType::GNULongLink, &target),
    ] {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(kind);
        let mut bytes = data.as_bytes().to_vec();
        bytes.push(0);
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.push(&h, &bytes);
    }
    t.raw(E {
        link: b"short",
        ..E::new(EntryType::Symlink, "short-name")
    });
    apply(d.path(), &t.finish()).unwrap();
    assert_eq!(
        fs::read_link(d.path().join(&name))
            .unwrap()
            .to_str()
            .unwrap(),
        target
    );
}

#[test]
fn pax_size_overrides_the_header_size() {
    let d = tmp();
    // As Go writes files over 8 GiB: header size 0, the real size in PAX.
    let t = Tar::new()
        .raw(E {
            data: b"hello",
            size: Some(0),
            pax: vec![("size", b"5")],
            ..E::new(EntryType::Regular, "f")
        })
        .file("after", b"still in step")
        .finish();
    apply(d.path(), &t).unwrap();
    assert_eq!(fs::read(d.path().join("f")).unwrap(), b"hello");
    assert_eq!(fs::read(d.path().join("after")).unwrap(), b"still in step");
}

#[test]
fn gnu_sparse_files() {
    let d = tmp();
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..6].copy_from_slice(b"sparse");
    h.set_entry_type(EntryType::GNUSparse);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_mode(0o644);
    h.set_size(5);
    {
        let g = h.as_gnu_mut().unwrap();
        let oct = |v: u64, f: &mut [u8; 12]| f.copy_from_slice(format!("{v:011o}\0").as_bytes());
        oct(0, &mut g.sparse[0].offset);
        oct(3, &mut g.sparse[0].numbytes);
        oct(10_000, &mut g.sparse[1].offset);
        oct(2, &mut g.sparse[1].numbytes);
        oct(10_002, &mut g.realsize);
    }
    h.set_cksum();
    let mut t = Tar::new();
    t.push(&h, b"abcde");
    t.file("after", b"ok");
    apply(d.path(), &t.finish()).unwrap();
    let c = fs::read(d.path().join("sparse")).unwrap();
    assert_eq!(c.len(), 10_002);
    assert_eq!(&c[..3], b"abc");
    assert!(c[3..10_000].iter().all(|&b| b == 0));
    assert_eq!(&c[10_000..], b"de");
    assert_eq!(fs::read(d.path().join("after")).unwrap(), b"ok");
}

#[test]
fn dir_entry_over_dir_drops_xattrs_it_does_not_list() {
    let d = tmp();
    let t1 = Tar::new()
        .raw(E {
            pax: vec![("SCHILY.xattr.user.a", b"1"), ("SCHILY.xattr.user.b", b"2")],
            ..E::new(EntryType::Directory, "x")
        })
        .finish();
    let t2 = Tar::new()
        .raw(E {
            pax: vec![("SCHILY.xattr.user.b", b"3")],
            ..E::new(EntryType::Directory, "x")
        })
        .finish();
    apply(d.path(), &t1).unwrap();
    apply(d.path(), &t2).unwrap();
    assert_eq!(xattr(&d.path().join("x"), "user.a"), None);
    assert_eq!(
        xattr(&d.path().join("x"), "user.b").as_deref(),
        Some(&b"3"[..])
    );
}

#[test]
fn whiteout_below_a_file_of_the_same_layer_is_a_no_op() {
    // umoci repack writes `d` (now a file) and then `d/.wh.child`.
    let d = tmp();
    apply(d.path(), &Tar::new().file("d/child", b"c").finish()).unwrap();
    let layer = Tar::new()
        .file("d", b"now a file")
        .file("d/.wh.child", b"")
        .finish();
    run(d.path(), &layer, Whiteouts::Apply).unwrap();
    if is_root() {
        let o = tmp();
        run(o.path(), &layer, Whiteouts::Overlay).unwrap();
        assert_eq!(fs::read(o.path().join("d")).unwrap(), b"now a file");
    }
    assert_eq!(fs::read(d.path().join("d")).unwrap(), b"now a file");
}

#[test]
fn stream_ending_after_content_without_padding_is_accepted() {
    // `umoci insert` writes layers like this: no padding, no end blocks.
    let d = tmp();
    let mut t = Tar::new().file("a", b"first").file("b", b"last").finish();
    let cut = t.len() - 1024 - (512 - 4);
    t.truncate(cut);
    apply(d.path(), &t).unwrap();
    assert_eq!(fs::read(d.path().join("b")).unwrap(), b"last");
    // Content itself cut short stays an error.
    let t = Tar::new().file("c", b"0123456789").finish();
    assert!(apply(d.path(), &t[..512 + 5]).is_err());
}

#[test]
fn whiteout_keeps_entries_written_below_implicitly_created_parents() {
    // `a` is lower; this layer writes a/b/c without listing a/ or a/b/, then
    // whites out `a`: only what lower layers had in `a` goes.
    let d = tmp();
    apply(d.path(), &Tar::new().file("a/lower", b"l").finish()).unwrap();
    apply(
        d.path(),
        &Tar::new().file("a/b/c", b"new").file(".wh.a", b"").finish(),
    )
    .unwrap();
    assert_eq!(fs::read(d.path().join("a/b/c")).unwrap(), b"new");
    assert!(!d.path().join("a/lower").exists());
}

#[test]
fn lower_directories_keep_their_times_unless_listed() {
    let d = tmp();
    let lower = Tar::new()
        .raw(E {
            mtime: 1000,
            ..E::new(EntryType::Directory, "./")
        })
        .raw(E {
            mtime: 2000,
            ..E::new(EntryType::Directory, "kept")
        })
        .file("kept/old", b"o")
        .raw(E {
            mtime: 3000,
            ..E::new(EntryType::Directory, "listed")
        })
        .finish();
    apply(d.path(), &lower).unwrap();
    let upper = Tar::new()
        .file("kept/new", b"n")
        .file("kept/.wh.old", b"")
        .file("top", b"t")
        .raw(E {
            mtime: 4000,
            ..E::new(EntryType::Directory, "listed")
        })
        .file("listed/x", b"x")
        .finish();
    apply(d.path(), &upper).unwrap();
    assert_eq!(md(d.path()).mtime(), 1000);
    assert_eq!(md(d.path().join("kept")).mtime(), 2000);
    assert_eq!(md(d.path().join("listed")).mtime(), 4000);
}
