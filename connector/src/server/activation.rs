//! Taking the listening socket handed over by socket activation
//! (`sd_listen_fds(3)` semantics: `LISTEN_PID`, `LISTEN_FDS`, fd 3).

use std::env;
use std::fmt;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// First descriptor passed by socket activation.
const LISTEN_FDS_START: i32 = 3;

#[derive(Debug)]
pub struct ActivationError(String);

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ActivationError {}

/// Takes fd 3 as the listening socket, checks it is a listening unix-family
/// stream socket, makes it close-on-exec and removes the `LISTEN_*`
/// variables so that commands never believe they were socket-activated.
///
/// Must be called before any other thread exists (it changes the
/// environment).
pub fn take_listener() -> Result<OwnedFd, ActivationError> {
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
    if count != 1 {
        return Err(ActivationError(format!(
            "LISTEN_FDS={count}: expected exactly one listening socket"
        )));
    }
    // SAFETY: fd 3 was handed to this process by the service manager
    // (LISTEN_PID matched); nothing else in this process owns it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(LISTEN_FDS_START) };
    check_listening_stream(borrowed)?;
    rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| ActivationError(format!("fd 3: cannot set close-on-exec: {e}")))?;
    // SAFETY: as above; ownership is taken exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) })
}

fn check_listening_stream(fd: BorrowedFd<'_>) -> Result<(), ActivationError> {
    let kind = rustix::net::sockopt::socket_type(fd)
        .map_err(|e| ActivationError(format!("fd 3 is not a socket: {e}")))?;
    if kind != rustix::net::SocketType::STREAM {
        return Err(ActivationError(
            "fd 3 is not a stream socket (ListenStream= is required)".into(),
        ));
    }
    let listening = rustix::net::sockopt::socket_acceptconn(fd)
        .map_err(|e| ActivationError(format!("fd 3: {e}")))?;
    if !listening {
        return Err(ActivationError(
            "fd 3 is not listening (Accept=no is required: the server accepts itself)".into(),
        ));
    }
    Ok(())
}
