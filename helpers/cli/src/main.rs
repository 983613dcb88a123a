//! sdme-cli: `sdme`, the administrator's command line: lists descriptors
//! and what systemd and the store say about them (`ls`, `status`,
//! `images`), reads and enters running containers (`logs`, `exec`), runs
//! imports (`pull`), edits descriptors (`install`, `rm`, `connector`) and
//! resets a container's writable layers (`reset`). It is a thin layer over
//! systemd's tools (systemctl, journalctl, systemd-run, busctl,
//! machinectl), each printed with `-v`.
//!
//! It reads descriptors only through the generator's library (the one
//! parser), and checks every descriptor edit with the generator's own rules
//! before writing it (`shadow.rs`). It reads the store's records through
//! `sdme-store` and never writes the store, except `sdme reset`, which
//! removes a stopped container's writable layers under the store's
//! exclusive lock. It must never write units, images or layers.

mod admin;
mod catalog;
mod ops;
mod shadow;
mod sys;

use admin::Change;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use sys::{Failure, Res, Sys, EXIT_FAILURE, EXIT_USAGE};

const USAGE: &str = "usage: sdme [-v] [--root=DIR] [--no-reload] COMMAND
  ls [--json]                       every descriptor, its units, image and health
  status NAME                       the facts and systemctl status of its units
  logs NAME [-f] [-n N] [--app=APP] the app's journal inside the container
  exec [-i] [-t] [--app=APP] NAME [--] CMD...
                                    run CMD in the app's root, as the app
  images [--json]                   the store's image generations
  pull NAME                         run the import and follow it
  start|stop|restart NAME           systemctl start|stop|restart its container
  install [--replace] FILE|DIR...   copy descriptors into /etc/sdme (checked first)
  rm NAME                           stop it, remove its descriptor from /etc/sdme
  reset NAME                        drop the container's writable layers, keep volumes
  connector add CONTAINER NAME      make CONTAINER a client of connector NAME
  connector rm CONTAINER NAME
  connector ls CONTAINER";

/// The command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub verbose: bool,
    pub root: Option<PathBuf>,
    pub reload: bool,
    pub cmd: Cmd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Help,
    Ls {
        json: bool,
    },
    Status {
        name: String,
    },
    Logs {
        name: String,
        follow: bool,
        lines: Option<String>,
        /// `--app=APP`: another app of the container (`App=`), not the first.
        app: Option<String>,
    },
    Exec {
        name: String,
        mode: ops::ExecMode,
        app: Option<String>,
        command: Vec<String>,
    },
    Images {
        json: bool,
    },
    Pull {
        name: String,
    },
    /// `start`, `stop` or `restart` of the container's unit.
    Unit {
        verb: String,
        name: String,
    },
    Install {
        replace: bool,
        paths: Vec<PathBuf>,
    },
    Rm {
        name: String,
    },
    Reset {
        name: String,
    },
    ConnectorAdd {
        container: String,
        name: String,
    },
    ConnectorRm {
        container: String,
        name: String,
    },
    ConnectorLs {
        container: String,
    },
}

