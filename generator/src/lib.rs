//! sdme-generator: reads `.oci` descriptors and emits the systemd units
//! that import and run them. The binary (`main.rs`) adds the command line,
//! logging and writing; everything here is pure apart from reading the
//! search path, so tests can drive it directly.
//!
//! It may call `sdme-unitfile` (the unit-file syntax and writer) and
//! `sdme-launch` (the launcher's settings); it must never touch the
//! network, D-Bus, `/var` or the store: it runs early at boot.

pub mod build;
pub mod descriptor;
pub mod diagnostic;
pub mod emit;
pub mod graph;
pub mod keys;
pub mod lookup;
pub mod names;
pub mod paths;
pub mod search;
pub mod source;
pub mod values;

pub use sdme_unitfile::{syntax, words};

use diagnostic::Diagnostic;
use emit::Tree;
use graph::Unusable;
use search::Found;
use std::collections::BTreeMap;
use std::path::Path;

/// The result of one run: what to write, and what went wrong.
pub struct Generation {
    pub tree: Tree,
    /// Every entry is an error: some file was (partly) not generated.
    pub diagnostics: Vec<Diagnostic>,
}

/// Every descriptor under `root` as the generator judges it, before any
/// unit is written: for tools that inspect descriptors (`sdme ls`).
pub struct Descriptors {
    /// The usable descriptors, by name.
    pub usable: BTreeMap<String, descriptor::Descriptor>,
    /// The others: masked, or skipped (own errors, or a failing reference).
    pub unusable: BTreeMap<String, Unusable>,
    /// Every entry is an error, as in [`Generation::diagnostics`].
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads the search path under `root` and checks every descriptor and the
/// references between them, as [`generate`] does before it emits units.
pub fn descriptors(root: &Path) -> Descriptors {
    let (found, mut diagnostics) = search::discover(root);
    let mut descriptors = BTreeMap::new();
    let mut unusable = BTreeMap::new();
    let mut paths = BTreeMap::new();
    for (name, entry) in found {
        match entry {
            Found::Descriptor { main, dropins } => {
                paths.insert(name.clone(), main.shown.clone());
                match build::build(&name, &main, &dropins) {
                    Ok(d) => {
                        descriptors.insert(name, d);
                    }
                    Err(errors) => {
                        diagnostics.extend(errors);
                        diagnostics.push(skipped(&main.shown, &name));
                        unusable.insert(name, Unusable::Broken);
                    }
                }
            }
            Found::Masked { .. } => {
                unusable.insert(name, Unusable::Masked);
            }
            Found::Broken => {
                unusable.insert(name, Unusable::Broken);
            }
        }
    }
    let before: Vec<String> = descriptors.keys().cloned().collect();
    graph::resolve(&mut descriptors, &unusable, &mut diagnostics);
    for name in before.into_iter().filter(|n| !descriptors.contains_key(n)) {
        diagnostics.push(skipped(&paths[&name], &name));
        unusable.insert(name, Unusable::Broken);
    }
    Descriptors {
        usable: descriptors,
        unusable,
        diagnostics,
    }
}

/// Reads the search path under `root` and computes the output tree.
pub fn generate(root: &Path) -> Generation {
    let Descriptors {
        usable: descriptors,
        mut diagnostics,
        ..
    } = self::descriptors(root);
    let mut tree = Tree::new();
    let on_demand = |name: &str| {
        descriptors
            .get(name)
            .is_some_and(descriptor::Descriptor::starts_on_demand)
    };
    for d in descriptors.values() {
        if let Err(e) = emit::emit(d, &on_demand, &mut tree) {
            diagnostics.push(Diagnostic::at(
                &d.path,
                0,
                format!("cannot write a unit: {e}"),
            ));
            diagnostics.push(skipped(&d.path, &d.name));
        }
    }
    Generation { tree, diagnostics }
}

fn skipped(path: &str, name: &str) -> Diagnostic {
    Diagnostic::at(path, 0, format!("skipped: no units generated for {name}"))
}
