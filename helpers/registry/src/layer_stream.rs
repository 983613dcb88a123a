//! Turns a raw layer blob into a verified, decompressed tar stream.
//!
//! Two checks run while the caller reads: the blob's digest and size (on the
//! compressed bytes) and the `diff_id` (on the decompressed bytes). When the
//! decoder reaches its end, the rest of the blob is drained so that its digest
//! is always checked before the caller sees end of stream.
//!
//! The diff_id is only known to be right at the very end, so a small blob
//! that decompresses to terabytes (a bomb) would fill the disk first: the
//! decompressed size is bounded as it streams (see [`Limits`]). The
//! compressed side is bounded by the descriptor's size, which the blob's
//! [`VerifyingReader`] enforces on every read.

use crate::digest::VerifyingReader;
use crate::error::{Error, ErrorKind};
use crate::media::sniff_compression;
use crate::{Compression, Layer};
use std::io::{self, BufRead, BufReader, Read};

/// Read buffer size: large reads keep decompression and hashing efficient.
pub const BUFFER_SIZE: usize = 256 * 1024;

/// Default cap on one layer's decompressed size: well above the largest real
/// layers (tens of GB in machine-learning images), far below "unbounded".
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 128 << 30;
/// Default cap on decompressed / compressed bytes: just above deflate's
/// maximum of 1032:1, so no valid gzip layer is ever refused (not even one
/// made of zero-filled files), while zstd's far higher ratios are cut off.
pub const DEFAULT_MAX_LAYER_RATIO: u64 = 1100;
/// Below this many decompressed bytes the ratio is not checked: small layers
/// of highly compressible files are normal, and this much is harmless.
const RATIO_FLOOR: u64 = 1 << 30;

/// Bounds on one layer's decompressed stream.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes, whatever the compressed size.
    pub max_size: u64,
    /// Decompressed bytes per compressed byte read so far (the bytes actually
    /// received, never more than the descriptor's size).
    pub max_ratio: u64,
    /// Decompressed bytes allowed before the ratio applies.
    pub ratio_floor: u64,
}

impl Limits {
    pub fn from_options(opts: &crate::SourceOptions) -> Limits {
        Limits {
            max_size: opts.max_layer_size.unwrap_or(DEFAULT_MAX_LAYER_SIZE),
            max_ratio: opts.max_layer_ratio.unwrap_or(DEFAULT_MAX_LAYER_RATIO),
            ratio_floor: RATIO_FLOOR,
        }
    }

    /// Why `out` decompressed bytes from `read` compressed ones are too many, if they are.
    pub(crate) fn exceeded(&self, out: u64, read: u64) -> Option<String> {
        if out > self.max_size {
            return Some(format!(
                "decompresses to more than the limit of {} bytes per layer",
                self.max_size
            ));
        }
        let allowed = read.saturating_mul(self.max_ratio).max(self.ratio_floor);
        (out > allowed).then(|| {
            format!(
                "decompresses to more than {out} bytes from {read} compressed bytes, \
                 over the limit of {}:1 (a decompression bomb?)",
                self.max_ratio
            )
        })
    }
}

type Blob = BufReader<VerifyingReader<Box<dyn Read + Send>>>;

enum Decoder {
    Plain(Box<Blob>),
    Gzip(Box<flate2::bufread::MultiGzDecoder<Blob>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, Blob>>),
}

impl Decoder {
    fn blob(&mut self) -> &mut Blob {
        match self {
            Decoder::Plain(b) => b,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
        }
    }
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(b) => b.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// Opens the decompressed, verified stream of `layer` from its raw blob.
/// `where_` names the source in messages. `check_media_type` is false for
/// sources without trustworthy media types (docker-archive).
pub fn open(
    raw: Box<dyn Read + Send>,
    layer: &Layer,
    where_: &str,
    check_media_type: bool,
    limits: &Limits,
) -> Result<Box<dyn Read + Send>, Error> {
    let what = format!("{where_}: layer {}", layer.digest);
    let verifying = VerifyingReader::new(raw, &layer.digest, Some(layer.size), what.clone())?;
    let mut blob = BufReader::with_capacity(BUFFER_SIZE, verifying);
    let head = blob.fill_buf().map_err(|e| {
        // The blob's own checks (too long, for one) are about the content, not the transport.
        let kind = if e.kind() == io::ErrorKind::InvalidData {
            ErrorKind::Integrity
        } else {
            ErrorKind::Io
        };
        Error::new(kind, format!("{what}: reading: {e}"))
    })?;
    let found = sniff_compression(head);
    if check_media_type && found != layer.compression {
        return Err(Error::new(
            ErrorKind::Integrity,
            format!(
                "{what}: media type {} announces {:?} but the content is {found:?}",
                layer.media_type, layer.compression
            ),
        ));
    }
    let decoder = match found {
        Compression::None => Decoder::Plain(Box::new(blob)),
        Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(blob))),
        Compression::Zstd => Decoder::Zstd(Box::new(
            zstd::stream::read::Decoder::with_buffer(blob)
                .map_err(|e| Error::new(ErrorKind::Io, format!("{what}: zstd: {e}")))?,
        )),
    };
    let tar = VerifyingReader::new(decoder, &layer.diff_id, None, format!("{what}: diff_id"))?;
    // Tar readers ask for 512-byte headers; buffering here keeps the decoder
    // and the hashers working on large chunks whatever the caller reads.
    Ok(Box::new(BufReader::with_capacity(
        BUFFER_SIZE,
        LayerReader {
            tar,
            what,
            done: false,
            limits: *limits,
            out: 0,
            failure: None,
        },
    )))
}

