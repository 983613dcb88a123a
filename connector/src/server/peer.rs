//! Who is on the other end of a connection, for the log.
//!
//! `SO_PEERCRED` is read with `libc` because rustix's `socket_peercred`
//! cannot represent pid 0, which is exactly what the kernel reports for a
//! client in another pid namespace, i.e. in another container: the normal
//! case for a connector.

use std::os::fd::{AsFd, AsRawFd};

/// "pid=N uid=N gid=N", with pid 0 explained.
pub fn describe(conn: &impl AsFd) -> String {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are live locals of the size passed; the
    // descriptor is borrowed for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return format!("unknown peer ({})", std::io::Error::last_os_error());
    }
    let pid = if cred.pid == 0 {
        "0 (another pid namespace)".to_string()
    } else {
        cred.pid.to_string()
    };
    format!("pid={pid} uid={} gid={}", cred.uid, cred.gid)
}

#[cfg(test)]
mod tests {
    #[test]
    fn describes_a_local_peer() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let text = super::describe(&a);
        let me = std::process::id();
        assert!(text.starts_with(&format!("pid={me} uid=")), "{text}");
    }
}
