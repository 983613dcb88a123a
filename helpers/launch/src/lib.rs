//! sdme-launch: the generator → launcher interface. One container's
//! settings as a type ([`Launch`]), written as `sdme-nspawn`'s command line
//! by [`Launch::to_args`] (the generator) and read back by [`parse`] (the
//! launcher), its exact inverse; and the rules for those settings (volume
//! syntax, restart policies, health actions and times, environment
//! assignments, connector access, user-namespace ranges), which exist
//! only here.
//!
//! It may call `sdme-unitfile` (the environment-name rule); it must never
//! read files, the store or descriptors: it is data and its two spellings.

use std::ffi::OsString;

pub use sdme_unitfile::envfile::is_valid_name as is_valid_env_name;

/// A volume: `HOST:CONTAINER[:ro|rw]` or `CONTAINER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    Bind {
        host: String,
        container: String,
        read_only: bool,
    },
    /// An anonymous volume under the store's `volumes/MACHINE/`.
    Anonymous { container: String },
}

/// systemd's `Restart=` values.
pub const RESTART_POLICIES: &[&str] = &[
    "no",
    "on-success",
    "on-failure",
    "on-abnormal",
    "on-watchdog",
    "on-abort",
    "always",
];

/// What the health runner does after the last failed retry.
pub const HEALTH_ACTIONS: &[&str] = &["restart", "stop", "none"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Run with `/bin/sh -c`; `none` masks the image's check.
    pub cmd: Option<String>,
    /// Seconds (`30`, `1.5`), as systemd time settings take them.
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<u32>,
    pub on_failure: Option<&'static str>,
}

impl Health {
    pub fn any(&self) -> bool {
        self != &Health::default()
    }
}

/// Whether the container gets a user namespace (`PrivateUsers=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrivateUsers {
    /// Its own range of 65536 ids, chosen and recorded by the launcher.
    #[default]
    Auto,
    /// None: root in the container is root on the host.
    No,
    /// In the host's network: a range of its own unless the image exposes
    /// a port below 1024, which the container's root could not bind there
    /// from a user namespace (the generator's default for `Network=host`).
    UnlessPrivilegedPorts,
    /// Exactly host ids `base..base+size`.
    Range { base: u32, size: u32 },
}

/// Ids per container, and the alignment of every range's base.
pub const ID_RANGE_SIZE: u32 = 0x10000;

/// A range a container may have: whole 65536-id slots above the host's
/// own ids 0…65535, ending at or below 0xFFFF0000 (above lie the ids
/// nothing may own, such as 4294967295).
pub fn check_id_range(base: u32, size: u32) -> Result<(), String> {
    if base < ID_RANGE_SIZE || base % ID_RANGE_SIZE != 0 {
        return Err(format!(
            "user namespace base {base} must be a multiple of 65536 and at least 65536"
        ));
    }
    if size < ID_RANGE_SIZE || size % ID_RANGE_SIZE != 0 {
        return Err(format!(
            "user namespace size {size} must be a multiple of 65536"
        ));
    }
    if base as u64 + size as u64 > 0xFFFF_0000 {
        return Err(format!(
            "user namespace range {base}:{size} ends above 4294901760"
        ));
    }
    Ok(())
}

impl PrivateUsers {
    /// `yes`, `no`, `unless-privileged-ports` or `BASE[:SIZE]` (SIZE
    /// defaults to 65536).
    pub fn parse(v: &str) -> Result<PrivateUsers, String> {
        match v {
            "yes" | "true" | "on" | "1" => return Ok(PrivateUsers::Auto),
            "no" | "false" | "off" | "0" => return Ok(PrivateUsers::No),
            "unless-privileged-ports" => return Ok(PrivateUsers::UnlessPrivilegedPorts),
            _ => {}
        }
        let (base, size) = match v.split_once(':') {
            Some((b, s)) => (b, Some(s)),
            None => (v, None),
        };
        let number = |s: &str| -> Result<u32, String> {
            s.parse::<u32>().map_err(|_| {
                format!("{v:?} is not yes, no, unless-privileged-ports or BASE[:SIZE] (numbers)")
            })
        };
        let base = number(base)?;
        let size = size.map(number).transpose()?.unwrap_or(ID_RANGE_SIZE);
        check_id_range(base, size)?;
        Ok(PrivateUsers::Range { base, size })
    }

