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

/// Every descriptor found, built on its own (no checks between them yet):
/// the usable ones by name, those that cannot be used and why, and the
/// file each name comes from.
pub struct Built {
    pub descriptors: BTreeMap<String, descriptor::Descriptor>,
    pub unusable: BTreeMap<String, Unusable>,
    pub paths: BTreeMap<String, String>,
}

/// Builds what `discover` found: plain descriptors, then each template's
/// image (imported as `NAME`) and instances (machines `NAME-INST`), with
/// every name claimed once (a collision refuses every claimant).
pub fn build_all(found: BTreeMap<String, Found>, diagnostics: &mut Vec<Diagnostic>) -> Built {
    let mut b = Built {
        descriptors: BTreeMap::new(),
        unusable: BTreeMap::new(),
        paths: BTreeMap::new(),
    };
    let mut templates = BTreeMap::new();
    let mut instances: BTreeMap<String, Vec<(String, String, Vec<search::SourceFile>)>> =
        BTreeMap::new();
    let mut masked_instances = std::collections::BTreeSet::new();
    for (name, entry) in found {
        match entry {
            Found::Descriptor { main, dropins } => {
                b.paths.insert(name.clone(), main.shown.clone());
                match build::build(&name, &main, &dropins) {
                    Ok(d) => {
                        b.descriptors.insert(name, d);
                    }
                    Err(errors) => {
                        diagnostics.extend(errors);
                        diagnostics.push(skipped(&main.shown, &name));
                        b.unusable.insert(name, Unusable::Broken);
                    }
                }
            }
            Found::Masked { shown } => {
                b.paths.insert(name.clone(), shown);
                b.unusable.insert(name, Unusable::Masked);
            }
            Found::Broken => {
                b.unusable.insert(name, Unusable::Broken);
            }
            Found::Template {
                main,
                dropins,
                instance_dropins,
            } => {
                let template = name.trim_end_matches('@').to_string();
                templates.insert(template, (main, dropins, instance_dropins));
            }
            Found::Instance {
                shown,
                template,
                instance,
                dropins,
            } => instances
                .entry(template)
                .or_default()
                .push((instance, shown, dropins)),
            Found::MaskedInstance { template, instance } => {
                masked_instances.insert((template, instance));
            }
        }
    }
    // Instances without a template (a masked template has none, silently).
    for (template, list) in &instances {
        let masked = matches!(
            b.unusable.get(&format!("{template}@")),
            Some(Unusable::Masked)
        );
        if !templates.contains_key(template) && !masked {
            for (_, shown, _) in list {
                diagnostics.push(Diagnostic::at(
                    shown,
                    0,
                    format!("no template {template}@.oci for this instance"),
                ));
            }
        }
    }
    for (template, (main, dropins, instance_dropins)) in &templates {
        let claim =
            |b: &mut Built, name: &str, shown: &str, diagnostics: &mut Vec<Diagnostic>| match b
                .paths
                .get(name)
            {
                None => {
                    b.paths.insert(name.to_string(), shown.to_string());
                    true
                }
                Some(other) => {
                    diagnostics.push(Diagnostic::at(
                        shown,
                        0,
                        format!(
                            "this gives the name {name}, which {other} has too: both are skipped"
                        ),
                    ));
                    if b.descriptors.remove(name).is_some() {
                        diagnostics.push(skipped(other, name));
                    }
                    b.unusable.insert(name.to_string(), Unusable::Broken);
                    false
                }
            };
        let image = match build::build_as(template, main, dropins, build::Mode::TemplateImage) {
            Ok(d) => d,
            Err(errors) => {
                diagnostics.extend(errors);
                diagnostics.push(Diagnostic::at(
                    &main.shown,
                    0,
                    format!(
                        "skipped: no units generated for template {template}@ or its instances"
                    ),
                ));
                continue;
            }
        };
        let default = image.install.default_instance.clone();
        if image.image.is_some() && claim(&mut b, template, &main.shown, diagnostics) {
            b.descriptors.insert(template.clone(), image);
        }
        let mut list: Vec<(String, String, Vec<search::SourceFile>)> =
            instances.get(template).cloned().unwrap_or_default();
        if let Some(default) = default {
            let named = list.iter().any(|(i, _, _)| *i == default.value)
                || masked_instances.contains(&(template.clone(), default.value.clone()));
            if !named {
                // Its own drop-ins too, when NAME@INST.oci.d/ exists.
                let own = instance_dropins.get(&default.value).unwrap_or(dropins);
                list.push((default.value, main.shown.clone(), own.clone()));
            }
        }
        for (instance, shown, instance_dropins) in list {
            let machine = format!("{template}-{instance}");
            if let Err(e) = names::check_machine_name(&machine) {
                diagnostics.push(Diagnostic::at(
                    &shown,
                    0,
                    format!("instance {instance} would be machine {machine}: {e}"),
                ));
                continue;
            }
            if !claim(&mut b, &machine, &shown, diagnostics) {
                continue;
            }
            let mode = build::Mode::Instance {
                template,
                instance: &instance,
            };
            match build::build_as(&machine, main, &instance_dropins, mode) {
                Ok(d) => {
                    b.descriptors.insert(machine, d);
                }
                Err(errors) => {
                    diagnostics.extend(errors);
                    diagnostics.push(skipped(&shown, &machine));
                    b.unusable.insert(machine, Unusable::Broken);
                }
            }
        }
    }
    b
}

/// Reads the search path under `root` and checks every descriptor and the
/// references between them, as [`generate`] does before it emits units.
pub fn descriptors(root: &Path) -> Descriptors {
    let (found, mut diagnostics) = search::discover(root);
    let Built {
        mut descriptors,
        mut unusable,
        paths,
    } = build_all(found, &mut diagnostics);
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
    for d in descriptors.values() {
        if let Err(e) = emit::emit(d, &descriptors, &mut tree) {
            diagnostics.push(Diagnostic::at(
                &d.path,
                0,
                format!("cannot write a unit: {e}"),
            ));
            diagnostics.push(skipped(&d.path, &d.name));
        }
    }
    let auto_update: Vec<&str> = descriptors
        .values()
        .filter(|d| tree.contains_key(&emit::import_unit_name(&d.name)))
        .filter(|d| d.image.as_ref().is_some_and(|i| i.auto_updates()))
        .map(|d| d.name.as_str())
        .collect();
    if let Err(e) = emit::emit_auto_update(&auto_update, &mut tree) {
        diagnostics.push(Diagnostic::at("sdme-auto-update.service", 0, e.to_string()));
    }
    Generation { tree, diagnostics }
}

fn skipped(path: &str, name: &str) -> Diagnostic {
    Diagnostic::at(path, 0, format!("skipped: no units generated for {name}"))
}
