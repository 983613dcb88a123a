//! The server against hostile or unwelcome peers: who may call, slow and
//! greedy clients, what the log keeps, descriptors the command inherits.
//! Socket-activated by systemd-socket-activate; see common/mod.rs. The
//! tests that run clients under other uids need root, as the connector
//! tier has; without root they check what one identity can.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("client killed: {:?}", out.status));
    (
        code,
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const SECRET: &str = "hunter2-secret-argument";

/// An id other than `n` that an allow list accepts (never 65534).
fn other(n: u32) -> u32 {
    if n + 1 == 65534 {
        n + 2
    } else {
        n + 1
    }
}

#[test]
fn allow_lists_admit_root_listed_uids_and_groups_and_refuse_others() {
    if !running_as_root() {
        return allow_lists_for_one_identity();
    }
    let srv = Server::shell(
        r#"echo "ran $*""#,
        &["--allow-uid=4242", "--allow-gid=5000,5001"],
        &[],
    );
    srv.open_to_everyone();
    let cases = [
        ("listed uid", Identity::new(4242, 4242, &[]), true),
        ("listed primary gid", Identity::new(4300, 5000, &[]), true),
        (
            "listed supplementary group",
            Identity::new(4301, 4301, &[7, 5001]),
            true,
        ),
        ("nothing listed", Identity::new(4302, 4302, &[7, 8]), false),
    ];
    for (what, id, allowed) in cases {
        let (code, out, err) = run(&mut srv.client_as(&id, &[SECRET]));
        if allowed {
            assert_eq!(
                (code, out.as_str()),
                (0, "ran hunter2-secret-argument\n"),
                "{what}: {err}"
            );
        } else {
            assert_eq!(code, 77, "{what}: {err}");
            assert_eq!(out, "", "{what}: the command must not run");
            assert!(
                err.contains("permission denied by the connector server (uid 4302)"),
                "{what}: {err}"
            );
        }
    }
    // Root is always served.
    let (code, out, err) = run(&mut srv.client(&["as-root"]));
    assert_eq!((code, out.as_str()), (0, "ran as-root\n"), "{err}");

    let log = srv.log_text();
    assert!(
        log.contains("uid=4302 gid=4302: refused: neither the uid nor a group"),
        "{log}"
    );
    // The refused request was never read, and no argv is ever logged.
    assert!(!log.contains(SECRET), "{log}");
    assert!(!log.contains("as-root"), "{log}");
}

/// A connector that host users may call listens on a second socket they
/// can reach: both are served, with the same checks on each; a second
/// socket without an allow list is refused at start (nothing would check
/// its callers).
#[test]
fn a_second_socket_is_served_with_the_same_checks() {
    let uid = rustix::process::getuid().as_raw();
    let script = r#"echo "ran $*""#;
    let argv = |allow: &[String]| -> Vec<String> {
        let mut v: Vec<String> = allow.to_vec();
        v.extend(["/bin/sh", "-c", script, "sh"].map(String::from));
        v
    };
    let srv = Server::start_with_sockets(&argv(&[format!("--allow-uid={}", other(uid))]), &[], 1);
    let public = srv.extra_sockets[0].clone();
    for socket in [&srv.socket, &public] {
        let (code, out, err) = run(&mut srv.client_at(socket, &["x"]));
        if uid == 0 {
            assert_eq!(
                (code, out.as_str()),
                (0, "ran x\n"),
                "{}: {err}",
                socket.display()
            );
        } else {
            assert_eq!(code, 77, "{}: {err}", socket.display());
        }
    }
    if running_as_root() {
        srv.open_to_everyone();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o666)).unwrap();
        let listed = Identity::new(other(0), other(0), &[]);
        let stranger = Identity::new(4399, 4399, &[]);
        let (code, out, err) = run(&mut srv.client_as_at(&public, &listed, &["y"]));
        assert_eq!((code, out.as_str()), (0, "ran y\n"), "{err}");
        let (code, out, _) = run(&mut srv.client_as_at(&public, &stranger, &["z"]));
        assert_eq!((code, out.as_str()), (77, ""));
    }
    assert!(
        srv.log_text().contains("on 2 socket(s)"),
        "{}",
        srv.log_text()
    );

    let mut srv = Server::start_with_sockets(&argv(&[]), &[], 1);
    // systemd-socket-activate runs the server at the first connection.
    let (code, out, _) = run(&mut srv.client(&["w"]));
    assert_ne!((code, out.as_str()), (0, "ran w\n"));
    let status = srv.process.wait().unwrap();
    assert_eq!(status.code(), Some(64), "{}", srv.log_text());
    assert!(
        srv.log_text()
            .contains("2 listening sockets but no --allow-uid/--allow-gid"),
        "{}",
        srv.log_text()
    );
}

