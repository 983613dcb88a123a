//! `sdme-import gc`: removes image generations and layers that no current
//! image (and no container's last launch) uses, and stale temporary entries.
//!
//! It fails closed: what it cannot read it keeps, with everything that
//! could depend on it. A generation whose record is missing, unreadable or
//! unparsable keeps its directory, and since its layers are unknown no layer
//! is removed at all; an unreadable `containers/NAME/generations` file (or
//! an `images/NAME` link that is not a generation's name) keeps every
//! generation and every layer. Each such case is a [`Report::problems`]
//! line, and `sdme-import gc` then exits non-zero. A store directory that
//! cannot be listed stops gc before anything is removed.

use crate::remove_tree;
use crate::{Store, TMP_PREFIX};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct Report {
    pub removed: Vec<String>,
    pub freed: u64,
    /// What gc could not read, each with what it kept because of it.
    pub problems: Vec<String>,
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

/// The entries of a store directory (none if it does not exist); any
/// other failure to list it is an error, so that nothing in use can hide.
fn entries(dir: &Path) -> Result<Vec<(PathBuf, std::fs::Metadata)>, String> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "gc: listing {}: {e}; nothing removed",
                dir.display()
            ))
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry =
            entry.map_err(|e| format!("gc: listing {}: {e}; nothing removed", dir.display()))?;
        let path = entry.path();
        let meta = entry
            .metadata()
            .map_err(|e| format!("gc: {}: {e}; nothing removed", path.display()))?;
        out.push((path, meta));
    }
    Ok(out)
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()
}

/// A plain entry name of `images/` (what a symlink or a generations line
/// may name).
fn plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.starts_with(TMP_PREFIX)
}

