//! `sdme-import auto-update`: for every image whose descriptor says
//! `AutoUpdate=registry`, pulls its source again; when the manifest changed
//! (a new generation), restarts the running containers that use the image
//! and waits until they are ready (their units' start, which `Notify=`
//! makes wait for the app); when one of them fails, switches the image back
//! to the generation it had and restarts them again. One journal line per
//! update and per rollback, with both digests.
//!
//! The images that opted in are the ones whose last pull was given
//! `--auto-update=registry`: the pull keeps its own command line in
//! `auto-update/NAME` (root-only, like the whole store), and this command
//! parses it with the pull's own parser. It reads containers' recorded
//! generations and changes the system only through `systemctl`.

use crate::cli::parse_pull;
use crate::importer::{pull, PullPolicy};
use sdme_store::{Store, DEFAULT_STORE};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The store's directory of pull command lines, one file per image.
pub const DIR: &str = "auto-update";

fn dir(store: &Store) -> PathBuf {
    store.root().join(DIR)
}

/// Keeps `args` (a pull's command line) for image `name`, or forgets it
/// (`None`: the descriptor no longer opts in).
pub fn remember(store: &Store, name: &str, args: Option<&[String]>) -> Result<(), String> {
    let path = dir(store).join(name);
    let Some(args) = args else {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("{}: {e}", path.display()))
            }
            _ => Ok(()),
        };
    };
    let d = dir(store);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let text = serde_json::to_string(args).map_err(|e| e.to_string())?;
    let tmp = d.join(format!(".tmp.{name}.{}", std::process::id()));
    std::fs::write(&tmp, text + "\n").map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The images that opted in, by name, with their pull command lines.
fn opted_in(store: &Store) -> Result<Vec<(String, Vec<String>)>, String> {
    let d = dir(store);
    let entries = match std::fs::read_dir(&d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(|e| format!("{}: {e}", d.display()))?,
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", d.display()))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') || sdme_store::check_name(&name).is_err() {
            continue;
        }
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let args: Vec<String> = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a pull command line: {e}", path.display()))?;
        out.push((name, args));
    }
    out.sort();
    Ok(out)
}

/// A manifest a rollback turned away, kept so that it is not tried again
/// every day: `auto-update/.rejected/NAME` holds its digest.
fn rejected_path(store: &Store, name: &str) -> PathBuf {
    dir(store).join(".rejected").join(name)
}

fn rejected(store: &Store, name: &str) -> Option<String> {
    std::fs::read_to_string(rejected_path(store, name))
        .ok()
        .map(|s| s.trim().to_string())
}

fn set_rejected(store: &Store, name: &str, digest: Option<&str>) -> Result<(), String> {
    let path = rejected_path(store, name);
    match digest {
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("{}: {e}", path.display()))
            }
            _ => Ok(()),
        },
        Some(d) => {
            let parent = path.parent().ok_or("no parent")?;
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            std::fs::write(&path, format!("{d}\n")).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

/// Whether `generation` is one of image `name`'s (`NAME.HEX12[.N]`).
fn is_generation_of(generation: &str, name: &str) -> bool {
    let Some(rest) = generation
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('.'))
    else {
        return false;
    };
    let (hex, build) = match rest.split_once('.') {
        Some((h, b)) => (h, Some(b)),
        None => (rest, None),
    };
    hex.len() == 12
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && build.map_or(true, |b| {
            !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit())
        })
}

/// Containers whose last start used a generation of `name` (directly or
/// as a base), sorted.
fn users_of(store: &Store, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(store.containers_dir()) else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(container) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("generations")) else {
            continue;
        };
        if text.lines().any(|g| is_generation_of(g.trim(), name)) {
            out.push(container);
        }
    }
    out.sort();
    out
}

/// How containers are asked about and restarted: systemctl, or a stand-in
/// in tests.
pub trait Units {
    fn is_active(&self, container: &str) -> bool;
    /// Restarts the container's unit and waits for its start job; the error
    /// says how it failed.
    fn restart(&self, container: &str) -> Result<(), String>;
}

pub struct Systemctl;

fn unit(container: &str) -> String {
    format!("systemd-nspawn@{container}.service")
}

