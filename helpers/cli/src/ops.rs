//! The commands that act: `install`, `rm`, `reset`, `pull`, `exec`,
//! `logs`, `status`. Each is a few calls of systemd's own tools (printed
//! with `-v`); descriptor edits are checked first (`shadow`).

use crate::admin::ADMIN_DIR;
use crate::catalog::{self, Entry};
use crate::shadow::{self, Edit};
use crate::sys::{args, Failure, Res, Sys, EXIT_FAILURE, EXIT_INACTIVE, EXIT_NO_SUCH};
use sdme_generator::emit::{connector_socket_name, import_unit_name, nspawn_unit_name};
use sdme_generator::names::check_machine_name;
use sdme_generator::search::MAX_FILE_SIZE;
use sdme_store::Store;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// The app's unit inside a container (HACKING.md, glue).
pub const APP_SERVICE: &str = "sdme-oci-app.service";

/// The descriptor `name`, or exit 4 naming where it was looked for.
pub fn entry(root: &Path, name: &str) -> Res<Entry> {
    check_machine_name(name).map_err(|e| Failure::new(crate::sys::EXIT_USAGE, e))?;
    let mut all = catalog::entries(root);
    all.remove(name).ok_or_else(|| {
        Failure::new(
            EXIT_NO_SUCH,
            format!(
                "no descriptor {name}.oci in {}",
                sdme_generator::lookup::search_dirs_shown(root)
            ),
        )
    })
}

