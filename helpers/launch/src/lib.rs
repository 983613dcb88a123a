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

/// A systemd credential from a host file: plain, or encrypted by
/// `systemd-creds encrypt` (decrypted by the launcher on the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    pub path: String,
    pub encrypted: bool,
}

/// `Secret=ID:VAR`: credential `ID`'s contents as environment variable `VAR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub id: String,
    pub var: String,
}

/// The longest credential sdme passes: systemd's limit per unit (1 MiB).
pub const CREDENTIAL_SIZE_MAX: u64 = 1024 * 1024;

/// A credential name: systemd's rule (`credential_name_valid()`: a file
/// name of 1 to 255 characters, printable ASCII without `/` and `:`, not
/// `.` or `..`) narrowed to letters, digits and `_ . @ + -`, not starting
/// with `-`, so that an ID is one plain word wherever it is written
/// (`LoadCredential=ID`, a path, nspawn's `ID:PATH`).
pub fn check_credential_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id != "."
        && id != ".."
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a credential name (1 to 255 letters, digits, '_', '.', '@', '+', '-'; \
             not starting with '-', not . or ..)"
        ))
    }
}

/// `ID:PATH`, PATH absolute and normalized (the file is the host's).
pub fn parse_credential(spec: &str, encrypted: bool) -> Result<Credential, String> {
    let Some((id, path)) = spec.split_once(':') else {
        return Err(format!("{spec:?} is not ID:PATH"));
    };
    check_credential_id(id)?;
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?} is not an absolute path (the credential's file on the host)"
        ));
    }
    check_absolute_path(path)?;
    Ok(Credential {
        id: id.to_string(),
        path: path.to_string(),
        encrypted,
    })
}

/// `ID:VAR`: a credential name and an environment variable name.
pub fn parse_secret(spec: &str) -> Result<Secret, String> {
    let Some((id, var)) = spec.split_once(':') else {
        return Err(format!("{spec:?} is not ID:VARIABLE"));
    };
    check_credential_id(id)?;
    if !is_valid_env_name(var) {
        return Err(format!("{var:?} is not a valid environment variable name"));
    }
    Ok(Secret {
        id: id.to_string(),
        var: var.to_string(),
    })
}

impl Credential {
    pub fn to_spec(&self) -> String {
        format!("{}:{}", self.id, self.path)
    }
}

/// When the container's unit becomes active (`Notify=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Notify {
    /// `healthy` if the app has a health check (the descriptor's or the
    /// image's), otherwise `started`: decided by the launcher, which knows
    /// the image.
    #[default]
    Auto,
    /// The app's program was executed and is running.
    Started,
    /// The app's health check passed once.
    Healthy,
    /// As soon as systemd-nspawn started the container (no readiness).
    No,
}

impl Notify {
    pub fn parse(v: &str) -> Result<Notify, String> {
        match v {
            "started" => Ok(Notify::Started),
            "healthy" => Ok(Notify::Healthy),
            "no" | "false" | "off" | "0" => Ok(Notify::No),
            _ => Err(format!("{v:?} is not one of started, healthy, no")),
        }
    }

    pub fn to_spec(self) -> &'static str {
        match self {
            Notify::Auto => "auto",
            Notify::Started => "started",
            Notify::Healthy => "healthy",
            Notify::No => "no",
        }
    }
}

/// How the app is stopped and reloaded, and whether it is a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub notify: Notify,
    /// A signal name as systemd takes it (`SIGTERM`, `SIGRTMIN+3`).
    pub stop_signal: Option<String>,
    /// Whole seconds the app gets to stop.
    pub stop_timeout: Option<u64>,
    /// `systemctl reload` sends this signal to the app's main process …
    pub reload_signal: Option<String>,
    /// … or runs this command in the app's root (argv; exclusive with the signal).
    pub reload_cmd: Option<Vec<String>>,
    /// The container powers off when the app exits, with its exit status.
    pub oneshot: bool,
}

