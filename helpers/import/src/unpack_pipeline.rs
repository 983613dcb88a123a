//! Applies an image's layers in order while later layers are fetched,
//! verified and decompressed in parallel.
//!
//! With `jobs == 1` each layer streams straight from the source into the
//! extraction. Otherwise the applier streams the layer whose turn it is
//! straight from the source too, unless a worker already fetches it: up to
//! `jobs` worker threads fetch the following layers in order into *spools*
//! (unlinked temporary files beside DEST, so a large image never has to fit
//! in memory), at most `jobs` layers ahead of the one being applied; the
//! extraction reads a spool while it is still being written.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use rustix::fs::{self, Mode, OFlags};
use sdme_extract::{Options, Stats};
use sdme_registry::{ImageSource, Layer};

const CHUNK: usize = 1 << 20;

pub fn apply_layers(
    source: &dyn ImageSource,
    layers: &[Layer],
    root: BorrowedFd<'_>,
    spool_dir: BorrowedFd<'_>,
    opts: &Options,
    jobs: usize,
) -> Result<Stats, String> {
    if jobs <= 1 || layers.len() <= 1 {
        return sequential(source, layers, root, opts);
    }
    parallel(source, layers, root, spool_dir, opts, jobs)
}

fn describe(i: usize, n: usize, layer: &Layer) -> String {
    format!("layer {}/{n} {}", i + 1, layer.digest)
}

fn add(total: &mut Stats, s: Stats) {
    total.entries += s.entries;
    total.bytes += s.bytes;
}

fn sequential(
    source: &dyn ImageSource,
    layers: &[Layer],
    root: BorrowedFd<'_>,
    opts: &Options,
) -> Result<Stats, String> {
    let mut total = Stats::default();
    for (i, layer) in layers.iter().enumerate() {
        let what = describe(i, layers.len(), layer);
        let mut reader = source
            .open_layer(layer)
            .map_err(|e| format!("{what}: {e}"))?;
        let s =
            sdme_extract::extract(&mut reader, root, opts).map_err(|e| format!("{what}: {e}"))?;
        add(&mut total, s);
    }
    Ok(total)
}

/// How far a spool has been written, and how it ended.
#[derive(Default)]
struct Progress {
    written: u64,
    done: Option<Result<(), String>>,
}

