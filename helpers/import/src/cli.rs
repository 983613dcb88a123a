//! `sdme-import pull` and `sdme-import gc`: command lines.

use crate::classify::Mode;
use crate::importer::{pull, PullPolicy, PullRequest};
use sdme_registry::{Notice, Platform, RegistriesConfFiles, SourceOptions};
use sdme_store::{Store, DEFAULT_STORE};
use std::ffi::OsString;
use std::path::PathBuf;

fn yes_no(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(format!("invalid {name}={v:?}: expected yes or no")),
    }
}

/// `--tls-verify=BOOL`: either way it is explicit, so a yes also overrides
/// registries.conf's `insecure = true` (as podman's flag does).
pub fn set_tls_verify(opts: &mut SourceOptions, v: &str) -> Result<(), String> {
    opts.tls_verify = yes_no("--tls-verify", v)?;
    opts.tls_verify_pinned = true;
    Ok(())
}

/// `--registries-conf=yes|no|FILE`.
pub fn set_registries_conf(opts: &mut SourceOptions, v: &str) -> Result<(), String> {
    opts.registries_conf = match yes_no("--registries-conf", v) {
        Ok(true) => RegistriesConfFiles::System,
        Ok(false) => RegistriesConfFiles::Off,
        Err(_) if v.starts_with('/') => RegistriesConfFiles::File(PathBuf::from(v)),
        Err(_) => {
            return Err(format!(
                "invalid --registries-conf={v:?}: expected yes, no or an absolute path"
            ))
        }
    };
    Ok(())
}

/// `--retries=N`: retries of one request after a transport error, 429 or 5xx.
pub fn set_retries(opts: &mut SourceOptions, v: &str) -> Result<(), String> {
    match v.parse::<u32>() {
        Ok(n) if n <= 100 && v.bytes().all(|b| b.is_ascii_digit()) => {
            opts.retries = Some(n);
            Ok(())
        }
        _ => Err(format!(
            "invalid --retries={v:?}: expected a number from 0 to 100"
        )),
    }
}

/// Retries and abandoned mirrors, told on stderr (the journal under systemd).
pub fn stderr_notice() -> Notice {
    Notice(std::sync::Arc::new(|line: &str| {
        eprintln!("sdme-import: {line}")
    }))
}

fn string(v: OsString, name: &str) -> Result<String, String> {
    v.into_string()
        .map_err(|v| format!("{name}: {v:?} is not UTF-8"))
}

pub fn main(args: Vec<OsString>) -> Result<(), String> {
    let words: Vec<String> = args
        .iter()
        .map(|a| string(a.clone(), "argument"))
        .collect::<Result<_, _>>()?;
    let (req, auto_update) = parse_pull(args)?;
    pull(&req)?;
    // What auto-update will pull again: this very command line (its
    // `--pull=` replaced), kept only while the descriptor opts in.
    let kept = auto_update.then_some(words.as_slice());
    crate::autoupdate::remember(&req.store, &req.name, kept)
}

/// `sdme-import pull`'s command line: the request, and whether
/// `--auto-update=registry` was given.
pub fn parse_pull(args: Vec<OsString>) -> Result<(PullRequest, bool), String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut auto_update = false;
    let mut name = None;
    let mut base = None;
    let mut mode_text = "auto".to_string();
    let mut policy = "missing".to_string();
    let mut store = PathBuf::from(DEFAULT_STORE);
    let mut opts = SourceOptions::new();
    opts.notice = Some(stderr_notice());
    let mut source = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("name") => {
                name = Some(string(
                    parser.value().map_err(|e| e.to_string())?,
                    "--name",
                )?)
            }
            Long("base") => {
                base = Some(string(
                    parser.value().map_err(|e| e.to_string())?,
                    "--base",
                )?)
                .filter(|b| !b.is_empty())
            }
            Long("mode") => {
                mode_text = string(parser.value().map_err(|e| e.to_string())?, "--mode")?
            }
            Long("pull") => policy = string(parser.value().map_err(|e| e.to_string())?, "--pull")?,
            Long("platform") => {
                let p = string(parser.value().map_err(|e| e.to_string())?, "--platform")?;
                opts.platform = Some(Platform::parse(&p).map_err(|e| e.to_string())?);
            }
            Long("tls-verify") => set_tls_verify(
                &mut opts,
                &string(parser.value().map_err(|e| e.to_string())?, "--tls-verify")?,
            )?,
            Long("registries-conf") => set_registries_conf(
                &mut opts,
                &string(
                    parser.value().map_err(|e| e.to_string())?,
                    "--registries-conf",
                )?,
            )?,
            Long("retries") => set_retries(
                &mut opts,
                &string(parser.value().map_err(|e| e.to_string())?, "--retries")?,
            )?,
            Long("cert-dir") => {
                opts.cert_dir = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?))
            }
            Long("authfile") => {
                opts.authfile = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?))
            }
            Long("store") => store = PathBuf::from(parser.value().map_err(|e| e.to_string())?),
            Long("auto-update") => {
                auto_update =
                    match string(parser.value().map_err(|e| e.to_string())?, "--auto-update")?
                        .as_str()
                    {
                        "registry" => true,
                        "no" => false,
                        v => {
                            return Err(format!(
                                "invalid --auto-update={v:?}: expected registry or no"
                            ))
                        }
                    }
            }
            Value(v) if source.is_none() => source = Some(string(v, "SOURCE")?),
            other => return Err(format!("pull: {}", other.unexpected())),
        }
    }
    let name = name.ok_or("pull: --name=NAME is required")?;
    let source = source.ok_or("pull: SOURCE is required")?;
    let req = PullRequest {
        name,
        base,
        mode: Mode::parse(&mode_text)?,
        mode_text,
        policy: PullPolicy::parse(&policy)?,
        source,
        source_options: opts,
        store: Store::new(store),
    };
    Ok((req, auto_update))
}

pub fn gc(args: Vec<OsString>) -> Result<(), String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut store = PathBuf::from(DEFAULT_STORE);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("store") => store = PathBuf::from(parser.value().map_err(|e| e.to_string())?),
            other => return Err(format!("gc: {}", other.unexpected())),
        }
    }
    let report = sdme_store::gc::gc(&Store::new(store))?;
    for r in &report.removed {
        println!("removed {r}");
    }
    println!(
        "freed {} ({} entries)",
        crate::notify::human_bytes(report.freed),
        report.removed.len()
    );
    // Fail closed, and say so: what gc cannot read it keeps, and the run
    // fails so that the unit (sdme-gc.service) shows it.
    for p in &report.problems {
        eprintln!("sdme-import: gc: {p}");
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "gc: {} unreadable store entries (above): kept them and what they may use; repair or remove them by hand",
            report.problems.len()
        ))
    }
}
