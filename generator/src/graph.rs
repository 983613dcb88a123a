//! Checks between descriptors: every `Base=`, `[Container] Image=` and
//! `Connector=` must name a usable descriptor, and there must be no cycle.
//! A descriptor that fails, and everything that depends on it, is dropped;
//! all others stay.

use crate::descriptor::{Descriptor, Origin};
use crate::diagnostic::Diagnostic;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Why a name cannot be used as a dependency.
pub enum Unusable {
    Masked,
    Broken,
}

/// Removes from `descriptors` every one whose references fail, reporting why.
pub fn resolve(
    descriptors: &mut BTreeMap<String, Descriptor>,
    unusable: &BTreeMap<String, Unusable>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut failed: BTreeSet<String> = BTreeSet::new();
    report_cycles(descriptors, &mut failed, diagnostics);
    // Propagate: a descriptor fails when something it needs failed. Repeat
    // until nothing changes; each pass goes in name order, so the reports
    // are deterministic.
    loop {
        let mut changed = false;
        for (name, d) in descriptors.iter() {
            if failed.contains(name) {
                continue;
            }
            for (target, origin, key) in d.references() {
                if let Some(problem) = check_reference(descriptors, unusable, &failed, key, target)
                {
                    diagnostics.push(Diagnostic::at(
                        &origin.file,
                        origin.line,
                        format!("{key}{target}: {problem}"),
                    ));
                    failed.insert(name.clone());
                    changed = true;
                    break;
                }
            }
        }
        if !changed {
            break;
        }
    }
    descriptors.retain(|name, _| !failed.contains(name));
}

fn check_reference(
    descriptors: &BTreeMap<String, Descriptor>,
    unusable: &BTreeMap<String, Unusable>,
    failed: &BTreeSet<String>,
    key: &str,
    target: &str,
) -> Option<String> {
    let Some(d) = descriptors.get(target) else {
        return Some(match unusable.get(target) {
            Some(Unusable::Masked) => format!("descriptor {target} is masked"),
            Some(Unusable::Broken) => {
                format!("descriptor {target} has errors, skipping this one too")
            }
            None => format!("no descriptor named {target}"),
        });
    };
    if failed.contains(target) {
        return Some(format!(
            "descriptor {target} was skipped, skipping this one too"
        ));
    }
    match key {
        // A connector's socket directory is named after its image's
        // descriptor (that is where sdme-import creates it), so a connector
        // runs in its own descriptor's container and clients name that.
        "Connector=" => {
            let mode = d.image.as_ref().map(|i| i.mode());
            if d.container.is_none() || mode != Some("connector") {
                return Some(format!(
                    "descriptor {target} is not a connector (needs [Image] Mode=connector and [Container])"
                ));
            }
        }
        _ if d.image.is_none() => {
            return Some(format!("descriptor {target} has no [Image] section"))
        }
        "Image=" if d.image.as_ref().is_some_and(|i| i.mode() == "connector") => {
            return Some(format!(
                "descriptor {target} is a connector image: run it in {target}'s own [Container] section"
            ))
        }
        _ => {}
    }
    None
}

/// Every descriptor on a cycle of references fails, with the cycle shown.
fn report_cycles(
    descriptors: &BTreeMap<String, Descriptor>,
    failed: &mut BTreeSet<String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (name, d) in descriptors {
        if let Some((path, origin, key)) = find_cycle(descriptors, d) {
            let shown = path.join(" -> ");
            diagnostics.push(Diagnostic::at(
                &origin.file,
                origin.line,
                format!("{key}{}: dependency cycle: {shown}", path[1]),
            ));
            failed.insert(name.clone());
        }
    }
}

/// The shortest path from `start` back to itself, if any, with the origin
/// of its first step.
fn find_cycle<'a>(
    descriptors: &'a BTreeMap<String, Descriptor>,
    start: &'a Descriptor,
) -> Option<(Vec<String>, &'a Origin, &'static str)> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue: VecDeque<&str> = VecDeque::new();
    for (target, _, _) in start.references() {
        if !parent.contains_key(target) {
            parent.insert(target, start.name.as_str());
            queue.push_back(target);
        }
    }
    while let Some(current) = queue.pop_front() {
        if current == start.name {
            let mut path = vec![start.name.clone()];
            let mut at = parent[current];
            while at != start.name {
                path.push(at.to_string());
                at = parent[at];
            }
            path.push(start.name.clone());
            path.reverse();
            let first = path.get(1).map(String::as_str).unwrap_or_default();
            let (_, origin, key) = start
                .references()
                .into_iter()
                .find(|(t, _, _)| *t == first)?;
            return Some((path, origin, key));
        }
        let Some(d) = descriptors.get(current) else {
            continue;
        };
        for (target, _, _) in d.references() {
            if !parent.contains_key(target) {
                parent.insert(target, current);
                queue.push_back(target);
            }
        }
    }
    None
}