/// The app's stop timeout when none is set: systemd's default.
pub const DEFAULT_STOP_TIMEOUT: u64 = 90;

/// What the host's unit adds to the app's stop timeout: the rest of the
/// container's shutdown, so that the app always gets its own.
pub const STOP_TIMEOUT_MARGIN: u64 = 30;

/// A signal name systemd's `KillSignal=` takes: `SIGNAME`, `SIGRTMIN+N`,
/// `SIGRTMAX-N` (without the `SIG` prefix too, as the image spec allows).
pub fn signal_name(v: &str) -> Result<String, String> {
    const NAMES: &[&str] = &[
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    let bare = v.strip_prefix("SIG").unwrap_or(v);
    let realtime = |rest: &str, max: u32| {
        !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit())
            && rest.parse::<u32>().is_ok_and(|n| n <= max)
    };
    let ok = NAMES.contains(&bare)
        || bare
            .strip_prefix("RTMIN")
            .is_some_and(|r| r.is_empty() || r.strip_prefix('+').is_some_and(|n| realtime(n, 30)))
        || bare
            .strip_prefix("RTMAX")
            .is_some_and(|r| r.is_empty() || r.strip_prefix('-').is_some_and(|n| realtime(n, 30)));
    if ok && !matches!(bare, "KILL" | "STOP") {
        Ok(format!("SIG{bare}"))
    } else {
        Err(format!(
            "{v:?} is not a signal name that can be caught (SIGHUP, SIGTERM, SIGRTMIN+3, …)"
        ))
    }
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
    /// `Credential=`, `EncryptedCredential=`: system credentials of the
    /// container (`--load-credential=`), loaded by its app service.
    pub credentials: Vec<Credential>,
    /// `Secret=ID:VAR`: a credential also as one of the app's variables.
    pub secrets: Vec<Secret>,
    pub lifecycle: Lifecycle,
    /// `Network=zone:NAME`: the container is in zone NAME (the generator
    /// also passes `--network-zone=NAME` to nspawn); the launcher starts
    /// the base's systemd-resolved before the app, for machine names.
    pub zone: Option<String>,
    /// `Network=container:OTHER`: run in machine OTHER's network namespace
    /// (`--network-namespace-path=` of its leader, found at start).
    pub netns_of: Option<String>,
    /// `App=`: other application images run in this container, each in
    /// `/oci/apps/IMAGE/root` as `sdme-oci-app@IMAGE.service`: a `Launch`
    /// whose `image` and app options ([`APP_OPTIONS`]) are set, nothing else.
    pub apps: Vec<Launch>,
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
[--connector-allow-gid=GID] [--connector-environment-files] [--zone=NAME] [--network-namespace-of=MACHINE] [--private-users=yes|no|unless-privileged-ports|BASE[:SIZE]] \
[--credential=ID:PATH] [--encrypted-credential=ID:PATH] [--secret=ID:VAR] \
[--notify=started|healthy|no] [--stop-signal=SIG] [--stop-timeout=SEC] [--reload-signal=SIG] [--reload-cmd=ARG]… [--oneshot] [--store=DIR] [--runtime-dir=DIR] [--dry-run] \
[--app=IMAGE [APP OPTIONS]…]… -- [NSPAWN ARGS…]
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
    /// The app options but the stop ones, in [`Launch::to_args`]'s order.
    fn app_args(&self, a: &mut Vec<String>) {
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
    }

    /// `sdme-nspawn`'s arguments (without the program), in the order of
    /// HACKING.md: identity, environment, volumes, command, user,
    /// directory, restart, health, connector access, test options, `--`,
    /// then the nspawn arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--machine={}", self.machine),
            format!("--image={}", self.image),
        ];
        self.app_args(&mut a);
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
        for c in &self.credentials {
            let option = match c.encrypted {
                true => "--encrypted-credential",
                false => "--credential",
            };
            a.push(format!("{option}={}", c.to_spec()));
        }
        a.extend(
            self.secrets
                .iter()
                .map(|s| format!("--secret={}:{}", s.id, s.var)),
        );
        let l = &self.lifecycle;
        if l.notify != Notify::Auto {
            a.push(format!("--notify={}", l.notify.to_spec()));
        }
        if let Some(s) = &l.stop_signal {
            a.push(format!("--stop-signal={s}"));
        }
        if let Some(t) = l.stop_timeout {
            a.push(format!("--stop-timeout={t}"));
        }
        if let Some(s) = &l.reload_signal {
            a.push(format!("--reload-signal={s}"));
        }
        if let Some(cmd) = &l.reload_cmd {
            a.extend(cmd.iter().map(|w| format!("--reload-cmd={w}")));
        }
        if l.oneshot {
            a.push("--oneshot".to_string());
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
        for app in &self.apps {
            a.push(format!("--app={}", app.image));
            app.app_args(&mut a);
            if let Some(s) = &app.lifecycle.stop_signal {
                a.push(format!("--stop-signal={s}"));
            }
            if let Some(t) = app.lifecycle.stop_timeout {
                a.push(format!("--stop-timeout={t}"));
            }
        }
        a.push("--".to_string());
        a.extend(self.nspawn_args.iter().cloned());
        a
    }
}

