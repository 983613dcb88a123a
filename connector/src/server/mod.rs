//! `sdme-connector-server`: accepts connections on the socket-activated
//! listener, one thread per connection, and exits when idle.

pub mod activation;
pub mod options;
mod peer;
mod session;
pub mod spawn;

use options::Options;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::SocketFlags;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; more are closed at once (and logged), so a
/// flood of idle connections cannot exhaust threads or descriptors.
const MAX_ACTIVE: usize = 512;
/// Stack of a connection thread: it only moves a few small frames.
const THREAD_STACK: usize = 256 * 1024;

/// Counts running connections and remembers when the last one ended.
struct Activity {
    active: usize,
    idle_since: Instant,
}

/// Decrements the active count when a connection thread ends, even by panic.
struct ActiveGuard(Arc<Mutex<Activity>>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut a = self.0.lock().unwrap_or_else(|p| p.into_inner());
        a.active -= 1;
        a.idle_since = Instant::now();
    }
}

/// Serves until idle for `opts.idle_timeout` (never when `None`).
pub fn serve(listener: OwnedFd, opts: Options) -> std::io::Result<()> {
    let opts = Arc::new(opts);
    let activity = Arc::new(Mutex::new(Activity {
        active: 0,
        idle_since: Instant::now(),
    }));
    let next_id = AtomicU64::new(1);
    loop {
        let wait = next_wait(&activity, opts.idle_timeout);
        if wait == Some(Duration::ZERO) {
            // Idle long enough. A connection already queued would be lost
            // if we exited now; the service manager would restart us for it
            // anyway, but serving it here is cheaper.
            if !readable(&listener, Some(Duration::ZERO)) {
                eprintln!("idle: exiting (socket activation starts the server again)");
                return Ok(());
            }
        } else if !readable(&listener, wait) {
            continue;
        }
        let conn = match rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(Errno::INTR | Errno::AGAIN | Errno::CONNABORTED) => continue,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut a = activity.lock().unwrap_or_else(|p| p.into_inner());
            if a.active >= MAX_ACTIVE {
                eprintln!("[{id}] {MAX_ACTIVE} connections already active: closing this one");
                continue;
            }
            a.active += 1;
        }
        let guard = ActiveGuard(Arc::clone(&activity));
        let opts = Arc::clone(&opts);
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{id}"))
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let _guard = guard;
                session::serve_connection(id, conn, &opts);
            });
        if let Err(e) = spawned {
            // The closure (and with it the guard and the connection) was
            // dropped: the count is already back.
            eprintln!("[{id}] cannot start a thread: {e}");
        }
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

fn readable(listener: &OwnedFd, timeout: Option<Duration>) -> bool {
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    let ts = timeout.and_then(|t| Timespec::try_from(t).ok());
    match poll(&mut fds, ts.as_ref()) {
        Ok(n) => n > 0 && fds[0].revents().contains(PollFlags::IN),
        Err(_) => false,
    }
}