struct LayerReader {
    tar: VerifyingReader<Decoder>,
    what: String,
    done: bool,
    limits: Limits,
    /// Decompressed bytes passed on so far.
    out: u64,
    /// A limit was exceeded: every later read fails the same way.
    failure: Option<String>,
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(io::Error::new(io::ErrorKind::InvalidData, f.clone()));
        }
        if self.done {
            return Ok(0);
        }
        let n = self.tar.read(buf).map_err(|e| self.decode_error(e))?;
        self.out += n as u64;
        let read = self.tar.get_mut().blob().get_ref().bytes_read();
        if let Some(why) = self.limits.exceeded(self.out, read) {
            // These bytes are not passed on: the caller never sees more than the limit.
            let message = format!("{}: {why}", self.what);
            self.failure = Some(message.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
        if n == 0 && !buf.is_empty() {
            // The decoder is done: the blob must be too, and its digest must match.
            let blob = self.tar.get_mut().blob();
            let extra = io::copy(blob, &mut io::sink())?;
            if extra > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {extra} bytes of trailing data after the compressed stream",
                        self.what
                    ),
                ));
            }
            self.done = true;
        }
        Ok(n)
    }
}

impl LayerReader {
    /// Decoder complaints about the data (corrupt or cut short) become `InvalidData`.
    fn decode_error(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::InvalidData => e,
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput | io::ErrorKind::Other => {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: corrupt or truncated stream: {e}", self.what),
                )
            }
            _ => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_of;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn layer_for(blob: &[u8], tar: &[u8], compression: Compression) -> Layer {
        Layer {
            digest: sha256_of(blob),
            size: blob.len() as u64,
            media_type: "test".into(),
            diff_id: sha256_of(tar),
            compression,
        }
    }

    const DEFAULT: Limits = Limits {
        max_size: DEFAULT_MAX_LAYER_SIZE,
        max_ratio: DEFAULT_MAX_LAYER_RATIO,
        ratio_floor: RATIO_FLOOR,
    };

    fn read(blob: Vec<u8>, layer: &Layer) -> io::Result<Vec<u8>> {
        read_limited(blob, layer, &DEFAULT).map_err(|(e, _)| e)
    }

