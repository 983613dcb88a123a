//! Turns a raw layer blob into a verified, decompressed tar stream.
//!
//! Two checks run while the caller reads: the blob's digest and size (on the
//! compressed bytes) and the `diff_id` (on the decompressed bytes). When the
//! decoder reaches its end, the rest of the blob is drained so that its digest
//! is always checked before the caller sees end of stream.

use crate::digest::VerifyingReader;
use crate::error::{Error, ErrorKind};
use crate::media::sniff_compression;
use crate::{Compression, Layer};
use std::io::{self, BufRead, BufReader, Read};

/// Read buffer size: large reads keep decompression and hashing efficient.
pub const BUFFER_SIZE: usize = 256 * 1024;

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
) -> Result<Box<dyn Read + Send>, Error> {
    let what = format!("{where_}: layer {}", layer.digest);
    let verifying = VerifyingReader::new(raw, &layer.digest, Some(layer.size), what.clone())?;
    let mut blob = BufReader::with_capacity(BUFFER_SIZE, verifying);
    let head = blob
        .fill_buf()
        .map_err(|e| Error::new(ErrorKind::Io, format!("{what}: reading: {e}")))?;
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
        },
    )))
}

struct LayerReader {
    tar: VerifyingReader<Decoder>,
    what: String,
    done: bool,
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.tar.read(buf).map_err(|e| self.decode_error(e))?;
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

    fn read(blob: Vec<u8>, layer: &Layer) -> io::Result<Vec<u8>> {
        let mut r = open(Box::new(io::Cursor::new(blob)), layer, "test", true).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
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