struct Spool {
    file: File,
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Spool {
    fn new(dir: BorrowedFd<'_>) -> io::Result<Spool> {
        Ok(Spool {
            file: anonymous_file(dir)?,
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
        })
    }

    fn finish(&self, result: Result<(), String>) {
        if let Ok(mut p) = self.progress.lock() {
            p.done = Some(result);
        }
        self.changed.notify_all();
    }

    /// Copies the layer stream into the spool; stops early on `abort`.
    fn fill(&self, mut reader: impl Read, abort: &AtomicBool) -> Result<(), String> {
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0u64;
        loop {
            if abort.load(Ordering::Relaxed) {
                return Err("aborted".into());
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            };
            self.file
                .write_all_at(&buf[..n], off)
                .map_err(|e| format!("writing the spool file: {e}"))?;
            off += n as u64;
            if let Ok(mut p) = self.progress.lock() {
                p.written = off;
            }
            self.changed.notify_all();
        }
    }
}

/// Reads a spool from the start, waiting for data still being written.
struct SpoolReader<'a> {
    spool: &'a Spool,
    pos: u64,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = {
            let mut p = self
                .spool
                .progress
                .lock()
                .map_err(|_| io::Error::other("spool lock poisoned"))?;
            loop {
                if let Some(Err(e)) = &p.done {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.clone()));
                }
                if p.written > self.pos || p.done.is_some() {
                    break p.written - self.pos;
                }
                p = self
                    .spool
                    .changed
                    .wait(p)
                    .map_err(|_| io::Error::other("spool lock poisoned"))?;
            }
        };
        if available == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let n = self.spool.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn parallel(
    source: &dyn ImageSource,
    layers: &[Layer],
    root: BorrowedFd<'_>,
    spool_dir: BorrowedFd<'_>,
    opts: &Options,
    jobs: usize,
) -> Result<Stats, String> {
    let n = layers.len();
    let mut spools = Vec::with_capacity(n);
    for _ in 0..n {
        spools.push(
            Spool::new(spool_dir)
                .map_err(|e| format!("cannot create a spool file beside DEST: {e}"))?,
        );
    }
    // Next layer to claim. The applier streams a layer itself when no worker
    // has claimed it yet (always the first one), so a layer is only spooled
    // when it is fetched ahead of its turn.
    let next = AtomicUsize::new(1);
    let abort = AtomicBool::new(false);
    // Index of the layer being applied; workers stay within `jobs` of it.
    let applying = Mutex::new(0usize);
    let advanced = Condvar::new();

    std::thread::scope(|scope| {
        for _ in 0..jobs.min(n) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                // Wait until the layer is within reach of the applier.
                if let Ok(mut cur) = applying.lock() {
                    while i >= *cur + jobs && !abort.load(Ordering::Relaxed) {
                        cur = match advanced.wait(cur) {
                            Ok(c) => c,
                            Err(_) => return,
                        };
                    }
                }
                let spool = &spools[i];
                if abort.load(Ordering::Relaxed) {
                    spool.finish(Err("aborted".into()));
                    continue;
                }
                let result = match source.open_layer(&layers[i]) {
                    Ok(reader) => spool.fill(reader, &abort),
                    Err(e) => Err(e.to_string()),
                };
                spool.finish(result);
            });
        }

        let mut total = Stats::default();
        let mut outcome = Ok(());
        for (i, layer) in layers.iter().enumerate() {
            let what = describe(i, n, layer);
            let claimed = i == 0
                || next
                    .compare_exchange(i, i + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
            let result = if claimed {
                match source.open_layer(layer) {
                    Ok(reader) => {
                        // Decompression and hashing on another core than the
                        // file system work.
                        let (tx, rx) = mpsc::sync_channel(PIPE_CHUNKS);
                        scope.spawn(move || pump(reader, tx));
                        let mut piped = ChannelReader {
                            rx,
                            chunk: Vec::new(),
                            pos: 0,
                        };
                        sdme_extract::extract(&mut piped, root, opts).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            } else {
                let mut reader = SpoolReader {
                    spool: &spools[i],
                    pos: 0,
                };
                sdme_extract::extract(&mut reader, root, opts).map_err(|e| e.to_string())
            };
            match result {
                Ok(s) => add(&mut total, s),
                Err(e) => {
                    outcome = Err(format!("{what}: {e}"));
                    break;
                }
            }
            if let Ok(mut cur) = applying.lock() {
                *cur = i + 1;
            }
            advanced.notify_all();
        }
        if outcome.is_err() {
            abort.store(true, Ordering::Relaxed);
            advanced.notify_all();
        }
        outcome.map(|()| total)
    })
}

/// Chunks in flight between a layer's decompressing thread and the applier.
const PIPE_CHUNKS: usize = 16;