    pub fn to_spec(&self) -> String {
        match self {
            PrivateUsers::Auto => "yes".into(),
            PrivateUsers::No => "no".into(),
            PrivateUsers::UnlessPrivilegedPorts => "unless-privileged-ports".into(),
            PrivateUsers::Range { base, size } => format!("{base}:{size}"),
        }
    }
}

/// Who may call a connector's server, and what its commands get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorAccess {
    /// Peers served besides root (checked with `SO_PEERCRED`); both lists
    /// empty: whoever can reach the socket.
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// Whether the commands get the descriptor's `EnvironmentFile=` values.
    pub environment_files: bool,
}

impl ConnectorAccess {
    /// Whether the server checks its callers; only then does the connector
    /// also listen where host users can reach it ([`public_connector_socket`]).
    pub fn restricted(&self) -> bool {
        !self.allow_uids.is_empty() || !self.allow_gids.is_empty()
    }
}

/// Where host users reach connectors that check their callers: outside the
/// private store (whose root is 0700), one directory per connector, bound
/// into the server's container at the same path so that its socket unit
/// listens there too. The generator's on-demand socket and the launcher
/// both use it.
pub const PUBLIC_CONNECTORS: &str = "/run/sdme-connectors";

/// `/run/sdme-connectors/NAME`.
pub fn public_connector_dir(name: &str) -> String {
    format!("{PUBLIC_CONNECTORS}/{name}")
}

/// `/run/sdme-connectors/NAME/NAME.sock`.
pub fn public_connector_socket(name: &str) -> String {
    format!("{PUBLIC_CONNECTORS}/{name}/{name}.sock")
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    pub machine: String,
    pub image: String,
    /// `Environment=` assignments, names valid for systemd.
    pub env: Vec<(String, String)>,
    /// Root-only host files in `EnvironmentFile=` syntax, absolute paths.
    pub env_files: Vec<String>,
    pub volumes: Vec<Volume>,
    /// `None`: the image's; `Some(empty)`: replaced by nothing.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub restart: Option<&'static str>,
    pub health: Health,
    pub connector: ConnectorAccess,
    pub private_users: PrivateUsers,
    /// `Network=zone:NAME`: the container is in zone NAME (the generator
    /// also passes `--network-zone=NAME` to nspawn); the launcher starts
    /// the base's systemd-resolved before the app, for machine names.
    pub zone: Option<String>,
    /// `Network=container:OTHER`: run in machine OTHER's network namespace
    /// (`--network-namespace-path=` of its leader, found at start).
    pub netns_of: Option<String>,
    /// For tests: another store and runtime directory, print instead of exec.
    pub store: Option<String>,
    pub runtime_dir: Option<String>,
    pub dry_run: bool,
    /// Passed to systemd-nspawn unchanged (after `--`).
    pub nspawn_args: Vec<String>,
}

pub const USAGE: &str = "usage: sdme-nspawn --machine=NAME --image=IMAGE [--env=KEY=VALUE] [--env-file=PATH] \
[--volume=HOST:CONTAINER[:ro]|CONTAINER] [--entrypoint=ARG]… [--cmd=ARG]… [--user=USER[:GROUP]] [--workdir=DIR] \
[--restart=POLICY] [--health-cmd=CMD] [--health-interval=SEC] [--health-timeout=SEC] [--health-retries=N] \
[--health-start-period=SEC] [--health-on-failure=restart|stop|none] [--connector-allow-uid=UID] \
[--connector-allow-gid=GID] [--connector-environment-files] [--zone=NAME] [--network-namespace-of=MACHINE] [--private-users=yes|no|unless-privileged-ports|BASE[:SIZE]] [--store=DIR] [--runtime-dir=DIR] [--dry-run] \
-- [NSPAWN ARGS…]
See sdme-nspawn(8).";

