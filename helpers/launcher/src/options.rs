//! The command line of `sdme-nspawn` (HACKING.md, "Generator → container unit").

use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    /// `HOST:CONTAINER[:ro]`
    Bind {
        host: String,
        container: String,
        read_only: bool,
    },
    /// `CONTAINER`: an anonymous volume under `volumes/MACHINE/`.
    Anonymous { container: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub cmd: Option<String>,
    /// Seconds as given (`30`, `1.5`), valid for systemd time settings.
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub start_period: Option<String>,
    pub on_failure: Option<String>,
}

impl Health {
    pub fn any(&self) -> bool {
        self != &Health::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub machine: String,
    pub image: String,
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub volumes: Vec<Volume>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub restart: Option<String>,
    pub health: Health,
    pub store: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    /// Print the systemd-nspawn command line instead of running it.
    pub dry_run: bool,
    pub nspawn_args: Vec<OsString>,
}

pub const USAGE: &str = "usage: sdme-nspawn --machine=NAME --image=IMAGE [--env=KEY=VALUE] [--env-file=PATH] \
[--volume=HOST:CONTAINER[:ro]|CONTAINER] [--entrypoint=ARG]… [--cmd=ARG]… [--user=USER[:GROUP]] [--workdir=DIR] \
[--restart=POLICY] [--health-cmd=CMD] [--health-interval=SEC] [--health-timeout=SEC] [--health-retries=N] \
[--health-start-period=SEC] [--health-on-failure=restart|stop|none] [--store=DIR] [--runtime-dir=DIR] [--dry-run] \
-- [NSPAWN ARGS…]
See sdme-nspawn(8).";

fn absolute_clean(path: &str, what: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") || path.contains('\n') {
        return Err(format!(
            "{what} {path:?}: must be an absolute path without '..'"
        ));
    }
    Ok(path.to_string())
}

pub fn parse_volume(v: &str) -> Result<Volume, String> {
    let parts: Vec<&str> = v.split(':').collect();
    match parts.as_slice() {
        [c] => Ok(Volume::Anonymous {
            container: absolute_clean(c, "--volume")?,
        }),
        [h, c] => Ok(Volume::Bind {
            host: absolute_clean(h, "--volume")?,
            container: absolute_clean(c, "--volume")?,
            read_only: false,
        }),
        [h, c, o] if *o == "ro" || *o == "rw" => Ok(Volume::Bind {
            host: absolute_clean(h, "--volume")?,
            container: absolute_clean(c, "--volume")?,
            read_only: *o == "ro",
        }),
        _ => Err(format!(
            "invalid --volume={v:?}: expected HOST:CONTAINER[:ro] or CONTAINER"
        )),
    }
}

/// A number of seconds, possibly fractional (`30`, `1.5`, `2s`), returned without unit.
fn seconds(v: &str, name: &str) -> Result<String, String> {
    let t = v.strip_suffix('s').unwrap_or(v);
    match t.parse::<f64>() {
        Ok(x)
            if x.is_finite() && x >= 0.0 && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            Ok(t.to_string())
        }
        _ => Err(format!(
            "invalid {name}={v:?}: expected a number of seconds"
        )),
    }
}

