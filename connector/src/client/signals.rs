//! Receiving the signals the client forwards, as readable events.
//!
//! rustix has no stable interface for signal masks or signalfd, so this is
//! the one place that uses `libc`, in a few small audited `unsafe` calls.
//! The signals are blocked (so they no longer kill the client) and read from
//! a signalfd in the same poll loop that waits for the server's reply.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

/// Size of `struct signalfd_siginfo`; `ssi_signo` is its first field (u32).
const SIGINFO_SIZE: usize = 128;

pub struct SignalFd(OwnedFd);

impl SignalFd {
    /// Blocks `signals` in the calling thread (call before starting any
    /// other thread, so every thread inherits the mask) and returns a
    /// descriptor that becomes readable when one of them is pending.
    pub fn block(signals: &[i32]) -> io::Result<Self> {
        // SAFETY: sigset_t is plain data that sigemptyset fully initialises;
        // the pointers passed are to live locals; signalfd(-1, …) creates a
        // new descriptor that nothing else owns, so wrapping it is sound.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in signals {
                if libc::sigaddset(&mut set, sig) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self(OwnedFd::from_raw_fd(fd)))
        }
    }

    /// Reads one pending signal's number.
    pub fn read(&self) -> io::Result<i32> {
        let mut buf = [0u8; SIGINFO_SIZE];
        loop {
            match rustix::io::read(&self.0, &mut buf) {
                Ok(SIGINFO_SIZE) => break,
                Ok(n) => return Err(io::Error::other(format!("short signalfd read: {n} bytes"))),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        i32::try_from(signo).map_err(|_| io::Error::other("signal number out of range"))
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