impl Units for Systemctl {
    fn is_active(&self, container: &str) -> bool {
        Command::new("systemctl")
            .args(["is-active", "--quiet", &unit(container)])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn restart(&self, container: &str) -> Result<(), String> {
        let out = Command::new("systemctl")
            .args(["restart", &unit(container)])
            .output()
            .map_err(|e| format!("systemctl: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.lines().next().unwrap_or("").trim();
        Err(if said.is_empty() {
            format!("its start failed ({})", out.status)
        } else {
            format!("its start failed: {said}")
        })
    }
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Result1 {
    UpToDate,
    Updated { restarted: Vec<String> },
    RolledBack { failed: String, why: String },
}

/// Updates one image; `say` gets the lines for the journal.
pub fn update_one(
    store: &Store,
    name: &str,
    args: &[String],
    units: &dyn Units,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<Result1, String> {
    let (mut req, _) = parse_pull(args.iter().map(OsString::from).collect())
        .map_err(|e| format!("{name}: the recorded pull command line: {e}"))?;
    if req.name != name {
        return Err(format!(
            "{name}: the recorded pull is for image {}",
            req.name
        ));
    }
    // The recorded store is the one this command works on.
    req.store = Store::new(store.root());
    let (old_gen, old) = store
        .image(name)
        .map_err(|e| format!("{name}: no current generation to update from: {e}"))?;
    let users: Vec<String> = users_of(store, name)
        .into_iter()
        .filter(|c| units.is_active(c))
        .collect();
    // Resolved first: an unchanged manifest is up to date whatever else
    // changed (a re-glue after an sdme upgrade is the next start's).
    let source =
        sdme_registry::open_source(&req.source, &req.source_options).map_err(|e| e.to_string())?;
    let resolved = source.resolve().map_err(|e| e.to_string())?;
    if old.is_manifest(&resolved.manifest_digest) {
        say(format!("{name}: up to date ({})", old.manifest_digest));
        return Ok(Result1::UpToDate);
    }
    if rejected(store, name).as_deref() == Some(resolved.manifest_digest.as_str()) {
        say(format!(
            "{name}: {} was rolled back before; not tried again until the reference names another manifest",
            resolved.manifest_digest
        ));
        return Ok(Result1::UpToDate);
    }
    if dry_run {
        say(format!(
            "{name}: would update {} -> {}; would restart: {}",
            old.manifest_digest,
            resolved.manifest_digest,
            list(&users)
        ));
        return Ok(Result1::Updated { restarted: users });
    }
    req.policy = PullPolicy::Newer;
    pull(&req)?;
    let (new_gen, new) = store.image(name)?;
    if new_gen == old_gen || new.manifest_digest == old.manifest_digest {
        say(format!("{name}: up to date ({})", old.manifest_digest));
        return Ok(Result1::UpToDate);
    }
    let mut restarted = Vec::new();
    let mut failure = None;
    for c in &users {
        match units.restart(c) {
            Ok(()) => restarted.push(c.clone()),
            Err(why) => {
                failure = Some((c.clone(), why));
                break;
            }
        }
    }
    let Some((failed, why)) = failure else {
        set_rejected(store, name, None)?;
        say(format!(
            "{name}: updated {} -> {} ({new_gen}); restarted: {}",
            old.manifest_digest,
            new.manifest_digest,
            list(&restarted)
        ));
        return Ok(Result1::Updated { restarted });
    };
    // Back to what ran before, for every container that got the new one.
    store.switch(name, &old_gen)?;
    set_rejected(store, name, Some(&new.manifest_digest))?;
    let mut again = Vec::new();
    for c in restarted.iter().chain(std::iter::once(&failed)) {
        match units.restart(c) {
            Ok(()) => again.push(c.clone()),
            Err(e) => say(format!("{name}: after the rollback, {c} still fails: {e}")),
        }
    }
    say(format!(
        "{name}: rolled back {} -> {} ({old_gen}): {failed} was not ready with the new image: {why}; restarted: {}",
        new.manifest_digest,
        old.manifest_digest,
        list(&again)
    ));
    Ok(Result1::RolledBack { failed, why })
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none running".to_string()
    } else {
        names.join(" ")
    }
}

pub fn main(args: Vec<OsString>) -> Result<(), String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut store = PathBuf::from(DEFAULT_STORE);
    let mut dry_run = false;
    let mut all = false;
    let mut names = Vec::new();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("store") => store = PathBuf::from(parser.value().map_err(|e| e.to_string())?),
            Long("dry-run") => dry_run = true,
            Long("all") => all = true,
            Long("image") => {
                let n = parser
                    .value()
                    .map_err(|e| e.to_string())?
                    .into_string()
                    .map_err(|v| format!("--image: {v:?} is not UTF-8"))?;
                sdme_store::check_name(&n)?;
                names.push(n);
            }
            other => return Err(format!("auto-update: {}", other.unexpected())),
        }
    }
    let selection = match (all, names.is_empty()) {
        (true, true) => Selection::All,
        (false, _) => Selection::Named(names),
        (true, false) => return Err("auto-update: --all and --image exclude each other".into()),
    };
    run(
        &Store::new(store),
        &Systemctl,
        &selection,
        dry_run,
        &mut |line| println!("auto-update: {line}"),
    )
}

/// Which images: those the generator names (`--image=`, the descriptors
/// with `AutoUpdate=registry`), or every one whose pull kept its command
/// line (`--all`).
pub enum Selection {
    Named(Vec<String>),
    All,
}

/// Every opted-in image, in name order; the others are never touched. The
/// store's shared lock is held throughout, so that gc cannot remove the
/// generation a rollback returns to.
pub fn run(
    store: &Store,
    units: &dyn Units,
    selection: &Selection,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<(), String> {
    let recorded = opted_in(store)?;
    let mut missing = Vec::new();
    let images: Vec<(String, Vec<String>)> = match selection {
        Selection::All => recorded,
        Selection::Named(names) => names
            .iter()
            .filter_map(|n| {
                let found = recorded.iter().find(|(r, _)| r == n).cloned();
                if found.is_none() {
                    missing.push(n.clone());
                }
                found
            })
            .collect(),
    };
    for n in &missing {
        say(format!(
            "{n}: not pulled with AutoUpdate=registry yet (its sdme-import@{n}.service has not run since); skipped"
        ));
    }
    if images.is_empty() {
        if missing.is_empty() {
            say("no image has AutoUpdate=registry".to_string());
        }
        return Ok(());
    }
    let _lock = if Path::new(store.root()).exists() {
        Some(store.lock(false)?)
    } else {
        None
    };
    let mut errors = Vec::new();
    let mut rolled_back = Vec::new();
    for (name, args) in &images {
        match update_one(store, name, args, units, dry_run, say) {
            Ok(Result1::RolledBack { .. }) => rolled_back.push(name.clone()),
            Ok(_) => {}
            Err(e) => {
                say(format!("{name}: not updated: {e}"));
                errors.push(name.clone());
            }
        }
    }
    if errors.is_empty() && rolled_back.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !errors.is_empty() {
        problems.push(format!("not updated: {}", errors.join(" ")));
    }
    if !rolled_back.is_empty() {
        problems.push(format!("rolled back: {}", rolled_back.join(" ")));
    }
    Err(format!("auto-update: {}", problems.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_of_an_image_are_recognized_by_shape() {
        assert!(is_generation_of("web.0123456789ab.2", "web"));
        assert!(is_generation_of("web.0123456789ab", "web"));
        assert!(is_generation_of("my.app.0123456789ab.0", "my.app"));
        assert!(!is_generation_of("web.0123456789ab.2", "we"));
        assert!(!is_generation_of("webx.0123456789ab.2", "web"));
        assert!(!is_generation_of("web.app.0123456789ab.0", "web"));
        assert!(!is_generation_of("web.0123456789ab.", "web"));
        assert!(!is_generation_of("web.0123456789a.1", "web"));
    }

    #[test]
    fn the_opt_in_is_remembered_and_forgotten() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        let args = vec!["--name=a".to_string(), "r.example/a:1".to_string()];
        remember(&store, "a", Some(&args)).unwrap();
        assert_eq!(opted_in(&store).unwrap(), vec![("a".to_string(), args)]);
        remember(&store, "a", None).unwrap();
        remember(&store, "a", None).unwrap();
        assert!(opted_in(&store).unwrap().is_empty());
        std::fs::write(t.path().join(DIR).join("b"), "not json").unwrap();
        assert!(opted_in(&store)
            .unwrap_err()
            .contains("not a pull command line"));
    }

    #[test]
    fn containers_are_found_by_their_recorded_generations() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        for (c, gens) in [
            ("web", "debian.aaaaaaaaaaaa.0\nnginx.0123456789ab.1\n"),
            ("other", "debian.aaaaaaaaaaaa.0\nnginx2.0123456789ab.1\n"),
            ("db", "debian.bbbbbbbbbbbb.3\n"),
        ] {
            let d = store.containers_dir().join(c);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("generations"), gens).unwrap();
        }
        assert_eq!(users_of(&store, "nginx"), ["web"]);
        assert_eq!(users_of(&store, "debian"), ["db", "other", "web"]);
        assert!(users_of(&store, "nosuch").is_empty());
    }
}
