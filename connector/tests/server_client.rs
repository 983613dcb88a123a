//! The server and client binaries against each other, socket-activated by
//! systemd-socket-activate; see common/mod.rs.

mod common;

use common::*;
use rustix::fs::{Mode, OFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
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

#[test]
fn argv_is_appended_and_exit_code_returned() {
    let srv = Server::shell(r#"printf '[%s]\n' "$@"; exit "$1""#, &[], &[]);
    let (code, out, _) = run(&mut srv.client(&["3", "a b", "", "--x", "ünï"]));
    assert_eq!(code, 3);
    assert_eq!(out, "[3]\n[a b]\n[]\n[--x]\n[ünï]\n");
    let (code, out, _) = run(&mut srv.client(&["0"]));
    assert_eq!((code, out.as_str()), (0, "[0]\n"));
    let (code, _, _) = run(&mut srv.client(&["255"]));
    assert_eq!(code, 255);
}

#[test]
fn entrypoint_arguments_come_before_the_clients() {
    let argv: Vec<String> = ["/bin/echo", "fixed", "--flag"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let srv = Server::start(&argv, &[]);
    let (code, out, _) = run(&mut srv.client(&["from-client"]));
    assert_eq!((code, out.as_str()), (0, "fixed --flag from-client\n"));
}

#[test]
fn death_by_signal_is_128_plus_n() {
    let srv = Server::shell(r#"kill -"$1" $$; sleep 5"#, &[], &[]);
    assert_eq!(run(&mut srv.client(&["TERM"])).0, 143);
    assert_eq!(run(&mut srv.client(&["KILL"])).0, 137);
    assert_eq!(run(&mut srv.client(&["SEGV"])).0, 139);
}

#[test]
fn busybox_symlink_and_path_lookup() {
    let srv = Server::shell(r#"echo "hello $*""#, &[], &[]);
    let (code, out, _) = run(Command::new(srv.symlink_path()).arg("world"));
    assert_eq!((code, out.as_str()), (0, "hello world\n"));
    // Found through PATH: argv[0] is then the bare name.
    let path = format!("{}:/usr/bin:/bin", srv.dir.display());
    let (code, out, _) = run(Command::new("/bin/sh")
        .args(["-c", "cmd via-path"])
        .env("PATH", path));
    assert_eq!((code, out.as_str()), (0, "hello via-path\n"));
    // $SDME_CONNECTOR_DIR (the client container's connector) when PATH
    // does not have the command.
    let (code, out, err) = run(Command::new(srv.symlink_path())
        .arg0("cmd")
        .arg("via-env")
        .env("PATH", "/usr/bin:/bin")
        .env("SDME_CONNECTOR_DIR", &srv.dir));
    assert_eq!((code, out.as_str()), (0, "hello via-env\n"), "{err}");
}

#[test]
fn explicit_client_defaults_to_sdme_connector_dir() {
    let srv = Server::shell(r#"echo "explicit $*""#, &[], &[]);
    let (code, out, _) = run(Command::new(CLIENT)
        .args(["--", "a"])
        .env("SDME_CONNECTOR_DIR", &srv.dir));
    assert_eq!((code, out.as_str()), (0, "explicit a\n"));
    let (code, out, _) = run(Command::new(CLIENT)
        .arg(format!("--connector-dir={}", srv.dir.display()))
        .arg("b"));
    assert_eq!((code, out.as_str()), (0, "explicit b\n"));
    let (code, _, err) = run(Command::new(CLIENT).env_remove("SDME_CONNECTOR_DIR"));
    assert_eq!(code, 64, "{err}");
}

#[test]
fn command_gets_the_servers_environment_and_cwd_never_the_clients() {
    let srv = Server::shell(
        r#"echo "FOO=$FOO"; echo "BAR=${BAR-unset}"; echo "LISTEN=${LISTEN_FDS-unset}/${LISTEN_PID-unset}"; pwd"#,
        &[],
        &[("FOO", "server")],
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, out, err) = run(srv
        .client(&[])
        .env("FOO", "client")
        .env("BAR", "client")
        .current_dir(elsewhere.path()));
    assert_eq!(code, 0, "{err}\n{}", srv.log_text());
    let expected = format!(
        "FOO=server\nBAR=unset\nLISTEN=unset/unset\n{}\n",
        srv.workdir.display()
    );
    assert_eq!(out, expected);
}

/// Opens a fresh pty pair; the slave is nobody's controlling terminal.
fn open_pty() -> (std::os::fd::OwnedFd, std::fs::File) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY,
        Mode::empty(),
    )
    .unwrap();
    (master, std::fs::File::from(slave))
}

// /proc/$$/stat fields 6 and 7: session id and controlling tty (0 = none).
const SESSION_AND_TTY: &str = r#"read -r pid comm state ppid pgrp session tty rest < /proc/$$/stat
echo "pid=$pid session=$session tty=$tty""#;

fn session_and_tty(out: &str) -> (i64, i64, i64) {
    let field = |k: &str| -> i64 {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} missing in {out:?}"))
            .parse()
            .unwrap()
    };
    (field("pid="), field("session="), field("tty="))
}

#[test]
fn a_pty_as_stdin_becomes_the_controlling_terminal_only_when_the_client_opts_in() {
    let srv = Server::shell(
        &format!("{SESSION_AND_TTY}\n[ -t 0 ] && echo stdin-is-a-tty || :"),
        &[],
        &[],
    );
    // Opted in ($SDME_CONNECTOR_TTY=1, or --tty): the pty, nobody's
    // controlling terminal yet, becomes the command's.
    for (how, env, flag) in [("env", Some("1"), false), ("--tty", None, true)] {
        let (_master, slave) = open_pty();
        let mut client = if flag {
            let mut c = Command::new(CLIENT);
            c.arg(format!("--socket={}", srv.socket.display()))
                .arg("--tty");
            c
        } else {
            srv.client(&[])
        };
        if let Some(v) = env {
            client.env("SDME_CONNECTOR_TTY", v);
        }
        let out = client
            .stdin(slave)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{how}");
        let text = String::from_utf8_lossy(&out.stdout);
        let (pid, session, tty) = session_and_tty(&text);
        assert_eq!(pid, session, "{how}: the command leads its own session");
        assert_ne!(
            tty, 0,
            "{how}: the pty is the command's controlling terminal"
        );
    }

    // By default: the terminal is the command's stdin, but not its
    // controlling terminal (so it cannot TIOCSTI into the client's input).
    for env in [None, Some("0"), Some("")] {
        let (_master, slave) = open_pty();
        let mut client = srv.client(&[]);
        if let Some(v) = env {
            client.env("SDME_CONNECTOR_TTY", v);
        }
        let out = client.stdin(slave).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        let (pid, session, tty) = session_and_tty(&text);
        assert_eq!(
            (pid == session, tty),
            (true, 0),
            "SDME_CONNECTOR_TTY={env:?}"
        );
        assert!(text.contains("stdin-is-a-tty"), "{text}");
    }

    // Opted in without a terminal: its own session still, no controlling tty.
    let (code, out, _) = run(srv.client(&[]).env("SDME_CONNECTOR_TTY", "1"));
    assert_eq!(code, 0);
    let (pid, session, tty) = session_and_tty(&out);
    assert_eq!((pid == session, tty), (true, 0));
}

/// What the command sees when a raw request passes `fd` as all three
/// descriptors, with the given JSON body.
fn raw_request_session(srv: &Server, body: &[u8], fd: std::os::fd::BorrowedFd<'_>) -> String {
    use std::os::fd::AsFd;
    let sock = UnixStream::connect(&srv.socket).unwrap();
    let (out_r, out_w) = rustix::pipe::pipe().unwrap();
    send_with(&sock, &raw_frame(body), &[fd, out_w.as_fd(), out_w.as_fd()]);
    drop(out_w);
    assert_eq!(answer(sock), Some(0), "{}", srv.log_text());
    let mut text = String::new();
    std::fs::File::from(out_r)
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn only_a_request_with_tty_true_gets_a_controlling_terminal() {
    use std::os::fd::AsFd;
    let srv = Server::shell(SESSION_AND_TTY, &[], &[]);
    // A seed client's request has no "tty" field: no controlling terminal,
    // even with a terminal that could be acquired.
    let (_m1, slave) = open_pty();
    let text = raw_request_session(&srv, br#"{"argv":[]}"#, slave.as_fd());
    assert_eq!(session_and_tty(&text).2, 0, "{text}");
    let (_m2, slave) = open_pty();
    let text = raw_request_session(&srv, br#"{"argv":[],"tty":false}"#, slave.as_fd());
    assert_eq!(session_and_tty(&text).2, 0, "{text}");
    let (_m3, slave) = open_pty();
    let text = raw_request_session(&srv, br#"{"argv":[],"tty":true}"#, slave.as_fd());
    assert_ne!(session_and_tty(&text).2, 0, "{text}");
    // "tty" must be a boolean.
    let sock = UnixStream::connect(&srv.socket).unwrap();
    send_with_fds(&sock, &raw_frame(br#"{"argv":[],"tty":"yes"}"#), 3);
    assert_eq!(answer(sock), Some(70));
    assert!(
        srv.log_text().contains("\"tty\" is not a boolean"),
        "{}",
        srv.log_text()
    );
}

#[test]
fn a_hundred_concurrent_clients_get_their_own_exit_codes() {
    // All from one uid: above the default --max-per-uid.
    let srv = Server::shell(
        r#"sleep 0.3; echo "$1"; exit "$1""#,
        &["--max-per-uid=100"],
        &[],
    );
    let start = Instant::now();
    let children: Vec<_> = (0..100)
        .map(|i| {
            let child = srv
                .client(&[&(i * 2).to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            (i * 2, child)
        })
        .collect();
    for (expected, child) in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(expected));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{expected}\n")
        );
    }
    // They ran at the same time: far less than 100 × 0.3 s.
    let took = start.elapsed();
    eprintln!("100 concurrent clients: {:.2} s", took.as_secs_f64());
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn malformed_requests_are_refused_and_the_server_keeps_serving() {
    let mut srv = Server::shell(r#"exit "$1""#, &[], &[]);
    // (what, data, descriptors, what the log line says)
    let cases: Vec<(&str, Vec<u8>, usize, &str)> = vec![
        (
            "no fds",
            raw_frame(br#"{"argv":["1"]}"#),
            0,
            "carried 0 file descriptors",
        ),
        (
            "one fd",
            raw_frame(br#"{"argv":["1"]}"#),
            1,
            "carried 1 file descriptors",
        ),
        (
            "two fds",
            raw_frame(br#"{"argv":["1"]}"#),
            2,
            "carried 2 file descriptors",
        ),
        (
            "four fds",
            raw_frame(br#"{"argv":["1"]}"#),
            4,
            "carried 4 file descriptors",
        ),
        ("not json", raw_frame(b"hello"), 3, "not JSON"),
        (
            "not UTF-8",
            raw_frame(b"{\"argv\":[\"\xff\"]}"),
            3,
            "not JSON",
        ),
        (
            "no argv",
            raw_frame(br#"{"args":["1"]}"#),
            3,
            "has no \"argv\"",
        ),
        (
            "argv not strings",
            raw_frame(br#"{"argv":[1]}"#),
            3,
            "argv[0] is not a string",
        ),
        (
            "argv not an array",
            raw_frame(br#"{"argv":"1"}"#),
            3,
            "\"argv\" is not an array",
        ),
        (
            "NUL in argv",
            raw_frame(br#"{"argv":["a\u0000"]}"#),
            3,
            "contains a NUL byte",
        ),
        (
            "oversize",
            (64u32 << 20).to_be_bytes().to_vec(),
            3,
            "exceeds the limit",
        ),
        (
            "length 0xffffffff",
            vec![0xff; 4],
            3,
            "4294967295 bytes exceeds",
        ),
        ("zero length", vec![0, 0, 0, 0], 3, "frame of length 0"),
    ];
    for (what, data, nfds, logged) in cases {
        let before = srv.log_text().len();
        let sock = UnixStream::connect(&srv.socket).unwrap();
        send_with_fds(&sock, &data, nfds);
        sock.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(answer(sock), Some(70), "{what}: refused with exit code 70");
        // The log line is written before the reply is sent.
        let log = srv.log_text();
        let line = &log[before..];
        assert!(
            line.contains("rejected request: ") && line.contains(logged),
            "{what}: {line}"
        );
    }
    // Three descriptors with the header and more with the body (separate
    // sendmsg calls): refused once the fourth arrives.
    let sock = UnixStream::connect(&srv.socket).unwrap();
    let frame = raw_frame(br#"{"argv":["1"]}"#);
    send_with_fds(&sock, &frame[..4], 3);
    send_with_fds(&sock, &frame[4..], 3);
    assert_eq!(answer(sock), Some(70));
    assert!(srv
        .log_text()
        .contains("request carried 6 file descriptors"));
    // Truncated: half a frame, then the client hangs up.
    let before = srv.log_text().len();
    let sock = UnixStream::connect(&srv.socket).unwrap();
    send_with_fds(&sock, &raw_frame(br#"{"argv":["1"]}"#)[..8], 3);
    drop(sock);
    wait_for(
        || srv.log_text()[before..].contains("connection closed after 8 of 18 bytes"),
        Duration::from_secs(10),
        "the truncated request's log line",
    );
    // Connect and leave without a byte.
    let before = srv.log_text().len();
    drop(UnixStream::connect(&srv.socket).unwrap());
    wait_for(
        || srv.log_text()[before..].contains("closed without a request"),
        Duration::from_secs(10),
        "the empty connection's log line",
    );
    // Garbage after a valid request must not disturb the command's answer.
    let mut sock = UnixStream::connect(&srv.socket).unwrap();
    send_with_fds(&sock, &raw_frame(br#"{"argv":["5"]}"#), 3);
    sock.write_all(b"\xff\xff\xff\xffgarbage").unwrap();
    assert_eq!(answer(sock), Some(5));

    assert!(srv.running(), "server died: {}", srv.log_text());
    assert_eq!(run(&mut srv.client(&["7"])).0, 7);
    assert!(!srv.log_text().contains("panicked"), "{}", srv.log_text());
}

#[test]
fn a_stalled_follow_up_message_does_not_hold_back_the_exit_status() {
    let srv = Server::shell(r#"sleep 0.3; exit 4"#, &["--request-timeout=1"], &[]);
    let mut sock = UnixStream::connect(&srv.socket).unwrap();
    send_with_fds(&sock, &raw_frame(br#"{"argv":[]}"#), 3);
    // Half a header, then nothing, with the connection left open.
    sock.write_all(&[0, 0]).unwrap();
    let start = Instant::now();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = sock.read(&mut buf).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&buf[4..n]).unwrap();
    assert_eq!(v["exit_code"], 4);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(srv.log_text().contains("timed out"), "{}", srv.log_text());
}

#[test]
fn a_client_that_shuts_down_its_writing_side_still_gets_the_exit_status() {
    let srv = Server::shell(r#"sleep 0.3; exit 9"#, &[], &[]);
    let sock = UnixStream::connect(&srv.socket).unwrap();
    send_with_fds(&sock, &raw_frame(br#"{"argv":[]}"#), 3);
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(answer(sock), Some(9), "{}", srv.log_text());
    assert!(!srv.log_text().contains("client went away"));
}

#[test]
fn peer_credentials_are_logged() {
    let srv = Server::shell("true", &[], &[]);
    let child = srv.client(&[]).stdin(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
    let uid = rustix::process::getuid().as_raw();
    let log = srv.log_text();
    assert!(log.contains(&format!("pid={pid} uid={uid}")), "{log}");
}

#[test]
fn idle_server_exits_and_a_busy_one_does_not() {
    let mut srv = Server::shell(r#"sleep "$1""#, &["--idle-timeout=1"], &[]);
    // A request longer than the idle timeout keeps the server up.
    assert_eq!(run(&mut srv.client(&["1.5"])).0, 0);
    assert!(srv.running(), "exited while a request was running");
    let idle_start = Instant::now();
    wait_for(|| !srv.running(), Duration::from_secs(5), "the idle exit");
    let idle = idle_start.elapsed();
    eprintln!("idle exit after {:.2} s (timeout 1 s)", idle.as_secs_f64());
    assert!(
        idle >= Duration::from_millis(800),
        "exited too early: {idle:?}"
    );
    assert!(srv.log_text().contains("idle: exiting"));
    let status = srv.process.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    let mut never = Server::shell("true", &["--idle-timeout=0"], &[]);
    assert_eq!(run(&mut never.client(&[])).0, 0);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(never.running(), "--idle-timeout=0 must never exit");
}

#[test]
fn client_death_terminates_the_command() {
    let srv = Server::shell(r#"echo $$ > "$1"; sleep 60 & wait $!"#, &[], &[]);
    let pidfile = srv.tmp.path().join("pid");
    let mut client = srv
        .client(&[pidfile.to_str().unwrap()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        || read_pid(&pidfile).is_some(),
        Duration::from_secs(10),
        "the command to start",
    );
    let pid = read_pid(&pidfile).unwrap();
    assert!(alive(pid));
    client.kill().unwrap();
    client.wait().unwrap();
    wait_for(
        || !alive(pid),
        Duration::from_secs(5),
        "the command to be terminated",
    );
    let log = srv.log_text();
    assert!(log.contains("client went away: SIGTERM"), "{log}");
}

#[test]
fn a_command_ignoring_sigterm_gets_sigkill() {
    let srv = Server::shell(
        r#"trap '' TERM; echo $$ > "$1"; while :; do sleep 0.1; done"#,
        &["--kill-timeout=1.5"],
        &[],
    );
    let pidfile = srv.tmp.path().join("pid");
    let mut client = srv
        .client(&[pidfile.to_str().unwrap()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        || read_pid(&pidfile).is_some(),
        Duration::from_secs(10),
        "the command to start",
    );
    let pid = read_pid(&pidfile).unwrap();
    client.kill().unwrap();
    client.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        alive(pid),
        "SIGTERM is ignored: still alive before the kill timeout"
    );
    wait_for(|| !alive(pid), Duration::from_secs(5), "SIGKILL");
    assert!(srv.log_text().contains("SIGKILL"));
}

#[test]
fn signals_are_forwarded_from_a_client_without_a_tty() {
    let srv = Server::shell(
        // Short foreground sleeps: no background job can outlive the
        // command holding the test's stdout pipe open.
        r#"trap 'echo "got $1"; exit 42' "$1"; echo ready; while :; do sleep 0.05; done"#,
        &[],
        &[],
    );
    for (sig, name) in [
        (libc_sig::INT, "INT"),
        (libc_sig::TERM, "TERM"),
        (libc_sig::HUP, "HUP"),
    ] {
        let mut client = srv
            .client(&[name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = client.stdout.take().unwrap();
        let mut ready = [0u8; 6];
        stdout.read_exact(&mut ready).unwrap();
        assert_eq!(&ready, b"ready\n");
        let pid = rustix::process::Pid::from_raw(client.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        let status = wait_bounded(&mut client, Duration::from_secs(30), name);
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert_eq!(
            status.signal(),
            None,
            "the client must not die of SIG{name}"
        );
        assert_eq!(status.code(), Some(42), "SIG{name}");
        assert_eq!(rest, format!("got {name}\n"));
    }
}

/// Waits for the client, killing it (and failing) past `limit`, so that a
/// lost signal fails the test instead of hanging the run.
fn wait_bounded(
    client: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = client.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = client.kill();
            panic!("the client did not exit within {limit:?} after SIG{what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

mod libc_sig {
    pub use rustix::process::Signal;
    pub const INT: Signal = Signal::INT;
    pub const TERM: Signal = Signal::TERM;
    pub const HUP: Signal = Signal::HUP;
}

#[test]
fn missing_server_is_reported_with_exit_69() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("connectors/ghost");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(CLIENT, dir.join("run")).unwrap();
    let (code, _, err) = run(&mut Command::new(dir.join("run")));
    assert_eq!(code, 69);
    let expected = format!(
        "connector ghost: no server at {}/ghost.sock (is the container running?)",
        dir.display()
    );
    assert!(err.contains(&expected), "{err}");
    // A socket file nobody listens on is the same situation.
    drop(std::os::unix::net::UnixListener::bind(dir.join("ghost.sock")).unwrap());
    assert_eq!(run(&mut Command::new(dir.join("run"))).0, 69);
}

#[test]
fn missing_entrypoint_is_127_with_a_message() {
    let argv = vec!["/nonexistent/entrypoint".to_string()];
    let srv = Server::start(&argv, &[]);
    let (code, _, err) = run(&mut srv.client(&["x"]));
    assert_eq!(code, 127);
    assert!(
        err.contains("cannot execute /nonexistent/entrypoint"),
        "{err}"
    );
}

#[test]
fn bulk_data_flows_through_the_passed_descriptors() {
    const TOTAL: usize = 200 << 20;
    let srv = Server::shell("exec cat", &[], &[]);
    let mut client = srv
        .client(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..TOTAL / chunk.len() {
            stdin.write_all(&chunk).unwrap();
        }
    });
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0usize;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == 0x5a));
        got += n;
    }
    writer.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(client.wait().unwrap().code(), Some(0));
    assert_eq!(got, TOTAL);
    eprintln!(
        "bulk: {} MB through the connector in {:.2} s = {:.0} MB/s",
        TOTAL >> 20,
        secs,
        (TOTAL >> 20) as f64 / secs
    );
}

#[test]
fn a_terminal_that_is_the_clients_own_is_not_stolen() {
    let srv = Server::shell(
        &format!("{SESSION_AND_TTY}\n[ -t 0 ] && echo stdin-is-a-tty"),
        &[],
        &[],
    );
    let (_master, slave) = open_pty();
    let mut client = srv.client(&[]);
    client.stdin(slave).stdout(Stdio::piped());
    // SAFETY: only raw system calls between fork and exec.
    unsafe {
        client.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
    let out = client.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, _, tty) = session_and_tty(&text);
    assert_eq!(
        tty, 0,
        "the client's controlling terminal stays the client's"
    );
    assert!(text.contains("stdin-is-a-tty"), "{text}");
}

#[test]
fn ctrl_c_on_the_clients_own_terminal_reaches_the_command() {
    let srv = Server::shell(
        r#"trap 'echo "got INT"; exit 42' INT; echo ready; while :; do sleep 0.05; done"#,
        &[],
        &[],
    );
    let (master, slave) = open_pty();
    let mut client = srv.client(&[]);
    client.stdin(slave).stdout(Stdio::piped());
    // SAFETY: only raw system calls between fork and exec.
    unsafe {
        client.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
    let mut child = client.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    // ^C typed on the terminal: the line discipline signals the client's
    // foreground process group; the client forwards it.
    rustix::io::write(&master, b"\x03").unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(42), "{rest}");
    assert_eq!(rest, "got INT\n");
}