/// Without root: the one identity there is, against lists that do and do
/// not name it.
fn allow_lists_for_one_identity() {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    for (args, allowed) in [
        (vec![format!("--allow-uid={uid}")], true),
        (
            vec![
                format!("--allow-uid={}", other(uid)),
                format!("--allow-gid={gid}"),
            ],
            true,
        ),
        (vec![format!("--allow-uid={}", other(uid))], false),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let srv = Server::shell(r#"echo "ran $*""#, &args, &[]);
        let (code, out, err) = run(&mut srv.client(&[SECRET]));
        if allowed {
            assert_eq!(code, 0, "{args:?}: {err}");
        } else {
            assert_eq!((code, out.as_str()), (77, ""), "{args:?}");
            let expected = format!("permission denied by the connector server (uid {uid})");
            assert!(err.contains(&expected), "{err}");
            assert!(!srv.log_text().contains(SECRET));
        }
    }
}

#[test]
fn a_refused_peer_is_answered_before_it_sends_anything() {
    // An old (seed) client reads the reply like any other: exit code and
    // an "error" it may ignore. As root the test's own connection is
    // always allowed, so refuse it by the session limit instead.
    let srv = Server::shell(r#"echo started; read x; exit 0"#, &["--max-per-uid=1"], &[]);
    let mut holder = srv
        .client(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_started(&mut holder);
    let sock = UnixStream::connect(&srv.socket).unwrap();
    // Nothing sent, not even a byte: the answer comes anyway.
    let reply = reply_of(sock).expect("a reply frame");
    assert_eq!(reply["exit_code"], 75, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(error.contains("--max-per-uid=1"), "{error}");
    finish(holder);
}

#[test]
fn one_uid_cannot_take_more_than_max_per_uid_sessions() {
    let srv = Server::shell(r#"echo started; read x; exit 5"#, &["--max-per-uid=2"], &[]);
    srv.open_to_everyone();
    let mut first = srv
        .client(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = srv
        .client(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_started(&mut first);
    wait_started(&mut second);
    // The third of the same uid is refused, with a reason.
    let (code, out, err) = run(&mut srv.client(&[]));
    assert_eq!((code, out.as_str()), (75, ""), "{err}");
    assert!(
        err.contains("already has 2 sessions running (--max-per-uid=2)"),
        "{err}"
    );
    // Another uid is still served meanwhile.
    if running_as_root() {
        let (code, out, err) = run(&mut srv.client_as(&Identity::new(4242, 4242, &[]), &[]));
        assert_eq!((code, out.as_str()), (5, "started\n"), "{err}");
    }
    // When one session ends, its slot is free again (the count drops just
    // after the reply: retry within a bound).
    assert_eq!(finish(first), Some(5));
    let start = Instant::now();
    loop {
        let (code, _, err) = run(&mut srv.client(&[]));
        if code == 5 {
            break;
        }
        assert_eq!(code, 75, "{err}");
        assert!(start.elapsed() < Duration::from_secs(5), "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(finish(second), Some(5));
}

/// Waits (bounded by the read) for the command's "started" line.
fn wait_started(child: &mut Child) {
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
}

/// Ends a "read x" command by closing its stdin; returns the exit code.
fn finish(mut child: Child) -> Option<i32> {
    drop(child.stdin.take());
    child.wait().unwrap().code()
}

#[test]
fn a_client_dripping_its_request_is_dropped_at_the_deadline() {
    let mut srv = Server::shell("exit 0", &["--request-timeout=1"], &[]);
    let sock = UnixStream::connect(&srv.socket).unwrap();
    // Three descriptors and a header announcing 1000 bytes, then one byte
    // every 100 ms: each read is quick, the request never completes.
    send_with_fds(&sock, &1000u32.to_be_bytes(), 3);
    let start = Instant::now();
    let mut dripper = sock.try_clone().unwrap();
    let drip = std::thread::spawn(move || {
        for _ in 0..200 {
            if dripper.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let reply = reply_of(sock).expect("the server answers and closes");
    let took = start.elapsed();
    assert_eq!(reply["exit_code"], 70, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("not complete within 1 s")),
        "{reply}"
    );
    // The deadline is 1 s from the accept; well under what 200 drips take.
    assert!(took < Duration::from_secs(4), "cut off after {took:?}");
    drip.join().unwrap();
    let log = srv.log_text();
    assert!(
        log.contains("dropped: request not complete within 1 s"),
        "{log}"
    );
    assert!(srv.running());
    assert_eq!(run(&mut srv.client(&[])).0, 0);
}

#[test]
fn a_client_that_sends_nothing_is_dropped_at_the_deadline() {
    let srv = Server::shell("exit 0", &["--request-timeout=0.5"], &[]);
    let start = Instant::now();
    let sock = UnixStream::connect(&srv.socket).unwrap();
    let reply = reply_of(sock).expect("the server answers and closes");
    assert_eq!(reply["exit_code"], 70, "{reply}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn request_timeout_zero_is_refused() {
    let out = Command::new(SERVER)
        .args(["--request-timeout=0", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--request-timeout=0"), "{err}");
}

#[test]
fn the_log_has_the_program_and_argument_count_not_the_arguments() {
    let srv = Server::shell("exit 0", &[], &[]);
    let (code, _, _) = run(&mut srv.client(&["--password", SECRET]));
    assert_eq!(code, 0);
    let log = srv.log_text();
    assert!(
        log.contains("running /bin/sh with 2 client arguments"),
        "{log}"
    );
    assert!(!log.contains(SECRET), "{log}");
    assert!(!log.contains("--password"), "{log}");
}

/// Starts the server directly (no systemd-socket-activate, which closes
/// stray descriptors) with the listening socket as fd 3 and a descriptor
/// without close-on-exec as fd 7, as a careless service manager or parent
/// might leave it.
fn server_with_a_leaked_fd(script: &str) -> (tempfile::TempDir, std::path::PathBuf, Child) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("s.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let leaked = std::fs::File::open("/etc/hostname")
        .or_else(|_| std::fs::File::open("/dev/null"))
        .unwrap();
    let (l, f) = (listener.as_raw_fd(), leaked.as_raw_fd());
    let log = std::fs::File::create(tmp.path().join("log")).unwrap();
    let mut cmd = Command::new("/bin/sh");
    // $$ of the shell is the server's pid after exec.
    cmd.args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#])
        .arg(SERVER)
        .args(["/bin/sh", "-c", script, "sh"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: only dup2 and fcntl (async-signal-safe) between fork and
    // exec. The explicit F_SETFD clears close-on-exec also when dup2 was a
    // no-op (source and target the same number).
    unsafe {
        cmd.pre_exec(move || {
            for (from, to) in [(l, 3), (f, 7)] {
                if libc::dup2(from, to) < 0 || libc::fcntl(to, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(listener);
    (tmp, socket, child)
}

#[test]
fn the_command_inherits_only_its_three_descriptors() {
    // The command lists its own shell's descriptors (no pipeline: its
    // pipe would be the shell's for a moment; `:` keeps the shell from
    // exec'ing ls, whose own directory descriptor would be listed).
    let (tmp, socket, mut server) = server_with_a_leaked_fd(r#"ls -1 /proc/$$/fd; :"#);
    let out = Command::new(CLIENT)
        .arg(format!("--socket={}", socket.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(tmp.path().join("log")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n2\n", "{log}");
}
