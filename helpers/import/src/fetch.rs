//! Fetching layers into the layer store: each missing `diff_id` is streamed,
//! verified and unpacked in overlayfs format into a temporary directory that
//! is renamed into place, a few at a time.

use crate::glue::create_layer_dir;
use crate::notify::{human_bytes, Progress};
use sdme_registry::{ImageSource, Layer};
use sdme_store::remove_tree;
use sdme_store::{digest_hex, Store, TMP_PREFIX};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Layers unpacked at once: enough to overlap network and disk, few enough
/// for a small machine.
pub const PARALLEL: usize = 3;

#[derive(Debug, Default, Clone, Copy)]
pub struct FetchStats {
    pub fetched: usize,
    pub present: usize,
    pub bytes: u64,
}

/// The layers of `layers` not yet in the store, each `diff_id` once.
pub fn missing<'a>(store: &Store, layers: &'a [Layer]) -> Result<Vec<&'a Layer>, String> {
    let mut out: Vec<&Layer> = Vec::new();
    for layer in layers {
        if !store.layer_dir(&layer.diff_id)?.is_dir()
            && !out.iter().any(|l| l.diff_id == layer.diff_id)
        {
            out.push(layer);
        }
    }
    Ok(out)
}

pub fn fetch_layers(
    store: &Store,
    source: &dyn ImageSource,
    layers: &[Layer],
    progress: &Progress,
) -> Result<FetchStats, String> {
    let todo = missing(store, layers)?;
    let mut stats = FetchStats {
        present: layers.len() - todo.len(),
        ..Default::default()
    };
    if todo.is_empty() {
        return Ok(stats);
    }
    let dir = store.layers_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    let bytes = AtomicUsize::new(0);
    let total = todo.len();
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(total) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total || failed.load(Ordering::SeqCst) {
                    break;
                }
                let layer = todo[i];
                progress.status(&format!(
                    "Fetching layer {}/{total} ({})",
                    i + 1,
                    human_bytes(layer.size)
                ));
                match fetch_one(store, source, layer, i) {
                    Ok(n) => {
                        bytes.fetch_add(n as usize, Ordering::SeqCst);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(first) = errors.into_iter().next() {
        return Err(first);
    }
    // The record that claims the image complete is written after this.
    if let Ok(f) = std::fs::File::open(&dir) {
        let _ = rustix::fs::syncfs(&f);
    }
    stats.fetched = total;
    stats.bytes = bytes.load(Ordering::SeqCst) as u64;
    Ok(stats)
}

/// Unpacks one layer; returns the bytes of file content written.
fn fetch_one(
    store: &Store,
    source: &dyn ImageSource,
    layer: &Layer,
    index: usize,
) -> Result<u64, String> {
    let hex = digest_hex(&layer.diff_id)?;
    let target = store.layer_dir(&layer.diff_id)?;
    let tmp = store
        .layers_dir()
        .join(format!("{TMP_PREFIX}{hex}.{}.{index}", std::process::id()));
    remove_tree(&tmp)?;
    let result = (|| {
        create_layer_dir(&tmp)?;
        let root = rustix::fs::open(
            &tmp,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut reader = source
            .open_layer(layer)
            .map_err(|e| format!("layer {}: {e}", layer.digest))?;
        let opts = sdme_extract::Options {
            whiteouts: sdme_extract::Whiteouts::Overlay,
            preserve_ownership: rustix::process::geteuid().is_root(),
        };
        let stats = sdme_extract::extract(&mut reader, root.as_fd(), &opts)
            .map_err(|e| format!("layer {}: {e}", layer.digest))?;
        // The digests are checked at the end of the stream: read past the tar's end.
        std::io::copy(&mut reader, &mut std::io::sink())
            .map_err(|e| format!("layer {}: {e}", layer.digest))?;
        Ok::<u64, String>(stats.bytes)
    })();
    match result {
        Ok(bytes) => match std::fs::rename(&tmp, &target) {
            Ok(()) => Ok(bytes),
            // Another import finished the same layer first.
            Err(_) if target.is_dir() => remove_tree(&tmp).map(|_| bytes),
            Err(e) => Err(format!("{}: {e}", target.display())),
        },
        Err(e) => {
            let _ = remove_tree(&tmp);
            Err(e)
        }
    }
}