/// A descriptor the generator turned into units, or why not.
pub fn usable(root: &Path, name: &str) -> Res<Entry> {
    let e = entry(root, name)?;
    if e.unusable.is_some() {
        let why = if e.problems.is_empty() {
            String::new()
        } else {
            format!(
                ":\n{}",
                e.problems
                    .iter()
                    .map(|p| format!("  {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        };
        return Err(Failure::new(
            EXIT_NO_SUCH,
            format!(
                "descriptor {name} is {} by the generator: it has no units{why}",
                match e.state() {
                    "masked" => "masked (ignored)",
                    _ => "skipped",
                }
            ),
        ));
    }
    Ok(e)
}

pub fn container(root: &Path, name: &str) -> Res<Entry> {
    let e = usable(root, name)?;
    if !e.has_container() {
        return Err(Failure::new(
            EXIT_FAILURE,
            format!(
                "descriptor {name} has no [Container] section: it is an image, not a container"
            ),
        ));
    }
    Ok(e)
}

fn code(status: ExitStatus) -> u8 {
    match status.code() {
        Some(c) => c.clamp(0, 255) as u8,
        None => EXIT_FAILURE,
    }
}

fn state(sys: &Sys, unit: &str) -> Res<crate::sys::UnitState> {
    let mut s = sys.unit_states(&[unit.to_string()], None)?;
    s.pop()
        .ok_or_else(|| Failure::new(EXIT_FAILURE, format!("systemctl show {unit}: no answer")))
}

// ---- status ------------------------------------------------------------

pub fn status(sys: &Sys, root: &Path, store: &Store, name: &str) -> Res<u8> {
    let e = entry(root, name)?;
    let facts = catalog::facts(sys, store, &[&e])?.pop().unwrap_or_default();
    let d = e.descriptor.as_ref();
    println!(
        "{} ({}) {}",
        e.name,
        e.kind(facts.record.as_ref()),
        e.file.as_deref().unwrap_or("-")
    );
    for p in d.map(|d| d.dropins.clone()).unwrap_or_default() {
        println!("  drop-in: {p}");
    }
    if e.unusable.is_some() {
        println!("  state: {} by the generator, no units:", e.state());
        for p in &e.problems {
            println!("    {p}");
        }
        return Ok(EXIT_NO_SUCH);
    }
    match d
        .and_then(|d| d.image.as_ref())
        .and_then(|i| i.source.as_ref())
    {
        Some(src) => println!("  image: {src}"),
        None => println!("  image: that of {}", e.provider()),
    }
    match (&facts.generation, &facts.record) {
        (Some(g), Some(r)) => println!(
            "  generation: {g} ({}, {})",
            r.kind.as_str(),
            r.manifest_digest
        ),
        (Some(g), None) => println!(
            "  generation: {g} ({})",
            facts
                .store_error
                .as_deref()
                .unwrap_or("no record: incomplete")
        ),
        _ => println!(
            "  generation: none (not imported: sdme pull {})",
            e.provider()
        ),
    }
    if let Some(h) = &facts.health {
        println!("  health: {h}");
    }
    let apps = e.apps();
    if !apps.is_empty() {
        println!(
            "  apps: {} (sdme logs|exec --app=APP {name})",
            apps.join(" ")
        );
    }
    println!();
    let mut units = Vec::new();
    if e.has_container() {
        units.push(nspawn_unit_name(name));
    }
    if e.starts_on_demand() {
        units.push(connector_socket_name(name));
    }
    units.push(import_unit_name(e.provider()));
    units.extend(apps.iter().map(|a| import_unit_name(a)));
    let mut a = args(&["status", "--no-pager", "--lines=5", "--"]);
    a.extend(units);
    // systemctl status prints; its exit code (3: a unit is not active) is
    // not ours: ours is the container's (or, for an image, its import's).
    let _ = sys.run_no_stdin("systemctl", &a)?;
    let main = if e.has_container() {
        &facts.container
    } else {
        &facts.import
    };
    Ok(match main {
        Some(u) if u.is_active() => 0,
        _ => EXIT_INACTIVE,
    })
}

// ---- logs --------------------------------------------------------------

/// The unit of the container's first app, or of another one (`App=APP`).
pub fn app_unit(app: Option<&str>) -> String {
    match app {
        None => APP_SERVICE.to_string(),
        Some(a) => format!("sdme-oci-app@{a}.service"),
    }
}

/// A unit's object path on systemd's bus: every byte but letters and
/// digits (and a leading digit) as `_XX` (sd_bus_path_encode()).
pub fn unit_bus_path(unit: &str) -> String {
    let mut out = String::from("/org/freedesktop/systemd1/unit/");
    for (i, b) in unit.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// `app`: the unit of another app of the container (`--app=`), whose
/// journal is shown even in a base OS container.
pub fn logs(
    sys: &Sys,
    root: &Path,
    store: &Store,
    name: &str,
    follow: bool,
    lines: Option<&str>,
    app: Option<&str>,
) -> Res<u8> {
    let e = container(root, name)?;
    let (_, record, _) = catalog::image_of(store, e.provider());
    let is_base = record
        .as_ref()
        .is_some_and(|r| r.kind == sdme_store::Kind::Base);
    let mut a = Vec::new();
    let running = state(sys, &nspawn_unit_name(name))?.is_active();
    let stored = store
        .containers_dir()
        .join(name)
        .join("root/var/log/journal");
    if running {
        a.push(format!("--machine={name}"));
    } else if stored.is_dir() {
        // A stopped container's persistent journal, in its writable layer.
        a.push(format!("--directory={}", stored.display()));
    } else {
        return Err(Failure::new(
            EXIT_INACTIVE,
            format!(
                "container {name} is not running and keeps no journal on disk; \
                 its last boot as the host saw it: journalctl -u {}",
                nspawn_unit_name(name)
            ),
        ));
    }
    match app {
        Some(unit) => a.push(format!("--unit={unit}")),
        None if !is_base => a.push(format!("--unit={APP_SERVICE}")),
        None => {}
    }
    if follow {
        a.push("--follow".into());
    }
    if let Some(n) = lines {
        a.push(format!("--lines={n}"));
    }
    Ok(code(sys.run("journalctl", &a)?))
}

// ---- exec --------------------------------------------------------------

/// How `exec` connects the command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecMode {
    pub interactive: bool,
    pub tty: bool,
}

/// The app's execution context as the container's systemd has it
/// (`busctl --json`, exact), as `systemd-run` properties.
pub fn app_properties(json_lines: &str) -> Result<(Vec<String>, Vec<String>), String> {
    use serde_json::Value;
    let values: Vec<Value> = serde_json::Deserializer::from_str(json_lines)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("busctl's answer is not JSON: {e}"))?;
    let data = |i: usize| {
        values
            .get(i)
            .and_then(|v| v.get("data"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let string = |i: usize| data(i).as_str().unwrap_or_default().to_string();
    let mut props = Vec::new();
    let mut env = Vec::new();
    let simple = |s: &str| {
        !s.is_empty()
            && !s.bytes().any(|b| {
                b <= b' ' || b == b':' || b == b'\\' || b == b'"' || b == b'\'' || b == 0x7f
            })
    };
    // Order of APP_PROPERTIES.
    let rootdir = string(0);
    if !rootdir.is_empty() {
        props.push(format!("RootDirectory={rootdir}"));
    }
    if data(1).as_bool() == Some(true) {
        props.push("MountAPIVFS=yes".into());
    }
    for (i, key) in [(2, "User"), (3, "Group")] {
        let v = string(i);
        if !v.is_empty() {
            props.push(format!("{key}={v}"));
        }
    }
    let groups: Vec<String> = data(4)
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !groups.is_empty() {
        props.push(format!("SupplementaryGroups={}", groups.join(" ")));
    }
    let wd = string(5);
    if !wd.is_empty() {
        // D-Bus spells "missing is fine" as a leading "!", the unit file as "-".
        let wd = match wd.strip_prefix('!') {
            Some(p) => format!("-{p}"),
            None => wd,
        };
        props.push(format!("WorkingDirectory={wd}"));
    }
    for v in data(6).as_array().into_iter().flatten() {
        if let Some(s) = v.as_str() {
            env.push(s.to_string());
        }
    }
    for f in data(7).as_array().into_iter().flatten() {
        let (Some(path), ignore) = (
            f.get(0).and_then(Value::as_str),
            f.get(1).and_then(Value::as_bool),
        ) else {
            continue;
        };
        if !simple(path) {
            return Err(format!(
                "EnvironmentFile= path {path:?} cannot be passed on"
            ));
        }
        let dash = if ignore == Some(true) { "-" } else { "" };
        props.push(format!("EnvironmentFile={dash}{path}"));
    }
    for (index, key) in [(8, "BindReadOnlyPaths"), (9, "BindPaths")] {
        for b in data(index).as_array().into_iter().flatten() {
            let (Some(src), Some(dst)) = (
                b.get(0).and_then(Value::as_str),
                b.get(1).and_then(Value::as_str),
            ) else {
                continue;
            };
            if !simple(src) || !simple(dst) {
                return Err(format!("{key}= {src:?}:{dst:?} cannot be passed on"));
            }
            let dash = if b.get(2).and_then(Value::as_bool) == Some(true) {
                "-"
            } else {
                ""
            };
            // MS_REC (16384) in the flags: a recursive bind.
            let rec = b
                .get(3)
                .and_then(Value::as_u64)
                .is_some_and(|f| f & 16384 != 0);
            let opt = if rec { "rbind" } else { "norbind" };
            props.push(format!("{key}={dash}{src}:{dst}:{opt}"));
        }
    }
    Ok((props, env))
}

/// systemd's exit status when it could not set up a service's stdin.
const EXIT_STATUS_STDIN: i32 = 208;

/// Why `exec -t` can fail with 208 for a non-root app user.
pub fn tty_hint(name: &str, user: &str) -> String {
    format!(
        "sdme: exec -t: the container's systemd could not give the terminal to user {user} \
         (208/STDIN, \"Failed to change ownership of terminal\" in journalctl -M {name}): the \
         host's machined opened it outside the container's user namespace (systemd 252 does, \
         257 does not); run the command without -t"
    )
}

/// `BindPaths` carries the app's own `/run` (units.rs).
const APP_PROPERTIES: [&str; 10] = [
    "RootDirectory",
    "MountAPIVFS",
    "User",
    "Group",
    "SupplementaryGroups",
    "WorkingDirectory",
    "Environment",
    "EnvironmentFiles",
    "BindReadOnlyPaths",
    "BindPaths",
];

/// The systemd-run command line of `sdme exec`.
pub fn exec_args(
    name: &str,
    mode: ExecMode,
    props: &[String],
    env: &[String],
    cmd: &[String],
) -> Vec<String> {
    let mut a = vec![
        format!("--machine={name}"),
        "--quiet".into(),
        "--collect".into(),
        "--wait".into(),
        "--service-type=exec".into(),
    ];
    a.push(if mode.tty {
        "--pty".into()
    } else {
        "--pipe".into()
    });
    for p in props {
        a.push(format!("--property={p}"));
    }
    for e in env {
        a.push(format!("--setenv={e}"));
    }
    a.push("--".into());
    a.extend(cmd.iter().cloned());
    a
}

/// `unit`: the app whose root, user and environment the command gets.
pub fn exec(
    sys: &Sys,
    root: &Path,
    name: &str,
    mode: ExecMode,
    unit: &str,
    cmd: &[String],
) -> Res<u8> {
    container(root, name)?;
    if mode.tty && !rustix::termios::isatty(std::io::stdin()) {
        // systemd-run --pty would forward a terminal to nothing.
        return Err(Failure::new(
            EXIT_FAILURE,
            "exec -t: stdin is not a terminal (leave out -t to pipe)",
        ));
    }
    if !state(sys, &nspawn_unit_name(name))?.is_active() {
        return Err(Failure::new(
            EXIT_INACTIVE,
            format!(
                "container {name} is not running (systemctl start {})",
                nspawn_unit_name(name)
            ),
        ));
    }
    let app = sys.read(
        "systemctl",
        &args(&[
            &format!("--machine={name}"),
            "show",
            "--property=LoadState",
            "--value",
            unit,
        ]),
    )?;
    let (props, env) = if app.trim() == "loaded" {
        let mut a = vec![
            format!("--machine={name}"),
            "--json=short".into(),
            "get-property".into(),
            "org.freedesktop.systemd1".into(),
            unit_bus_path(unit),
            "org.freedesktop.systemd1.Service".into(),
        ];
        a.extend(APP_PROPERTIES.iter().map(|p| p.to_string()));
        let out = sys.read("busctl", &a)?;
        let (mut props, env) =
            app_properties(&out).map_err(|e| format!("container {name}: {unit}: {e}"))?;
        // The app's /run exists only while it runs (its runtime directory).
        let active = sys.read(
            "systemctl",
            &args(&[
                &format!("--machine={name}"),
                "show",
                "--property=ActiveState",
                "--value",
                unit,
            ]),
        )?;
        if !matches!(active.trim(), "active" | "reloading") {
            props.retain(|p| !p.starts_with("BindPaths="));
        }
        (props, env)
    } else if unit != APP_SERVICE {
        return Err(Failure::new(
            EXIT_FAILURE,
            format!("container {name} has no {unit} (App= names the other apps, sdme.oci(5))"),
        ));
    } else {
        // A base OS container has no app: its own root, as root.
        (Vec::new(), Vec::new())
    };
    let a = exec_args(name, mode, &props, &env, cmd);
    let status = if mode.interactive || mode.tty {
        sys.run("systemd-run", &a)?
    } else {
        sys.run_no_stdin("systemd-run", &a)?
    };
    let user = props.iter().find_map(|p| p.strip_prefix("User="));
    if mode.tty && status.code() == Some(EXIT_STATUS_STDIN) && user.is_some() {
        eprintln!("{}", tty_hint(name, user.unwrap_or_default()));
    }
    Ok(code(status))
}

// ---- start, stop, restart ------------------------------------------------

/// `systemctl VERB systemd-nspawn@NAME.service` (its exit status).
pub fn unit_verb(sys: &Sys, root: &Path, verb: &str, name: &str) -> Res<u8> {
    container(root, name)?;
    let unit = nspawn_unit_name(name);
    Ok(code(sys.run_no_stdin("systemctl", &args(&[verb, &unit]))?))
}

// ---- pull --------------------------------------------------------------

pub fn pull(sys: &Sys, root: &Path, name: &str) -> Res<u8> {
    let e = usable(root, name)?;
    let provider = e.provider().to_string();
    let unit = import_unit_name(&provider);
    if provider != name {
        println!("{name} runs the image of {provider}: pulling {unit}");
    }
    let before = state(sys, &unit)?;
    // restart: a oneshot with RemainAfterExit=yes runs again (the import's
    // Pull= policy decides what it fetches); start would do nothing.
    let mut child = {
        let a = args(&["restart", &unit]);
        if sys.verbose {
            eprintln!("+ {}", crate::sys::command_line("systemctl", &a));
        }
        std::process::Command::new("systemctl")
            .args(&a)
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot run systemctl: {e}")))?
    };
    let cursor = shadow::TempDir::new("pull")?;
    let cursor_file = cursor.path().join("cursor");
    let quiet = Sys { verbose: false };
    let mut invocation = String::new();
    let mut shown_cmd = false;
    let status = loop {
        let done = child
            .try_wait()
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("waiting for systemctl: {e}")))?;
        if invocation.is_empty() || invocation == before.invocation {
            if let Ok(s) = state(&quiet, &unit) {
                invocation = s.invocation;
            }
        }
        if !invocation.is_empty() && invocation != before.invocation {
            if done.is_some() {
                // Everything the import wrote is in the journal before the
                // last pass reads it.
                let _ = quiet.read("journalctl", &args(&["--sync"]));
            }
            let a = vec![
                format!("_SYSTEMD_INVOCATION_ID={invocation}"),
                "--output=cat".into(),
                "--no-pager".into(),
                "--quiet".into(),
                format!("--cursor-file={}", cursor_file.display()),
            ];
            let runner = if shown_cmd { &quiet } else { sys };
            shown_cmd = true;
            let _ = runner.run_no_stdin("journalctl", &a);
        }
        if let Some(s) = done {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let after = state(&quiet, &unit)?;
    if status.success() {
        println!("{unit}: {} ({})", after.active, after.sub);
        let running = e.has_container() && state(&quiet, &nspawn_unit_name(name))?.is_active();
        if running {
            println!("container {name} keeps the image it started with until it restarts (sdme restart {name})");
        }
        Ok(0)
    } else {
        eprintln!(
            "sdme: {unit} failed ({}): systemctl status {unit}",
            after.result
        );
        Ok(code(status).max(1))
    }
}

// ---- install / rm --------------------------------------------------------

/// The edits that install `paths`: `NAME.oci` files, `NAME.oci.d/*.conf`
/// drop-ins (a file inside such a directory, or the directory), or a
/// directory holding any of those.
pub fn install_edits(root: &Path, paths: &[PathBuf], replace: bool) -> Res<Vec<Edit>> {
    let mut edits = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            if dropin_dir_name(p).is_some() {
                collect_dropins(p, &mut edits)?;
                continue;
            }
            let mut names: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            names.sort();
            let before = edits.len();
            for n in names {
                let file = n.file_name().and_then(|f| f.to_str()).unwrap_or_default();
                if file.starts_with('.') {
                    continue;
                }
                if file.ends_with(".oci") && n.is_file() {
                    edits.push(descriptor_edit(&n)?);
                } else if file.ends_with(".oci.d") && n.is_dir() {
                    collect_dropins(&n, &mut edits)?;
                }
            }
            if edits.len() == before {
                return Err(format!(
                    "{}: no NAME.oci files or NAME.oci.d directories in it",
                    p.display()
                )
                .into());
            }
        } else if p.extension().is_some_and(|x| x == "oci") {
            edits.push(descriptor_edit(p)?);
        } else if p.extension().is_some_and(|x| x == "conf")
            && p.parent().is_some_and(|d| dropin_dir_name(d).is_some())
        {
            edits.push(dropin_edit(p)?);
        } else {
            return Err(format!(
                "{}: not a descriptor (NAME.oci), a drop-in (NAME.oci.d/*.conf) or a directory of them",
                p.display()
            )
            .into());
        }
    }
    // Refuse replacing a different file unless asked; drop identical ones.
    let mut out = Vec::new();
    for e in edits {
        let Edit::Write { path, contents } = &e else {
            continue;
        };
        match std::fs::read(root.join(path)) {
            Ok(old) if &old == contents => {
                println!("unchanged: /{path}");
                continue;
            }
            Ok(_) if !replace => {
                return Err(
                    format!("/{path} exists and differs: use --replace to overwrite it").into(),
                )
            }
            _ => {}
        }
        out.push(e);
    }
    Ok(out)
}

fn dropin_dir_name(dir: &Path) -> Option<String> {
    let n = dir.file_name()?.to_str()?.strip_suffix(".oci.d")?;
    check_machine_name(n).ok().map(|_| n.to_string())
}

fn read_small(p: &Path) -> Res<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("{}: larger than 1 MiB", p.display()).into());
    }
    Ok(bytes)
}

fn descriptor_edit(p: &Path) -> Res<Edit> {
    let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
    let name = file.strip_suffix(".oci").unwrap_or_default();
    // NAME, a template NAME@ or an instance NAME@INST (whose file must be a
    // symlink to the template's: the generator's check says so).
    let (plain, instance) = match name.split_once('@') {
        Some((n, i)) => (n, Some(i)),
        None => (name, None),
    };
    check_machine_name(plain)
        .and_then(|()| match instance {
            Some(i) if !i.is_empty() => check_machine_name(i),
            _ => Ok(()),
        })
        .map_err(|e| format!("{}: bad descriptor name: {e}", p.display()))?;
    Ok(Edit::Write {
        path: format!("{ADMIN_DIR}/{name}.oci"),
        contents: read_small(p)?,
    })
}

fn dropin_edit(p: &Path) -> Res<Edit> {
    let dir = p
        .parent()
        .and_then(dropin_dir_name)
        .ok_or_else(|| format!("{}: not in a NAME.oci.d directory", p.display()))?;
    let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
    if file.starts_with('.') || file.contains('/') || file.chars().any(char::is_control) {
        return Err(format!("{}: bad drop-in name", p.display()).into());
    }
    Ok(Edit::Write {
        path: format!("{ADMIN_DIR}/{dir}.oci.d/{file}"),
        contents: read_small(p)?,
    })
}

fn collect_dropins(dir: &Path, edits: &mut Vec<Edit>) -> Res<()> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    names.sort();
    for n in names {
        edits.push(dropin_edit(&n)?);
    }
    Ok(())
}

