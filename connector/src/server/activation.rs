//! Taking the listening sockets handed over by socket activation
//! (`sd_listen_fds(3)` semantics: `LISTEN_PID`, `LISTEN_FDS`, fds from 3).
//! A connector has one socket in its connector directory and, when it lets
//! host users call it, a second one they can reach (sdme-connector(1)).

use std::env;
use std::fmt;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// First descriptor passed by socket activation.
const LISTEN_FDS_START: i32 = 3;
/// More listening sockets than a connector ever has is a unit mistake.
const MAX_LISTENERS: i32 = 16;

#[derive(Debug)]
pub struct ActivationError(String);

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ActivationError {}

/// Takes fds 3.. as the listening sockets, checks each is a listening
/// stream socket, makes them close-on-exec and non-blocking (the server
/// polls them all, and a connection that vanishes between the poll and the
/// accept must not block the others), and removes the `LISTEN_*`
/// variables so that commands never believe they were socket-activated.
///
/// Must be called before any other thread exists (it changes the
/// environment).
pub fn take_listeners() -> Result<Vec<OwnedFd>, ActivationError> {
    let pid = env::var("LISTEN_PID").ok();
    let fds = env::var("LISTEN_FDS").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        env::remove_var(var);
    }
    let (pid, fds) = match (pid, fds) {
        (Some(pid), Some(fds)) => (pid, fds),
        _ => {
            return Err(ActivationError(
                "not socket-activated (LISTEN_PID/LISTEN_FDS unset): run from a .socket unit \
                 or under systemd-socket-activate -l PATH"
                    .into(),
            ))
        }
    };
    let own = rustix::process::getpid().as_raw_nonzero().get();
    if pid.trim().parse::<i32>().ok() != Some(own) {
        return Err(ActivationError(format!(
            "LISTEN_PID={pid} is not this process ({own}): the sockets were meant for another"
        )));
    }
    let count: i32 = fds
        .trim()
        .parse()
        .map_err(|_| ActivationError(format!("LISTEN_FDS={fds} is not a number")))?;
    if !(1..=MAX_LISTENERS).contains(&count) {
        return Err(ActivationError(format!(
            "LISTEN_FDS={count}: expected 1 to {MAX_LISTENERS} listening sockets"
        )));
    }
    let mut listeners = Vec::new();
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + count {
        // SAFETY: fds 3..3+LISTEN_FDS were handed to this process by the
        // service manager (LISTEN_PID matched); nothing else in this
        // process owns them, and each is borrowed here once.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        check_listening_stream(fd, borrowed)?;
        rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::CLOEXEC)
            .map_err(|e| ActivationError(format!("fd {fd}: cannot set close-on-exec: {e}")))?;
        let flags = rustix::fs::fcntl_getfl(borrowed)
            .map_err(|e| ActivationError(format!("fd {fd}: {e}")))?;
        rustix::fs::fcntl_setfl(borrowed, flags | rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| ActivationError(format!("fd {fd}: cannot make it non-blocking: {e}")))?;
        // SAFETY: as above; ownership of each fd is taken exactly once.
        listeners.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(listeners)
}

fn check_listening_stream(n: i32, fd: BorrowedFd<'_>) -> Result<(), ActivationError> {
    let kind = rustix::net::sockopt::socket_type(fd)
        .map_err(|e| ActivationError(format!("fd {n} is not a socket: {e}")))?;
    if kind != rustix::net::SocketType::STREAM {
        return Err(ActivationError(format!(
            "fd {n} is not a stream socket (ListenStream= is required)"
        )));
    }
    let listening = rustix::net::sockopt::socket_acceptconn(fd)
        .map_err(|e| ActivationError(format!("fd {n}: {e}")))?;
    if !listening {
        return Err(ActivationError(format!(
            "fd {n} is not listening (Accept=no is required: the server accepts itself)"
        )));
    }
    Ok(())
}
