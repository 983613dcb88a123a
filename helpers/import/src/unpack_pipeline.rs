//! Applies an image's layers in order while later layers are fetched,
//! verified and decompressed in parallel.
//!
//! With `jobs == 1` each layer streams straight from the source into the
//! extraction. Otherwise up to `jobs` worker threads fetch layers in order
//! into *spools* (unlinked temporary files beside DEST, so a large image
//! never has to fit in memory), at most `jobs` layers ahead of the one being
//! applied; the extraction reads a spool while it is still being written.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

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
    let next = AtomicUsize::new(0);
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
            let mut reader = SpoolReader {
                spool: &spools[i],
                pos: 0,
            };
            match sdme_extract::extract(&mut reader, root, opts) {
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
