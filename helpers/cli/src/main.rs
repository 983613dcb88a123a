//! sdme-cli: `sdme`, the administrator's command line. Today: `sdme
//! connector add|ls|rm`, which edit `Connector=` drop-ins and reload systemd.
//!
//! It reads descriptors only through the generator's library (the one
//! parser) and changes the system only through systemd's own tools; it
//! must never touch the store.

mod admin;

use admin::Change;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: sdme [--root=DIR] [--no-reload] connector add CONTAINER NAME
       sdme [--root=DIR] [--no-reload] connector rm CONTAINER NAME
       sdme [--root=DIR] connector ls CONTAINER";

struct Args {
    root: Option<PathBuf>,
    reload: bool,
    words: Vec<String>,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = Args {
        root: None,
        reload: true,
        words: Vec::new(),
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("root") => out.root = Some(parser.value().map_err(|e| e.to_string())?.into()),
            Long("no-reload") => out.reload = false,
            Long("help") | Short('h') => return Ok(None),
            Value(v) => out
                .words
                .push(v.into_string().map_err(|v| format!("{v:?}: not UTF-8"))?),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Some(out))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&e),
    };
    // With --root the running systemd does not read that tree: no reload.
    let reload = args.reload && args.root.is_none();
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["connector", "add", container, name] => admin::add(&root, container, name).map(report),
        ["connector", "rm", container, name] => admin::remove(&root, container, name).map(report),
        ["connector", "ls", container] => {
            admin::configured_connectors(&root, container).map(|list| {
                for c in list {
                    println!("{}\t{}:{}", c.name, c.file, c.line);
                }
                false
            })
        }
        _ => return usage_error("unknown command"),
    };
    match result {
        Ok(changed) => {
            if changed && reload {
                return daemon_reload();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sdme: {e}");
            ExitCode::FAILURE
        }
    }
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

fn daemon_reload() -> ExitCode {
    match Command::new("systemctl").arg("daemon-reload").status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("sdme: systemctl daemon-reload failed ({s}); run it by hand");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sdme: cannot run systemctl daemon-reload: {e}; run it by hand");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(e: &str) -> ExitCode {
    eprintln!("sdme: {e}\n{USAGE}");
    ExitCode::from(64)
}