/// Checks and writes `edits`; true if anything was written.
pub fn commit(root: &Path, edits: &[Edit]) -> Res<bool> {
    if edits.is_empty() {
        return Ok(false);
    }
    shadow::check(root, edits)?;
    for e in edits {
        shadow::apply(root, e)?;
        match e {
            Edit::Write { path, .. } => println!("installed /{path}"),
            Edit::Remove { path } => println!("removed /{path}"),
        }
    }
    Ok(true)
}

/// The edits that remove descriptor `name` from /etc/sdme.
pub fn rm_edits(root: &Path, name: &str) -> Res<Vec<Edit>> {
    let e = entry(root, name)?;
    // The descriptor's own file: NAME.oci, or for a template's instance
    // NAME-INST its NAME@INST.oci (and NAME@.oci for the template's image).
    let file = e.file.clone().unwrap_or_default();
    let base = Path::new(&file)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or(name)
        .to_string();
    let main = format!("{ADMIN_DIR}/{base}");
    let dir = format!("{main}.d");
    let in_admin = file == format!("/{main}") && base.ends_with(".oci");
    if !in_admin {
        let shown = if file.is_empty() {
            "unreadable"
        } else {
            file.as_str()
        };
        return Err(Failure::new(
            EXIT_FAILURE,
            format!(
                "descriptor {name} is {shown}, not in /{ADMIN_DIR}: sdme rm removes only what an \
                 administrator installed there; mask it instead: ln -s /dev/null /{ADMIN_DIR}/{base}"
            ),
        ));
    }
    let mut edits = vec![Edit::Remove { path: main }];
    if root.join(&dir).exists() {
        edits.push(Edit::Remove { path: dir });
    }
    Ok(edits)
}

