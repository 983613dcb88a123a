//! sdme-nspawn: assembles a container's root from the store and execs systemd-nspawn.

use sdme_launcher::{self as launcher, options};
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match options::parse(std::env::args_os().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sdme-nspawn: {e}\n{}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    let launcher::Prepared {
        args,
        userns,
        extend_start,
        fds,
        join_netns,
    } = match launcher::prepare(&opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sdme-nspawn: {e}");
            return ExitCode::FAILURE;
        }
    };
    let binary = launcher::nspawn_binary();
    if opts.dry_run {
        if let Some(plan) = &userns {
            for m in &plan.mounts {
                println!(
                    "# idmapped {}:{} for ids {}:{}",
                    m.source.display(),
                    m.target.display(),
                    plan.range.base,
                    plan.range.size
                );
            }
        }
        let line: Vec<String> = std::iter::once(binary.as_os_str())
            .chain(args.iter().map(|a| a.as_os_str()))
            .map(launcher::shell_quote)
            .collect();
        println!("{}", line.join(" "));
        return ExitCode::SUCCESS;
    }
    if let Some(plan) = &userns {
        if let Err(e) = launcher::userns::apply(plan) {
            eprintln!("sdme-nspawn: {e}");
            return ExitCode::FAILURE;
        }
    }
    launcher::limits::warn();
    if let Some(secs) = extend_start {
        launcher::extend_start_timeout(secs);
    }
    // Last, after every mount: what follows runs in the pod's network.
    if let Some(fd) = &join_netns {
        if let Err(e) = launcher::network::join_netns(fd) {
            eprintln!("sdme-nspawn: {e}");
            return ExitCode::FAILURE;
        }
    }
    // The credentials' memfds stay open across this exec only.
    if let Err(e) = launcher::credentials::inherit(&fds) {
        eprintln!("sdme-nspawn: {e}");
        return ExitCode::FAILURE;
    }
    let e = std::process::Command::new(&binary).args(&args).exec();
    drop(fds);
    eprintln!("sdme-nspawn: executing {}: {e}", binary.to_string_lossy());
    ExitCode::FAILURE
}