/// An absolute, normalized path (no `.`/`..` components, no `//`, no
/// trailing slash) without control characters.
pub fn check_absolute_path(s: &str) -> Result<(), String> {
    let normalized = s.starts_with('/')
        && (s == "/" || !s.ends_with('/'))
        && s.len() <= 4096
        && s[1..]
            .split('/')
            .all(|c| s == "/" || !(c.is_empty() || c == "." || c == ".."));
    if !normalized {
        return Err(format!("{s:?} is not an absolute, normalized path"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{s:?} contains a control character"));
    }
    // systemd-nspawn's --bind= reads a backslash as an escape.
    if s.contains('\\') {
        return Err(format!("{s:?} contains a backslash"));
    }
    Ok(())
}

/// `HOST:CONTAINER[:ro|rw]` or `CONTAINER`; paths absolute, normalized, without `:`.
pub fn parse_volume(s: &str) -> Result<Volume, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let path = |p: &str| check_absolute_path(p).map(|()| p.to_string());
    match parts.as_slice() {
        [container] => Ok(Volume::Anonymous {
            container: path(container)?,
        }),
        [host, container] => Ok(Volume::Bind {
            host: path(host)?,
            container: path(container)?,
            read_only: false,
        }),
        [host, container, mode @ ("ro" | "rw")] => Ok(Volume::Bind {
            host: path(host)?,
            container: path(container)?,
            read_only: *mode == "ro",
        }),
        [_, _, mode] => Err(format!("volume mode {mode:?} is not one of ro, rw")),
        _ => Err(format!(
            "{s:?} is not a volume (HOST:CONTAINER[:ro|rw] or CONTAINER)"
        )),
    }
}

impl Volume {
    /// The one spelling of a volume, which [`parse_volume`] reads back.
    pub fn to_spec(&self) -> String {
        match self {
            Volume::Bind {
                host,
                container,
                read_only: true,
            } => format!("{host}:{container}:ro"),
            Volume::Bind {
                host,
                container,
                read_only: false,
            } => format!("{host}:{container}"),
            Volume::Anonymous { container } => container.clone(),
        }
    }

    pub fn container(&self) -> &str {
        match self {
            Volume::Bind { container, .. } | Volume::Anonymous { container } => container,
        }
    }
}

/// `NAME=VALUE` with a name systemd accepts and no control characters in
/// the value but tab and newline.
pub fn parse_env_assignment(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!("{s:?} is not an environment assignment NAME=VALUE"));
    };
    if !is_valid_env_name(name) {
        return Err(format!("{name:?} is not a valid environment variable name"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\t' && c != '\n')
    {
        return Err(format!("the value of {name} contains a control character"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A `Restart=` value, or Docker's `unless-stopped` (systemd's `always`).
pub fn restart_policy(v: &str) -> Result<&'static str, String> {
    if v == "unless-stopped" {
        return Ok("always");
    }
    RESTART_POLICIES
        .iter()
        .find(|p| **p == v)
        .copied()
        .ok_or_else(|| {
            format!(
                "{v:?} is not a restart policy ({}, unless-stopped)",
                RESTART_POLICIES.join(", ")
            )
        })
}

pub fn health_action(v: &str) -> Result<&'static str, String> {
    HEALTH_ACTIONS
        .iter()
        .find(|a| **a == v)
        .copied()
        .ok_or_else(|| format!("{v:?} is not one of {}", HEALTH_ACTIONS.join(", ")))
}

/// A number of seconds, possibly fractional (`30`, `1.5`, `2s`), returned
/// without the unit.
pub fn seconds(v: &str) -> Result<String, String> {
    let t = v.strip_suffix('s').unwrap_or(v);
    let ok = !t.is_empty()
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|b| *b == b'.').count() <= 1
        && !t.starts_with('.')
        && !t.ends_with('.')
        && t.len() <= 32;
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!("{v:?} is not a number of seconds"))
    }
}

/// A uid or gid a connector may allow: a number that is not root's
/// (always served), `nobody`'s 65534 (every unmapped id looks like it) or
/// one systemd refuses.
pub fn connector_id(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(id)
            if v.bytes().all(|b| b.is_ascii_digit())
                && id != 0
                && id != 65534
                && id != 65535
                && id != u32::MAX =>
        {
            Ok(id)
        }
        _ => Err(format!(
            "{v:?} is not a numeric uid/gid other than 0, 65534, 65535 and 4294967295"
        )),
    }
}

