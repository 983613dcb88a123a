//! `sdme-generator NORMAL [EARLY LATE]`: the systemd generator. Also
//! `--dry-run` to print what it would write, `--root=DIR` to read the search
//! path under another root. See sdme-generator(8).

mod log;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
Usage: sdme-generator [OPTIONS] NORMAL-DIR [EARLY-DIR LATE-DIR]
       sdme-generator --dry-run [OPTIONS]

Generates sdme-import@NAME.service units and systemd-nspawn@NAME.service
drop-ins from the .oci descriptors in /etc/sdme, /run/sdme and /usr/lib/sdme.
Only NORMAL-DIR is written to.

Options:
      --root=DIR   read the search path under DIR instead of /
      --dry-run    print every file it would write to stdout, write nothing
      --version    print the version
  -h, --help       print this help
";

struct Args {
    root: PathBuf,
    dry_run: bool,
    dirs: Vec<PathBuf>,
}

enum Parsed {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args() -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut args = Args {
        root: PathBuf::from("/"),
        dry_run: false,
        dirs: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("root") => args.root = PathBuf::from(parser.value().map_err(|e| e.to_string())?),
            Long("dry-run") => args.dry_run = true,
            Long("version") => {
                println!("sdme-generator {}", env!("CARGO_PKG_VERSION"));
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            Value(dir) => args.dirs.push(PathBuf::from(dir)),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    match (args.dirs.len(), args.dry_run) {
        (0, true) | (1, _) | (3, _) => Ok(Parsed::Run(args)),
        (0, false) => Err("missing output directory (or use --dry-run)".into()),
        (n, _) => Err(format!("expected 1 or 3 output directories, got {n}")),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Exit(code)) => return code,
        Err(message) => {
            eprintln!("sdme-generator: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut log = log::Log::choose(args.dry_run, args.dirs.len() == 3);
    let generation = sdme_generator::generate(&args.root);
    let mut failed = !generation.diagnostics.is_empty();
    for diagnostic in &generation.diagnostics {
        log.error(&diagnostic.to_string());
    }
    if args.dry_run {
        if let Err(e) = output::print_tree(&generation.tree, &mut std::io::stdout().lock()) {
            log.error(&format!("cannot write to stdout: {e}"));
            failed = true;
        }
    } else if let Some(normal) = args.dirs.first() {
        for message in output::write_tree(normal, &generation.tree) {
            log.error(&message);
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
