//! sdme-import: pull, verify, unpack and lay out OCI images.

mod unpack;

use sdme_import::cli as pull;

use std::process::ExitCode;

const USAGE: &str = "usage: sdme-import unpack [OPTIONS] SOURCE DEST
       sdme-import pull --name=NAME [OPTIONS] SOURCE
       sdme-import gc [--store=DIR]
       sdme-import auto-update [--dry-run] [--image=NAME]... [--all] [--store=DIR]
See sdme-import(8).";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(command) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<_> = args.collect();
    let result = match command.to_str() {
        Some("unpack") => unpack::main(rest),
        Some("pull") => pull::main(rest),
        Some("gc") => pull::gc(rest),
        Some("auto-update") => sdme_import::autoupdate::main(rest),
        Some("--help" | "-h") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("--version") => {
            println!("sdme-import {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("sdme-import: unknown command {command:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sdme-import: {message}");
            ExitCode::FAILURE
        }
    }
}
