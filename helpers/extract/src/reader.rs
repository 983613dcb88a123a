//! A streaming tar reader: the tar crate parses each 512-byte header (fields,
//! octal and base-256 numbers, ustar prefixes, GNU sparse maps); this module
//! does the stream around them: PAX extended headers (parsed by their record
//! lengths, so binary values such as capabilities or ACLs may hold newlines,
//! which the tar crate's own PAX iterator splits on), GNU long names, PAX
//! `size`/`path`/`linkpath` overrides, padding, and bounds on everything.

use std::io::{self, Read};

use rustix::fs::Timespec;
use tar::{EntryType, GnuExtSparseHeader, Header};

use crate::meta::{self, Meta};

const BLOCK: u64 = 512;
/// Largest PAX or GNU long-name header accepted (a hostile one could claim any size).
const MAX_EXTENSION: u64 = 16 << 20;
/// Largest number of sparse chunks accepted for one file.
const MAX_SPARSE_CHUNKS: usize = 1 << 20;

/// One entry of the archive, extension headers already folded in.
pub(crate) struct Entry {
    pub kind: EntryType,
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub meta: Meta,
    pub dev: (u32, u32),
    /// Bytes of content in the archive.
    pub size: u64,
    /// GNU sparse file: (offset, length) of each stored chunk, and the real size.
    pub sparse: Option<(Vec<(u64, u64)>, u64)>,
}

pub(crate) struct TarReader<R: Read> {
    r: R,
    /// Content bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's content.
    padding: u64,
}

fn bad(msg: impl Into<String>) -> String {
    msg.into()
}

/// PAX records of one extended header that matter here.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<Timespec>,
    atime: Option<Timespec>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: bool,
}

/// Parses `LEN key=value\n` records by their length.
fn parse_pax(data: &[u8]) -> Result<Pax, String> {
    let mut pax = Pax::default();
    let mut rest = data;
    while !rest.is_empty() {
        // Trailing NUL padding some writers leave.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("malformed PAX record (no length)"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("malformed PAX record length"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad("malformed PAX record (bad length)"));
        }
        let kv = &rest[space + 1..len - 1];
        rest = &rest[len..];
        let eq = kv
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("malformed PAX record (no '=')"))?;
        let (key, value) = (&kv[..eq], &kv[eq + 1..]);
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            pax.xattrs.push((name.to_vec(), value.to_vec()));
            continue;
        }
        if value.is_empty() {
            continue; // an empty value means "use the header's"
        }
        let text = || std::str::from_utf8(value).map(str::trim).unwrap_or("");
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => pax.size = Some(text().parse().map_err(|_| bad("bad PAX size"))?),
            b"uid" => pax.uid = Some(text().parse().map_err(|_| bad("bad PAX uid"))?),
            b"gid" => pax.gid = Some(text().parse().map_err(|_| bad("bad PAX gid"))?),
            b"mtime" => {
                pax.mtime = Some(meta::parse_pax_time(value).ok_or_else(|| bad("bad PAX mtime"))?)
            }
            b"atime" => pax.atime = meta::parse_pax_time(value),
            _ if key.starts_with(b"GNU.sparse.") => pax.sparse = true,
            _ => {}
        }
    }
    Ok(pax)
}

fn padding_of(size: u64) -> Result<u64, String> {
    let rounded = size
        .checked_add(BLOCK - 1)
        .ok_or_else(|| bad(format!("entry size {size} is absurd")))?
        & !(BLOCK - 1);
    Ok(rounded - size)
}

