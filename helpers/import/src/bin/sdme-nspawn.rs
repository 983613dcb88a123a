//! sdme-nspawn: assembles a container's root from the store and execs systemd-nspawn.

fn main() -> std::process::ExitCode {
    eprintln!("sdme-nspawn: not implemented yet");
    std::process::ExitCode::FAILURE
}
