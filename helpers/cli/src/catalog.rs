//! What `sdme ls`, `status` and `images` show: every descriptor as the
//! generator's library judges it, its units as systemd reports them, its
//! image as the store records it (read only, through `sdme-store`), and
//! the app's health from inside the running container.

use crate::sys::{Res, Sys, UnitState};
use sdme_generator::descriptor::Descriptor;
use sdme_generator::emit::{connector_socket_name, import_unit_name, nspawn_unit_name};
use sdme_generator::graph::Unusable;
use sdme_store::record::ImageRecord;
use sdme_store::{Kind, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Inside the container: the health check's verdict (HACKING.md, glue).
pub const HEALTH_STATUS: &str = "/run/sdme-oci-health/status";

/// One descriptor.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// The descriptor file as the generator shows it; `None` if unreadable.
    pub file: Option<String>,
    pub descriptor: Option<Descriptor>,
    /// `None`: usable.
    pub unusable: Option<Unusable>,
    /// The generator's diagnostics about this descriptor.
    pub problems: Vec<String>,
}

impl Entry {
    /// `container`, `connector`, `base`, `image` (an image other
    /// containers run), or `-` when the generator skips it.
    pub fn kind(&self, record: Option<&ImageRecord>) -> &'static str {
        let Some(d) = &self.descriptor else {
            return "-";
        };
        let mode = d.image.as_ref().map(|i| i.mode());
        match (mode, &d.container) {
            (Some("connector"), _) => "connector",
            (_, Some(_)) => "container",
            (Some("base"), None) => "base",
            _ if record.is_some_and(|r| r.kind == Kind::Base) => "base",
            _ => "image",
        }
    }

    pub fn has_container(&self) -> bool {
        self.descriptor
            .as_ref()
            .is_some_and(|d| d.container.is_some())
    }

    pub fn has_import(&self) -> bool {
        self.descriptor.as_ref().is_some_and(|d| d.image.is_some())
    }

    /// The descriptor whose import provides the image.
    pub fn provider(&self) -> &str {
        self.descriptor
            .as_ref()
            .map(|d| d.image_provider())
            .unwrap_or(&self.name)
    }

    /// The container's other apps (`App=`), in order.
    pub fn apps(&self) -> Vec<String> {
        self.descriptor
            .as_ref()
            .and_then(|d| d.container.as_ref())
            .map(|c| c.apps.iter().map(|a| a.value.clone()).collect())
            .unwrap_or_default()
    }

    pub fn starts_on_demand(&self) -> bool {
        self.descriptor
            .as_ref()
            .is_some_and(Descriptor::starts_on_demand)
    }

    pub fn state(&self) -> &'static str {
        match self.unusable {
            None => "ok",
            Some(Unusable::Masked) => "masked",
            Some(Unusable::Broken) => "skipped",
        }
    }
}

/// Every descriptor under `root`, by name.
pub fn entries(root: &Path) -> BTreeMap<String, Entry> {
    let judged = sdme_generator::descriptors(root);
    // Each descriptor on its own, as the generator builds it (a template's
    // instances included, named NAME-INST), before the checks between them.
    let (found, mut own) = sdme_generator::search::discover(root);
    let built = sdme_generator::build_all(found, &mut own);
    let names: std::collections::BTreeSet<String> = built
        .descriptors
        .keys()
        .chain(built.unusable.keys())
        .cloned()
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        let file = built.paths.get(&name).cloned();
        let descriptor = built.descriptors.get(&name).cloned();
        let problems = judged
            .diagnostics
            .iter()
            .filter(|d| is_about(d, &name, file.as_deref()))
            .map(|d| d.to_string())
            .collect();
        let unusable = match judged.usable.contains_key(&name) {
            true => None,
            false => Some(
                judged
                    .unusable
                    .get(&name)
                    .copied()
                    .unwrap_or(Unusable::Broken),
            ),
        };
        out.insert(
            name.clone(),
            Entry {
                name,
                file,
                descriptor,
                unusable,
                problems,
            },
        );
    }
    out
}

