//! `sdme-connector-server [OPTIONS] ENTRYPOINT [ARGS...]`: runs the
//! entrypoint for each client of a socket-activated connector socket.

use sdme_connector::exit;
use sdme_connector::server::{self, activation, options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match options::parse(std::env::args_os().skip(1)) {
        Ok(options::Parsed::Run(o)) => o,
        Ok(options::Parsed::Help) => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(options::Parsed::Version) => {
            println!("sdme-connector-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sdme-connector-server: {e}\n{}", options::USAGE);
            return ExitCode::from(exit::USAGE as u8);
        }
    };
    // Before any thread exists: this edits the environment.
    let listeners = match activation::take_listeners() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sdme-connector-server: {e}");
            return ExitCode::from(exit::UNAVAILABLE as u8);
        }
    };
    // A second socket is the one host users reach (sdme-connector(1)):
    // without an allow list nothing would check who calls through it.
    if listeners.len() > 1 && !opts.access.restricted() {
        eprintln!(
            "sdme-connector-server: {} listening sockets but no --allow-uid/--allow-gid: \
             refusing to serve sockets whose callers nothing checks",
            listeners.len()
        );
        return ExitCode::from(exit::USAGE as u8);
    }
    let callers = if opts.access.restricted() {
        format!(
            "uid 0, uids {:?}, gids {:?}",
            opts.access.uids, opts.access.gids
        )
    } else {
        "whoever can reach the socket".into()
    };
    eprintln!(
        "serving {:?} on {} socket(s) (idle timeout: {}; request timeout: {} s; callers: {callers}; \
         at most {} sessions per uid)",
        opts.entrypoint,
        listeners.len(),
        opts.idle_timeout
            .map_or("never".into(), |t| format!("{} s", t.as_secs_f64())),
        opts.request_timeout.as_secs_f64(),
        opts.max_per_uid,
    );
    match server::serve(listeners, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sdme-connector-server: {e}");
            ExitCode::FAILURE
        }
    }
}
