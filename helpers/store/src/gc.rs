//! `sdme-import gc`: removes image generations and layers that no current
//! image (and no container's last launch) uses, and stale temporary entries.

use crate::remove_tree;
use crate::{Store, TMP_PREFIX};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Default)]
pub struct Report {
    pub removed: Vec<String>,
    pub freed: u64,
}

/// Disk usage of a tree (allocated blocks; hardlinks inside counted once).
pub fn disk_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        total += m.blocks() * 512;
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// A temporary entry is stale unless the sdme process named in it still runs.
pub fn tmp_is_stale(name: &str) -> bool {
    !name
        .split('.')
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
        .any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "sdme-import")
                .unwrap_or(false)
        })
}

fn entries(dir: &Path) -> Vec<(String, std::fs::Metadata)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?)))
        .collect()
}

pub fn gc(store: &Store) -> Result<Report, String> {
    let _lock = store.lock(true)?;
    let images = store.images_dir();
    let mut keep_generations: HashSet<String> = HashSet::new();
    for (name, m) in entries(&images) {
        if m.file_type().is_symlink() && !name.starts_with(TMP_PREFIX) {
            if let Some(g) = store.current_generation(&name) {
                keep_generations.insert(g);
            }
        }
    }
    // Generations a container was last launched with may still be mounted.
    for (name, m) in entries(&store.containers_dir()) {
        if m.is_dir() {
            if let Ok(text) =
                std::fs::read_to_string(store.containers_dir().join(&name).join("generations"))
            {
                keep_generations.extend(
                    text.lines()
                        .filter(|l| !l.is_empty() && !l.contains('/'))
                        .map(String::from),
                );
            }
        }
    }
    let mut keep_layers: HashSet<String> = HashSet::new();
    for g in &keep_generations {
        if let Ok(Some(record)) = store.record(g) {
            for d in &record.layers {
                if let Ok(hex) = crate::digest_hex(d) {
                    keep_layers.insert(hex.to_string());
                }
            }
        }
    }
    let mut report = Report::default();
    let mut remove = |path: &Path, label: String| -> Result<(), String> {
        let size = disk_usage(path);
        remove_tree(path)?;
        report.freed += size;
        report.removed.push(label);
        Ok(())
    };
    for (name, m) in entries(&images) {
        let path = images.join(&name);
        if name.starts_with(TMP_PREFIX) {
            if tmp_is_stale(&name) {
                remove(&path, format!("images/{name}"))?;
            }
        } else if m.is_dir() && !keep_generations.contains(&name) {
            remove(&path, format!("images/{name}"))?;
        }
    }
    let layers = store.layers_dir();
    for (name, m) in entries(&layers) {
        let path = layers.join(&name);
        if name.starts_with(TMP_PREFIX) {
            if tmp_is_stale(&name) {
                remove(&path, format!("layers/sha256/{name}"))?;
            }
        } else if m.is_dir() && !keep_layers.contains(&name) {
            remove(&path, format!("layers/sha256/{name}"))?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_temporaries_are_kept() {
        // This test process is not sdme-import, so its pid does not protect.
        assert!(tmp_is_stale(&format!(".tmp.abc.{}.0", std::process::id())));
        assert!(tmp_is_stale(".tmp.abc.999999999.0"));
    }

    #[test]
    fn unreferenced_generations_and_layers_go() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(t.path());
        let hex_keep = "1".repeat(64);
        let hex_drop = "2".repeat(64);
        for h in [&hex_keep, &hex_drop] {
            std::fs::create_dir_all(s.layers_dir().join(h)).unwrap();
            std::fs::write(s.layers_dir().join(h).join("f"), vec![0u8; 10000]).unwrap();
        }
        std::fs::create_dir_all(s.layers_dir().join(".tmp.x.999999999.0")).unwrap();
        let gen = "a.111111111111";
        std::fs::create_dir_all(s.generation_dir(gen)).unwrap();
        std::fs::create_dir_all(s.generation_dir("a.222222222222")).unwrap();
        let json = format!(
            r#"{{"name":"a","source":"s","reference":"s","manifest_digest":"sha256:{hex_keep}","mode":"auto","kind":"base",
            "base":null,"layers":["sha256:{hex_keep}"],"systemd_layer":false,"app_glue":false,"app":null,"glue_version":2,
            "config":{{}},"image_config":{{}}}}"#
        );
        std::fs::write(s.generation_dir(gen).join("image.json"), json).unwrap();
        s.switch("a", gen).unwrap();
        let r = gc(&s).unwrap();
        assert!(s.layers_dir().join(&hex_keep).is_dir());
        assert!(!s.layers_dir().join(&hex_drop).exists());
        assert!(!s.generation_dir("a.222222222222").exists());
        assert!(s.generation_dir(gen).is_dir());
        assert!(!s.layers_dir().join(".tmp.x.999999999.0").exists());
        assert_eq!(r.removed.len(), 3, "{:?}", r.removed);
        assert!(r.freed >= 8192);
    }
}