/// The options an app may have, before or after `--app=` (sdme-nspawn(8)).
pub const APP_OPTIONS: &[&str] = &[
    "env",
    "env-file",
    "volume",
    "entrypoint",
    "cmd",
    "user",
    "workdir",
    "restart",
    "health-cmd",
    "health-interval",
    "health-timeout",
    "health-start-period",
    "health-retries",
    "health-on-failure",
    "stop-signal",
    "stop-timeout",
];

fn value_of(p: &mut lexopt::Parser, name: &str) -> Result<String, String> {
    p.value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|v| format!("{name}: {v:?} is not UTF-8"))
}

fn bad(name: &str, e: String) -> String {
    format!("invalid {name}: {e}")
}

/// One of [`APP_OPTIONS`] (`name` without `--`), into the app `o`.
fn app_option(o: &mut Launch, name: &str, p: &mut lexopt::Parser) -> Result<(), String> {
    let option = format!("--{name}");
    let v = value_of(p, &option)?;
    match name {
        "env" => o
            .env
            .push(parse_env_assignment(&v).map_err(|e| bad(&option, e))?),
        "env-file" => {
            check_absolute_path(&v).map_err(|e| bad(&option, e))?;
            o.env_files.push(v);
        }
        "volume" => o
            .volumes
            .push(parse_volume(&v).map_err(|e| bad(&option, e))?),
        "entrypoint" | "cmd" => {
            let list = match name {
                "entrypoint" => o.entrypoint.get_or_insert_with(Vec::new),
                _ => o.cmd.get_or_insert_with(Vec::new),
            };
            if !v.is_empty() {
                list.push(v);
            }
        }
        "user" => o.user = Some(v),
        "workdir" => {
            check_absolute_path(&v).map_err(|e| bad(&option, e))?;
            o.workdir = Some(v);
        }
        "restart" => o.restart = Some(restart_policy(&v).map_err(|e| bad(&option, e))?),
        "health-cmd" => o.health.cmd = Some(v),
        "health-interval" | "health-timeout" | "health-start-period" => {
            let v = seconds(&v).map_err(|e| bad(&option, e))?;
            *match name {
                "health-interval" => &mut o.health.interval,
                "health-timeout" => &mut o.health.timeout,
                _ => &mut o.health.start_period,
            } = Some(v);
        }
        "health-retries" => {
            o.health.retries = Some(
                v.parse()
                    .map_err(|_| format!("invalid --health-retries={v:?}"))?,
            )
        }
        "health-on-failure" => {
            o.health.on_failure = Some(health_action(&v).map_err(|e| bad(&option, e))?)
        }
        "stop-signal" => {
            o.lifecycle.stop_signal = Some(signal_name(&v).map_err(|e| bad(&option, e))?)
        }
        "stop-timeout" => {
            o.lifecycle.stop_timeout = Some(
                v.parse::<u64>()
                    .ok()
                    .filter(|t| (1..=86400).contains(t) && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        format!("invalid --stop-timeout={v:?}: whole seconds from 1 to 86400")
                    })?,
            );
        }
        _ => return Err(format!("{option}: not an app option")),
    }
    Ok(())
}

