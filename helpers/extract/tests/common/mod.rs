//! Test helpers: a tar writer that takes any name (the tar crate's own
//! path setters refuse `..`, which hostile layers need), and tree snapshots.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sdme_extract::{extract, Error, Options, Stats, Whiteouts};
use tar::{EntryType, Header};

pub struct Tar {
    out: Vec<u8>,
}

/// One PAX record: `LEN key=value\n`, LEN counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if len.to_string().len() != body.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

#[derive(Clone)]
pub struct E<'a> {
    pub kind: EntryType,
    pub name: &'a [u8],
    pub link: &'a [u8],
    pub data: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    pub pax: Vec<(&'a str, &'a [u8])>,
    /// Size written to the header (defaults to data.len()).
    pub size: Option<u64>,
}

impl<'a> E<'a> {
    pub fn new(kind: EntryType, name: &'a str) -> Self {
        E {
            kind,
            name: name.as_bytes(),
            link: b"",
            data: b"",
            mode: if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            },
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            dev: (0, 0),
            pax: Vec::new(),
            size: None,
        }
    }
}

impl Tar {
    pub fn new() -> Self {
        Tar { out: Vec::new() }
    }

    pub fn raw(&mut self, e: E<'_>) -> &mut Self {
        let mut pax: Vec<(&str, &[u8])> = e.pax.clone();
        if e.name.len() > 99 {
            pax.push(("path", e.name));
        }
        if e.link.len() > 99 {
            pax.push(("linkpath", e.link));
        }
        if !pax.is_empty() {
            let body: Vec<u8> = pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            let mut h = Header::new_ustar();
            h.set_path("pax").unwrap();
            h.set_entry_type(EntryType::XHeader);
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            self.push(&h, &body);
        }
        let mut h = Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            let n = e.name.len().min(99);
            g.name[..n].copy_from_slice(&e.name[..n]);
            let l = e.link.len().min(99);
            g.linkname[..l].copy_from_slice(&e.link[..l]);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(e.size.unwrap_or(e.data.len() as u64));
        h.set_device_major(e.dev.0).unwrap();
        h.set_device_minor(e.dev.1).unwrap();
        h.set_cksum();
        // Raw append: the declared size may lie.
        self.push(&h, e.data);
        self
    }

    pub fn push(&mut self, h: &Header, data: &[u8]) {
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.resize(self.out.len() + pad, 0);
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(E {
            data,
            ..E::new(EntryType::Regular, name)
        })
    }
    pub fn file_mode(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(E {
            data,
            mode,
            ..E::new(EntryType::Regular, name)
        })
    }
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(E::new(EntryType::Directory, name))
    }
    pub fn dir_mode(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(E {
            mode,
            ..E::new(EntryType::Directory, name)
        })
    }
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(E {
            link: target.as_bytes(),
            mode: 0o777,
            ..E::new(EntryType::Symlink, name)
        })
    }
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(E {
            link: target.as_bytes(),
            ..E::new(EntryType::Link, name)
        })
    }
    pub fn node(&mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> &mut Self {
        self.raw(E {
            dev: (major, minor),
            ..E::new(kind, name)
        })
    }
    /// Raw bytes appended as they are (for corrupt tars).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
    /// The bytes as they are, without end-of-archive blocks.
    #[allow(dead_code)]
    pub fn unterminated(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
    pub fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.out);
        v.resize(v.len() + 1024, 0);
        v
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn opts(whiteouts: Whiteouts) -> Options {
    Options {
        whiteouts,
        preserve_ownership: is_root(),
    }
}

pub fn apply(root: &Path, tar: &[u8]) -> Result<Stats, Error> {
    run(root, tar, Whiteouts::Apply)
}

pub fn run(root: &Path, tar: &[u8], w: Whiteouts) -> Result<Stats, Error> {
    let dir = File::open(root).unwrap();
    let mut r: &[u8] = tar;
    extract(&mut r, dir.as_fd(), &opts(w))
}

/// A snapshot of a tree: per relative path, a description of type, mode,
/// owner, size, mtime (non-dirs and dirs), link target and content.
pub fn snapshot(top: &Path, skip: Option<&Path>) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(top, top, skip, &mut out);
    out
}

fn walk(top: &Path, p: &Path, skip: Option<&Path>, out: &mut BTreeMap<PathBuf, String>) {
    if Some(p) == skip {
        return;
    }
    let md = std::fs::symlink_metadata(p).unwrap();
    let ft = md.file_type();
    let extra = if ft.is_symlink() {
        format!("-> {:?}", std::fs::read_link(p).unwrap())
    } else if ft.is_file() {
        format!("content {:?}", std::fs::read(p).unwrap())
    } else {
        String::new()
    };
    out.insert(
        p.strip_prefix(top).unwrap().to_path_buf(),
        format!(
            "mode {:o} uid {} gid {} nlink {} size {} mtime {}.{} rdev {} {extra}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.nlink(),
            if ft.is_dir() { 0 } else { md.size() },
            md.mtime(),
            md.mtime_nsec(),
            md.rdev()
        ),
    );
    if ft.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            walk(top, &e.unwrap().path(), skip, out);
        }
    }
}
