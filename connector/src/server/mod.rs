//! `sdme-connector-server`: accepts connections on the socket-activated
//! listeners, one thread per connection, and exits when idle.
//!
//! Admission happens in the accepting thread, before a connection gets a
//! thread or a byte of its request is read: the peer's credentials
//! (`SO_PEERCRED`) against `--allow-uid`/`--allow-gid`, then the per-uid and
//! the global session limits. A refused peer gets a reply frame with an
//! exit code and an `error` text, sent without blocking, and is closed.

pub mod activation;
pub mod options;
mod peer;
mod session;
pub mod spawn;

use crate::protocol::{Reply, EXIT_BUSY};
use options::Options;
use peer::Peer;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::SocketFlags;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; more are closed at once (and logged), so a
/// flood of idle connections cannot exhaust threads or descriptors.
const MAX_ACTIVE: usize = 512;
/// Stack of a connection thread: it only moves a few small frames.
const THREAD_STACK: usize = 256 * 1024;

/// Counts running connections (in all and per peer uid) and remembers
/// when the last one ended.
struct Activity {
    active: usize,
    per_uid: HashMap<u32, usize>,
    idle_since: Instant,
}

/// Decrements the counts when a connection thread ends, even by panic.
struct ActiveGuard {
    activity: Arc<Mutex<Activity>>,
    uid: u32,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut a = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        a.active -= 1;
        if let Some(n) = a.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                a.per_uid.remove(&self.uid);
            }
        }
        a.idle_since = Instant::now();
    }
}

/// Serves the (non-blocking) `listeners` until idle for
/// `opts.idle_timeout` (never when `None`).
pub fn serve(listeners: Vec<OwnedFd>, opts: Options) -> std::io::Result<()> {
    let opts = Arc::new(opts);
    let activity = Arc::new(Mutex::new(Activity {
        active: 0,
        per_uid: HashMap::new(),
        idle_since: Instant::now(),
    }));
    let next_id = AtomicU64::new(1);
    loop {
        let wait = next_wait(&activity, opts.idle_timeout);
        let ready = if wait == Some(Duration::ZERO) {
            // Idle long enough. A connection already queued would be lost
            // if we exited now; the service manager would restart us for it
            // anyway, but serving it here is cheaper.
            let ready = readable(&listeners, Some(Duration::ZERO));
            if ready.is_empty() {
                eprintln!("idle: exiting (socket activation starts the server again)");
                return Ok(());
            }
            ready
        } else {
            readable(&listeners, wait)
        };
        for listener in ready {
            accept_one(listener, &opts, &activity, &next_id);
        }
    }
}

/// Accepts one connection on `listener`, admits it and gives it a thread.
fn accept_one(
    listener: &OwnedFd,
    opts: &Arc<Options>,
    activity: &Arc<Mutex<Activity>>,
    next_id: &AtomicU64,
) {
    let conn = match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
        Ok(c) => c,
        Err(Errno::INTR | Errno::AGAIN | Errno::CONNABORTED) => return,
        Err(e) => {
            // EMFILE and friends: back off instead of spinning.
            eprintln!("accept failed: {e}");
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
    };
    // The request deadline runs from here: the whole request must have
    // arrived within --request-timeout of the accept.
    let deadline = Instant::now() + opts.request_timeout;
    let id = next_id.fetch_add(1, Ordering::Relaxed);
    let Some(peer) = admit(id, &conn, opts) else {
        return;
    };
    {
        let mut a = activity.lock().unwrap_or_else(|p| p.into_inner());
        let mine = a.per_uid.get(&peer.uid).copied().unwrap_or(0);
        let refusal = if a.active >= MAX_ACTIVE {
            Some(format!(
                "server busy: {MAX_ACTIVE} sessions already running"
            ))
        } else if mine >= opts.max_per_uid {
            Some(format!(
                "server busy: uid {} already has {mine} sessions running (--max-per-uid={})",
                peer.uid, opts.max_per_uid
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            drop(a);
            eprintln!("[{id}] {}: refused: {why}", peer.describe());
            refuse(id, &conn, EXIT_BUSY, why);
            return;
        }
        a.active += 1;
        *a.per_uid.entry(peer.uid).or_insert(0) += 1;
    }
    let guard = ActiveGuard {
        activity: Arc::clone(activity),
        uid: peer.uid,
    };
    let opts = Arc::clone(opts);
    let spawned = std::thread::Builder::new()
        .name(format!("conn-{id}"))
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let _guard = guard;
            session::serve_connection(id, conn, peer, deadline, &opts);
        });
    if let Err(e) = spawned {
        // The closure (and with it the guard and the connection) was
        // dropped: the count is already back.
        eprintln!("[{id}] cannot start a thread: {e}");
    }
}

