//! One descriptor read exactly as the generator reads it (search path,
//! precedence, masking, drop-ins, list resets), for tools that inspect a
//! single container, such as `sdme connector`. Cross-descriptor checks
//! (does a `Connector=` name exist?) are the generator run's business.

use crate::build::build;
use crate::descriptor::Descriptor;
use crate::diagnostic::Diagnostic;
use crate::search::{discover, Found, SEARCH_DIRS};
use std::path::Path;

pub enum Lookup {
    /// No `NAME.oci` in any search directory.
    Missing,
    /// The winning `NAME.oci` is empty or a symlink to `/dev/null`.
    Masked {
        shown: String,
    },
    /// It exists but the generator would skip it; these say why.
    Broken(Vec<Diagnostic>),
    Usable(Box<Descriptor>),
}

pub fn lookup(root: &Path, name: &str) -> Lookup {
    let (mut found, diagnostics) = discover(root);
    match found.remove(name) {
        None => Lookup::Missing,
        Some(Found::Masked { shown }) => Lookup::Masked { shown },
        Some(Found::Broken) => Lookup::Broken(about(name, diagnostics)),
        Some(Found::Descriptor { main, dropins }) => match build(name, &main, &dropins) {
            Ok(d) => Lookup::Usable(Box::new(d)),
            Err(errors) => Lookup::Broken(errors),
        },
    }
}

/// The search directories under `root`, for "not found" messages.
pub fn search_dirs_shown(root: &Path) -> String {
    SEARCH_DIRS
        .iter()
        .map(|d| root.join(d).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The diagnostics about `name`'s descriptor, drop-in directories or
/// drop-ins.
fn about(name: &str, diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let main = format!("/{name}.oci");
    let dropin_dir = format!("/{name}.oci.d");
    let dropin = format!("/{name}.oci.d/");
    diagnostics
        .into_iter()
        .filter(|d| {
            d.file.as_ref().is_some_and(|f| {
                f.ends_with(&main) || f.ends_with(&dropin_dir) || f.contains(&dropin)
            })
        })
        .collect()
}