fn utf8(v: OsString) -> Result<String, String> {
    v.into_string().map_err(|v| format!("{v:?}: not UTF-8"))
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut out = Args {
        verbose: false,
        root: None,
        reload: true,
        cmd: Cmd::Help,
    };
    let e = |e: lexopt::Error| e.to_string();
    // Global options, then the command word.
    let word = loop {
        match p.next().map_err(e)? {
            None => return Ok(out),
            Some(Short('v') | Long("verbose")) => out.verbose = true,
            Some(Long("root")) => out.root = Some(p.value().map_err(e)?.into()),
            Some(Long("no-reload")) => out.reload = false,
            Some(Short('h') | Long("help")) => return Ok(out),
            Some(Value(v)) => break utf8(v)?,
            Some(other) => return Err(other.unexpected().to_string()),
        }
    };
    let mut json = false;
    let mut follow = false;
    let mut lines = None;
    let mut replace = false;
    let mut mode = ops::ExecMode::default();
    let mut app = None;
    let mut words: Vec<String> = Vec::new();
    let mut command: Vec<String> = Vec::new();
    while let Some(arg) = p.next().map_err(e)? {
        match arg {
            Short('v') | Long("verbose") => out.verbose = true,
            Short('h') | Long("help") => return Ok(out),
            Long("json") if matches!(word.as_str(), "ls" | "images") => json = true,
            Short('f') | Long("follow") if word == "logs" => follow = true,
            Short('n') | Long("lines") if word == "logs" => {
                let n = utf8(p.value().map_err(e)?)?;
                if n != "all" && n.parse::<u64>().is_err() {
                    return Err(format!("--lines={n}: not a number (or \"all\")"));
                }
                lines = Some(n);
            }
            Long("replace") if word == "install" => replace = true,
            Short('i') | Long("interactive") if word == "exec" => mode.interactive = true,
            Short('t') | Long("tty") if word == "exec" => mode.tty = true,
            Long("app") if matches!(word.as_str(), "logs" | "exec") => {
                let a = utf8(p.value().map_err(e)?)?;
                sdme_store::check_name(&a).map_err(|e| format!("--app={a}: {e}"))?;
                app = Some(a);
            }
            Value(v) => {
                words.push(utf8(v)?);
                if word == "exec" {
                    // Everything after the name is the command, options too.
                    let mut rest: Vec<OsString> = p.raw_args().map_err(e)?.collect();
                    if rest.first().is_some_and(|a| a == "--") {
                        rest.remove(0);
                    }
                    command = rest.into_iter().map(utf8).collect::<Result<_, _>>()?;
                    break;
                }
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let one = |what: &str| -> Result<String, String> {
        match words.as_slice() {
            [n] => Ok(n.clone()),
            [] => Err(format!("{word}: missing {what}")),
            _ => Err(format!("{word}: one {what} only")),
        }
    };
    out.cmd = match word.as_str() {
        "ls" | "list" if words.is_empty() => Cmd::Ls { json },
        "status" => Cmd::Status { name: one("NAME")? },
        "logs" => Cmd::Logs {
            name: one("NAME")?,
            follow,
            lines,
            app,
        },
        "exec" => {
            let name = one("NAME")?;
            if command.is_empty() {
                return Err("exec: missing the command to run".into());
            }
            Cmd::Exec {
                name,
                mode,
                app,
                command,
            }
        }
        "images" if words.is_empty() => Cmd::Images { json },
        "pull" => Cmd::Pull { name: one("NAME")? },
        "start" | "stop" | "restart" => Cmd::Unit {
            verb: word.clone(),
            name: one("NAME")?,
        },
        "install" if !words.is_empty() => Cmd::Install {
            replace,
            paths: words.iter().map(PathBuf::from).collect(),
        },
        "install" => return Err("install: missing FILE or DIR".into()),
        "rm" | "remove" => Cmd::Rm { name: one("NAME")? },
        "reset" => Cmd::Reset { name: one("NAME")? },
        "connector" => match words.as_slice() {
            [w, c, n] if w == "add" => Cmd::ConnectorAdd {
                container: c.clone(),
                name: n.clone(),
            },
            [w, c, n] if w == "rm" => Cmd::ConnectorRm {
                container: c.clone(),
                name: n.clone(),
            },
            [w, c] if w == "ls" => Cmd::ConnectorLs {
                container: c.clone(),
            },
            _ => {
                return Err(
                    "connector: add CONTAINER NAME, rm CONTAINER NAME or ls CONTAINER".into(),
                )
            }
        },
        "ls" | "list" | "images" => return Err(format!("{word}: takes no arguments")),
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sdme: {e}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("sdme: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(args: &Args) -> Res<u8> {
    let sys = Sys {
        verbose: args.verbose,
    };
    // With --root the running systemd does not read that tree: no reload,
    // and nothing about units, the store or containers.
    let reload = args.reload && args.root.is_none();
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let store = sdme_store::Store::new(sdme_store::DEFAULT_STORE);
    let system = || -> Res<()> {
        match args.root {
            Some(_) => Err(Failure::new(
                EXIT_USAGE,
                "this command works on the running system, not with --root",
            )),
            None => Ok(()),
        }
    };
    let after_edit = |changed: bool| -> Res<u8> {
        if changed && reload {
            sys.daemon_reload()?;
        }
        Ok(0)
    };
    match &args.cmd {
        Cmd::Help => {
            println!("{USAGE}");
            Ok(0)
        }
        Cmd::Ls { json } => ls(&sys, &root, &store, *json, args.root.is_none()),
        Cmd::Status { name } => {
            system()?;
            ops::status(&sys, &root, &store, name)
        }
        Cmd::Logs {
            name,
            follow,
            lines,
            app,
        } => {
            system()?;
            let unit = ops::app_unit(app.as_deref());
            ops::logs(
                &sys,
                &root,
                &store,
                name,
                *follow,
                lines.as_deref(),
                app.as_ref().map(|_| unit.as_str()),
            )
        }
        Cmd::Exec {
            name,
            mode,
            app,
            command,
        } => {
            system()?;
            ops::exec(
                &sys,
                &root,
                name,
                *mode,
                &ops::app_unit(app.as_deref()),
                command,
            )
        }
        Cmd::Images { json } => {
            system()?;
            images(&store, *json)
        }
        Cmd::Pull { name } => {
            system()?;
            ops::pull(&sys, &root, name)
        }
        Cmd::Unit { verb, name } => {
            system()?;
            ops::unit_verb(&sys, &root, verb, name)
        }
        Cmd::Install { replace, paths } => {
            let edits = ops::install_edits(&root, paths, *replace)?;
            let changed = ops::commit(&root, &edits)?;
            after_edit(changed)
        }
        Cmd::Rm { name } => {
            let edits = ops::rm_edits(&root, name)?;
            // Checked before anything stops: a descriptor others need stays.
            shadow::check(&root, &edits)?;
            if args.root.is_none() {
                let e = ops::entry(&root, name)?;
                ops::stop_units(&sys, &e)?;
            }
            let changed = ops::commit(&root, &edits)?;
            if changed {
                println!(
                    "the store keeps {name}'s image, writable layers and volumes (sdme-import gc \
                     removes only what no images/NAME link and no container uses)"
                );
            }
            after_edit(changed)
        }
        Cmd::Reset { name } => {
            system()?;
            ops::reset(&sys, &root, &store, name)
        }
        Cmd::ConnectorAdd { container, name } => {
            let changed = report(admin::add(&root, container, name)?);
            after_edit(changed)
        }
        Cmd::ConnectorRm { container, name } => {
            let changed = report(admin::remove(&root, container, name)?);
            after_edit(changed)
        }
        Cmd::ConnectorLs { container } => {
            for c in admin::configured_connectors(&root, container)? {
                println!("{}\t{}:{}", c.name, c.file, c.line);
            }
            Ok(0)
        }
    }
}

fn ls(
    sys: &Sys,
    root: &std::path::Path,
    store: &sdme_store::Store,
    json: bool,
    live: bool,
) -> Res<u8> {
    let entries = catalog::entries(root);
    let list: Vec<&catalog::Entry> = entries.values().collect();
    let facts = if live {
        catalog::facts(sys, store, &list)?
    } else {
        vec![catalog::Facts::default(); list.len()]
    };
    if json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .zip(&facts)
            .map(|(e, f)| catalog::entry_json(e, f))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
    } else {
        let rows: Vec<(&catalog::Entry, catalog::Facts)> = list.into_iter().zip(facts).collect();
        print!("{}", catalog::table(&rows));
    }
    Ok(0)
}

fn images(store: &sdme_store::Store, json: bool) -> Res<u8> {
    let gens = catalog::generations(store).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
    if json {
        let v: Vec<serde_json::Value> = gens.iter().map(catalog::generation_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", catalog::images_table(&gens));
    }
    Ok(0)
}

/// Prints what happened; true when a file changed.
fn report(change: Change) -> bool {
    match change {
        Change::Written(p) => {
            println!("wrote {} (restart the container to apply)", p.display());
            true
        }
        Change::AlreadyThere(p) => {
            println!("already configured: {}", p.display());
            false
        }
        Change::Removed(p) => {
            println!("removed {} (restart the container to apply)", p.display());
            true
        }
    }
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
