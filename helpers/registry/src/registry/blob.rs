//! A blob download that survives dropped connections: on an error or an early
//! end it asks again with `Range: bytes=N-` and carries on from byte N, so the
//! caller's hashing continues across the resume.

use super::client::Client;
use crate::error::{Error, ErrorKind};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;
use ureq::BodyReader;

/// Resumes allowed in a row without receiving a byte.
const MAX_RESUMES_WITHOUT_PROGRESS: u32 = 5;

pub struct BlobReader {
    client: Arc<Client>,
    path: String,
    what: String,
    size: u64,
    offset: u64,
    body: Option<BodyReader<'static>>,
    failures: u32,
}

impl BlobReader {
    /// Starts downloading `digest` (expected `size` bytes).
    pub fn open(client: Arc<Client>, digest: &str, size: u64) -> Result<BlobReader, Error> {
        let path = format!("/v2/{}/blobs/{digest}", client.repository());
        let what = format!("{}{path}", client.base());
        let resp = client.get(&path, &[])?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            404 => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{what}: blob unknown (404)"),
                ))
            }
            s => return Err(Error::new(ErrorKind::Io, format!("{what}: HTTP {s}"))),
        }
        Ok(BlobReader {
            client,
            path,
            what,
            size,
            offset: 0,
            body: Some(resp.into_body().into_reader()),
            failures: 0,
        })
    }

    fn reconnect(&mut self, cause: &str) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if self.failures > MAX_RESUMES_WITHOUT_PROGRESS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: truncated at byte {} of {} after {} resume attempts: {cause}",
                    self.what,
                    self.offset,
                    self.size,
                    self.failures - 1
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100 * u64::from(self.failures)));
        let range = format!("bytes={}-", self.offset);
        let resp = self
            .client
            .get(&self.path, &[("Range", range)])
            .map_err(|e| io::Error::other(format!("resuming: {e}")))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body().into_reader();
        match status {
            206 => {}
            // The server ignored Range: skip what we already have.
            200 => {
                let skipped = io::copy(&mut (&mut body).take(self.offset), &mut io::sink())?;
                if skipped != self.offset {
                    return self.reconnect("short response while skipping");
                }
            }
            s => {
                return Err(io::Error::other(format!(
                    "{}: resuming at byte {}: HTTP {s}",
                    self.what, self.offset
                )))
            }
        }
        self.body = Some(body);
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(body) = self.body.as_mut() else {
                self.reconnect("connection lost")?;
                continue;
            };
            match body.read(buf) {
                Ok(0) if self.offset >= self.size => return Ok(0),
                Ok(0) => {
                    let cause = format!("connection closed at byte {}", self.offset);
                    self.reconnect(&cause)?;
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.failures = 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.reconnect(&e.to_string())?,
            }
        }
    }
}