fn is_about(d: &sdme_generator::diagnostic::Diagnostic, name: &str, file: Option<&str>) -> bool {
    let Some(f) = d.file.as_deref() else {
        return false;
    };
    file == Some(f)
        || f.ends_with(&format!("/{name}.oci"))
        || f.contains(&format!("/{name}.oci.d/"))
        || f.ends_with(&format!("/{name}.oci.d"))
}

/// What the host's systemd and the store say about one entry.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub container: Option<UnitState>,
    pub import: Option<UnitState>,
    pub socket: Option<UnitState>,
    pub generation: Option<String>,
    pub record: Option<ImageRecord>,
    pub store_error: Option<String>,
    pub health: Option<String>,
}

/// The store's current generation of `name` and its record.
pub fn image_of(
    store: &Store,
    name: &str,
) -> (Option<String>, Option<ImageRecord>, Option<String>) {
    let Some(g) = store.current_generation(name) else {
        return (None, None, None);
    };
    match store.record(&g) {
        Ok(r) => (Some(g), r, None),
        Err(e) => (Some(g), None, Some(e)),
    }
}

/// Unit states, store records and health for `entries` (one systemctl
/// call for all units).
pub fn facts(sys: &Sys, store: &Store, entries: &[&Entry]) -> Res<Vec<Facts>> {
    let mut units = Vec::new();
    let mut index = Vec::new();
    for e in entries {
        let c = e.has_container().then(|| {
            units.push(nspawn_unit_name(&e.name));
            units.len() - 1
        });
        let i = e.has_import().then(|| {
            units.push(import_unit_name(&e.name));
            units.len() - 1
        });
        let s = e.starts_on_demand().then(|| {
            units.push(connector_socket_name(&e.name));
            units.len() - 1
        });
        index.push((c, i, s));
    }
    let states = sys.unit_states(&units, None)?;
    let get = |i: Option<usize>| i.and_then(|i| states.get(i).cloned());
    let mut out = Vec::new();
    for (e, (c, i, s)) in entries.iter().zip(index) {
        let (generation, record, store_error) = match e.descriptor {
            Some(_) => image_of(store, e.provider()),
            None => (None, None, None),
        };
        let container = get(c);
        let health = match &container {
            Some(c) if c.is_active() => health(sys, &e.name),
            _ => None,
        };
        out.push(Facts {
            container,
            import: get(i),
            socket: get(s),
            generation,
            record,
            store_error,
            health,
        });
    }
    Ok(out)
}

/// The machine's leader (its PID 1), from machined.
pub fn leader(sys: &Sys, machine: &str) -> Option<u32> {
    let out = sys
        .read(
            "machinectl",
            &crate::sys::args(&["show", "--property=Leader", "--value", machine]),
        )
        .ok()?;
    out.trim().parse().ok().filter(|p| *p > 1)
}

/// The health check's verdict, read through the leader's root: no process
/// or unit in the container per line of `sdme ls`, works while the
/// container's bus is not up, and `openat2(RESOLVE_IN_ROOT)` keeps the
/// container's symlinks inside its own root.
pub fn health(sys: &Sys, machine: &str) -> Option<String> {
    let pid = leader(sys, machine)?;
    read_health(Path::new(&format!("/proc/{pid}/root")))
}

pub fn read_health(root: &Path) -> Option<String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use std::io::Read;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &dir,
        HEALTH_STATUS,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let stat = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(256)
        .read_to_string(&mut text)
        .ok()?;
    let word = text.split_whitespace().next()?;
    // Only the words the glue writes; anything else is shown as such.
    Some(match word {
        "healthy" | "starting" | "unhealthy" => word.to_string(),
        _ => "unknown".to_string(),
    })
}

fn unit_json(u: &Option<UnitState>) -> Value {
    match u {
        None => Value::Null,
        Some(u) => json!({
            "unit": u.unit,
            "load": u.load,
            "active": u.active,
            "sub": u.sub,
        }),
    }
}

