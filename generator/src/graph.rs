//! Checks between descriptors: every `Base=`, `[Container] Image=`,
//! `Connector=`, `App=` and `Network=container:` must name a usable
//! descriptor, and there must be no cycle.
//! A descriptor that fails, and everything that depends on it, is dropped;
//! all others stay. Linear in descriptors plus references (Tarjan's strongly
//! connected components for cycles, one reverse walk for propagation), so a
//! long chain of bases costs no more than many short ones.

use crate::descriptor::{Descriptor, Origin};
use crate::diagnostic::Diagnostic;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Why a name cannot be used as a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Masked,
    Broken,
}

/// Removes from `descriptors` every one whose references fail, reporting
/// one message per removed descriptor, in name order.
pub fn resolve(
    descriptors: &mut BTreeMap<String, Descriptor>,
    unusable: &BTreeMap<String, Unusable>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let cycles = find_cycles(descriptors);
    // Descriptors that fail on their own: on a cycle, or a reference that
    // is missing, masked, broken or of the wrong kind.
    let mut failed: BTreeSet<&str> = cycles.keys().copied().collect();
    for (name, d) in descriptors.iter() {
        let direct = d
            .references()
            .into_iter()
            .any(|(target, _, key)| direct_problem(descriptors, unusable, key, target).is_some());
        if direct {
            failed.insert(name);
        }
    }
    // Everything that (transitively) references a failed descriptor fails.
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, d) in descriptors.iter() {
        for (target, _, _) in d.references() {
            dependents.entry(target).or_default().push(name);
        }
    }
    let mut queue: VecDeque<&str> = failed.iter().copied().collect();
    while let Some(name) = queue.pop_front() {
        for dependent in dependents.get(name).into_iter().flatten() {
            if failed.insert(dependent) {
                queue.push_back(dependent);
            }
        }
    }
    // One message each: the cycle, or the first failing reference.
    for name in &failed {
        let Some(d) = descriptors.get(*name) else {
            continue;
        };
        if let Some((path, origin, label)) = cycles.get(name) {
            let message = format!("{label}: dependency cycle: {}", path.join(" -> "));
            diagnostics.push(Diagnostic::at(&origin.file, origin.line, message));
            continue;
        }
        for (target, origin, key) in d.references() {
            let problem = direct_problem(descriptors, unusable, key, target).or_else(|| {
                failed
                    .contains(target)
                    .then(|| format!("descriptor {target} was skipped, skipping this one too"))
            });
            if let Some(problem) = problem {
                diagnostics.push(Diagnostic::at(
                    &origin.file,
                    origin.line,
                    format!("{key}{target}: {problem}"),
                ));
                break;
            }
        }
    }
    let failed: BTreeSet<String> = failed.into_iter().map(str::to_string).collect();
    descriptors.retain(|name, _| !failed.contains(name));
}