/// A network zone's name: systemd-nspawn names the zone's bridge `vz-NAME`,
/// which must be a valid interface name (at most 15 bytes, so NAME at most
/// 12), of letters, digits, `_`, `-` and `.`, not starting with `-` or `.`.
pub fn check_zone_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 12
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a zone name (1 to 12 letters, digits, '_', '-', '.'; the bridge is vz-NAME)"
        ))
    }
}

/// A machine name as systemd-machined takes it: 1 to 64 letters, digits,
/// `_`, `-`, `.`, not starting with `-` or `.` (the generator's rule for
/// descriptor names is stricter or equal).
pub fn check_machine_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['-', '.'])
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not a machine name"))
    }
}

impl Launch {
    /// `sdme-nspawn`'s arguments (without the program), in the order of
    /// HACKING.md: identity, environment, volumes, command, user,
    /// directory, restart, health, connector access, test options, `--`,
    /// then the nspawn arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--machine={}", self.machine),
            format!("--image={}", self.image),
        ];
        a.extend(self.env.iter().map(|(k, v)| format!("--env={k}={v}")));
        a.extend(self.env_files.iter().map(|f| format!("--env-file={f}")));
        a.extend(
            self.volumes
                .iter()
                .map(|v| format!("--volume={}", v.to_spec())),
        );
        for (option, words) in [("--entrypoint", &self.entrypoint), ("--cmd", &self.cmd)] {
            match words.as_deref() {
                None => {}
                Some([]) => a.push(format!("{option}=")),
                Some(words) => a.extend(words.iter().map(|w| format!("{option}={w}"))),
            }
        }
        if let Some(user) = &self.user {
            a.push(format!("--user={user}"));
        }
        if let Some(dir) = &self.workdir {
            a.push(format!("--workdir={dir}"));
        }
        if let Some(restart) = self.restart {
            a.push(format!("--restart={restart}"));
        }
        let h = &self.health;
        if let Some(cmd) = &h.cmd {
            a.push(format!("--health-cmd={cmd}"));
        }
        for (option, value) in [
            ("--health-interval", &h.interval),
            ("--health-timeout", &h.timeout),
            ("--health-start-period", &h.start_period),
        ] {
            if let Some(v) = value {
                a.push(format!("{option}={v}"));
            }
        }
        if let Some(r) = h.retries {
            a.push(format!("--health-retries={r}"));
        }
        if let Some(action) = h.on_failure {
            a.push(format!("--health-on-failure={action}"));
        }
        let c = &self.connector;
        a.extend(
            c.allow_uids
                .iter()
                .map(|u| format!("--connector-allow-uid={u}")),
        );
        a.extend(
            c.allow_gids
                .iter()
                .map(|g| format!("--connector-allow-gid={g}")),
        );
        if c.environment_files {
            a.push("--connector-environment-files".to_string());
        }
        if let Some(zone) = &self.zone {
            a.push(format!("--zone={zone}"));
        }
        if let Some(other) = &self.netns_of {
            a.push(format!("--network-namespace-of={other}"));
        }
        if self.private_users != PrivateUsers::default() {
            a.push(format!("--private-users={}", self.private_users.to_spec()));
        }
        if let Some(s) = &self.store {
            a.push(format!("--store={s}"));
        }
        if let Some(r) = &self.runtime_dir {
            a.push(format!("--runtime-dir={r}"));
        }
        if self.dry_run {
            a.push("--dry-run".to_string());
        }
        a.push("--".to_string());
        a.extend(self.nspawn_args.iter().cloned());
        a
    }
}

