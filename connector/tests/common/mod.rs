//! Harness for the connector integration tests: runs the built server under
//! `systemd-socket-activate -l SOCKET` (real socket activation: LISTEN_FDS,
//! LISTEN_PID, fd 3) and the built client against it. No container needed.
#![allow(dead_code)]
use std::os::unix::process::CommandExt;

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SERVER: &str = env!("CARGO_BIN_EXE_sdme-connector-server");
pub const CLIENT: &str = env!("CARGO_BIN_EXE_sdme-connector-client");

/// A running server for connector `svc` in a private directory.
pub struct Server {
    pub tmp: tempfile::TempDir,
    /// The connector directory: `svc.sock` and the client symlink `cmd`.
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// Further listening sockets (`public-N.sock` beside the directory).
    pub extra_sockets: Vec<PathBuf>,
    /// The server's working directory (what commands must see as cwd).
    pub workdir: PathBuf,
    pub log: PathBuf,
    pub process: Child,
}

impl Server {
    /// Starts a server whose entrypoint is `/bin/sh -c SCRIPT sh`, so the
    /// client's arguments are `$1…`. `env` is the server unit's environment.
    pub fn shell(script: &str, server_args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut entrypoint: Vec<String> = server_args.iter().map(|s| s.to_string()).collect();
        entrypoint.extend(["/bin/sh", "-c", script, "sh"].map(String::from));
        Server::start(&entrypoint, env)
    }

    pub fn start(server_argv: &[String], env: &[(&str, &str)]) -> Server {
        Server::start_with_sockets(server_argv, env, 0)
    }

    /// Like [`Server::start`], with `extra` more listening sockets, passed
    /// after the connector directory's own (LISTEN_FDS=1+extra).
    pub fn start_with_sockets(
        server_argv: &[String],
        env: &[(&str, &str)],
        extra: usize,
    ) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let dir = base.join("connectors/svc");
        let workdir = base.join("server-workdir");
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(&workdir).unwrap();
        symlink(CLIENT, dir.join("cmd")).unwrap();
        let socket = dir.join("svc.sock");
        let log = base.join("server.log");
        let extra_sockets: Vec<PathBuf> = (0..extra)
            .map(|n| base.join(format!("public-{n}.sock")))
            .collect();
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.arg("-l").arg(&socket);
        for s in &extra_sockets {
            cmd.arg("-l").arg(s);
        }
        for (k, v) in env {
            cmd.arg("-E").arg(format!("{k}={v}"));
        }
        cmd.arg("-E").arg("PATH=/usr/bin:/bin");
        cmd.arg(SERVER).args(server_argv);
        cmd.current_dir(&workdir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::OpenOptions::new().append(true).open(&log).unwrap());
        let process = cmd
            .spawn()
            .expect("systemd-socket-activate (package systemd) is required for these tests");
        // The socket file appears at bind(), before listen(): wait for the
        // tool's own "Listening on" line instead, or a connect may be refused.
        wait_for(
            || fs::read_to_string(&log).is_ok_and(|l| l.matches("Listening on").count() > extra),
            Duration::from_secs(10),
            "the listening socket",
        );
        Server {
            tmp,
            dir,
            socket,
            extra_sockets,
            workdir,
            log,
            process,
        }
    }

    /// A client command talking to this server (explicit mode).
    pub fn client(&self, args: &[&str]) -> Command {
        self.client_at(&self.socket, args)
    }

    /// A client command talking to this server through `socket`.
    pub fn client_at(&self, socket: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(CLIENT);
        c.arg(format!("--socket={}", socket.display()))
            .arg("--")
            .args(args);
        // The test runner may have been started with signals ignored (by
        // nohup, or as a background job); an ignored signal is discarded
        // and never forwarded, so the client starts with the default
        // dispositions it would have from an interactive shell.
        // SAFETY: only async-signal-safe signal(2) calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        c
    }

    /// Lets any local user reach the socket (as a socket unit's
    /// `SocketMode=0666` under world-traversable directories does), so that
    /// what refuses a peer is the server, not the file system.
    pub fn open_to_everyone(&self) {
        use std::os::unix::fs::PermissionsExt;
        let mut dir = self.socket.parent().unwrap();
        while dir.starts_with(self.tmp.path().canonicalize().unwrap()) {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
            dir = dir.parent().unwrap();
        }
        fs::set_permissions(&self.socket, fs::Permissions::from_mode(0o666)).unwrap();
    }

    /// A client command run with other credentials (needs root): uid, gid
    /// and supplementary groups as given.
    pub fn client_as(&self, id: &Identity, args: &[&str]) -> Command {
        self.client_as_at(&self.socket, id, args)
    }

    /// [`Server::client_as`] through `socket`.
    pub fn client_as_at(&self, socket: &Path, id: &Identity, args: &[&str]) -> Command {
        let mut c = self.client_at(socket, args);
        let id = id.clone();
        // SAFETY: only raw system calls between fork and exec (the group
        // list is allocated before the fork).
        unsafe {
            c.pre_exec(move || {
                if libc::setgroups(id.groups.len(), id.groups.as_ptr()) != 0
                    || libc::setresgid(id.gid, id.gid, id.gid) != 0
                    || libc::setresuid(id.uid, id.uid, id.uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }

    /// The busybox-style client symlink.
    pub fn symlink_path(&self) -> PathBuf {
        self.dir.join("cmd")
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the server process is still running (reaps it if not).
    pub fn running(&mut self) -> bool {
        self.process.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Credentials to run a client with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Identity {
    pub fn new(uid: u32, gid: u32, groups: &[u32]) -> Identity {
        Identity {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }
}

pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn wait_for(mut cond: impl FnMut() -> bool, limit: Duration, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

pub fn send_with_fds(sock: &UnixStream, data: &[u8], nfds: usize) {
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let fds: Vec<_> = (0..nfds).map(|_| devnull.as_fd()).collect();
    send_with(sock, data, &fds);
}

/// One sendmsg() of `data` with `fds` as SCM_RIGHTS (none: no control data).
pub fn send_with(sock: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    sendmsg(
        sock,
        &[std::io::IoSlice::new(data)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();
}

/// Reads the server's answer to a broken request: its exit code, if any.
pub fn answer(sock: UnixStream) -> Option<i32> {
    reply_of(sock).and_then(|v| v["exit_code"].as_i64().map(|c| c as i32))
}

/// Reads everything the server sends until it closes (10 s at most) and
/// parses it as one reply frame.
pub fn reply_of(mut sock: UnixStream) -> Option<serde_json::Value> {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf);
    let body = buf.get(4..)?;
    serde_json::from_slice(body).ok()
}
