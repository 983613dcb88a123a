//! One connection: read the request, run the command, watch the client,
//! answer with the exit status.

use super::options::Options;
use super::peer::Peer;
use super::spawn;
use crate::protocol::{self, Reply};
use crate::transport::{self, RecvError};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{kill_process_group, pidfd_open, Pid, PidfdFlags, Signal};
use std::os::fd::OwnedFd;
use std::process::Child;
use std::time::{Duration, Instant};

/// Serves one admitted connection. Never panics on client input; every
/// problem is logged to stderr (the journal) with the connection's id. The
/// whole request must have arrived by `deadline`. The client's arguments
/// are never logged (they may hold secrets), only how many there are.
pub fn serve_connection(id: u64, conn: OwnedFd, peer: Peer, deadline: Instant, opts: &Options) {
    let peer = peer.describe();
    let received = match transport::recv_request(&conn, Some(deadline)) {
        Ok(r) => r,
        Err(RecvError::Closed) => {
            eprintln!("[{id}] {peer}: closed without a request");
            return;
        }
        Err(RecvError::Deadline { got }) => {
            let secs = opts.request_timeout.as_secs_f64();
            eprintln!(
                "[{id}] {peer}: dropped: request not complete within {secs} s \
                 ({got} bytes received; --request-timeout)"
            );
            reply(
                id,
                &conn,
                crate::exit::PROTOCOL,
                Some(format!("request rejected: not complete within {secs} s")),
            );
            return;
        }
        Err(e) => {
            eprintln!("[{id}] {peer}: rejected request: {e}");
            reply(
                id,
                &conn,
                crate::exit::PROTOCOL,
                Some(format!("request rejected: {e}")),
            );
            return;
        }
    };
    let request = received.request;
    eprintln!(
        "[{id}] {peer}: running {} with {} client argument{}{}",
        opts.entrypoint[0].to_string_lossy(),
        request.argv.len(),
        if request.argv.len() == 1 { "" } else { "s" },
        if request.tty {
            " (terminal requested)"
        } else {
            ""
        },
    );
    let started = Instant::now();
    let child = match spawn::spawn(&opts.entrypoint, &request.argv, received.stdio, request.tty) {
        Ok(c) => c,
        Err(e) => {
            let (code, msg) = spawn::spawn_failure(&opts.entrypoint[0], &e);
            eprintln!("[{id}] {peer}: {msg}");
            reply(id, &conn, code, Some(msg));
            return;
        }
    };
    let code = supervise(id, &conn, child, opts);
    eprintln!(
        "[{id}] {peer}: exit code {code} after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    reply(id, &conn, code, None);
}

fn reply(id: u64, conn: &OwnedFd, exit_code: i32, error: Option<String>) {
    if let Err(e) = transport::send_message(conn, &Reply { exit_code, error }) {
        eprintln!("[{id}] could not send the exit status: {e}");
    }
}

/// What is still wanted from the client's side of the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Follow-up messages (signals) and the hang-up.
    Messages,
    /// The stream is out of step: only its hang-up still matters.
    HangUp,
    /// The client is gone.
    Nothing,
}

