//! sdme-netns: runs a command in a machine's network namespace (the port
//! proxies the generator emits; see sdme-nspawn(8)).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", sdme_launcher::network::NETNS_USAGE);
        return ExitCode::SUCCESS;
    }
    let e = sdme_launcher::network::exec_in_netns(args);
    eprintln!("sdme-netns: {e}");
    ExitCode::FAILURE
}
