//! Hostile image configurations: every field that reaches a unit, a path or
//! a file, times every kind of hostile value. Each import is either refused
//! cleanly (non-zero exit, a message naming the field, nothing left in the
//! store) or imported safely: a canary directory beside the store stays
//! untouched, and every unit written has exactly the settings (unit, section
//! and key, in order) that a benign image of the same shape gets.

mod common;

use common::oci::{self, Entry};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::process::Command;

const IMPORT: &str = env!("CARGO_BIN_EXE_sdme-import");

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";

fn layer(passwd: &str) -> Vec<u8> {
    oci::layer(&[
        Entry::File("etc/passwd", passwd.as_bytes(), 0o644),
        Entry::File("etc/group", b"root:x:0:\napp:x:1000:\n", 0o644),
        Entry::File("bin/app", b"app\n", 0o755),
        Entry::Dir("srv", 0o755),
        Entry::File("bin/sh", b"sh\n", 0o755),
        Entry::Symlink("escape", "../../../../canary"),
        Entry::Symlink("abs", "/"),
    ])
}

/// The benign shape every hostile variant is compared with.
fn benign() -> Value {
    json!({
        "User": "app",
        "Env": ["A=1"],
        "Entrypoint": ["/bin/app"],
        "Cmd": ["serve"],
        "WorkingDir": "/srv",
        "Volumes": {"/data": {}},
        "ExposedPorts": {"80/tcp": {}},
        "StopSignal": "SIGTERM",
        "Healthcheck": {"Test": ["CMD", "/bin/app", "check"]},
        "Labels": {"k": "v"},
    })
}

const HOSTILE: &[&str] = &[
    "",
    "/../../../../canary/x",
    "../../canary",
    "/escape/x",
    "a\nExecStartPre=+/bin/sh -c 'touch /pwned'",
    "a\rUser=",
    "tail\\",
    "%i%n%%",
    "$HOME ${X} $$",
    "+/bin/sh",
    "@/bin/sh",
    "-x",
    "!!/bin/sh",
    "\"quoted\" 'single'",
    ";",
    "\u{1b}[31m",
    "\u{0}",
    "4294967295",
    "65535",
];

/// (section, key) of every assignment of every unit in the glue, by unit.
fn settings(glue: &Path) -> Vec<String> {
    let dir = glue.join("etc/systemd/system");
    let mut units: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    units.sort();
    let mut out = Vec::new();
    for unit in units {
        let (items, errors) = sdme_unitfile::syntax::parse(&fs::read(&unit).unwrap());
        assert!(errors.is_empty(), "{}: {errors:?}", unit.display());
        let name = unit.file_name().unwrap().to_string_lossy().to_string();
        let mut section = String::new();
        for item in items {
            match item {
                sdme_unitfile::syntax::Item::Section { name, .. } => section = name,
                sdme_unitfile::syntax::Item::Assignment { key, .. } => {
                    out.push(format!("{name} [{section}] {key}"))
                }
            }
        }
    }
    out
}

struct Outcome {
    ok: bool,
    stderr: String,
    settings: Vec<String>,
}