pub fn parse(args: Vec<OsString>) -> Result<Option<Options>, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut o = Options::default();
    let val = |p: &mut lexopt::Parser, name: &str| -> Result<String, String> {
        p.value()
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|v| format!("{name}: {v:?} is not UTF-8"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("machine") => o.machine = val(&mut p, "--machine")?,
            Long("image") => o.image = val(&mut p, "--image")?,
            Long("env") => {
                let e = val(&mut p, "--env")?;
                if !e.contains('=') {
                    return Err(format!("invalid --env={e:?}: expected KEY=VALUE"));
                }
                o.env.push(e)
            }
            Long("env-file") => o.env_files.push(PathBuf::from(val(&mut p, "--env-file")?)),
            Long("volume") => o.volumes.push(parse_volume(&val(&mut p, "--volume")?)?),
            Long("entrypoint") => {
                let w = val(&mut p, "--entrypoint")?;
                let list = o.entrypoint.get_or_insert_with(Vec::new);
                if !w.is_empty() {
                    list.push(w);
                }
            }
            Long("cmd") => {
                let w = val(&mut p, "--cmd")?;
                let list = o.cmd.get_or_insert_with(Vec::new);
                if !w.is_empty() {
                    list.push(w);
                }
            }
            Long("user") => o.user = Some(val(&mut p, "--user")?),
            Long("workdir") => {
                o.workdir = Some(absolute_clean(&val(&mut p, "--workdir")?, "--workdir")?)
            }
            Long("restart") => o.restart = Some(restart_policy(&val(&mut p, "--restart")?)?),
            Long("health-cmd") => o.health.cmd = Some(val(&mut p, "--health-cmd")?),
            Long("health-interval") => {
                o.health.interval = Some(seconds(
                    &val(&mut p, "--health-interval")?,
                    "--health-interval",
                )?)
            }
            Long("health-timeout") => {
                o.health.timeout = Some(seconds(
                    &val(&mut p, "--health-timeout")?,
                    "--health-timeout",
                )?)
            }
            Long("health-start-period") => {
                o.health.start_period = Some(seconds(
                    &val(&mut p, "--health-start-period")?,
                    "--health-start-period",
                )?)
            }
            Long("health-retries") => {
                let v = val(&mut p, "--health-retries")?;
                o.health.retries = Some(
                    v.parse()
                        .map_err(|_| format!("invalid --health-retries={v:?}"))?,
                )
            }
            Long("health-on-failure") => {
                let v = val(&mut p, "--health-on-failure")?;
                if !matches!(v.as_str(), "restart" | "stop" | "none") {
                    return Err(format!(
                        "invalid --health-on-failure={v:?}: expected restart, stop or none"
                    ));
                }
                o.health.on_failure = Some(v)
            }
            Long("store") => o.store = Some(PathBuf::from(val(&mut p, "--store")?)),
            Long("runtime-dir") => {
                o.runtime_dir = Some(PathBuf::from(val(&mut p, "--runtime-dir")?))
            }
            Long("dry-run") => o.dry_run = true,
            Long("help") | Short('h') => return Ok(None),
            Value(v) => {
                // The first non-option starts the nspawn arguments (`--` is consumed by lexopt).
                o.nspawn_args.push(v);
                o.nspawn_args
                    .extend(p.raw_args().map_err(|e| e.to_string())?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if o.machine.is_empty() || o.image.is_empty() {
        return Err("--machine=NAME and --image=IMAGE are required".into());
    }
    sdme_store::check_name(&o.machine)?;
    sdme_store::check_name(&o.image)?;
    Ok(Some(o))
}

/// systemd's `Restart=` values, plus Docker's `unless-stopped`.
pub fn restart_policy(v: &str) -> Result<String, String> {
    match v {
        "no" | "on-success" | "on-failure" | "on-abnormal" | "on-watchdog" | "on-abort"
        | "always" => Ok(v.to_string()),
        "unless-stopped" => Ok("always".into()),
        _ => Err(format!(
            "invalid --restart={v:?}: expected a systemd Restart= value"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_the_generator_command_line() {
        let o = parse(args(&[
            "--machine=web",
            "--image=nginx",
            "--env=A=1",
            "--env=B=x y",
            "--volume=/srv:/usr/share/nginx/html:ro",
            "--volume=/data",
            "--entrypoint=",
            "--cmd=nginx",
            "--cmd=-g",
            "--restart=on-failure",
            "--health-cmd=curl -f http://localhost/",
            "--health-interval=5",
            "--",
            "--quiet",
            "--boot",
            "--machine=web",
            "--port=8080:80",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.env, vec!["A=1", "B=x y"]);
        assert_eq!(
            o.volumes[0],
            Volume::Bind {
                host: "/srv".into(),
                container: "/usr/share/nginx/html".into(),
                read_only: true
            }
        );
        assert_eq!(
            o.volumes[1],
            Volume::Anonymous {
                container: "/data".into()
            }
        );
        assert_eq!(o.entrypoint, Some(vec![]));
        assert_eq!(o.cmd, Some(vec!["nginx".to_string(), "-g".into()]));
        assert_eq!(o.health.interval.as_deref(), Some("5"));
        let o2 = parse(args(&[
            "--machine=a",
            "--image=x",
            "--health-timeout=1.5",
            "--health-start-period=2s",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o2.health.timeout.as_deref(), Some("1.5"));
        assert_eq!(o2.health.start_period.as_deref(), Some("2"));
        assert!(parse(args(&["--machine=a", "--image=x", "--health-interval=-1"])).is_err());
        assert!(parse(args(&["--machine=a", "--image=x", "--health-interval=1e3"])).is_err());
        assert_eq!(
            o.nspawn_args,
            args(&["--quiet", "--boot", "--machine=web", "--port=8080:80"])
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(args(&["--image=x"])).is_err());
        assert!(parse(args(&["--machine=a", "--image=x", "--volume=rel:/x"])).is_err());
        assert!(parse(args(&["--machine=a", "--image=x", "--volume=/a/../b"])).is_err());
        assert!(parse(args(&["--machine=a", "--image=x", "--env=NOVALUE"])).is_err());
        assert!(parse(args(&["--machine=a", "--image=x", "--restart=sometimes"])).is_err());
        assert!(parse(args(&[
            "--machine=a",
            "--image=x",
            "--health-on-failure=explode"
        ]))
        .is_err());
        assert_eq!(restart_policy("unless-stopped").unwrap(), "always");
    }
}
