//! `sdme-connector-client`: sends its stdio and arguments to a connector
//! server and exits with the command's exit status.

pub mod locate;
mod signals;

use crate::exit;
use crate::protocol::{self, Request, SignalMessage};
use crate::transport::{self, RecvError};
use locate::{Lookup, Target};
use rustix::event::{poll, PollFd, PollFlags};
use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// The name under which the client runs in explicit mode.
pub const PROGRAM: &str = "sdme-connector-client";
/// Signals the client passes on to the command instead of dying of them.
pub const FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

pub const USAGE: &str = "usage: sdme-connector-client [--connector-dir=DIR] [--name=NAME] \
[--socket=PATH] [--tty] [--] [ARGS...]\n       <connector-dir>/<command> [ARGS...]   (through a symlink)";

/// Environment variable that opts in to giving the command the client's
/// terminal as controlling terminal (`1`, `yes` or `true`), like `--tty`.
pub const TTY_ENV: &str = "SDME_CONNECTOR_TTY";

/// What to run: where, and with which arguments.
pub struct Invocation {
    pub target: Target,
    pub args: Vec<OsString>,
    /// Opted in (`--tty` or `$SDME_CONNECTOR_TTY`) to asking the server for
    /// a controlling terminal; only asked when stdin is a terminal.
    pub tty: bool,
}

/// Whether a value of [`TTY_ENV`] opts in.
pub fn tty_opt_in(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| matches!(v.to_str(), Some("1" | "yes" | "true")))
}

pub enum Parsed {
    Run(Invocation),
    Help,
    Version,
}

/// Works out the invocation from the whole command line and environment.
pub fn parse(argv: Vec<OsString>, env: &Lookup<'_>) -> Result<Parsed, String> {
    let mut argv = argv.into_iter();
    let argv0 = argv.next().unwrap_or_else(|| OsString::from(PROGRAM));
    let invoked_as = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_owned());
    if invoked_as.as_deref() != Some(std::ffi::OsStr::new(PROGRAM)) {
        let target = locate::from_argv0(&argv0, env)?;
        return Ok(Parsed::Run(Invocation {
            target,
            args: argv.collect(),
            tty: false,
        }));
    }
    parse_explicit(argv.collect(), env)
}

fn parse_explicit(args: Vec<OsString>, env: &Lookup<'_>) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let (mut dir, mut name, mut socket) = (None::<PathBuf>, None::<String>, None::<PathBuf>);
    let mut tty = false;
    let mut rest = Vec::new();
    loop {
        match parser.next().map_err(|e| e.to_string())? {
            Some(Long("connector-dir")) => dir = Some(value(&mut parser)?.into()),
            Some(Long("name")) => {
                let v = value(&mut parser)?;
                name = Some(
                    v.into_string()
                        .map_err(|v| format!("--name={v:?}: not UTF-8"))?,
                );
            }
            Some(Long("socket")) => socket = Some(value(&mut parser)?.into()),
            Some(Long("tty")) => tty = true,
            Some(Long("help") | Short('h')) => return Ok(Parsed::Help),
            Some(Long("version")) => return Ok(Parsed::Version),
            Some(Value(v)) => {
                rest.push(v);
                rest.extend(parser.raw_args().map_err(|e| e.to_string())?);
                break;
            }
            Some(other) => return Err(other.unexpected().to_string()),
            None => break,
        }
    }
    let target = match (socket, dir, name) {
        (Some(socket), _, name) => Target {
            name: name.unwrap_or_else(|| socket.display().to_string()),
            socket,
        },
        (None, Some(dir), name) => Target::in_dir(&dir, name.as_deref())?,
        (None, None, Some(name)) => locate::by_name(&name)?,
        (None, None, None) => locate::default_connector(env)?,
    };
    Ok(Parsed::Run(Invocation {
        target,
        args: rest,
        tty,
    }))
}

fn value(parser: &mut lexopt::Parser) -> Result<OsString, String> {
    parser.value().map_err(|e| e.to_string())
}

/// A failure with the exit code the client reports it with.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

/// Runs the invocation; returns the exit code to exit with.
pub fn run(inv: Invocation) -> Result<i32, Failure> {
    let name = inv.target.name.clone();
    let fail = |code, message: String| Failure {
        code,
        message: format!("connector {name}: {message}"),
    };
    let argv = locate::utf8_args(inv.args).map_err(|m| fail(exit::USAGE, m))?;
    // Before connecting, so that a signal arriving meanwhile is kept for
    // the command rather than killing the client.
    let signals = signals::SignalFd::block(&FORWARDED).map_err(|e| {
        fail(
            exit::PROTOCOL,
            format!("cannot set up signal forwarding: {e}"),
        )
    })?;
    let socket = connect(&inv.target).map_err(|(code, m)| fail(code, m))?;
    let stdio = [
        rustix::stdio::stdin(),
        rustix::stdio::stdout(),
        rustix::stdio::stderr(),
    ];
    let request = Request {
        argv,
        tty: inv.tty && rustix::termios::isatty(rustix::stdio::stdin()),
    };
    if let Err(e) = transport::send_request(&socket, stdio, &request) {
        // A server that refuses a peer (not allowed, too many sessions)
        // answers and closes at once, maybe before the request is sent:
        // its answer is then already waiting in the socket.
        if matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            if let Ok((code, Some(error))) = read_reply(&socket) {
                return Err(fail(code, error));
            }
        }
        return Err(fail(
            exit::PROTOCOL,
            format!("sending the request failed: {e}"),
        ));
    }
    loop {
        let mut fds = [
            PollFd::new(&socket, PollFlags::IN),
            PollFd::new(&signals, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(fail(exit::PROTOCOL, format!("poll failed: {e}"))),
        }
        if !fds[1].revents().is_empty() {
            if let Ok(sig) = signals.read() {
                // The server may already be gone; its reply (or the lack of
                // one) is what decides the exit code.
                let _ = transport::send_message(&socket, &SignalMessage { signal: sig });
            }
        }
        if !fds[0].revents().is_empty() {
            let (code, error) = read_reply(&socket).map_err(|(code, m)| fail(code, m))?;
            if let Some(error) = error {
                eprintln!("connector {name}: {error}");
            }
            return Ok(code);
        }
    }
}

fn connect(target: &Target) -> Result<UnixStream, (i32, String)> {
    UnixStream::connect(&target.socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => (
            exit::UNAVAILABLE,
            format!(
                "no server at {} (is the container running?)",
                target.socket.display()
            ),
        ),
        io::ErrorKind::PermissionDenied => (
            exit::NO_PERMISSION,
            format!(
                "permission denied connecting to {}",
                target.socket.display()
            ),
        ),
        _ => (
            exit::UNAVAILABLE,
            format!("cannot connect to {}: {e}", target.socket.display()),
        ),
    })
}

/// The exit code, and the server's explanation when it refused or could not
/// start the command.
fn read_reply(socket: &UnixStream) -> Result<(i32, Option<String>), (i32, String)> {
    let body = match transport::recv_plain_frame(socket, None) {
        Ok(Some(body)) => body,
        Ok(None) | Err(RecvError::Closed) => {
            return Err((
                exit::PROTOCOL,
                "server closed the connection without an exit status".into(),
            ))
        }
        Err(e) => return Err((exit::PROTOCOL, format!("bad reply from the server: {e}"))),
    };
    let reply = protocol::decode_reply(&body)
        .map_err(|e| (exit::PROTOCOL, format!("bad reply from the server: {e}")))?;
    Ok((reply.exit_code, reply.error))
}