    /// The stream, or the error and how many bytes came before it.
    fn read_limited(
        blob: Vec<u8>,
        layer: &Layer,
        limits: &Limits,
    ) -> Result<Vec<u8>, (io::Error, u64)> {
        let mut r = open(Box::new(io::Cursor::new(blob)), layer, "test", true, limits).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err((e, out.len() as u64)),
            }
        }
    }

    #[test]
    fn a_zstd_bomb_is_stopped_at_the_ratio() {
        // 16 MiB of zeros is a few hundred bytes of zstd: far over 1100:1.
        let tar = vec![0u8; 16 << 20];
        let z = zstd::encode_all(&tar[..], 3).unwrap();
        assert!((z.len() as u64) * DEFAULT_MAX_LAYER_RATIO < tar.len() as u64);
        let layer = layer_for(&z, &tar, Compression::Zstd);
        let limits = Limits {
            ratio_floor: 64 << 10,
            ..DEFAULT
        };
        let (e, passed) = read_limited(z.clone(), &layer, &limits).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let m = e.to_string();
        assert!(m.contains(&layer.digest) && m.contains("1100:1"), "{m}");
        let allowed = (z.len() as u64 * DEFAULT_MAX_LAYER_RATIO).max(64 << 10);
        assert!(
            passed <= allowed,
            "{passed} bytes passed, {allowed} allowed"
        );
        // Under the floor, the same layer is fine.
        let roomy = Limits {
            ratio_floor: 16 << 20,
            ..DEFAULT
        };
        assert_eq!(read_limited(z, &layer, &roomy).unwrap(), tar);
    }

    #[test]
    fn zero_filled_gzip_passes_the_default_ratio() {
        // Deflate's best case (about 1030:1) stays under the default ratio.
        let tar = vec![0u8; 8 << 20];
        let blob = gzip(&tar);
        let layer = layer_for(&blob, &tar, Compression::Gzip);
        let limits = Limits {
            ratio_floor: 0,
            ..DEFAULT
        };
        assert_eq!(read_limited(blob, &layer, &limits).unwrap(), tar);
    }

    #[test]
    fn the_absolute_size_limit_is_exact() {
        let tar: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 256) as u8).collect();
        let blob = gzip(&tar);
        let layer = layer_for(&blob, &tar, Compression::Gzip);
        let at = |max_size| Limits {
            max_size,
            ..DEFAULT
        };
        assert_eq!(
            read_limited(blob.clone(), &layer, &at(300_000)).unwrap(),
            tar
        );
        let (e, passed) = read_limited(blob, &layer, &at(299_999)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("limit of 299999 bytes"), "{e}");
        assert!(e.to_string().contains(&layer.digest), "{e}");
        assert!(passed <= 299_999);
        // Plain layers too (their ratio is 1).
        let plain = layer_for(&tar, &tar, Compression::None);
        assert!(read_limited(tar.clone(), &plain, &at(1000)).is_err());
        assert_eq!(
            read_limited(tar.clone(), &plain, &at(300_000)).unwrap(),
            tar
        );
    }

    #[test]
    fn more_bytes_than_the_descriptor_size_are_refused() {
        // Longer than the first buffer fill: refused while streaming.
        // Incompressible (xorshift), so the blob is as long as the data.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let tar: Vec<u8> = (0..600_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let blob = gzip(&tar);
        assert!(blob.len() > BUFFER_SIZE);
        let mut layer = layer_for(&blob, &tar, Compression::Gzip);
        layer.size = BUFFER_SIZE as u64 + 1;
        let e = read(blob, &layer).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("more data than"), "{e}");
        // Shorter: refused when the stream is opened.
        let tar = vec![3u8; 10_000];
        let blob = gzip(&tar);
        let mut layer = layer_for(&blob, &tar, Compression::Gzip);
        layer.size -= 1;
        let e = open(
            Box::new(io::Cursor::new(blob)),
            &layer,
            "test",
            true,
            &DEFAULT,
        )
        .err()
        .unwrap();
        assert_eq!(e.kind(), ErrorKind::Integrity);
        assert!(e.to_string().contains("more data than"), "{e}");
    }

    #[test]
    fn multi_member_gzip_is_read_whole() {
        let tar: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut blob = gzip(&tar[..100_000]);
        blob.extend(gzip(&tar[100_000..]));
        let layer = layer_for(&blob, &tar, Compression::Gzip);
        assert_eq!(read(blob, &layer).unwrap(), tar);
    }

    #[test]
    fn zstd_and_plain() {
        let tar = vec![5u8; 300_000];
        let z = zstd::encode_all(&tar[..], 1).unwrap();
        assert_eq!(
            read(z.clone(), &layer_for(&z, &tar, Compression::Zstd)).unwrap(),
            tar
        );
        assert_eq!(
            read(tar.clone(), &layer_for(&tar, &tar, Compression::None)).unwrap(),
            tar
        );
    }

    #[test]
    fn trailing_garbage_after_gzip_is_refused() {
        let tar = vec![1u8; 10_000];
        let mut blob = gzip(&tar);
        blob.extend_from_slice(b"garbage!");
        let layer = layer_for(&blob, &tar, Compression::Gzip);
        assert_eq!(
            read(blob, &layer).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn compressed_digest_is_checked_before_end_of_stream() {
        // The decompressed data is right, but the blob digest is not: the
        // reader must still fail, at the end of the stream at the latest.
        let tar = vec![2u8; 10_000];
        let blob = gzip(&tar);
        let mut layer = layer_for(&blob, &tar, Compression::Gzip);
        layer.digest = sha256_of(b"another blob");
        let e = read(blob, &layer).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("digest mismatch"), "{e}");
    }
}
