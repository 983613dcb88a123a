//! The systemd tools `sdme` runs (systemctl, journalctl, systemd-run,
//! busctl, machinectl), each printed before it runs with `-v`, and the
//! failure type whose exit codes follow systemctl's.

use std::process::{Command, ExitStatus, Stdio};

/// Exit codes, as systemctl(1) and the LSB use them.
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
/// `status`: the unit is not active.
pub const EXIT_INACTIVE: u8 = 3;
/// No such descriptor (no such unit).
pub const EXIT_NO_SUCH: u8 = 4;

/// An error for the administrator (it names the descriptor or file) and
/// the exit code it ends `sdme` with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(EXIT_FAILURE, message)
    }
}

pub type Res<T> = Result<T, Failure>;

/// Runs commands, echoing them on stderr first when verbose.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sys {
    pub verbose: bool,
}

/// One argument as a shell would need it written.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

pub fn command_line(prog: &str, args: &[String]) -> String {
    std::iter::once(prog.to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Sys {
    fn command(&self, prog: &str, args: &[String]) -> Command {
        if self.verbose {
            eprintln!("+ {}", command_line(prog, args));
        }
        let mut c = Command::new(prog);
        c.args(args);
        c
    }

    /// Runs with the terminal (stdio inherited), for what the user reads:
    /// `systemctl status`, `journalctl`, `systemd-run --pty`.
    pub fn run(&self, prog: &str, args: &[String]) -> Res<ExitStatus> {
        self.spawn_status(self.command(prog, args), prog)
    }

    /// Like `run` with stdin from /dev/null.
    pub fn run_no_stdin(&self, prog: &str, args: &[String]) -> Res<ExitStatus> {
        let mut c = self.command(prog, args);
        c.stdin(Stdio::null());
        self.spawn_status(c, prog)
    }

    fn spawn_status(&self, mut c: Command, prog: &str) -> Res<ExitStatus> {
        c.status()
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot run {prog}: {e}")))
    }

    /// Runs and returns its stdout; a non-zero exit is an error carrying
    /// its stderr.
    pub fn read(&self, prog: &str, args: &[String]) -> Res<String> {
        let mut c = self.command(prog, args);
        c.stdin(Stdio::null());
        let out = c
            .output()
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot run {prog}: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(Failure::new(
                EXIT_FAILURE,
                format!(
                    "{} failed ({}): {}",
                    command_line(prog, args),
                    out.status,
                    err.trim()
                ),
            ));
        }
        String::from_utf8(out.stdout)
            .map_err(|_| Failure::new(EXIT_FAILURE, format!("{prog}: output is not UTF-8")))
    }

    /// `systemctl daemon-reload`, after descriptors changed.
    pub fn daemon_reload(&self) -> Res<()> {
        let status = self.run_no_stdin("systemctl", &args(&["daemon-reload"]))?;
        if status.success() {
            Ok(())
        } else {
            Err(Failure::new(
                EXIT_FAILURE,
                format!("systemctl daemon-reload failed ({status}); run it by hand"),
            ))
        }
    }

    /// `systemctl show` of some properties of several units.
    pub fn unit_states(&self, units: &[String], machine: Option<&str>) -> Res<Vec<UnitState>> {
        if units.is_empty() {
            return Ok(Vec::new());
        }
        let mut a = Vec::new();
        if let Some(m) = machine {
            a.push(format!("--machine={m}"));
        }
        a.push("show".into());
        a.push("--property=Id,LoadState,ActiveState,SubState,Result,InvocationID".into());
        a.push("--".into());
        a.extend(units.iter().cloned());
        let text = self.read("systemctl", &a)?;
        Ok(parse_show(&text, units))
    }
}

/// `&["a", "b"]` as owned arguments.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// One unit as `systemctl show` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub unit: String,
    pub load: String,
    pub active: String,
    pub sub: String,
    pub result: String,
    pub invocation: String,
}

impl UnitState {
    pub fn is_active(&self) -> bool {
        self.active == "active" || self.active == "reloading"
    }
    pub fn exists(&self) -> bool {
        self.load != "not-found" && !self.load.is_empty()
    }
}

/// Blocks of `KEY=VALUE` lines separated by empty lines, one per unit, in
/// the order asked.
pub fn parse_show(text: &str, units: &[String]) -> Vec<UnitState> {
    let mut out: Vec<UnitState> = Vec::new();
    let mut cur = UnitState::default();
    let mut any = false;
    let mut flush = |cur: &mut UnitState, any: &mut bool| {
        if *any {
            out.push(std::mem::take(cur));
        }
        *any = false;
    };
    for line in text.lines() {
        if line.is_empty() {
            flush(&mut cur, &mut any);
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        any = true;
        let v = v.to_string();
        match k {
            "Id" => cur.unit = v,
            "LoadState" => cur.load = v,
            "ActiveState" => cur.active = v,
            "SubState" => cur.sub = v,
            "Result" => cur.result = v,
            "InvocationID" => cur.invocation = v,
            _ => {}
        }
    }
    flush(&mut cur, &mut any);
    // Id is the unit's main name; report under the name asked for.
    for (state, asked) in out.iter_mut().zip(units) {
        state.unit = asked.clone();
    }
    out
}
