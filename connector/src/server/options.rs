//! Command line of `sdme-connector-server`.

use std::ffi::OsString;
use std::time::Duration;

pub const USAGE: &str = "usage: sdme-connector-server [--idle-timeout=SECONDS] \
[--kill-timeout=SECONDS] [--request-timeout=SECONDS] [--] ENTRYPOINT [ARGS...]";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The command run for each request, before the client's arguments.
    pub entrypoint: Vec<OsString>,
    /// Exit after this long without any request; `None` = never.
    pub idle_timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL when a client goes away.
    pub kill_timeout: Duration,
    /// How long a new connection may take to send its request.
    pub request_timeout: Duration,
}

pub enum Parsed {
    Run(Options),
    Help,
    Version,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut opts = Options {
        entrypoint: Vec::new(),
        idle_timeout: Some(Duration::from_secs(60)),
        kill_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
    };
    loop {
        let arg = parser.next().map_err(|e| e.to_string())?;
        match arg {
            Some(Long("idle-timeout")) => {
                let secs = seconds(&mut parser, "--idle-timeout")?;
                opts.idle_timeout = (!secs.is_zero()).then_some(secs);
            }
            Some(Long("kill-timeout")) => {
                opts.kill_timeout = seconds(&mut parser, "--kill-timeout")?
            }
            Some(Long("request-timeout")) => {
                opts.request_timeout = seconds(&mut parser, "--request-timeout")?
            }
            Some(Long("help") | Short('h')) => return Ok(Parsed::Help),
            Some(Long("version")) => return Ok(Parsed::Version),
            Some(Value(first)) => {
                // The entrypoint and its own arguments are taken verbatim,
                // even when they look like options.
                opts.entrypoint.push(first);
                opts.entrypoint
                    .extend(parser.raw_args().map_err(|e| e.to_string())?);
                break;
            }
            Some(other) => return Err(other.unexpected().to_string()),
            None => break,
        }
    }
    if opts.entrypoint.is_empty() {
        return Err("missing ENTRYPOINT".into());
    }
    Ok(Parsed::Run(opts))
}

fn seconds(parser: &mut lexopt::Parser, name: &str) -> Result<Duration, String> {
    let value = parser.value().map_err(|e| e.to_string())?;
    let text = value.to_string_lossy();
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{name}={text}: not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{name}={text}: out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().map(OsString::from)).unwrap() {
            Parsed::Run(o) => o,
            _ => panic!("expected options"),
        }
    }

    #[test]
    fn defaults_and_entrypoint_verbatim() {
        let o = run(&["/bin/nginx", "-g", "--idle-timeout=1"]);
        assert_eq!(o.entrypoint, ["/bin/nginx", "-g", "--idle-timeout=1"]);
        assert_eq!(o.idle_timeout, Some(Duration::from_secs(60)));
    }

    #[test]
    fn timeouts() {
        let o = run(&["--idle-timeout=0", "--kill-timeout=0.5", "--", "x"]);
        assert_eq!(o.idle_timeout, None);
        assert_eq!(o.kill_timeout, Duration::from_millis(500));
        assert_eq!(o.entrypoint, ["x"]);
    }

    #[test]
    fn errors() {
        assert!(parse([OsString::from("--idle-timeout=x"), "e".into()]).is_err());
        assert!(parse([OsString::from("--idle-timeout=-1"), "e".into()]).is_err());
        assert!(parse(Vec::<OsString>::new()).is_err());
        assert!(parse([OsString::from("--bogus")]).is_err());
    }
}