fn import(work: &Path, config: &Value, passwd: &str) -> Outcome {
    let _ = fs::remove_dir_all(work.join("store"));
    let _ = fs::remove_dir_all(work.join("layout"));
    let source = oci::layout(&work.join("layout"), &layer(passwd), config.clone());
    let store = work.join("store");
    let out = Command::new(IMPORT)
        .args(["pull", "--name=app", "--pull=missing"])
        .arg(format!("--store={}", store.display()))
        .arg(&source)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let canary: Vec<_> = fs::read_dir(work.join("canary"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        canary,
        ["keep"],
        "the canary beside the store was written: {config}"
    );
    assert_eq!(
        fs::read_to_string(work.join("canary/keep")).unwrap(),
        "untouched"
    );
    if !out.status.success() {
        // A configuration refused at its boundary is refused before any
        // layer is fetched; one refused later (a program or an id the layers
        // lack) may leave its unreferenced layers, which gc removes.
        let early = stderr.contains("image configuration refused");
        for dir in ["images", "connectors", "layers/sha256"] {
            if dir == "layers/sha256" && !early {
                continue;
            }
            let left = fs::read_dir(store.join(dir))
                .map(|d| d.count())
                .unwrap_or(0);
            assert_eq!(
                left, 0,
                "a refused image left {dir} entries: {config}\n{stderr}"
            );
        }
        return Outcome {
            ok: false,
            stderr,
            settings: Vec::new(),
        };
    }
    Outcome {
        ok: true,
        settings: settings(&store.join("images/app/glue")),
        stderr,
    }
}

/// Sets `field` (a path into the config) to `value`.
fn with(field: &str, value: &str) -> Value {
    let mut c = benign();
    let v = Value::String(value.to_string());
    match field {
        "Entrypoint[0]" => c["Entrypoint"][0] = v,
        "Cmd[0]" => c["Cmd"][0] = v,
        "Env value" => c["Env"][0] = Value::String(format!("A={value}")),
        "Env name" => c["Env"][0] = Value::String(format!("{value}=1")),
        "User" => c["User"] = v,
        "WorkingDir" => c["WorkingDir"] = v,
        "Volumes" => c["Volumes"] = json!({ value: {} }),
        "ExposedPorts" => c["ExposedPorts"] = json!({ value: {} }),
        "StopSignal" => c["StopSignal"] = v,
        "Healthcheck CMD" => c["Healthcheck"]["Test"][1] = v,
        "Healthcheck CMD-SHELL" => c["Healthcheck"]["Test"] = json!(["CMD-SHELL", value]),
        "Labels key" => c["Labels"] = json!({ value: "v" }),
        "Labels value" => c["Labels"] = json!({ "k": value }),
        _ => unreachable!("{field}"),
    }
    c
}

#[test]
fn every_field_times_every_hostile_value() {
    assert!(
        rustix::process::geteuid().is_root(),
        "hostile configurations are imported as root (overlayfs layers); run `make test` as root"
    );
    let t = tempfile::tempdir().unwrap();
    let work = t.path();
    fs::create_dir(work.join("canary")).unwrap();
    fs::write(work.join("canary/keep"), "untouched").unwrap();
    let base = import(work, &benign(), PASSWD);
    assert!(base.ok, "the benign image must import: {}", base.stderr);
    let fields = [
        "Entrypoint[0]",
        "Cmd[0]",
        "Env value",
        "Env name",
        "User",
        "WorkingDir",
        "Volumes",
        "ExposedPorts",
        "StopSignal",
        "Healthcheck CMD",
        "Healthcheck CMD-SHELL",
        "Labels key",
        "Labels value",
    ];
    let mut refused = 0;
    let mut imported = 0;
    for field in fields {
        for value in HOSTILE {
            let config = with(field, value);
            let got = import(work, &config, PASSWD);
            if got.ok {
                imported += 1;
                // An empty value unsets a field: an empty USER is root
                // (no User=/Group= lines), an empty StopSignal the default
                // (no KillSignal=). Those are the legitimate differences.
                let unset: &[&str] = match (field, value.is_empty()) {
                    ("User", true) => &[" User", " Group", " SupplementaryGroups"],
                    ("StopSignal", true) => &[" KillSignal"],
                    _ => &[],
                };
                let expected: Vec<&String> = base
                    .settings
                    .iter()
                    .filter(|s| {
                        // The app and its health check run as the same user.
                        !unset.iter().any(|k| {
                            (s.starts_with("sdme-oci-app.service ")
                                || s.starts_with("sdme-oci-health-check.service "))
                                && s.ends_with(k)
                        })
                    })
                    .collect();
                let got: Vec<&String> = got.settings.iter().collect();
                assert_eq!(
                    got, expected,
                    "{field}={value:?} changed the units' settings"
                );
            } else {
                refused += 1;
                assert!(
                    !got.stderr.contains("panicked"),
                    "{field}={value:?}: {}",
                    got.stderr
                );
                assert!(
                    got.stderr.lines().any(|l| l.starts_with("sdme-import: ")),
                    "{field}={value:?}: no clear error:\n{}",
                    got.stderr
                );
            }
        }
    }
    // The corpus must exercise both outcomes.
    assert!(
        refused > 20 && imported > 20,
        "refused {refused}, imported {imported}"
    );
}

#[test]
fn hostile_passwd_entries_reach_no_unit_unchecked() {
    assert!(rustix::process::geteuid().is_root(), "run as root");
    let t = tempfile::tempdir().unwrap();
    let work = t.path();
    fs::create_dir(work.join("canary")).unwrap();
    fs::write(work.join("canary/keep"), "untouched").unwrap();
    let base = import(work, &benign(), PASSWD);
    assert!(base.ok, "{}", base.stderr);
    for home in [
        "/home/%i $X",
        "/../../canary",
        "relative",
        "/h\\",
        "/h\u{1b}",
    ] {
        let passwd = format!("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:{home}:/bin/sh\n");
        let got = import(work, &benign(), &passwd);
        assert!(got.ok, "home {home:?}: {}", got.stderr);
        assert_eq!(got.settings, base.settings, "home {home:?}");
    }
    for id in ["4294967295", "65535"] {
        let passwd = format!("root:x:0:0:root:/root:/bin/sh\napp:x:{id}:{id}:app:/:/bin/sh\n");
        let got = import(work, &benign(), &passwd);
        assert!(!got.ok, "uid {id} from the image's passwd must be refused");
        assert!(got.stderr.contains(id), "{}", got.stderr);
    }
}
