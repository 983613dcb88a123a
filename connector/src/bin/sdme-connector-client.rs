//! `sdme-connector-client`: invoked through a symlink
//! `<connector-dir>/<command>`, or explicitly with `--name`/`--connector-dir`;
//! exits with the exit status of the command the server ran.

use sdme_connector::client::{self, locate::Lookup};
use sdme_connector::exit;
use std::process::exit as process_exit;

fn main() {
    let path_var = std::env::var_os("PATH");
    let root = std::env::var_os(client::locate::CONNECTOR_DIR_ENV);
    let cwd = std::env::current_dir().ok();
    let lookup = Lookup {
        path_var: path_var.as_deref(),
        connector_dir: root.as_deref(),
        cwd: cwd.as_deref(),
    };
    let invocation = match client::parse(std::env::args_os().collect(), &lookup) {
        Ok(client::Parsed::Run(mut i)) => {
            i.tty |= client::tty_opt_in(std::env::var_os(client::TTY_ENV).as_deref());
            i
        }
        Ok(client::Parsed::Help) => {
            println!("{}", client::USAGE);
            return;
        }
        Ok(client::Parsed::Version) => {
            println!("sdme-connector-client {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Err(e) => {
            eprintln!("sdme-connector-client: {e}\n{}", client::USAGE);
            process_exit(exit::USAGE);
        }
    };
    match client::run(invocation) {
        Ok(code) => process_exit(code),
        Err(f) => {
            eprintln!("{}", f.message);
            process_exit(f.code);
        }
    }
}
