//! Starting the entrypoint for one request.

use crate::protocol::REQUEST_FDS;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// Runs `entrypoint` + `argv` with the client's descriptors as 0, 1, 2, in a
/// new session, in the server's own environment and working directory (the
/// command inherits them; nothing of the client's is used). With `tty` (the
/// client asked for it) a terminal on stdin becomes the command's
/// controlling terminal. No other descriptor of the server survives the
/// exec.
pub fn spawn(
    entrypoint: &[OsString],
    argv: &[String],
    stdio: [OwnedFd; REQUEST_FDS],
    tty: bool,
) -> io::Result<Child> {
    let (program, fixed_args) = entrypoint
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty entrypoint"))?;
    let [stdin, stdout, stderr] = stdio;
    let mut command = Command::new(program);
    command
        .args(fixed_args)
        .args(argv)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    // Read before the fork: the fallback of cloexec_from() needs it.
    let fd_limit = fd_limit();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes raw system calls (signal, setsid, ioctl, close_range, fcntl),
    // which are async-signal-safe; it allocates nothing and takes no locks.
    // std has already moved the client's descriptors onto 0/1/2 when it
    // runs.
    unsafe {
        command.pre_exec(move || {
            cloexec_from(3, fd_limit);
            enter_new_session(tty)
        });
    }
    command.spawn()
}

/// A session of its own makes the command's process group killable as a
/// whole; with `tty` the command also takes the client's terminal as its
/// controlling tty (which lets it use TIOCSTI on it, so only on request).
fn enter_new_session(tty: bool) -> io::Result<()> {
    reset_signal_dispositions();
    rustix::process::setsid()?;
    let stdin = rustix::stdio::stdin();
    if tty && rustix::termios::isatty(stdin) {
        // Fails (EPERM) when the terminal is already the controlling tty of
        // the client's own session: sdme does not steal it (that would break
        // the client shell's job control); the command then runs with the
        // terminal as plain stdio and the client forwards its signals.
        let _ = rustix::process::ioctl_tiocsctty(stdin);
    }
    Ok(())
}

/// Upper bound for the descriptor numbers the fallback of [`cloexec_from`]
/// walks: the soft `RLIMIT_NOFILE`, at most 2^20.
fn fd_limit() -> u32 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit
        .current
        .map_or(1 << 20, |n| n.min(1 << 20))
        .try_into()
        .unwrap_or(1 << 20)
}

/// Marks every descriptor from `first` on close-on-exec, in the child
/// between fork and exec: whatever another thread opened without
/// `O_CLOEXEC` (or the server inherited from its parent) does not reach the
/// command. Setting the flag, unlike closing, keeps std's own exec-error
/// pipe working. `close_range(CLOSE_RANGE_CLOEXEC)` needs Linux 5.11; older
/// kernels get one fcntl per descriptor number below `limit`.
fn cloexec_from(first: u32, limit: u32) {
    if close_range_cloexec(first).is_ok() {
        return;
    }
    for fd in first..limit {
        // SAFETY: fcntl(F_SETFD) on a plain descriptor number (FD_CLOEXEC
        // is the only descriptor flag); EBADF for numbers that are not open
        // is expected and ignored.
        unsafe {
            libc::fcntl(fd as libc::c_int, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`, which rustix does not
/// have.
fn close_range_cloexec(first: u32) -> io::Result<()> {
    // SAFETY: a raw system call with integer arguments only; it changes
    // descriptor flags and touches no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The command starts with every signal at its default action, as systemd
/// starts a service: a signal the server inherited as ignored (from nohup,
/// say) would otherwise stay ignored in the command, which a shell cannot
/// even trap, and forwarded signals would be lost. (std already empties the
/// signal mask and resets SIGPIPE.)
fn reset_signal_dispositions() {
    for sig in 1..32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: signal(2) is async-signal-safe, and setting SIG_DFL
        // installs no handler; this runs in the child between fork and exec.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// The status a shell would report: the exit code, or 128+N for signal N.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => crate::exit::SIGNAL_BASE + sig,
        (None, None) => crate::exit::PROTOCOL,
    }
}

/// Exit code and message for a command that could not be started.
pub fn spawn_failure(program: &OsString, err: &io::Error) -> (i32, String) {
    let code = if err.kind() == io::ErrorKind::NotFound {
        crate::exit::NOT_FOUND
    } else {
        crate::exit::CANNOT_EXECUTE
    };
    (
        code,
        format!("cannot execute {}: {err}", program.to_string_lossy()),
    )
}