/// Checks the peer against `--allow-uid`/`--allow-gid`; refuses (and
/// logs, without any of the request) a peer that is not allowed or whose
/// credentials cannot be read.
fn admit(id: u64, conn: &OwnedFd, opts: &Options) -> Option<Peer> {
    let peer = match Peer::of(conn) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("[{id}] refused: cannot read the peer's credentials (SO_PEERCRED): {e}");
            refuse(
                id,
                conn,
                crate::exit::NO_PERMISSION,
                "permission denied by the connector server (unknown peer)".into(),
            );
            return None;
        }
    };
    if opts.access.check(peer.uid, peer.gid, &[]).is_ok() {
        return Some(peer);
    }
    let groups = if opts.access.needs_groups() {
        match peer::groups(conn) {
            Ok(g) => g,
            Err(e) => {
                // Fails closed: only the primary gid counted.
                eprintln!(
                    "[{id}] {}: cannot read supplementary groups (SO_PEERGROUPS): {e}",
                    peer.describe()
                );
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if opts.access.check(peer.uid, peer.gid, &groups).is_ok() {
        return Some(peer);
    }
    eprintln!(
        "[{id}] {}: refused: neither the uid nor a group is in --allow-uid/--allow-gid",
        peer.describe()
    );
    refuse(
        id,
        conn,
        crate::exit::NO_PERMISSION,
        format!(
            "permission denied by the connector server (uid {})",
            peer.uid
        ),
    );
    None
}

/// Answers a connection that will not be served, without blocking.
fn refuse(id: u64, conn: &OwnedFd, exit_code: i32, error: String) {
    let reply = Reply {
        exit_code,
        error: Some(error),
    };
    if let Err(e) = crate::transport::send_message_nowait(conn, &reply) {
        eprintln!("[{id}] could not send the refusal: {e}");
    }
}

/// How long to wait for a connection: `None` = forever, zero = idle now.
fn next_wait(activity: &Mutex<Activity>, idle_timeout: Option<Duration>) -> Option<Duration> {
    let timeout = idle_timeout?;
    let a = activity.lock().unwrap_or_else(|p| p.into_inner());
    if a.active > 0 {
        // Checked again after this long; the last connection to end resets
        // idle_since, so the exit comes idle_timeout after it.
        return Some(timeout);
    }
    Some(timeout.saturating_sub(a.idle_since.elapsed()))
}

/// The listeners with a connection waiting, after waiting at most `timeout`
/// (`None` = forever) for one.
fn readable(listeners: &[OwnedFd], timeout: Option<Duration>) -> Vec<&OwnedFd> {
    let mut fds: Vec<PollFd> = listeners
        .iter()
        .map(|l| PollFd::new(l, PollFlags::IN))
        .collect();
    let ts = timeout.and_then(|t| Timespec::try_from(t).ok());
    match poll(&mut fds, ts.as_ref()) {
        Ok(n) if n > 0 => fds
            .iter()
            .zip(listeners)
            .filter(|(p, _)| p.revents().contains(PollFlags::IN))
            .map(|(_, l)| l)
            .collect(),
        _ => Vec::new(),
    }
}
