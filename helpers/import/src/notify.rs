//! Progress: `STATUS=` to the service manager (`sd_notify`) and a line on
//! stderr (the journal under systemd).

use rustix::net::{
    sendto, socket_with, AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::os::fd::OwnedFd;

pub struct Progress {
    socket: Option<(OwnedFd, SocketAddrUnix)>,
    quiet: bool,
}

impl Progress {
    /// Connects to `$NOTIFY_SOCKET` if set (a path, or `@name` for the abstract namespace).
    pub fn from_env() -> Progress {
        Progress::to_socket(std::env::var("NOTIFY_SOCKET").ok())
    }

    fn to_socket(notify_socket: Option<String>) -> Progress {
        let socket = notify_socket.and_then(|path| {
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddrUnix::new_abstract_name(name.as_bytes()).ok()?,
                None => SocketAddrUnix::new(path.as_str()).ok()?,
            };
            // Close-on-exec: the import runs other programs (systemd-nspawn
            // for a base's systemd install), which must not inherit it.
            let fd = socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                SocketFlags::CLOEXEC,
                None,
            )
            .ok()?;
            Some((fd, addr))
        });
        Progress {
            socket,
            quiet: false,
        }
    }

    /// Only `STATUS=` (for fast paths that should not log).
    pub fn quiet(mut self) -> Progress {
        self.quiet = true;
        self
    }

    fn send(&self, message: &str) {
        if let Some((fd, addr)) = &self.socket {
            let _ = sendto(fd, message.as_bytes(), SendFlags::empty(), addr);
        }
    }

    /// Sets the unit's status line and logs it.
    pub fn status(&self, text: &str) {
        let one_line = text.replace('\n', " ");
        self.send(&format!("STATUS={one_line}"));
        if !self.quiet {
            eprintln!("{one_line}");
        }
    }

    /// Logs without changing the status line.
    pub fn log(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// `34 MB`, `1.2 GB`, for status lines.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 || v >= 10.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reaches_the_notify_socket() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("notify");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let p = Progress::to_socket(Some(path.to_str().unwrap().to_string())).quiet();
        let (fd, _) = p.socket.as_ref().unwrap();
        let flags = rustix::io::fcntl_getfd(fd).unwrap();
        assert!(
            flags.contains(rustix::io::FdFlags::CLOEXEC),
            "the notify socket leaks into children"
        );
        p.status("Fetching layer 2/5 (34 MB)");
        let mut buf = [0u8; 128];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=Fetching layer 2/5 (34 MB)");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(34_000_000), "34 MB");
        assert_eq!(human_bytes(1_234_000_000), "1.2 GB");
    }
}