pub fn gc(store: &Store) -> Result<Report, String> {
    let _lock = store.lock(true)?;
    let mut report = Report::default();
    let images = store.images_dir();
    let image_entries = entries(&images)?;
    let mut keep_generations: HashSet<String> = HashSet::new();
    let mut keep_all_generations = false;
    let mut keep_all_layers = false;
    for (path, m) in &image_entries {
        let Some(name) = file_name(path) else {
            continue;
        };
        if !m.file_type().is_symlink() || name.starts_with(TMP_PREFIX) {
            continue;
        }
        match std::fs::read_link(path) {
            Ok(target) => match target.to_str() {
                Some(t) if plain_name(t) => {
                    keep_generations.insert(t.to_string());
                }
                _ => {
                    report.problems.push(format!(
                        "{}: points to {:?}, not to a generation: kept every generation and every layer",
                        path.display(),
                        target
                    ));
                    keep_all_generations = true;
                    keep_all_layers = true;
                }
            },
            Err(e) => {
                report.problems.push(format!(
                    "{}: {e}: kept every generation and every layer",
                    path.display()
                ));
                keep_all_generations = true;
                keep_all_layers = true;
            }
        }
    }
    // Generations a container was last launched with may still be mounted.
    for (dir, m) in entries(&store.containers_dir())? {
        if !m.is_dir() {
            continue;
        }
        let file = dir.join("generations");
        match std::fs::read_to_string(&file) {
            Ok(text) => keep_generations.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                report.problems.push(format!(
                    "{}: unreadable ({e}): kept every generation and every layer",
                    file.display()
                ));
                keep_all_generations = true;
                keep_all_layers = true;
            }
        }
    }
    // Every generation's record: the layers of those kept, and the
    // generations that cannot say what they use.
    let mut keep_layers: HashSet<String> = HashSet::new();
    for (path, m) in &image_entries {
        let Some(g) = file_name(path) else {
            continue;
        };
        if !m.is_dir() || g.starts_with(TMP_PREFIX) {
            continue;
        }
        let record = match store.record(g) {
            Ok(Some(r)) => r,
            Ok(None) => {
                report.problems.push(format!(
                    "{}: no image.json (record missing): kept it and every layer",
                    path.display()
                ));
                keep_generations.insert(g.to_string());
                keep_all_layers = true;
                continue;
            }
            Err(e) => {
                report
                    .problems
                    .push(format!("{e}: kept {} and every layer", path.display()));
                keep_generations.insert(g.to_string());
                keep_all_layers = true;
                continue;
            }
        };
        if !keep_all_generations && !keep_generations.contains(g) {
            continue;
        }
        for d in &record.layers {
            match crate::digest_hex(d) {
                Ok(hex) => {
                    keep_layers.insert(hex.to_string());
                }
                Err(e) => {
                    report.problems.push(format!(
                        "{}/image.json: layer {e}: kept every layer",
                        path.display()
                    ));
                    keep_all_layers = true;
                }
            }
        }
    }
    let mut remove = |path: &Path, label: String| -> Result<(), String> {
        let size = disk_usage(path);
        remove_tree(path)?;
        report.freed += size;
        report.removed.push(label);
        Ok(())
    };
    for (path, m) in &image_entries {
        let Some(name) = file_name(path) else {
            continue;
        };
        if name.starts_with(TMP_PREFIX) {
            if tmp_is_stale(name) {
                remove(path, format!("images/{name}"))?;
            }
        } else if m.is_dir() && !keep_all_generations && !keep_generations.contains(name) {
            remove(path, format!("images/{name}"))?;
        }
    }
    let layers = store.layers_dir();
    for (path, m) in entries(&layers)? {
        let Some(name) = file_name(&path) else {
            continue;
        };
        if name.starts_with(TMP_PREFIX) {
            // Never named by a record: an interrupted import's.
            if tmp_is_stale(name) {
                remove(&path, format!("layers/sha256/{name}"))?;
            }
        } else if m.is_dir() && !keep_all_layers && !keep_layers.contains(name) {
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
        std::fs::write(
            s.generation_dir("a.222222222222").join("image.json"),
            record(&hex_drop),
        )
        .unwrap();
        s.switch("a", gen).unwrap();
        let r = gc(&s).unwrap();
        assert!(s.layers_dir().join(&hex_keep).is_dir());
        assert!(!s.layers_dir().join(&hex_drop).exists());
        assert!(!s.generation_dir("a.222222222222").exists());
        assert!(s.generation_dir(gen).is_dir());
        assert!(!s.layers_dir().join(".tmp.x.999999999.0").exists());
        assert_eq!(r.removed.len(), 3, "{:?}", r.removed);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.freed >= 8192);
    }

    fn record(hex_layer: &str) -> String {
        format!(
            r#"{{"name":"a","source":"s","reference":"s","manifest_digest":"sha256:{hex_layer}","mode":"auto","kind":"base",
            "base":null,"layers":["sha256:{hex_layer}"],"systemd_layer":false,"app_glue":false,"app":null,"glue_version":3,
            "config":{{}},"image_config":{{}}}}"#
        )
    }

    /// Layers 1… and 2…, generation a.1 (current, uses layer 1) and a.2
    /// (unused, uses layer 2).
    fn two_generations() -> (tempfile::TempDir, Store, String, String) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(t.path());
        let (one, two) = ("1".repeat(64), "2".repeat(64));
        for (h, g) in [(&one, "a.111111111111.1"), (&two, "a.222222222222.1")] {
            std::fs::create_dir_all(s.layers_dir().join(h)).unwrap();
            std::fs::create_dir_all(s.generation_dir(g)).unwrap();
            std::fs::write(s.generation_dir(g).join("image.json"), record(h)).unwrap();
        }
        s.switch("a", "a.111111111111.1").unwrap();
        (t, s, one, two)
    }

    #[test]
    fn an_unparsable_record_keeps_its_generation_and_every_layer() {
        let (_t, s, one, two) = two_generations();
        let broken = s.generation_dir("b.333333333333.1");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("image.json"), "{ not json").unwrap();
        std::fs::create_dir_all(s.layers_dir().join("3".repeat(64))).unwrap();
        let r = gc(&s).unwrap();
        assert!(broken.is_dir(), "the generation gc cannot read stays");
        for h in [&one, &two, &"3".repeat(64)] {
            assert!(s.layers_dir().join(h).is_dir(), "layer {h} stays");
        }
        // The unused generation with a good record still goes.
        assert_eq!(r.removed, ["images/a.222222222222.1"]);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(
            r.problems[0].contains("b.333333333333.1/image.json: invalid image record")
                && r.problems[0].contains("kept")
                && r.problems[0].contains("every layer"),
            "{}",
            r.problems[0]
        );
        // A missing record is the same case.
        std::fs::remove_file(broken.join("image.json")).unwrap();
        let r = gc(&s).unwrap();
        assert!(broken.is_dir() && s.layers_dir().join(&two).is_dir());
        assert!(r.removed.is_empty(), "{:?}", r.removed);
        assert!(r.problems[0].contains("record missing"), "{:?}", r.problems);
    }

    #[test]
    fn an_unreadable_generations_file_keeps_everything() {
        let (_t, s, one, two) = two_generations();
        let file = s.containers_dir().join("web/generations");
        // A directory where the file should be: read fails (EISDIR).
        std::fs::create_dir_all(&file).unwrap();
        let r = gc(&s).unwrap();
        assert!(r.removed.is_empty(), "{:?}", r.removed);
        assert!(s.generation_dir("a.222222222222.1").is_dir());
        assert!(s.layers_dir().join(&one).is_dir() && s.layers_dir().join(&two).is_dir());
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("web/generations: unreadable"));
        // Readable again, it protects what it names.
        std::fs::remove_dir(&file).unwrap();
        std::fs::write(&file, "a.222222222222.1\n").unwrap();
        let r = gc(&s).unwrap();
        assert!(r.removed.is_empty() && r.problems.is_empty(), "{r:?}");
        std::fs::write(&file, "").unwrap();
        let r = gc(&s).unwrap();
        assert_eq!(
            r.removed,
            [
                "images/a.222222222222.1".to_string(),
                format!("layers/sha256/{two}")
            ]
        );
    }
}