/// Reads `sdme-nspawn`'s command line; `Ok(None)` for `--help`.
pub fn parse(args: Vec<OsString>) -> Result<Option<Launch>, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut o = Launch::default();
    let val = value_of;
    // After `--app=NAME`, app options are that app's and nothing else may follow.
    let mut extra: Option<usize> = None;
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        if let Long(name) = &arg {
            let name = name.to_string();
            if let Some(known) = APP_OPTIONS.iter().find(|n| **n == name) {
                let target = match extra {
                    Some(i) => &mut o.apps[i],
                    None => &mut o,
                };
                app_option(target, known, &mut p)?;
                continue;
            }
            if name == "app" {
                let x = val(&mut p, "--app")?;
                check_machine_name(&x).map_err(|e| bad("--app", e))?;
                if x == o.image {
                    return Err(format!("--app={x}: that is the container's own image"));
                }
                if o.apps.iter().any(|a| a.image == x) {
                    return Err(format!("--app={x}: that image is already in the container"));
                }
                o.apps.push(Launch {
                    image: x,
                    ..Launch::default()
                });
                extra = Some(o.apps.len() - 1);
                continue;
            }
            if let (Some(i), false) = (extra, name == "help") {
                return Err(format!(
                    "--{name} after --app={}: only app options ({}) may follow --app=",
                    o.apps[i].image,
                    APP_OPTIONS
                        .iter()
                        .map(|n| format!("--{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        match arg {
            Long("machine") => o.machine = val(&mut p, "--machine")?,
            Long("image") => o.image = val(&mut p, "--image")?,
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
            Long(name @ ("credential" | "encrypted-credential")) => {
                let encrypted = name == "encrypted-credential";
                let option = format!("--{name}");
                let spec = val(&mut p, &option)?;
                o.credentials
                    .push(parse_credential(&spec, encrypted).map_err(|e| bad(&option, e))?);
            }
            Long("secret") => o
                .secrets
                .push(parse_secret(&val(&mut p, "--secret")?).map_err(|e| bad("--secret", e))?),
            Long("notify") => {
                o.lifecycle.notify =
                    Notify::parse(&val(&mut p, "--notify")?).map_err(|e| bad("--notify", e))?
            }
            Long("reload-signal") => {
                o.lifecycle.reload_signal = Some(
                    signal_name(&val(&mut p, "--reload-signal")?)
                        .map_err(|e| bad("--reload-signal", e))?,
                )
            }
            Long("reload-cmd") => {
                let w = val(&mut p, "--reload-cmd")?;
                if w.is_empty() {
                    return Err("invalid --reload-cmd=: an empty word".into());
                }
                o.lifecycle.reload_cmd.get_or_insert_with(Vec::new).push(w);
            }
            Long("oneshot") => o.lifecycle.oneshot = true,
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
    if o.apps.iter().any(|a| a.image == o.image) {
        return Err(format!(
            "--app={}: that is the container's own image",
            o.image
        ));
    }
    if o.lifecycle.reload_signal.is_some() && o.lifecycle.reload_cmd.is_some() {
        return Err("--reload-signal and --reload-cmd exclude each other".into());
    }
    Ok(Some(o))
}

fn string(v: OsString) -> Result<String, String> {
    v.into_string()
        .map_err(|v| format!("nspawn argument {v:?} is not UTF-8"))
}

#[cfg(test)]
mod tests;
