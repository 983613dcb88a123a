//! `sdme connector add|ls|rm`: manages the `Connector=` drop-ins of a
//! container descriptor. The generator is the only parser of descriptors:
//! what `ls` lists is what the generator would read, through its library.

use sdme_generator::lookup::{lookup, search_dirs_shown, Lookup};
pub use sdme_generator::names::check_machine_name;

use crate::shadow::{self, Edit};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where `add` writes: the administrator's directory.
pub const ADMIN_DIR: &str = "etc/sdme";

/// The drop-in that `add` writes for connector `name` of `container`.
pub fn dropin_path(root: &Path, container: &str, name: &str) -> PathBuf {
    root.join(dropin_rel(container, name))
}

fn dropin_rel(container: &str, name: &str) -> String {
    format!("{ADMIN_DIR}/{container}.oci.d/50-connector-{name}.conf")
}

/// Contents of that drop-in.
pub fn dropin_contents(name: &str) -> String {
    format!("# Written by `sdme connector add`; `sdme connector rm` removes it.\n[Container]\nConnector={name}\n")
}

/// What `add` or `rm` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Written(PathBuf),
    AlreadyThere(PathBuf),
    Removed(PathBuf),
}

/// Writes the drop-in (atomically: a temporary file renamed into place).
/// The container's descriptor must exist, so a typo is caught here rather
/// than at the next daemon-reload.
pub fn add(root: &Path, container: &str, name: &str) -> Result<Change, String> {
    check_machine_name(container)?;
    check_machine_name(name)?;
    if container == name {
        return Err(format!(
            "container {container} cannot be a client of its own connector"
        ));
    }
    // A broken descriptor may still take a connector: the generator's
    // report names the real problem at the next daemon-reload.
    match lookup(root, container) {
        Lookup::Usable(_) | Lookup::Broken(_) => {}
        other => return Err(unavailable(root, container, other)),
    }
    let path = dropin_path(root, container, name);
    let contents = dropin_contents(name);
    if fs::read_to_string(&path).is_ok_and(|c| c == contents) {
        return Ok(Change::AlreadyThere(path));
    }
    // The generator's own rules over the would-be search path: a
    // connector that does not exist (or is not a connector) is refused
    // here, not found at the next daemon-reload with the client gone.
    let edit = Edit::Write {
        path: dropin_rel(container, name),
        contents: contents.into_bytes(),
    };
    shadow::check(root, std::slice::from_ref(&edit))?;
    shadow::apply(root, &edit)?;
    Ok(Change::Written(path))
}

/// Removes the drop-in written by `add`. A connector configured elsewhere
/// (in the descriptor or another drop-in) is named, not edited.
pub fn remove(root: &Path, container: &str, name: &str) -> Result<Change, String> {
    check_machine_name(container)?;
    check_machine_name(name)?;
    let path = dropin_path(root, container, name);
    if path.exists() {
        let edit = Edit::Remove {
            path: dropin_rel(container, name),
        };
        shadow::check(root, std::slice::from_ref(&edit))?;
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(Change::Removed(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let elsewhere: Vec<String> = configured_connectors(root, container)?
                .into_iter()
                .filter(|c| c.name == name)
                .map(|c| format!("{}:{}", c.file, c.line))
                .collect();
            if elsewhere.is_empty() {
                Err(format!("container {container} has no connector {name}"))
            } else {
                Err(format!(
                    "connector {name} of {container} was not added by `sdme connector add`; \
                     edit {}",
                    elsewhere.join(", ")
                ))
            }
        }
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// One configured connector and the line that configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredConnector {
    pub name: String,
    /// The file under `root`, as the administrator would open it.
    pub file: String,
    pub line: usize,
}

/// The connectors the generator would give `container`, in order, with
/// where each is set. Fails if the generator would skip the descriptor.
pub fn configured_connectors(
    root: &Path,
    container: &str,
) -> Result<Vec<ConfiguredConnector>, String> {
    check_machine_name(container)?;
    let descriptor = match lookup(root, container) {
        Lookup::Usable(d) => d,
        other => return Err(unavailable(root, container, other)),
    };
    let connectors = descriptor
        .container
        .map(|c| c.connectors)
        .unwrap_or_default();
    Ok(connectors
        .into_iter()
        .map(|c| ConfiguredConnector {
            name: c.value,
            file: root
                .join(c.origin.file.trim_start_matches('/'))
                .display()
                .to_string(),
            line: c.origin.line,
        })
        .collect())
}

/// Why `container` has no usable descriptor (`lookup` did not find one).
fn unavailable(root: &Path, container: &str, lookup: Lookup) -> String {
    match lookup {
        Lookup::Usable(_) => format!("descriptor {container}.oci is usable"),
        Lookup::Missing => format!(
            "no descriptor {container}.oci in {}",
            search_dirs_shown(root)
        ),
        Lookup::Masked { shown } => {
            format!(
                "descriptor {container}.oci is masked ({shown} under {})",
                root.display()
            )
        }
        Lookup::Broken(diagnostics) => format!(
            "descriptor {container}.oci would be skipped by the generator:\n{}",
            diagnostics
                .iter()
                .map(|d| format!("  {d}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