/// Reads `reader` to its end in full chunks into `tx`; an error is sent as
/// the last message. Stops when the applier hangs up (it failed).
fn pump(mut reader: impl Read, tx: mpsc::SyncSender<Result<Vec<u8>, String>>) {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < chunk.len() {
            match reader.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
        if filled == 0 {
            return; // end of stream: dropping `tx` tells the reader
        }
        chunk.truncate(filled);
        if tx.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// The applier's end of [`pump`].
struct ChannelReader {
    rx: mpsc::Receiver<Result<Vec<u8>, String>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// An unlinked temporary file in `dir` (`O_TMPFILE`, or create + unlink
/// where the filesystem lacks it).
fn anonymous_file(dir: BorrowedFd<'_>) -> io::Result<File> {
    let flags = OFlags::RDWR | OFlags::CLOEXEC;
    match fs::openat(
        dir,
        ".",
        flags | OFlags::TMPFILE,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => return Ok(File::from(fd)),
        Err(e) if e != rustix::io::Errno::OPNOTSUPP && e != rustix::io::Errno::ISDIR => {
            return Err(e.into())
        }
        Err(_) => {}
    }
    for attempt in 0..100u32 {
        let name = format!(".sdme-spool-{}-{attempt}", std::process::id());
        match fs::openat(
            dir,
            name.as_str(),
            flags | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => {
                fs::unlinkat(dir, name.as_str(), fs::AtFlags::empty())?;
                return Ok(File::from(fd));
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other("cannot create a spool file"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdme_extract::Whiteouts;
    use sdme_registry::{Compression, ResolvedImage};
    use std::os::fd::AsFd;

    /// A one-file ustar archive (enough for these tests; the extraction has its own).
    fn tar_with(name: &str, content: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000001\0");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        out
    }

    struct Fake {
        layers: Vec<Result<Vec<u8>, String>>,
    }

    struct FailAtEnd(std::io::Cursor<Vec<u8>>, String);
    impl Read for FailAtEnd {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            match self.0.read(b)? {
                0 => Err(io::Error::new(io::ErrorKind::InvalidData, self.1.clone())),
                n => Ok(n),
            }
        }
    }

    impl ImageSource for Fake {
        fn describe(&self) -> String {
            "fake".into()
        }
        fn resolve(&self) -> Result<ResolvedImage, sdme_registry::Error> {
            Err(sdme_registry::Error::new(
                sdme_registry::ErrorKind::Unsupported,
                "fake",
            ))
        }
        fn open_layer(&self, layer: &Layer) -> Result<Box<dyn Read + Send>, sdme_registry::Error> {
            let i: usize = layer
                .digest
                .trim_start_matches("sha256:")
                .parse()
                .unwrap_or(0);
            Ok(match &self.layers[i] {
                Ok(t) => Box::new(std::io::Cursor::new(t.clone())),
                // The content arrives, then the digest check fails at EOF.
                Err(m) => Box::new(FailAtEnd(
                    std::io::Cursor::new(tar_with("bad", b"x")),
                    m.clone(),
                )),
            })
        }
    }

    fn layers(n: usize) -> Vec<Layer> {
        (0..n)
            .map(|i| Layer {
                digest: format!("sha256:{i}"),
                size: 0,
                media_type: String::new(),
                diff_id: String::new(),
                compression: Compression::None,
            })
            .collect()
    }

    fn run(fake: &Fake, jobs: usize) -> (tempfile::TempDir, Result<Stats, String>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("root")).unwrap();
        let root = File::open(d.path().join("root")).unwrap();
        let spool = File::open(d.path()).unwrap();
        let opts = Options {
            whiteouts: Whiteouts::Apply,
            preserve_ownership: false,
        };
        let r = apply_layers(
            fake,
            &layers(fake.layers.len()),
            root.as_fd(),
            spool.as_fd(),
            &opts,
            jobs,
        );
        (d, r)
    }

    #[test]
    fn layers_apply_in_order_whatever_the_parallelism() {
        // Each layer overwrites `f`; big enough that spools are read while written.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let fake = Fake {
            layers: (0..7)
                .map(|i| {
                    let mut c = big.clone();
                    c.extend_from_slice(format!("layer {i}").as_bytes());
                    Ok(tar_with("f", &c))
                })
                .collect(),
        };
        for jobs in [1, 2, 4, 16] {
            let (d, r) = run(&fake, jobs);
            let stats = r.unwrap();
            assert_eq!(stats.entries, 7, "jobs={jobs}");
            let c = std::fs::read(d.path().join("root/f")).unwrap();
            assert!(c.ends_with(b"layer 6"), "jobs={jobs}");
            // Spools are unlinked: nothing but the root is left beside it.
            let left: Vec<_> = std::fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left, ["root"], "jobs={jobs}");
        }
    }

    #[test]
    fn a_failing_layer_fails_the_whole_and_names_it() {
        let fake = Fake {
            layers: vec![
                Ok(tar_with("a", b"a")),
                Ok(tar_with("b", b"b")),
                Err("digest mismatch".into()),
                Ok(tar_with("d", b"d")),
                Ok(tar_with("e", b"e")),
            ],
        };
        for jobs in [1, 3] {
            let (_d, r) = run(&fake, jobs);
            let e = r.unwrap_err();
            assert!(
                e.contains("layer 3/5 sha256:2") && e.contains("digest mismatch"),
                "jobs={jobs}: {e}"
            );
        }
    }
}