/// Stops what runs of `name` before its descriptor goes.
pub fn stop_units(sys: &Sys, e: &Entry) -> Res<()> {
    let mut units = Vec::new();
    if e.has_container() {
        units.push(nspawn_unit_name(&e.name));
    }
    if e.starts_on_demand() {
        units.push(connector_socket_name(&e.name));
    }
    if e.has_import() {
        units.push(import_unit_name(&e.name));
    }
    let states = sys.unit_states(&units, None)?;
    let active: Vec<String> = states
        .into_iter()
        .filter(|s| s.is_active() || s.active == "activating")
        .map(|s| s.unit)
        .collect();
    if active.is_empty() {
        return Ok(());
    }
    let mut a = args(&["stop", "--"]);
    a.extend(active.iter().cloned());
    let status = sys.run_no_stdin("systemctl", &a)?;
    if !status.success() {
        return Err(format!("systemctl stop {} failed ({status})", active.join(" ")).into());
    }
    println!("stopped {}", active.join(" "));
    Ok(())
}

// ---- reset ---------------------------------------------------------------

/// What a reset removes in `containers/NAME/`: the writable layers and the
/// record of the ids they are owned in (fresh layers are owned afresh;
/// `apps/` holds the other apps' layers, App=);
/// the user-namespace range (`userns`) and `generations` stay, and so do
/// the volumes (`volumes/NAME/`).
pub const RESET_REMOVES: [&str; 4] = ["root", "app", "apps", "owner"];