/// Verifies the header checksum (unsigned, or signed as some old tars wrote it).
fn checksum_ok(block: &[u8; 512], h: &Header) -> bool {
    let Ok(want) = h.cksum() else { return false };
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned = unsigned.wrapping_add(b as u32);
        signed = signed.wrapping_add(b as i8 as i32);
    }
    want == unsigned || want as i32 == signed
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(r: R) -> Self {
        TarReader {
            r,
            remaining: 0,
            padding: 0,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.r
    }

    /// Reads up to `buf.len()` bytes of the current entry's content; 0 at its end.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.r.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.remaining -= n as u64;
        Ok(n)
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if self.skip_until_eof(n)? {
            Ok(())
        } else {
            Err(bad("truncated tar: unexpected end of the stream"))
        }
    }

    /// Skips `n` bytes; `Ok(false)` if the stream ended first.
    fn skip_until_eof(&mut self, mut n: u64) -> Result<bool, String> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            match self.r.read(&mut buf[..k]) {
                Ok(0) => return Ok(false),
                Ok(got) => n -= got as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(bad(format!("reading the tar: {e}"))),
            }
        }
        Ok(true)
    }

    /// Reads a whole block; `Ok(false)` at a clean end of the stream.
    fn read_block(&mut self, block: &mut [u8; 512]) -> Result<bool, String> {
        let mut got = 0;
        while got < block.len() {
            match self.r.read(&mut block[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(bad("truncated tar: the stream ends inside a header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(bad(format!("reading the tar: {e}"))),
            }
        }
        Ok(true)
    }

    /// Content of an extension header (PAX, GNU long name), bounded.
    fn read_extension(&mut self, size: u64) -> Result<Vec<u8>, String> {
        if size > MAX_EXTENSION {
            return Err(bad(format!(
                "extension header of {size} bytes is too large"
            )));
        }
        let mut data = vec![0u8; size as usize];
        let mut got = 0;
        while got < data.len() {
            match self.r.read(&mut data[got..]) {
                Ok(0) => {
                    return Err(bad(
                        "truncated tar: the stream ends inside an extension header",
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(bad(format!("reading the tar: {e}"))),
            }
        }
        self.skip(padding_of(size)?)?;
        Ok(data)
    }

    /// The next entry, or `None` at the end of the archive. Unread content
    /// of the previous entry is skipped. Errors are about the archive itself
    /// (the caller names the entry when it knows one).
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, String> {
        self.skip(self.remaining)?;
        self.remaining = 0;
        // A stream that ends right after the last entry's content, without
        // padding or end-of-archive blocks, is accepted: `umoci insert`
        // writes such layers, and umoci and Go's reader accept them.
        let padded = self.skip_until_eof(self.padding)?;
        self.padding = 0;
        if !padded {
            return Ok(None);
        }
        let mut pax: Option<Pax> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; 512];
        loop {
            if !self.read_block(&mut block)? {
                // No end-of-archive blocks: accepted, as GNU tar and Go do.
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                // The end of the archive is two zero blocks (one, then the
                // end of the stream, is accepted as GNU tar and Go accept
                // it). Entries after a lone zero block would be seen by
                // one reader and not by another: refused, as Go refuses them.
                let mut next = [0u8; 512];
                if !self.read_block(&mut next)? || next.iter().all(|&b| b == 0) {
                    return Ok(None);
                }
                return Err(bad(
                    "a tar header follows a single zero block (the end of the archive is two zero blocks)",
                ));
            }
            let h = Header::from_byte_slice(&block);
            if !checksum_ok(&block, h) {
                return Err(bad("tar header checksum mismatch (corrupt or not a tar)"));
            }
            let kind = h.entry_type();
            let header_size = h
                .entry_size()
                .map_err(|e| bad(format!("bad size field: {e}")))?;
            match kind {
                EntryType::XHeader => {
                    let data = self.read_extension(header_size)?;
                    pax = Some(parse_pax(&data)?);
                    continue;
                }
                EntryType::XGlobalHeader => {
                    // Global defaults: not used by image layers; read past.
                    self.read_extension(header_size)?;
                    continue;
                }
                EntryType::GNULongName => {
                    long_name = Some(trim_nul(self.read_extension(header_size)?));
                    continue;
                }
                EntryType::GNULongLink => {
                    long_link = Some(trim_nul(self.read_extension(header_size)?));
                    continue;
                }
                _ => {}
            }
            let pax = pax.take().unwrap_or_default();
            if pax.sparse {
                return Err(bad("PAX sparse files (GNU.sparse.*) are not supported"));
            }
            let path = pax
                .path
                .or(long_name.take())
                .unwrap_or_else(|| h.path_bytes().into_owned());
            let link = pax
                .linkpath
                .or(long_link.take())
                .or_else(|| h.link_name_bytes().map(|l| l.into_owned()));
            let size = pax.size.unwrap_or(header_size);
            let field = |what: &str, e: io::Error| {
                bad(format!(
                    "{}: bad {what} field: {e}",
                    String::from_utf8_lossy(&path)
                ))
            };
            let to_id =
                |v: u64| u32::try_from(v).map_err(|_| bad(format!("owner id {v} out of range")));
            let meta = Meta {
                mode: h.mode().map_err(|e| field("mode", e))? & 0o7777,
                uid: match pax.uid {
                    Some(u) => u,
                    None => to_id(h.uid().map_err(|e| field("uid", e))?)?,
                },
                gid: match pax.gid {
                    Some(g) => g,
                    None => to_id(h.gid().map_err(|e| field("gid", e))?)?,
                },
                mtime: match pax.mtime {
                    Some(t) => t,
                    None => Timespec {
                        tv_sec: i64::try_from(h.mtime().map_err(|e| field("mtime", e))?)
                            .map_err(|_| bad("mtime out of range"))?,
                        tv_nsec: 0,
                    },
                },
                atime: pax.atime,
                xattrs: pax.xattrs,
            };
            let dev = if matches!(kind, EntryType::Char | EntryType::Block) {
                (
                    h.device_major()
                        .map_err(|e| field("device major", e))?
                        .unwrap_or(0),
                    h.device_minor()
                        .map_err(|e| field("device minor", e))?
                        .unwrap_or(0),
                )
            } else {
                (0, 0)
            };
            let sparse = if kind == EntryType::GNUSparse {
                Some(self.sparse_map(h, size)?)
            } else {
                None
            };
            // Only regular files (and sparse ones) carry content that is
            // written; others may declare a size too, it is read past.
            self.remaining = size;
            self.padding = padding_of(size)?;
            return Ok(Some(Entry {
                kind,
                path,
                link,
                meta,
                dev,
                size,
                sparse,
            }));
        }
    }

    /// The chunk map of an old-GNU sparse file (in the header and the
    /// extension blocks that follow it), checked against the sizes.
    fn sparse_map(&mut self, h: &Header, stored: u64) -> Result<(Vec<(u64, u64)>, u64), String> {
        let gnu = h
            .as_gnu()
            .ok_or_else(|| bad("sparse entry without a GNU header"))?;
        let real = gnu
            .real_size()
            .map_err(|e| bad(format!("bad sparse real size: {e}")))?;
        let mut chunks = Vec::new();
        let mut push = |s: &tar::GnuSparseHeader| -> Result<(), String> {
            if s.is_empty() {
                return Ok(());
            }
            let off = s
                .offset()
                .map_err(|e| bad(format!("bad sparse offset: {e}")))?;
            let len = s
                .length()
                .map_err(|e| bad(format!("bad sparse length: {e}")))?;
            chunks.push((off, len));
            if chunks.len() > MAX_SPARSE_CHUNKS {
                return Err(bad("too many sparse chunks"));
            }
            Ok(())
        };
        for s in &gnu.sparse {
            push(s)?;
        }
        let mut extended = gnu.is_extended();
        while extended {
            let mut ext = GnuExtSparseHeader::new();
            if !self.read_block(ext.as_mut_bytes())? {
                return Err(bad("truncated tar: sparse map"));
            }
            for s in ext.sparse() {
                push(s)?;
            }
            extended = ext.is_extended();
        }
        let mut total: u64 = 0;
        let mut end: u64 = 0;
        for &(off, len) in &chunks {
            let chunk_end = off
                .checked_add(len)
                .ok_or_else(|| bad("sparse chunk overflows"))?;
            if off < end || chunk_end > real {
                return Err(bad("sparse chunks overlap or exceed the file size"));
            }
            end = chunk_end;
            total = total
                .checked_add(len)
                .ok_or_else(|| bad("sparse chunks overflow"))?;
        }
        if total != stored {
            return Err(bad(format!(
                "sparse chunks hold {total} bytes, the entry {stored}"
            )));
        }
        Ok((chunks, real))
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(i) = v.iter().position(|&b| b == 0) {
        v.truncate(i);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_values_may_contain_newlines_and_equals() {
        let mut rec = b"SCHILY.xattr.user.b=a\nb=c\0d".to_vec();
        let len = rec.len() + 4; // "NN " + "\n"
        let mut data = format!("{len} ").into_bytes();
        data.append(&mut rec);
        data.push(b'\n');
        data.extend_from_slice(b"12 path=a/b\n");
        let pax = parse_pax(&data).unwrap();
        assert_eq!(
            pax.xattrs,
            vec![(b"user.b".to_vec(), b"a\nb=c\0d".to_vec())]
        );
        assert_eq!(pax.path.as_deref(), Some(&b"a/b"[..]));
    }

    #[test]
    fn malformed_pax_records_are_errors() {
        for data in [
            &b"99 path=x\n"[..],
            b"x path=y\n",
            b"5 a\n",
            b"11 pathx=y\n\n",
            b"3 \n",
        ] {
            assert!(
                parse_pax(data).is_err(),
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn padding() {
        assert_eq!(padding_of(0).unwrap(), 0);
        assert_eq!(padding_of(1).unwrap(), 511);
        assert_eq!(padding_of(512).unwrap(), 0);
        assert!(padding_of(u64::MAX).is_err());
    }
}
