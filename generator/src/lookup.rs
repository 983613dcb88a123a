//! One descriptor read exactly as the generator reads it (search path,
//! precedence, masking, drop-ins, list resets), for tools that inspect a
//! single container, such as `sdme connector`. Cross-descriptor checks
//! (does a `Connector=` name exist?) are the generator run's business.

use crate::descriptor::Descriptor;
use crate::diagnostic::Diagnostic;
use crate::graph::Unusable;
use crate::search::{discover, SEARCH_DIRS};
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
    let (found, mut diagnostics) = discover(root);
    // Templates and instances are built as the generator builds them
    // (an instance NAME-INST comes from NAME@.oci).
    let crate::Built {
        mut descriptors,
        unusable,
        paths,
    } = crate::build_all(found, &mut diagnostics);
    if let Some(d) = descriptors.remove(name) {
        return Lookup::Usable(Box::new(d));
    }
    match (unusable.get(name), paths.get(name)) {
        (Some(Unusable::Masked), Some(shown)) => Lookup::Masked {
            shown: shown.clone(),
        },
        (Some(_), shown) => Lookup::Broken(about(name, shown.map(String::as_str), diagnostics)),
        (None, _) => Lookup::Missing,
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
/// drop-ins (or, for an instance, the file it comes from).
fn about(name: &str, shown: Option<&str>, diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let main = format!("/{name}.oci");
    let dropin_dir = format!("/{name}.oci.d");
    let dropin = format!("/{name}.oci.d/");
    diagnostics
        .into_iter()
        .filter(|d| {
            d.file.as_ref().is_some_and(|f| {
                f.ends_with(&main)
                    || f.ends_with(&dropin_dir)
                    || f.contains(&dropin)
                    || Some(f.as_str()) == shown
            })
        })
        .collect()
}