/// What is wrong with `target` as the value of `key`, on its own.
fn direct_problem(
    descriptors: &BTreeMap<String, Descriptor>,
    unusable: &BTreeMap<String, Unusable>,
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
        "After=" | "Before=" | "Requires=" | "Wants=" | "BindsTo=" if d.container.is_none() => {
            return Some(format!(
                "descriptor {target} has no [Container] section: there is no container to order against"
            ));
        }
        // A container without an [Image] of its own is still one.
        "After=" | "Before=" | "Requires=" | "Wants=" | "BindsTo=" => {}
        // A pod: the other container's network namespace. Its descriptor
        // needs a container; one in the host's network has none of its own.
        "Network=container:" => {
            let Some(c) = &d.container else {
                return Some(format!(
                    "descriptor {target} has no [Container] section (Network=container: names a container)"
                ));
            };
            if c.network == crate::descriptor::Network::Host {
                return Some(format!(
                    "container {target} runs in the host's network (Network=host): use Network=host here too"
                ));
            }
        }
        // Another app of this container: an application image of a
        // descriptor that is not a container itself (its settings are its
        // [App] section's).
        "App=" => {
            let mode = d.image.as_ref().map(|i| i.mode());
            if d.template {
                return Some(format!(
                    "descriptor {target} is the image of template {target}@.oci, whose instances \
                     are containers: App= names a descriptor with [Image] and no [Container]"
                ));
            }
            match mode {
                None => {
                    return Some(format!(
                        "descriptor {target} has no [Image] section (App= runs an application image)"
                    ))
                }
                Some(mode @ ("base" | "connector")) => {
                    return Some(format!(
                        "descriptor {target} is a {mode} image (Mode={mode}): App= runs an application image"
                    ))
                }
                _ => {}
            }
            if d.container.is_some() {
                return Some(format!(
                    "descriptor {target} has a [Container] section: App= runs an image whose descriptor has none (its settings go in [App])"
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

type Cycle<'a> = (Vec<String>, &'a Origin, String);

/// Every descriptor on a cycle of ordering edges (every reference but
/// `Requires=`, `Wants=`, `BindsTo=`; `Before=` turned around), with the
/// shortest cycle through it and the origin of its first step. A
/// descriptor is two nodes, as its units are: its import and its
/// container. `Base=` orders an import after another import; `Image=` and
/// `App=` a container after an import; every other reference a container
/// after a container. (One node each would make a base OS container that
/// runs an app built on that base, `App=` one way and `Base=` the other,
/// a cycle its units do not have.) Tarjan's algorithm (kept iterative, so
/// a deep chain cannot overflow the stack) finds the strongly connected
/// components; only nodes in a component with a cycle pay for the search
/// of their shortest cycle, inside that component.
fn find_cycles(descriptors: &BTreeMap<String, Descriptor>) -> BTreeMap<&str, Cycle<'_>> {
    let names: Vec<&str> = descriptors.keys().map(String::as_str).collect();
    let index_of: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let import = |i: usize| 2 * i;
    let container = |i: usize| 2 * i + 1;
    // Per node: (next, where the edge was said, how it reads there).
    let mut labelled: Vec<Vec<(usize, &Origin, String)>> = vec![Vec::new(); 2 * names.len()];
    for d in descriptors.values() {
        for (from, to, origin, key) in d.orderings() {
            let (Some(&f), Some(&t)) = (index_of.get(from), index_of.get(to)) else {
                continue;
            };
            let (f, t) = match key {
                "Base=" => (import(f), import(t)),
                "Image=" | "App=" => (container(f), import(t)),
                _ => (container(f), container(t)),
            };
            // The label names what the line says: `Before=web` in db's file
            // is the edge web -> db.
            let said = if key == "Before=" { from } else { to };
            labelled[f].push((t, origin, format!("{key}{said}")));
        }
    }
    let edges: Vec<Vec<usize>> = labelled
        .iter()
        .map(|l| l.iter().map(|(t, _, _)| *t).collect())
        .collect();

    let components = strongly_connected(&edges);
    let mut cycles = BTreeMap::new();
    for component in components {
        let on_cycle = component.len() > 1 || edges[component[0]].contains(&component[0]);
        if !on_cycle {
            continue;
        }
        let members: BTreeSet<usize> = component.iter().copied().collect();
        for &start in &component {
            if cycles.contains_key(names[start / 2]) {
                continue;
            }
            if let Some(path) = shortest_cycle(&edges, &members, start) {
                let step = labelled[start].iter().find(|(t, _, _)| *t == path[1]);
                if let Some((_, origin, label)) = step {
                    let path = path.iter().map(|i| names[*i / 2].to_string()).collect();
                    cycles.insert(names[start / 2], (path, *origin, label.clone()));
                }
            }
        }
    }
    cycles
}

/// Tarjan's strongly connected components, iteratively.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low) = (vec![UNVISITED; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut components) = (Vec::new(), Vec::new());
    let mut next_index = 0;
    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        // (node, next edge to look at)
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut edge)) = work.last_mut() {
            if *edge == 0 && index[v] == UNVISITED {
                index[v] = next_index;
                low[v] = next_index;
                next_index += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*edge) {
                *edge += 1;
                if index[w] == UNVISITED {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

/// The shortest path `start -> ... -> start` inside `members` (breadth
/// first, edges in reference order, so the result is deterministic).
fn shortest_cycle(
    edges: &[Vec<usize>],
    members: &BTreeSet<usize>,
    start: usize,
) -> Option<Vec<usize>> {
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(current) = queue.pop_front() {
        for &next in &edges[current] {
            if !members.contains(&next) || parent.contains_key(&next) {
                continue;
            }
            parent.insert(next, current);
            if next == start {
                let mut path = vec![start];
                let mut at = current;
                while at != start {
                    path.push(at);
                    at = *parent.get(&at)?;
                }
                path.push(start);
                path.reverse();
                return Some(path);
            }
            queue.push_back(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{shortest_cycle, strongly_connected};
    use std::collections::BTreeSet;

    #[test]
    fn components() {
        // 0 -> 1 -> 2 -> 0, 3 -> 3, 4 -> 0
        let edges = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        let mut comps: Vec<Vec<usize>> = strongly_connected(&edges)
            .into_iter()
            .map(|mut c| {
                c.sort();
                c
            })
            .collect();
        comps.sort();
        assert_eq!(comps, vec![vec![0, 1, 2], vec![3], vec![4]]);
    }

    #[test]
    fn deep_chain_does_not_recurse() {
        let n = 200_000;
        let edges: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        assert_eq!(strongly_connected(&edges).len(), n);
    }

    #[test]
    fn shortest_cycles() {
        let edges = vec![vec![1, 2], vec![2], vec![0], vec![3]];
        let members: BTreeSet<usize> = [0, 1, 2].into();
        assert_eq!(shortest_cycle(&edges, &members, 0), Some(vec![0, 2, 0]));
        assert_eq!(shortest_cycle(&edges, &members, 1), Some(vec![1, 2, 0, 1]));
        assert_eq!(shortest_cycle(&edges, &[3].into(), 3), Some(vec![3, 3]));
    }
}