/// Reads `sdme-nspawn`'s command line; `Ok(None)` for `--help`.
pub fn parse(args: Vec<OsString>) -> Result<Option<Launch>, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut o = Launch::default();
    let val = |p: &mut lexopt::Parser, name: &str| -> Result<String, String> {
        p.value()
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|v| format!("{name}: {v:?} is not UTF-8"))
    };
    let bad = |name: &str, e: String| format!("invalid {name}: {e}");
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("machine") => o.machine = val(&mut p, "--machine")?,
            Long("image") => o.image = val(&mut p, "--image")?,
            Long("env") => {
                let e = val(&mut p, "--env")?;
                o.env
                    .push(parse_env_assignment(&e).map_err(|e| bad("--env", e))?);
            }
            Long("env-file") => {
                let f = val(&mut p, "--env-file")?;
                check_absolute_path(&f).map_err(|e| bad("--env-file", e))?;
                o.env_files.push(f);
            }
            Long("volume") => o
                .volumes
                .push(parse_volume(&val(&mut p, "--volume")?).map_err(|e| bad("--volume", e))?),
            Long(name @ ("entrypoint" | "cmd")) => {
                let name = name.to_string();
                let option = format!("--{name}");
                let w = val(&mut p, &option)?;
                let list = match name.as_str() {
                    "entrypoint" => o.entrypoint.get_or_insert_with(Vec::new),
                    _ => o.cmd.get_or_insert_with(Vec::new),
                };
                if !w.is_empty() {
                    list.push(w);
                }
            }
            Long("user") => o.user = Some(val(&mut p, "--user")?),
            Long("workdir") => {
                let w = val(&mut p, "--workdir")?;
                check_absolute_path(&w).map_err(|e| bad("--workdir", e))?;
                o.workdir = Some(w);
            }
            Long("restart") => {
                o.restart = Some(
                    restart_policy(&val(&mut p, "--restart")?).map_err(|e| bad("--restart", e))?,
                )
            }
            Long("health-cmd") => o.health.cmd = Some(val(&mut p, "--health-cmd")?),
            Long(name @ ("health-interval" | "health-timeout" | "health-start-period")) => {
                let name = name.to_string();
                let option = format!("--{name}");
                let v = seconds(&val(&mut p, &option)?).map_err(|e| bad(&option, e))?;
                *match name.as_str() {
                    "health-interval" => &mut o.health.interval,
                    "health-timeout" => &mut o.health.timeout,
                    _ => &mut o.health.start_period,
                } = Some(v);
            }
            Long("health-retries") => {
                let v = val(&mut p, "--health-retries")?;
                o.health.retries = Some(
                    v.parse()
                        .map_err(|_| format!("invalid --health-retries={v:?}"))?,
                )
            }
            Long("health-on-failure") => {
                o.health.on_failure = Some(
                    health_action(&val(&mut p, "--health-on-failure")?)
                        .map_err(|e| bad("--health-on-failure", e))?,
                )
            }
            Long("connector-allow-uid") => o.connector.allow_uids.push(
                connector_id(&val(&mut p, "--connector-allow-uid")?)
                    .map_err(|e| bad("--connector-allow-uid", e))?,
            ),
            Long("connector-allow-gid") => o.connector.allow_gids.push(
                connector_id(&val(&mut p, "--connector-allow-gid")?)
                    .map_err(|e| bad("--connector-allow-gid", e))?,
            ),
            Long("connector-environment-files") => o.connector.environment_files = true,
            Long("private-users") => {
                o.private_users = PrivateUsers::parse(&val(&mut p, "--private-users")?)
                    .map_err(|e| bad("--private-users", e))?
            }
            Long("zone") => {
                let z = val(&mut p, "--zone")?;
                check_zone_name(&z).map_err(|e| bad("--zone", e))?;
                o.zone = Some(z);
            }
            Long("network-namespace-of") => {
                let m = val(&mut p, "--network-namespace-of")?;
                check_machine_name(&m).map_err(|e| bad("--network-namespace-of", e))?;
                o.netns_of = Some(m);
            }
            Long("store") => o.store = Some(val(&mut p, "--store")?),
            Long("runtime-dir") => o.runtime_dir = Some(val(&mut p, "--runtime-dir")?),
            Long("dry-run") => o.dry_run = true,
            Long("help") | Short('h') => return Ok(None),
            Value(v) => {
                // The first non-option starts the nspawn arguments (`--` is
                // consumed by lexopt).
                o.nspawn_args.push(string(v)?);
                for v in p.raw_args().map_err(|e| e.to_string())? {
                    o.nspawn_args.push(string(v)?);
                }
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if o.machine.is_empty() || o.image.is_empty() {
        return Err("--machine=NAME and --image=IMAGE are required".into());
    }
    Ok(Some(o))
}

fn string(v: OsString) -> Result<String, String> {
    v.into_string()
        .map_err(|v| format!("nspawn argument {v:?} is not UTF-8"))
}

#[cfg(test)]
mod tests;