pub fn reset(sys: &Sys, root: &Path, store: &Store, name: &str) -> Res<u8> {
    let e = container(root, name)?;
    let nspawn = nspawn_unit_name(name);
    let socket = connector_socket_name(name);
    // Stopped first: what runs (or is starting) now, to start again after.
    let mut was = Vec::new();
    for s in sys.unit_states(&[nspawn.clone(), socket.clone()], None)? {
        let up = !matches!(s.active.as_str(), "inactive" | "failed" | "");
        if up && (s.unit == nspawn || e.starts_on_demand()) {
            was.push(s.unit);
        }
    }
    if !was.is_empty() {
        let mut a = args(&["stop", "--"]);
        a.extend(was.iter().cloned());
        let status = sys.run_no_stdin("systemctl", &a)?;
        if !status.success() {
            return Err(format!("systemctl stop {} failed ({status})", was.join(" ")).into());
        }
    }
    {
        // The store's exclusive lock (gc's): a launcher starting now waits
        // for it and then builds fresh layers; one that started before it
        // is seen running below, and nothing is removed under it.
        let _lock = store.lock(true)?;
        let now = state(sys, &nspawn)?;
        if !matches!(now.active.as_str(), "inactive" | "failed") {
            return Err(format!(
                "container {name} was started again during the reset ({}); nothing removed",
                now.active
            )
            .into());
        }
        let dir = store.containers_dir().join(name);
        // Each is renamed aside first, then removed: a tree the container
        // made hard to remove (an immutable file) is left aside and said,
        // and the next start still gets fresh layers, never half of one.
        let mut left = Vec::new();
        for part in RESET_REMOVES {
            let p = dir.join(part);
            if p.exists() || std::fs::symlink_metadata(&p).is_ok() {
                let aside = dir.join(format!(".reset.{}.{part}", std::process::id()));
                if sys.verbose {
                    eprintln!(
                        "+ mv {} {} && rm -rf {}",
                        crate::sys::shell_quote(&p.display().to_string()),
                        crate::sys::shell_quote(&aside.display().to_string()),
                        crate::sys::shell_quote(&aside.display().to_string())
                    );
                }
                std::fs::rename(&p, &aside).map_err(|e| format!("{}: {e}", p.display()))?;
                if let Err(e) = sdme_store::remove_tree(&aside) {
                    left.push(format!("{} ({e})", aside.display()));
                }
            }
        }
        for l in &left {
            eprintln!("sdme: reset {name}: could not remove all of {l}; remove it by hand");
        }
        println!(
            "reset {name}: removed its writable layers ({}/{{root,app}}); volumes kept ({})",
            dir.display(),
            store.volumes_dir().join(name).display()
        );
    }
    if !was.is_empty() {
        // Back as it was: the socket (which starts the container on first
        // use) or the container itself.
        let mut a = args(&["start", "--"]);
        a.extend(was.iter().cloned());
        let status = sys.run_no_stdin("systemctl", &a)?;
        if !status.success() {
            return Err(format!(
                "systemctl start {} failed after the reset ({status})",
                was.join(" ")
            )
            .into());
        }
        println!("started {}", was.join(" "));
    }
    Ok(0)
}
