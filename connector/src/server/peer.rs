//! Who is on the other end of a connection: `SO_PEERCRED` (pid, uid, gid)
//! and `SO_PEERGROUPS` (supplementary groups), both as the kernel recorded
//! them when the peer called `connect()`, in this process's user namespace
//! (ids without a mapping here read as the overflow id 65534).
//!
//! Read with `libc` because rustix's `socket_peercred` cannot represent pid
//! 0, which is exactly what the kernel reports for a client in another pid
//! namespace, i.e. in another container: the normal case for a connector;
//! and rustix has no `SO_PEERGROUPS` at all.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// `SO_PEERGROUPS` (Linux ≥ 4.13); the libc crate does not export it for
/// every target. 59 on all architectures Rust supports except SPARC.
#[cfg(not(target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 59;
#[cfg(target_arch = "sparc64")]
const SO_PEERGROUPS: libc::c_int = 0x3d;

/// The peer's credentials from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// 0 when the peer is in another pid namespace.
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl Peer {
    pub fn of(conn: &impl AsFd) -> io::Result<Peer> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let len = getsockopt(
            conn,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            std::mem::size_of::<libc::ucred>(),
        )?;
        if len != std::mem::size_of::<libc::ucred>() {
            return Err(io::Error::other(format!(
                "SO_PEERCRED returned {len} bytes"
            )));
        }
        Ok(Peer {
            pid: cred.pid,
            uid: cred.uid,
            gid: cred.gid,
        })
    }

    /// "pid=N uid=N gid=N", with pid 0 explained.
    pub fn describe(&self) -> String {
        let pid = if self.pid == 0 {
            "0 (another pid namespace)".to_string()
        } else {
            self.pid.to_string()
        };
        format!("pid={pid} uid={} gid={}", self.uid, self.gid)
    }
}

/// The peer's supplementary groups (`SO_PEERGROUPS`). An error (ENOPROTOOPT
/// before Linux 4.13) leaves the caller with the primary gid only.
pub fn groups(conn: &impl AsFd) -> io::Result<Vec<u32>> {
    // NGROUPS_MAX is 65536; start small and grow to what the kernel asks.
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let bytes = std::mem::size_of_val(groups.as_slice());
        match getsockopt(conn, SO_PEERGROUPS, groups.as_mut_ptr().cast(), bytes) {
            Ok(len) => {
                groups.truncate(len / std::mem::size_of::<libc::gid_t>());
                return Ok(groups);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && groups.len() < 65536 => {
                let wanted = groups.len() * 4;
                groups.resize(wanted.min(65536), 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `getsockopt(SOL_SOCKET, option)` into `size` bytes at `value`; returns
/// the length the kernel wrote.
fn getsockopt(
    conn: &impl AsFd,
    option: libc::c_int,
    value: *mut libc::c_void,
    size: usize,
) -> io::Result<usize> {
    let mut len = libc::socklen_t::try_from(size).map_err(io::Error::other)?;
    // SAFETY: every caller passes a pointer to a live buffer of `size`
    // bytes, which the kernel writes at most `len` = `size` bytes of; the
    // descriptor is borrowed for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            value,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_a_local_peer() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = Peer::of(&a).unwrap();
        assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
        assert_eq!(peer.gid, rustix::process::getegid().as_raw());
        let text = peer.describe();
        let me = std::process::id();
        assert!(text.starts_with(&format!("pid={me} uid=")), "{text}");
    }

    #[test]
    fn supplementary_groups_are_this_processs() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut got = groups(&a).unwrap();
        let mut mine: Vec<u32> = rustix::process::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        got.sort_unstable();
        mine.sort_unstable();
        assert_eq!(got, mine);
    }

    #[test]
    fn pid_zero_is_explained() {
        let p = Peer {
            pid: 0,
            uid: 1,
            gid: 2,
        };
        assert_eq!(p.describe(), "pid=0 (another pid namespace) uid=1 gid=2");
    }
}