/// One element of `sdme ls --json` (and the facts of `sdme status`).
pub fn entry_json(e: &Entry, f: &Facts) -> Value {
    let d = e.descriptor.as_ref();
    let reference = d
        .and_then(|d| d.image.as_ref())
        .and_then(|i| i.source.clone());
    json!({
        "name": e.name,
        "kind": e.kind(f.record.as_ref()),
        "state": e.state(),
        "file": e.file,
        "dropins": d.map(|d| d.dropins.clone()).unwrap_or_default(),
        "problems": e.problems,
        "image": {
            "reference": reference,
            "provider": d.map(|_| e.provider()),
            "generation": f.generation,
            "manifest_digest": f.record.as_ref().map(|r| r.manifest_digest.clone()),
            "kind": f.record.as_ref().map(|r| r.kind.as_str()),
            "store_error": f.store_error,
        },
        "units": {
            "container": unit_json(&f.container),
            "import": unit_json(&f.import),
            "socket": unit_json(&f.socket),
        },
        "health": f.health,
        "apps": e.apps(),
    })
}

fn short_digest(r: Option<&ImageRecord>) -> String {
    r.and_then(|r| r.manifest_digest.strip_prefix("sha256:"))
        .map(|h| h.chars().take(12).collect())
        .unwrap_or_else(|| "-".into())
}

fn unit_cell(u: &Option<UnitState>) -> String {
    match u {
        None => "-".into(),
        Some(u) if !u.exists() && !u.is_active() => "not-found".into(),
        Some(u) if u.active == "active" => u.sub.clone(),
        Some(u) => u.active.clone(),
    }
}

/// The table of `sdme ls`.
pub fn table(rows: &[(&Entry, Facts)]) -> String {
    let mut lines = vec![[
        "NAME",
        "KIND",
        "CONTAINER",
        "IMPORT",
        "HEALTH",
        "GENERATION",
        "DIGEST",
        "IMAGE",
    ]
    .map(String::from)
    .to_vec()];
    for (e, f) in rows {
        let d = e.descriptor.as_ref();
        let image = match d {
            None => format!("({})", e.state()),
            Some(d) => match (&d.image, e.provider()) {
                (Some(i), _) => i.source.clone().unwrap_or_default(),
                (None, p) => format!("(image of {p})"),
            },
        };
        let image = match e.unusable {
            Some(_) if d.is_some() => format!("{image} ({})", e.state()),
            _ => image,
        };
        lines.push(vec![
            e.name.clone(),
            e.kind(f.record.as_ref()).into(),
            unit_cell(&f.container),
            unit_cell(&f.import),
            f.health.clone().unwrap_or_else(|| "-".into()),
            f.generation.clone().unwrap_or_else(|| "-".into()),
            short_digest(f.record.as_ref()),
            image,
        ]);
    }
    columns(&lines)
}

