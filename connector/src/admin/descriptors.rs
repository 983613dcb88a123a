//! Just enough of the descriptor format to list `Connector=` settings:
//! the search path `/etc/sdme`, `/run/sdme`, `/usr/lib/sdme` (first wins),
//! drop-ins `NAME.oci.d/*.conf` from all three (a same-named drop-in in a
//! higher directory replaces a lower one) applied in file-name order, `[Container]`
//! sections, `#`/`;` comments, and an empty `Connector=` clearing the list.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Highest priority first, relative to the root.
pub const SEARCH_DIRS: [&str; 3] = ["etc/sdme", "run/sdme", "usr/lib/sdme"];

/// One configured connector and the line that configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredConnector {
    pub name: String,
    pub file: String,
    pub line: usize,
}

pub fn search_dirs_shown(root: &Path) -> String {
    SEARCH_DIRS
        .iter()
        .map(|d| root.join(d).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn find_descriptor(root: &Path, container: &str) -> Option<PathBuf> {
    SEARCH_DIRS
        .iter()
        .map(|d| root.join(d).join(format!("{container}.oci")))
        .find(|p| p.exists())
}

fn dropins(root: &Path, container: &str) -> Vec<PathBuf> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    // Lowest priority first, so higher directories overwrite.
    for dir in SEARCH_DIRS.iter().rev() {
        let d = root.join(dir).join(format!("{container}.oci.d"));
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") && !name.starts_with('.') {
                by_name.insert(name, e.path());
            }
        }
    }
    by_name.into_values().collect()
}

/// The connectors a container would get, in order, with where each is set.
pub fn configured_connectors(
    root: &Path,
    container: &str,
) -> Result<Vec<ConfiguredConnector>, String> {
    let main = find_descriptor(root, container).ok_or_else(|| {
        format!(
            "no descriptor {container}.oci in {}",
            search_dirs_shown(root)
        )
    })?;
    let mut out = Vec::new();
    for file in std::iter::once(main).chain(dropins(root, container)) {
        let text = fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        collect(&text, &file.display().to_string(), &mut out);
    }
    Ok(out)
}

fn collect(text: &str, file: &str, out: &mut Vec<ConfiguredConnector>) {
    let mut in_container = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            in_container = line == "[Container]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !in_container || key.trim() != "Connector" {
            continue;
        }
        let value = value.trim();
        if value.is_empty() {
            out.clear();
        } else {
            out.push(ConfiguredConnector {
                name: value.to_owned(),
                file: file.to_owned(),
                line: i + 1,
            });
        }
    }
}
