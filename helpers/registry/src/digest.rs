//! Content digests: computing, comparing, and verifying while streaming.

use crate::error::{Error, ErrorKind};
use sha2::{Digest as _, Sha256, Sha512};
use std::io::{self, Read};

/// A running hash for one of the digest algorithms images use.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for `digest`'s algorithm (`sha256:…` or `sha512:…`).
    pub fn for_digest(digest: &str) -> Result<Hasher, Error> {
        crate::reference::validate_digest(digest)
            .map_err(|why| Error::new(ErrorKind::Integrity, why))?;
        match digest.split_once(':') {
            Some(("sha256", _)) => Ok(Hasher::Sha256(Sha256::new())),
            Some(("sha512", _)) => Ok(Hasher::Sha512(Sha512::new())),
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                format!("unsupported digest algorithm in {digest:?}"),
            )),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// `algorithm:hex` of everything hashed so far.
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex(&h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex(&h.finalize())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `sha256:hex` of `data`.
pub fn sha256_of(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// Checks that `data` has digest `expected`; `what` names the object in the error.
pub fn verify_bytes(expected: &str, data: &[u8], what: &str) -> Result<(), Error> {
    let mut h = Hasher::for_digest(expected).map_err(|e| e.context(what))?;
    h.update(data);
    let actual = h.finish();
    if actual != expected {
        return Err(Error::new(
            ErrorKind::Integrity,
            format!("{what}: digest mismatch: expected {expected}, got {actual}"),
        ));
    }
    Ok(())
}

/// Passes bytes through while hashing and counting them; at end of stream it
/// checks size and digest and turns a mismatch into `io::ErrorKind::InvalidData`.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected_digest: String,
    expected_size: Option<u64>,
    seen: u64,
    what: String,
    failure: Option<String>,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(
        inner: R,
        expected_digest: &str,
        expected_size: Option<u64>,
        what: impl Into<String>,
    ) -> Result<Self, Error> {
        let what = what.into();
        let hasher = Hasher::for_digest(expected_digest).map_err(|e| e.context(&what))?;
        Ok(VerifyingReader {
            inner,
            hasher: Some(hasher),
            expected_digest: expected_digest.to_string(),
            expected_size,
            seen: 0,
            what,
            failure: None,
        })
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Bytes read from the inner stream so far.
    pub fn bytes_read(&self) -> u64 {
        self.seen
    }

    /// True once the whole stream was read and matched.
    #[cfg(test)]
    pub fn verified(&self) -> bool {
        self.hasher.is_none() && self.failure.is_none()
    }

    fn fail(&mut self, message: String) -> io::Error {
        self.failure = Some(message.clone());
        io::Error::new(io::ErrorKind::InvalidData, message)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(io::Error::new(io::ErrorKind::InvalidData, f.clone()));
        }
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(0);
        };
        let n = self.inner.read(buf)?;
        if n > 0 {
            hasher.update(&buf[..n]);
            self.seen += n as u64;
            if let Some(size) = self.expected_size.filter(|&s| self.seen > s) {
                let msg = format!("{}: more data than the {size} bytes announced", self.what);
                return Err(self.fail(msg));
            }
            return Ok(n);
        }
        if let Some(size) = self.expected_size.filter(|&s| self.seen != s) {
            let msg = format!(
                "{}: truncated: got {} of {size} bytes",
                self.what, self.seen
            );
            return Err(self.fail(msg));
        }
        let actual = self.hasher.take().map(Hasher::finish).unwrap_or_default();
        if actual != self.expected_digest {
            let msg = format!(
                "{}: digest mismatch: expected {}, got {actual}",
                self.what, self.expected_digest
            );
            return Err(self.fail(msg));
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn verify_bytes_accepts_and_refuses() {
        verify_bytes(EMPTY, b"", "empty").unwrap();
        let e = verify_bytes(EMPTY, b"x", "blob X").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity);
        assert!(e.to_string().contains("blob X: digest mismatch"), "{e}");
        assert!(verify_bytes("md5:abc", b"", "x").is_err());
    }

    #[test]
    fn streaming_verification() {
        let data = vec![7u8; 300_000];
        let d = sha256_of(&data);
        let mut ok = VerifyingReader::new(&data[..], &d, Some(300_000), "ok").unwrap();
        assert_eq!(io::copy(&mut ok, &mut io::sink()).unwrap(), 300_000);
        assert!(ok.verified());

        let mut wrong = VerifyingReader::new(&data[..], EMPTY, None, "wrong").unwrap();
        let e = io::copy(&mut wrong, &mut io::sink()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("digest mismatch"));

        let mut short = VerifyingReader::new(&data[..1000], &d, Some(300_000), "short").unwrap();
        let e = io::copy(&mut short, &mut io::sink()).unwrap_err();
        assert!(
            e.to_string().contains("truncated: got 1000 of 300000"),
            "{e}"
        );

        let mut long = VerifyingReader::new(&data[..], &d, Some(10), "long").unwrap();
        let e = io::copy(&mut long, &mut io::sink()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // The failure sticks.
        assert!(long.read(&mut [0; 10]).is_err());
    }

    #[test]
    fn sha512_is_supported() {
        let data = b"abc";
        let d = {
            let mut h = Hasher::Sha512(Sha512::new());
            h.update(data);
            h.finish()
        };
        verify_bytes(&d, data, "x").unwrap();
    }
}
