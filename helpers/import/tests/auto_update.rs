//! `sdme-import auto-update` against a store and a local `oci:` layout whose
//! tag moves, with a stand-in for systemctl: which containers are restarted,
//! when the image is switched back, what is remembered and said. (E31 runs
//! the same under systemd with a registry.)

mod common;

use common::oci::{self, Entry};
use sdme_import::autoupdate::{run, Selection, Units};
use sdme_store::Store;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const IMPORT: &str = env!("CARGO_BIN_EXE_sdme-import");

/// Records restarts; a container in `failing` fails every restart.
#[derive(Default)]
struct Fake {
    running: BTreeSet<String>,
    failing: RefCell<BTreeSet<String>>,
    restarts: RefCell<Vec<String>>,
}

impl Units for Fake {
    fn is_active(&self, c: &str) -> bool {
        self.running.contains(c)
    }
    fn restart(&self, c: &str) -> Result<(), String> {
        self.restarts.borrow_mut().push(c.to_string());
        match self.failing.borrow().contains(c) {
            true => Err("its start failed: not ready".into()),
            false => Ok(()),
        }
    }
}

/// Version `v` of the image, tagged `latest` in the layout at `dir`.
fn publish(dir: &Path, v: &str) -> String {
    let body = format!("version {v}\n");
    let layer = oci::layer(&[
        Entry::Dir("usr", 0o755),
        Entry::Dir("usr/bin", 0o755),
        Entry::File("usr/bin/app", b"#!/bin/sh\n", 0o755),
        Entry::Symlink("usr/bin/app-again", "app"),
        Entry::File("version", body.as_bytes(), 0o644),
    ]);
    oci::layout(
        dir,
        &layer,
        serde_json::json!({"Entrypoint": ["/usr/bin/app"]}),
    )
}

fn current(store: &Store) -> (String, String) {
    let (g, r) = store.image("app").unwrap();
    (g, r.manifest_digest)
}

/// A container whose last start used the image's current generation.
fn started(store: &Store, container: &str) {
    let d = store.containers_dir().join(container);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("generations"), format!("{}\n", current(store).0)).unwrap();
}

fn update(store: &Store, units: &Fake, names: &[&str]) -> (Result<(), String>, Vec<String>) {
    let mut lines = Vec::new();
    let selection = Selection::Named(names.iter().map(|n| n.to_string()).collect());
    let r = run(store, units, &selection, false, &mut |l| lines.push(l));
    (r, lines)
}

#[test]
fn updates_restart_users_and_failures_roll_back() {
    let t = tempfile::tempdir().unwrap();
    let store_dir = t.path().join("store");
    let store = Store::new(&store_dir);
    let layout = t.path().join("layout");
    let source = publish(&layout, "1");
    let pull = Command::new(IMPORT)
        .args(["pull", "--name=app", "--mode=app", "--auto-update=registry"])
        .arg(format!("--store={}", store_dir.display()))
        .arg(&source)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let (g1, d1) = current(&store);
    started(&store, "web");
    started(&store, "db");
    // A stopped user, and a container of another image.
    started(&store, "idle");
    std::fs::create_dir_all(store.containers_dir().join("other")).unwrap();
    std::fs::write(
        store.containers_dir().join("other/generations"),
        "appx.0123456789ab.0\n",
    )
    .unwrap();
    let units = Fake {
        running: ["web", "db", "other"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..Fake::default()
    };

    // Nothing new: nothing restarted.
    let (r, lines) = update(&store, &units, &["app"]);
    assert_eq!(
        (r, lines),
        (Ok(()), vec![format!("app: up to date ({d1})")])
    );
    assert!(units.restarts.borrow().is_empty());

    // v2: a new generation, its running users restarted (not the stopped
    // one, not another image's), one line with both digests.
    publish(&layout, "2");
    let (r, lines) = update(&store, &units, &["app"]);
    let (g2, d2) = current(&store);
    assert!(r.is_ok() && g2 != g1 && d2 != d1);
    assert_eq!(*units.restarts.borrow(), ["db", "web"]);
    assert_eq!(
        lines,
        [format!(
            "app: updated {d1} -> {d2} ({g2}); restarted: db web"
        )]
    );
    for c in ["web", "db"] {
        started(&store, c);
    }

    // v3: web does not become ready: back to v2, both restarted again,
    // the run fails, and the manifest is remembered.
    publish(&layout, "3");
    units.restarts.borrow_mut().clear();
    units.failing.borrow_mut().insert("web".into());
    let (r, lines) = update(&store, &units, &["app"]);
    assert_eq!(r.unwrap_err(), "auto-update: rolled back: app");
    assert_eq!(current(&store), (g2.clone(), d2.clone()));
    // db (new image), web (failed), then both again on the old one.
    assert_eq!(*units.restarts.borrow(), ["db", "web", "db", "web"]);
    let d3 = lines
        .iter()
        .find_map(|l| l.strip_prefix("app: rolled back "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    assert_ne!(d3, d2);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "app: rolled back {d3} -> {d2} ({g2}): web was not ready with the new image: its start failed: not ready; restarted: db"
        ))),
        "{lines:?}"
    );
    assert!(lines.contains(
        &"app: after the rollback, web still fails: its start failed: not ready".to_string()
    ));

    // The same v3 again: not tried, nothing restarted.
    units.restarts.borrow_mut().clear();
    units.failing.borrow_mut().clear();
    let (r, lines) = update(&store, &units, &["app"]);
    assert!(r.is_ok());
    assert!(units.restarts.borrow().is_empty());
    assert_eq!(
        lines,
        [format!("app: {d3} was rolled back before; not tried again until the reference names another manifest")]
    );

    // v4: tried, and it works: the record of v3 is gone.
    publish(&layout, "4");
    let (r, _) = update(&store, &units, &["app"]);
    assert!(r.is_ok() && current(&store).1 != d2);
    assert!(!store_dir.join("auto-update/.rejected/app").exists());

    // Only what is named: an image that is not, or that never opted in.
    units.restarts.borrow_mut().clear();
    publish(&layout, "5");
    let (r, lines) = update(&store, &units, &["nosuch"]);
    assert!(r.is_ok() && units.restarts.borrow().is_empty());
    assert!(
        lines[0].starts_with("nosuch: not pulled with AutoUpdate=registry yet"),
        "{lines:?}"
    );
    let (_, lines) = update(&store, &units, &[]);
    assert_eq!(lines, ["no image has AutoUpdate=registry"]);

    // A pull without the option forgets the opt-in.
    let pull = Command::new(IMPORT)
        .args(["pull", "--name=app", "--mode=app"])
        .arg(format!("--store={}", store_dir.display()))
        .arg(&source)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert!(pull.status.success());
    assert!(!store_dir.join("auto-update/app").exists());
}