/// Waits for the command while reading the client's follow-up messages.
/// When the client goes away the command's process group gets SIGTERM, then
/// SIGKILL after the kill timeout.
fn supervise(id: u64, conn: &OwnedFd, mut child: Child, opts: &Options) -> i32 {
    let pid = Pid::from_raw(child.id() as i32);
    let pidfd = pid.and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
    let mut watch = Watch::Messages;
    let mut kill_deadline: Option<Instant> = None;
    loop {
        let timeout = kill_deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let (child_done, conn_events) =
            wait_ready(pidfd.as_ref(), &mut child, conn, watch, timeout);
        if child_done {
            break;
        }
        if kill_deadline.is_some_and(|d| Instant::now() >= d) {
            eprintln!("[{id}] command still running after SIGTERM: SIGKILL");
            signal_group(pid, Signal::KILL);
            kill_deadline = None;
        }
        if conn_events.is_empty() {
            continue;
        }
        let gone = match watch {
            Watch::Nothing => false,
            Watch::HangUp => true,
            // A started follow-up message must be whole within the request
            // timeout, or the supervision would stall on it.
            Watch::Messages => {
                match transport::recv_plain_frame(conn, Some(Instant::now() + opts.request_timeout))
                {
                    Ok(Some(body)) => {
                        match protocol::decode_signal(&body) {
                            Ok(msg) => {
                                eprintln!("[{id}] forwarding signal {}", msg.signal);
                                if let Some(sig) = Signal::from_named_raw(msg.signal) {
                                    signal_group(pid, sig);
                                }
                            }
                            Err(e) => eprintln!("[{id}] ignored follow-up message: {e}"),
                        }
                        false
                    }
                    Err(RecvError::Deadline { got }) => {
                        eprintln!(
                            "[{id}] follow-up message timed out ({got} bytes within {} s), \
                         ignoring the rest",
                            opts.request_timeout.as_secs_f64()
                        );
                        watch = Watch::HangUp;
                        false
                    }
                    // End of stream without a hang-up: the client only shut down
                    // its writing side (allowed; it still waits for the reply).
                    Ok(None) | Err(RecvError::Closed) if !conn_events.contains(PollFlags::HUP) => {
                        watch = Watch::HangUp;
                        false
                    }
                    Ok(None) | Err(RecvError::Closed) | Err(RecvError::Io(_)) => true,
                    Err(RecvError::Protocol(e)) => {
                        eprintln!("[{id}] broken follow-up stream, ignoring the rest: {e}");
                        watch = Watch::HangUp;
                        false
                    }
                }
            }
        };
        if gone {
            eprintln!("[{id}] client went away: SIGTERM to the command");
            signal_group(pid, Signal::TERM);
            // SIGCONT so that a stopped command can act on the SIGTERM.
            signal_group(pid, Signal::CONT);
            kill_deadline = Some(Instant::now() + opts.kill_timeout);
            watch = Watch::Nothing;
        }
    }
    match child.wait() {
        Ok(status) => spawn::exit_code(status),
        Err(e) => {
            eprintln!("[{id}] waiting for the command failed: {e}");
            crate::exit::PROTOCOL
        }
    }
}

fn signal_group(pid: Option<Pid>, sig: Signal) {
    if let Some(pid) = pid {
        // ESRCH: the group is already gone, which is what was wanted.
        let _ = kill_process_group(pid, sig);
    }
}

/// Waits until the command exits, the connection needs attention, or the
/// timeout passes; returns (command exited, the connection's poll events).
fn wait_ready(
    pidfd: Option<&OwnedFd>,
    child: &mut Child,
    conn: &OwnedFd,
    watch: Watch,
    timeout: Option<Duration>,
) -> (bool, PollFlags) {
    // Without a pidfd (kernel older than 5.3) the child is polled every 50 ms.
    let timeout = match pidfd {
        Some(_) => timeout,
        None => Some(timeout.map_or(CHILD_POLL, |t| t.min(CHILD_POLL))),
    };
    let mut fds = Vec::with_capacity(2);
    if watch != Watch::Nothing {
        // With no requested events poll still reports a hang-up or error.
        let events = if watch == Watch::Messages {
            PollFlags::IN
        } else {
            PollFlags::empty()
        };
        fds.push(PollFd::new(conn, events));
    }
    if let Some(pidfd) = pidfd {
        fds.push(PollFd::new(pidfd, PollFlags::IN));
    }
    let ts = timeout.and_then(|t| Timespec::try_from(t).ok());
    if let Err(e) = poll(&mut fds, ts.as_ref()) {
        if e != Errno::INTR {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let conn_events = if watch == Watch::Nothing {
        PollFlags::empty()
    } else {
        fds[0].revents()
    };
    let child_done = match pidfd {
        Some(_) => fds.last().is_some_and(|f| !f.revents().is_empty()),
        None => matches!(child.try_wait(), Ok(Some(_)) | Err(_)),
    };
    (child_done, conn_events)
}

const CHILD_POLL: Duration = Duration::from_millis(50);
