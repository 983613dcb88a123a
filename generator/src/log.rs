//! Where errors go. Under systemd a generator's stderr is not reliably
//! logged, so errors go to the kernel log (`/dev/kmsg`), which the journal
//! picks up; run by hand they go to stderr.
//!
//! The rule (also in sdme-generator(8)): `SYSTEMD_LOG_TARGET=console` or
//! `stderr` forces stderr, `kmsg` (or any journal target) forces the kernel
//! log; otherwise the kernel log is used when run by systemd, which is
//! recognised by `$SYSTEMD_SCOPE` being set or by three output directories
//! on the command line, and never with `--dry-run`. If `/dev/kmsg` cannot
//! be opened (a container has none), `/dev/console` is used, as systemd's
//! own generators do: PID 1 points a generator's stderr at /dev/null, so
//! stderr would lose the message. Failing that, stderr.

use std::fs::File;
use std::io::Write;

pub enum Log {
    Kmsg(File),
    Console(File),
    Stderr,
}

impl Log {
    pub fn choose(dry_run: bool, three_dirs: bool) -> Log {
        let target = std::env::var("SYSTEMD_LOG_TARGET").unwrap_or_default();
        let kmsg = match target.as_str() {
            "console" | "stderr" => false,
            "kmsg" | "journal" | "journal-or-kmsg" | "syslog" | "syslog-or-kmsg" => true,
            _ => !dry_run && (three_dirs || std::env::var_os("SYSTEMD_SCOPE").is_some()),
        };
        if kmsg {
            let open = |path| std::fs::OpenOptions::new().write(true).open(path);
            if let Ok(file) = open("/dev/kmsg") {
                return Log::Kmsg(file);
            }
            if let Ok(file) = open("/dev/console") {
                return Log::Console(file);
            }
        }
        Log::Stderr
    }

    /// Logs one error. Messages never contain newlines (diagnostics escape
    /// what they quote); each is one write, so one kernel log record.
    pub fn error(&mut self, message: &str) {
        let message = message.replace('\n', " ");
        match self {
            Log::Kmsg(file) => {
                let record = format!("<3>sdme-generator[{}]: {message}\n", std::process::id());
                if file.write_all(record.as_bytes()).is_err() {
                    eprintln!("sdme-generator: {message}");
                }
            }
            Log::Console(file) => {
                let line = format!("sdme-generator: {message}\n");
                if file.write_all(line.as_bytes()).is_err() {
                    eprintln!("sdme-generator: {message}");
                }
            }
            Log::Stderr => eprintln!("sdme-generator: {message}"),
        }
    }
}
