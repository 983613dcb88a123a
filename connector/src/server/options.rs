//! Command line of `sdme-connector-server`.

use std::ffi::OsString;
use std::time::Duration;

pub const USAGE: &str = "usage: sdme-connector-server [--idle-timeout=SECONDS] \
[--kill-timeout=SECONDS] [--request-timeout=SECONDS] [--allow-uid=UID[,UID...]]... \
[--allow-gid=GID[,GID...]]... [--max-per-uid=N] [--] ENTRYPOINT [ARGS...]";

/// Default of `--request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `--max-per-uid`.
pub const DEFAULT_MAX_PER_UID: usize = 32;
/// The id the kernel reports for a uid or gid that has no mapping in the
/// reader's user namespace (`/proc/sys/kernel/overflowuid`, default 65534):
/// every peer from an unmapped namespace looks like it, so it cannot be
/// allowed by number.
pub const OVERFLOW_ID: u32 = 65534;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The command run for each request, before the client's arguments.
    pub entrypoint: Vec<OsString>,
    /// Exit after this long without any request; `None` = never.
    pub idle_timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL when a client goes away.
    pub kill_timeout: Duration,
    /// How long a new connection may take to send its whole request (an
    /// absolute deadline from the accept, never zero), and a started
    /// follow-up message to arrive whole.
    pub request_timeout: Duration,
    /// Who may call, checked with `SO_PEERCRED` before the request is read.
    pub access: Access,
    /// Sessions one peer uid may have at once (never zero).
    pub max_per_uid: usize,
}

/// `--allow-uid` / `--allow-gid`. Both empty: every peer that can reach the
/// socket is served. Otherwise a peer is served when its uid is 0, its uid
/// is listed, or its primary gid or one of its supplementary groups
/// (`SO_PEERGROUPS`) is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
}

/// Why [`Access::check`] refused a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAllowed;

impl Access {
    /// Whether any `--allow-*` option was given.
    pub fn restricted(&self) -> bool {
        !self.uids.is_empty() || !self.gids.is_empty()
    }

    /// Whether the group list is needed to decide about a peer that neither
    /// is root nor has a listed uid or primary gid.
    pub fn needs_groups(&self) -> bool {
        !self.gids.is_empty()
    }

    /// Applies the rule to a peer's uid, primary gid and supplementary
    /// groups (pass an empty slice when they are unknown: only the primary
    /// gid then counts, which can only refuse more).
    pub fn check(&self, uid: u32, gid: u32, groups: &[u32]) -> Result<(), NotAllowed> {
        if !self.restricted()
            || uid == 0
            || self.uids.contains(&uid)
            || self.gids.contains(&gid)
            || groups.iter().any(|g| self.gids.contains(g))
        {
            Ok(())
        } else {
            Err(NotAllowed)
        }
    }
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
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
        access: Access::default(),
        max_per_uid: DEFAULT_MAX_PER_UID,
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
                let secs = seconds(&mut parser, "--request-timeout")?;
                if secs.is_zero() {
                    return Err("--request-timeout=0: a request must arrive within a \
                                bounded time; give a positive number of seconds"
                        .into());
                }
                opts.request_timeout = secs;
            }
            Some(Long("allow-uid")) => ids(&mut parser, "--allow-uid", &mut opts.access.uids)?,
            Some(Long("allow-gid")) => ids(&mut parser, "--allow-gid", &mut opts.access.gids)?,
            Some(Long("max-per-uid")) => {
                let value = parser.value().map_err(|e| e.to_string())?;
                let text = value.to_string_lossy();
                opts.max_per_uid = match text.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--max-per-uid={text}: not a positive number")),
                };
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

/// Appends a comma-separated list of numeric ids. Names are not resolved:
/// the server runs in the application's root, whose user database is the
/// image's (untrusted) content.
fn ids(parser: &mut lexopt::Parser, name: &str, out: &mut Vec<u32>) -> Result<(), String> {
    let value = parser.value().map_err(|e| e.to_string())?;
    let text = value.to_string_lossy();
    for word in text.split(',') {
        let id: u32 = word
            .parse()
            .map_err(|_| format!("{name}={text}: {word:?} is not a numeric id"))?;
        if id == u32::MAX {
            return Err(format!("{name}={text}: {id} is not a valid id"));
        }
        if id == OVERFLOW_ID {
            return Err(format!(
                "{name}={text}: {OVERFLOW_ID} is the overflow id that peers from \
                 unmapped user namespaces appear as; it cannot be allowed"
            ));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(())
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
    fn request_timeout_is_positive() {
        let o = run(&["--request-timeout=2.5", "x"]);
        assert_eq!(o.request_timeout, Duration::from_millis(2500));
        assert_eq!(run(&["x"]).request_timeout, DEFAULT_REQUEST_TIMEOUT);
        let err = parse(["--request-timeout=0", "x"].map(OsString::from)).err();
        assert!(err.is_some_and(|e| e.contains("--request-timeout=0")));
    }

    #[test]
    fn allow_lists_are_repeatable_and_comma_separated() {
        let o = run(&[
            "--allow-uid=1000",
            "--allow-uid=1001,1002",
            "--allow-gid=50",
            "x",
        ]);
        assert_eq!(o.access.uids, [1000, 1001, 1002]);
        assert_eq!(o.access.gids, [50]);
        assert!(!run(&["x"]).access.restricted());
        for bad in [
            "--allow-uid=root",
            "--allow-uid=",
            "--allow-uid=1,",
            "--allow-uid=-1",
            "--allow-gid=4294967295",
            "--allow-uid=65534",
            "--allow-gid=65534",
        ] {
            assert!(parse([bad, "x"].map(OsString::from)).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_per_uid() {
        assert_eq!(run(&["x"]).max_per_uid, DEFAULT_MAX_PER_UID);
        assert_eq!(run(&["--max-per-uid=3", "x"]).max_per_uid, 3);
        for bad in ["--max-per-uid=0", "--max-per-uid=x", "--max-per-uid=-2"] {
            assert!(parse([bad, "x"].map(OsString::from)).is_err(), "{bad}");
        }
    }

    #[test]
    fn access_rule() {
        let open = Access::default();
        assert_eq!(open.check(1000, 1000, &[]), Ok(()));
        let a = Access {
            uids: vec![1000],
            gids: vec![50],
        };
        assert_eq!(a.check(0, 0, &[]), Ok(()), "root");
        assert_eq!(a.check(1000, 1000, &[]), Ok(()), "listed uid");
        assert_eq!(a.check(2000, 50, &[]), Ok(()), "listed primary gid");
        assert_eq!(a.check(2000, 2000, &[7, 50]), Ok(()), "supplementary group");
        assert_eq!(a.check(2000, 2000, &[7]), Err(NotAllowed));
        assert_eq!(a.check(65534, 65534, &[65534]), Err(NotAllowed));
        let uids_only = Access {
            uids: vec![1000],
            gids: vec![],
        };
        assert!(!uids_only.needs_groups());
        assert_eq!(uids_only.check(2000, 1000, &[1000]), Err(NotAllowed));
    }

    #[test]
    fn errors() {
        assert!(parse([OsString::from("--idle-timeout=x"), "e".into()]).is_err());
        assert!(parse([OsString::from("--idle-timeout=-1"), "e".into()]).is_err());
        assert!(parse(Vec::<OsString>::new()).is_err());
        assert!(parse([OsString::from("--bogus")]).is_err());
    }
}