/// Left-aligned columns, two spaces apart, the last one unpadded.
pub fn columns(lines: &[Vec<String>]) -> String {
    let n = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            lines
                .iter()
                .filter_map(|l| l.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let mut line = String::new();
        for (i, c) in l.iter().enumerate() {
            if i + 1 == l.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

// ---- images ----------------------------------------------------------

/// One generation in the store.
#[derive(Debug, Clone)]
pub struct Generation {
    pub image: String,
    pub generation: String,
    pub current: bool,
    pub record: Option<ImageRecord>,
    pub error: Option<String>,
    /// Its directory (glue, systemd, record) plus the layers no other generation uses.
    pub own: u64,
    /// The layers it shares with another generation.
    pub shared: u64,
    /// Containers whose last start used it (`containers/NAME/generations`).
    pub containers: Vec<String>,
}

/// Every generation in `store`, image by image, newest build last.
pub fn generations(store: &Store) -> Result<Vec<Generation>, String> {
    let images = store.images_dir();
    let rd = match std::fs::read_dir(&images) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", images.display())),
    };
    let mut current: BTreeSet<String> = BTreeSet::new();
    let mut dirs = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| format!("{}: {e}", images.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(sdme_store::TMP_PREFIX) {
            continue;
        }
        let Ok(t) = entry.file_type() else { continue };
        if t.is_symlink() {
            if let Some(g) = store.current_generation(&name) {
                current.insert(g);
            }
        } else if t.is_dir() {
            dirs.push(name);
        }
    }
    // Who used what at its last start.
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(store.containers_dir()) {
        for entry in rd.flatten() {
            let Ok(container) = entry.file_name().into_string() else {
                continue;
            };
            if let Ok(text) = std::fs::read_to_string(entry.path().join("generations")) {
                for g in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    used.entry(g.to_string())
                        .or_default()
                        .push(container.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut layer_users: BTreeMap<String, usize> = BTreeMap::new();
    for g in &dirs {
        let (record, error) = match store.record(g) {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e)),
        };
        if let Some(r) = &record {
            for l in r.layers.iter().collect::<BTreeSet<_>>() {
                *layer_users.entry(l.clone()).or_default() += 1;
            }
        }
        let image = record
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_else(|| g.split('.').next().unwrap_or(g).to_string());
        out.push(Generation {
            image,
            generation: g.clone(),
            current: current.contains(g),
            record,
            error,
            own: sdme_store::gc::disk_usage(&store.generation_dir(g)),
            shared: 0,
            containers: used.get(g).cloned().unwrap_or_default(),
        });
    }
    let mut layer_size: BTreeMap<String, u64> = BTreeMap::new();
    for g in &mut out {
        let Some(r) = &g.record else { continue };
        for l in r.layers.iter().collect::<BTreeSet<_>>() {
            let size = *layer_size.entry(l.clone()).or_insert_with(|| {
                store
                    .layer_dir(l)
                    .map(|p| sdme_store::gc::disk_usage(&p))
                    .unwrap_or(0)
            });
            if layer_users.get(l).copied().unwrap_or(0) > 1 {
                g.shared += size;
            } else {
                g.own += size;
            }
        }
    }
    // Builds in order: NAME.HEX12 (build 0), NAME.HEX12.1, … .10.
    let key = |g: &Generation| {
        let build = g
            .generation
            .rsplit_once('.')
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .filter(|_| g.generation.matches('.').count() >= 2)
            .unwrap_or(0);
        (g.image.clone(), build, g.generation.clone())
    };
    out.sort_by_key(key);
    Ok(out)
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn generation_json(g: &Generation) -> Value {
    let r = g.record.as_ref();
    json!({
        "image": g.image,
        "generation": g.generation,
        "current": g.current,
        "kind": r.map(|r| r.kind.as_str()),
        "reference": r.map(|r| r.reference.clone()),
        "manifest_digest": r.map(|r| r.manifest_digest.clone()),
        "layers": r.map(|r| r.layers.clone()).unwrap_or_default(),
        "own_bytes": g.own,
        "shared_bytes": g.shared,
        "containers": g.containers,
        "error": g.error,
    })
}

pub fn images_table(gens: &[Generation]) -> String {
    let mut lines = vec![[
        "IMAGE",
        "GENERATION",
        "CURRENT",
        "KIND",
        "OWN",
        "SHARED",
        "CONTAINERS",
        "REFERENCE",
    ]
    .map(String::from)
    .to_vec()];
    for g in gens {
        let r = g.record.as_ref();
        lines.push(vec![
            g.image.clone(),
            g.generation.clone(),
            if g.current { "yes".into() } else { "no".into() },
            r.map(|r| r.kind.as_str().to_string())
                .unwrap_or_else(|| "?".into()),
            human(g.own),
            human(g.shared),
            if g.containers.is_empty() {
                "-".into()
            } else {
                g.containers.join(",")
            },
            match (r, &g.error) {
                (Some(r), _) => r.reference.clone(),
                (None, Some(e)) => format!("(unreadable record: {e})"),
                (None, None) => "(incomplete)".into(),
            },
        ]);
    }
    columns(&lines)
}
