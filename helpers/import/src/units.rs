//! The unit files and scripts sdme puts inside a container (`/etc/systemd/system`
//! and `/oci` of the glue layers), as text: for the first app
//! ([`Slot::First`]: `/oci/root`, `sdme-oci-app.service`) and, alike, for
//! each other app of the container ([`Slot::Other`], `App=`:
//! `/oci/apps/NAME/root`, `sdme-oci-app@NAME.service`).

use crate::passwd::Credentials;
use sdme_unitfile::{Error, Section, Unit, Value};

pub const APP_SERVICE: &str = "sdme-oci-app.service";
pub const APP_SOCKET: &str = "sdme-oci-app.socket";
pub const OUTPUT_SERVICE: &str = "sdme-oci-app-output.service";
pub const LOG_SERVICE: &str = "sdme-oci-app-log.service";
pub const READY_SERVICE: &str = "sdme-oci-ready.service";
pub const HEALTH_TIMER: &str = "sdme-oci-health.timer";
pub const HEALTH_SERVICE: &str = "sdme-oci-health.service";
pub const HEALTH_CHECK_SERVICE: &str = "sdme-oci-health-check.service";
pub const USERS_SERVICE: &str = "sdme-oci-users.service";
/// The FIFO that is the app's stdout and stderr (see [`log_service`]).
pub const STDOUT_FIFO: &str = "/run/sdme-oci-app/stdout";
/// Where `sdme-connector-server` appears inside the app's root.
pub const CONNECTOR_SERVER: &str = "/usr/libexec/sdme-connector-server";
/// The launcher's environment file (the descriptor's `Environment=` and
/// `EnvironmentFile=`), bound into the container.
pub const LAUNCHER_ENV: &str = "/run/sdme/environment";
/// Default `PATH` when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Which app of the container a unit or file is for. The first app keeps
/// the seed's single-app layout; another one (`App=NAME`) has the same
/// units as instances named NAME and its files under `/oci/apps/NAME`.
/// NAME is a descriptor name (letters, digits, `-`, `_`, `.`), so it is
/// one plain word in unit names, paths and the scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Slot {
    #[default]
    First,
    Other(String),
}

impl Slot {
    /// `STEM.SUFFIX` for the first app, `STEM@NAME.SUFFIX` for another.
    pub fn unit(&self, stem: &str, suffix: &str) -> String {
        match self {
            Slot::First => format!("{stem}.{suffix}"),
            Slot::Other(name) => format!("{stem}@{name}.{suffix}"),
        }
    }
    pub fn app_service(&self) -> String {
        self.unit("sdme-oci-app", "service")
    }
    pub fn output_service(&self) -> String {
        self.unit("sdme-oci-app-output", "service")
    }
    pub fn log_service(&self) -> String {
        self.unit("sdme-oci-app-log", "service")
    }
    pub fn ready_service(&self) -> String {
        self.unit("sdme-oci-ready", "service")
    }
    pub fn health_timer(&self) -> String {
        self.unit("sdme-oci-health", "timer")
    }
    pub fn health_service(&self) -> String {
        self.unit("sdme-oci-health", "service")
    }
    pub fn health_check_service(&self) -> String {
        self.unit("sdme-oci-health-check", "service")
    }
    pub fn users_service(&self) -> String {
        self.unit("sdme-oci-users", "service")
    }
    /// The app's directory in the container: `/oci` or `/oci/apps/NAME`
    /// (its `root`, `env`, `passwd`, `group` and scripts).
    pub fn dir(&self) -> String {
        match self {
            Slot::First => "/oci".into(),
            Slot::Other(name) => format!("/oci/apps/{name}"),
        }
    }
    /// `/oci/root` or `/oci/apps/NAME/root`.
    pub fn root(&self) -> String {
        format!("{}/root", self.dir())
    }
    /// A file of the app's directory (`env`, `health`, …).
    pub fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.dir())
    }
    /// The FIFO that is the app's stdout and stderr (see [`log_service`]).
    pub fn stdout_fifo(&self) -> String {
        match self {
            Slot::First => STDOUT_FIFO.into(),
            Slot::Other(name) => format!("/run/sdme-oci-app@{name}/stdout"),
        }
    }
    /// The app's `/run`, a runtime directory of its unit in the
    /// container's `/run` (without the leading `/run/`), bound over the
    /// `/run` of the app's root: shared by every process run like the app
    /// (its health check, `ReloadCmd=`, `sdme exec`), which would each get
    /// an empty one of their own (`MountAPIVFS=`). systemd also binds the
    /// runtime directory at its own path inside the root, so the app sees
    /// an empty `/run/sdme-oci-run*` in its `/run`: harmless.
    pub fn run_dir_name(&self) -> String {
        self.unit("sdme-oci-run", "d")
            .trim_end_matches(".d")
            .to_string()
    }
    pub fn run_dir(&self) -> String {
        format!("/run/{}", self.run_dir_name())
    }
    /// The health runner's state (`status`, `failures`).
    pub fn health_state(&self) -> String {
        match self {
            Slot::First => "/run/sdme-oci-health".into(),
            Slot::Other(name) => format!("/run/sdme-oci-health@{name}"),
        }
    }
    /// Where the launcher binds the app's environment file (its
    /// descriptor's `Environment=`, `EnvironmentFile=`) and its accounts.
    pub fn launcher_dir(&self) -> String {
        match self {
            Slot::First => "/run/sdme".into(),
            Slot::Other(name) => format!("/run/sdme/apps/{name}"),
        }
    }
    pub fn launcher_env(&self) -> String {
        format!("{}/environment", self.launcher_dir())
    }
}

/// A script of the app's directory: the header, the slot's names as shell
/// variables (plain words, see [`Slot`], quoted anyway), then `body`.
fn script(what: &str, names: &[(&str, String)], body: &str) -> String {
    let mut out = format!("#!/bin/sh\n# Generated by sdme-import. {what}\n");
    for (k, v) in names {
        out.push_str(&format!("{k}='{v}'\n"));
    }
    out.push_str(body);
    out
}

/// Everything the app service needs, already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// Descriptor name: log identifier, connector name.
    pub name: String,
    /// Which app of the container this is.
    pub slot: Slot,
    /// Entrypoint + cmd, argv[0] absolute inside the app root.
    pub argv: Vec<String>,
    pub workdir: String,
    /// Numeric identity; `User=`/`Group=` are omitted for root.
    pub credentials: Credentials,
    pub kill_signal: Option<String>,
    /// Files of the container bound read-only into the app root (resolv.conf, hosts).
    pub bind_ro: Vec<String>,
    pub connector: bool,
    pub health: Option<HealthSpec>,
}

/// A health check: argv run like the app, and Docker's parameters in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    pub argv: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u32,
}

impl HealthSpec {
    /// Docker's defaults for unset values (30 s, 30 s, 0 s, 3).
    pub fn with_defaults(
        argv: Vec<String>,
        interval_ns: u64,
        timeout_ns: u64,
        start_ns: u64,
        retries: u32,
    ) -> Self {
        let secs = |ns: u64, default: u64| {
            if ns == 0 {
                default
            } else {
                ns.div_ceil(1_000_000_000)
            }
        };
        HealthSpec {
            argv,
            interval: secs(interval_ns, 30),
            timeout: secs(timeout_ns, 30),
            start_period: secs(start_ns, 0),
            retries: if retries == 0 { 3 } else { retries },
        }
    }
}

fn word(w: &str) -> Result<Value, Error> {
    Value::word(w)
}

/// `User=`, `Group=` and `SupplementaryGroups=` for numeric credentials
/// (nothing for root); `reset` first empties them (a drop-in over the
/// image's identity).
pub fn identity(section: &mut Section, c: &Credentials, reset: bool) -> Result<(), Error> {
    if reset {
        section
            .set("User", Value::reset())
            .set("Group", Value::reset())
            .set("SupplementaryGroups", Value::reset());
    }
    if c.uid != 0 || c.gid != 0 {
        section
            .set("User", Value::number(c.uid))
            .set("Group", Value::number(c.gid));
    }
    if !c.groups.is_empty() {
        let groups: Vec<String> = c.groups.iter().map(u32::to_string).collect();
        section.set("SupplementaryGroups", Value::words(&groups)?);
    }
    Ok(())
}

/// The app's environment: defaults, the image's, then the launcher's (later
/// files win). Only for processes run as the app, in its root: systemd
/// applies it to those alone. A process of the container's root must never
/// get it (the image's `LD_PRELOAD`, `PATH` or `BASH_ENV` would run the
/// image's code as the container's root).
fn app_environment(spec: &AppSpec, s: &mut Section) -> Result<(), Error> {
    s.set(
        "Environment",
        Value::environment(&[("PATH", DEFAULT_PATH)])?,
    )
    .set(
        "Environment",
        Value::environment(&[("HOME", spec.credentials.home.as_str())])?,
    )
    .set(
        "EnvironmentFile",
        Value::optional_path(&spec.slot.file("env"))?,
    )
    .set(
        "EnvironmentFile",
        Value::optional_path(&spec.slot.launcher_env())?,
    );
    Ok(())
}

/// The app's root (with its shared `/run`), environment, directory and
/// identity: the app's and its health check's.
fn exec_context(spec: &AppSpec, s: &mut Section) -> Result<(), Error> {
    s.set("RootDirectory", Value::path(&spec.slot.root())?)
        .set("MountAPIVFS", Value::boolean(true))
        // Over MountAPIVFS='s empty /run (systemd lets an explicit mount win).
        .set(
            "BindPaths",
            Value::bind(&spec.slot.run_dir(), "/run", false)?,
        );
    for path in &spec.bind_ro {
        s.set("BindReadOnlyPaths", Value::bind_path(path, true)?);
    }
    if spec.connector {
        s.set(
            "BindReadOnlyPaths",
            Value::bind_path(CONNECTOR_SERVER, false)?,
        );
    }
    app_environment(spec, s)?;
    s.set("WorkingDirectory", Value::path(&spec.workdir)?);
    identity(s, &spec.credentials, false)
}

fn generated(what: &str) -> Unit {
    let mut unit = Unit::new();
    unit.comment(&format!("Generated by sdme-import: {what}"));
    unit
}

pub fn app_service(spec: &AppSpec) -> Result<String, Error> {
    let slot = &spec.slot;
    let mut unit = generated(&format!(
        "the OCI application, chrooted in {}.",
        slot.root()
    ));
    let u = unit.section("Unit");
    u.set(
        "Description",
        Value::text(&format!("OCI application {}", spec.name)),
    )
    .set("Documentation", Value::text("man:sdme-import(8)"))
    .set("After", word("network.target")?)
    .set("Requires", word(&slot.users_service())?)
    .set("After", word(&slot.users_service())?);
    if spec.connector {
        u.set("Requires", word(APP_SOCKET)?)
            .set("After", word(APP_SOCKET)?);
    } else {
        // The app's stdout/stderr is a FIFO read by the log service: unlike
        // the journal's stream socket, a FIFO can be reopened through
        // /dev/stdout (Docker images symlink their logs there). Ordered
        // after both, the app is stopped before them: see [`log_service`].
        // Wants=, not Requires=: systemd propagates a restart, automatic
        // ones included, to the units that require the restarted one, and
        // a restarted log must not restart the app.
        u.set("Wants", word(&slot.output_service())?)
            .set("After", word(&slot.output_service())?)
            .set("Wants", word(&slot.log_service())?)
            .set("After", word(&slot.log_service())?);
    }
    let s = unit.section("Service");
    // `exec`: started means the program was executed, which is what
    // readiness `started` waits for (sdme-oci-ready.service).
    s.set(
        "Type",
        word(if spec.connector { "simple" } else { "exec" })?,
    );
    exec_context(spec, s)?;
    // New at every start, as the /run of a container would be; owned by
    // the app's user.
    s.set(
        "RuntimeDirectory",
        Value::relative_path(&slot.run_dir_name())?,
    )
    .set("RuntimeDirectoryMode", word("0755")?);
    if spec.connector {
        let mut argv = vec![CONNECTOR_SERVER.to_string(), "--".to_string()];
        argv.extend(spec.argv.iter().cloned());
        s.set("ExecStart", Value::command(&argv)?);
    } else {
        s.set("ExecStart", Value::command(&spec.argv)?)
            .set(
                "StandardOutput",
                Value::prefixed_path("file:", &slot.stdout_fifo())?,
            )
            .set("StandardError", word("inherit")?);
    }
    s.set("SyslogIdentifier", Value::text(&spec.name));
    if let Some(sig) = &spec.kill_signal {
        s.set("KillSignal", word(sig)?);
    }
    if !spec.connector {
        unit.section("Install")
            .set("WantedBy", word("multi-user.target")?);
    }
    Ok(unit.render())
}

/// Copies the FIFO to the journal, to its last line. The log service makes
/// the FIFO; [`output_service`] holds it open for writing while the app
/// runs, so that the app never sees EPIPE and `cat` never sees EOF. Stop
/// order is the reverse of `After=`: the app stops, then the holder, and
/// then `cat` reads what is left and ends at EOF by itself. Its stop signal
/// is SIGCONT, which `cat` ignores, so stopping it never cuts that short
/// (a writer that lingers is killed after `TimeoutStopSec=`).
/// `LogExtraFields=OBJECT_SYSTEMD_UNIT=` makes `journalctl -u sdme-oci-app`
/// show these lines (journalctl matches `_UID=0 + OBJECT_SYSTEMD_UNIT=`).
pub fn log_service(spec: &AppSpec) -> Result<String, Error> {
    let (name, slot) = (spec.name.as_str(), &spec.slot);
    let fifo = slot.stdout_fifo();
    let mut unit = generated("forwards the app's output to the journal.");
    unit.section("Unit").set(
        "Description",
        Value::text(&format!("Log of OCI application {name}")),
    );
    // 0622: the app may run as any user and reopens the FIFO through
    // /dev/stdout; mkfifo -m sets the mode whatever the umask.
    let make_fifo = format!(
        "mkdir -p -m 0755 {dir} && {{ [ -p {fifo} ] || mkfifo -m 0622 {fifo}; }}",
        dir = fifo.rsplit_once('/').map_or("/run", |(d, _)| d),
    );
    unit.section("Service")
        .set(
            "ExecStartPre",
            Value::command(&["/bin/sh", "-c", make_fifo.as_str()])?,
        )
        .set("ExecStart", Value::command(&["/bin/cat", fifo.as_str()])?)
        .set("StandardOutput", word("journal")?)
        .set("KillSignal", word("SIGCONT")?)
        .set("TimeoutStopSec", Value::number(10u64))
        // Also after an EOF: the app's first instance may have ended before
        // the output service held the FIFO. Never during a stop job.
        .set("Restart", word("always")?)
        .set("RestartSec", word("100ms")?)
        .set("SyslogIdentifier", Value::text(name))
        .set(
            "LogExtraFields",
            Value::text(&format!("OBJECT_SYSTEMD_UNIT={}", slot.app_service())),
        );
    Ok(unit.render())
}

/// Holds the FIFO open (read-write, so it never blocks and is never the
/// only end) from after the log service starts until after the app stops.
pub fn output_service(spec: &AppSpec) -> Result<String, Error> {
    let (name, slot) = (spec.name.as_str(), &spec.slot);
    let mut unit = generated(&format!("keeps the output of {} open.", slot.app_service()));
    unit.section("Unit")
        .set(
            "Description",
            Value::text(&format!("Output of OCI application {name}")),
        )
        .set("Wants", word(&slot.log_service())?)
        .set("After", word(&slot.log_service())?);
    let hold = format!("exec sleep infinity 0<>{}", slot.stdout_fifo());
    unit.section("Service")
        .set(
            "ExecStart",
            Value::command(&["/bin/sh", "-c", hold.as_str()])?,
        )
        .set("StandardOutput", word("null")?);
    Ok(unit.render())
}

/// Decides when the container is ready: its boot (and so `systemd-nspawn
/// --notify-ready=yes`, and the host's unit) finishes only when this
/// oneshot does. If it fails, the container exits with its status, so the
/// host's start fails with the reason in the container's journal.
pub fn ready_service(spec: &AppSpec) -> Result<String, Error> {
    let (name, slot) = (spec.name.as_str(), &spec.slot);
    let mut unit = generated("the container is ready when the app is (Notify=).");
    unit.section("Unit")
        .set(
            "Description",
            Value::text(&format!("Readiness of OCI application {name}")),
        )
        .set("After", word(&slot.app_service())?)
        .set("FailureAction", word("exit")?);
    unit.section("Service")
        .set("Type", word("oneshot")?)
        .set("RemainAfterExit", Value::boolean(true))
        .set(
            "ExecStart",
            Value::command(&["/bin/sh", slot.file("ready").as_str()])?,
        )
        .set("TimeoutStartSec", word("infinity")?)
        // On the console too, which is the host's journal of the
        // container's unit: a failed start says why where it failed.
        .set("StandardOutput", word("journal+console")?)
        .set("SyslogIdentifier", Value::text(&format!("{name}-ready")));
    Ok(unit.render())
}

/// The connector directory's path on the host; the generator binds it at the
/// same path into the connector's container (as well as at `/connectors/NAME`).
pub const CONNECTORS_HOST: &str = "/var/lib/sdme/connectors";

/// The connector socket, in the connector directory shared with the host.
/// It names the directory's *host* path: when the host socket unit
/// `sdme-connector@NAME.socket` started the container, systemd in the
/// container receives that socket (`LISTEN_FDS`) and gives it to the socket
/// unit whose address matches the socket's own name, which is the host path.
/// Started any other way, the unit binds the socket itself at the same path.
pub fn connector_socket(name: &str) -> Result<String, Error> {
    let mut unit = generated(&format!("the connector of {name}."));
    unit.section("Unit").set(
        "Description",
        Value::text(&format!("Connector of OCI application {name}")),
    );
    unit.section("Socket")
        .set(
            "ListenStream",
            Value::path(&format!("{CONNECTORS_HOST}/{name}/{name}.sock"))?,
        )
        .set("SocketMode", word("0666")?)
        .set("DirectoryMode", word("0755")?);
    unit.section("Install")
        .set("WantedBy", word("sockets.target")?);
    Ok(unit.render())
}

/// One run of the health check, as Docker runs it: like the app, in its
/// root, as its user, with its environment and its `/run` (a unix socket
/// such as postgres's, a pid file); systemd starts it there, so no process
/// of the container's root ever gets the image's environment.
pub fn health_check_service(spec: &AppSpec, health: &HealthSpec) -> Result<String, Error> {
    let mut unit = generated("one run of the image's HEALTHCHECK, as the app.");
    unit.section("Unit")
        .set(
            "Description",
            Value::text(&format!("Health check of OCI application {}", spec.name)),
        )
        // Fails at once, saying why, when the app is not running (its /run
        // would be missing too).
        .set("Requisite", word(&spec.slot.app_service())?)
        .set("After", word(&spec.slot.app_service())?);
    let s = unit.section("Service");
    s.set("Type", word("oneshot")?);
    exec_context(spec, s)?;
    s.set("ExecStart", Value::command(&health.argv)?)
        .set("TimeoutStartSec", Value::number(health.timeout))
        .set(
            "SyslogIdentifier",
            Value::text(&format!("{}-health", spec.name)),
        );
    Ok(unit.render())
}

/// The health runner's parameters, as `Environment=` of its service.
pub fn health_environment(
    retries: Option<u32>,
    start_period: Option<u64>,
    on_failure: Option<&str>,
) -> Result<Option<Value>, Error> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(r) = retries {
        pairs.push(("SDME_HEALTH_RETRIES", r.to_string()));
    }
    if let Some(s) = start_period {
        pairs.push(("SDME_HEALTH_START_PERIOD", s.to_string()));
    }
    if let Some(a) = on_failure {
        pairs.push(("SDME_HEALTH_ON_FAILURE", a.to_string()));
    }
    if pairs.is_empty() {
        return Ok(None);
    }
    Value::environment(&pairs).map(Some)
}

pub fn health_service(
    spec: &AppSpec,
    health: &HealthSpec,
    on_failure: &str,
) -> Result<String, Error> {
    let (name, slot) = (spec.name.as_str(), &spec.slot);
    let mut unit = generated("runs the health check and acts on repeated failure.");
    unit.section("Unit")
        .set(
            "Description",
            Value::text(&format!("Health of OCI application {name}")),
        )
        .set("After", word(&slot.app_service())?);
    let s = unit.section("Service");
    s.set("Type", word("oneshot")?);
    if let Some(env) = health_environment(
        Some(health.retries),
        Some(health.start_period),
        Some(on_failure),
    )? {
        s.set("Environment", env);
    }
    s.set(
        "ExecStart",
        Value::command(&["/bin/sh", slot.file("health").as_str()])?,
    )
    .set("SyslogIdentifier", Value::text(&format!("{name}-health")));
    Ok(unit.render())
}

pub fn health_timer(spec: &AppSpec, health: &HealthSpec) -> Result<String, Error> {
    let (name, slot) = (spec.name.as_str(), &spec.slot);
    let mut unit = generated(&format!(
        "schedules {} while the app runs.",
        slot.health_service()
    ));
    unit.section("Unit")
        .set(
            "Description",
            Value::text(&format!("Health checks of OCI application {name}")),
        )
        .set("BindsTo", word(&slot.app_service())?)
        .set("After", word(&slot.app_service())?);
    unit.section("Timer")
        .set("OnActiveSec", Value::number(health.interval))
        .set("OnUnitActiveSec", Value::number(health.interval))
        .set("AccuracySec", word("1s")?);
    Ok(unit.render())
}

/// Adds the app's accounts to the container's passwd/group before the app starts.
pub fn users_service(spec: &AppSpec) -> Result<String, Error> {
    let (name, slot) = (spec.name.as_str(), &spec.slot);
    let mut unit = generated("systemd resolves User= against the container's");
    unit.comment("passwd, so the app's numeric ids must exist there.");
    unit.section("Unit").set(
        "Description",
        Value::text(&format!("Accounts of OCI application {name}")),
    );
    unit.section("Service")
        .set("Type", word("oneshot")?)
        .set("RemainAfterExit", Value::boolean(true))
        .set(
            "ExecStart",
            Value::command(&["/bin/sh", slot.file("users").as_str()])?,
        );
    Ok(unit.render())
}

/// `/oci/users`: appends the entries of `/oci/passwd`, `/oci/group` (from the
/// image) and `/run/sdme/passwd`, `/run/sdme/group` (the launcher's `--user`)
/// whose ids the container does not have yet; a name already taken for
/// another id becomes `oci-ID`.
pub fn users_script(slot: &Slot) -> String {
    script(
        "Adds the app's accounts to the container's.",
        &[("glue", slot.dir()), ("launcher", slot.launcher_dir())],
        USERS_BODY,
    )
}

const USERS_BODY: &str = r#"# One app's accounts at a time: every app of the container appends to
# the same files at boot (mkdir is atomic; /run is new at every boot).
# A lock left by an instance killed outright is taken over after 30 s.
tries=0
until mkdir /run/sdme-oci-users.lock 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || break
    sleep 0.1
done
trap 'rmdir /run/sdme-oci-users.lock 2>/dev/null' EXIT
trap 'exit 1' INT TERM HUP
add() {
    file=$1 line=$2
    id=$(printf '%s\n' "$line" | cut -d: -f3)
    name=${line%%:*}
    [ -n "$id" ] || return 0
    grep -q "^[^:]*:[^:]*:$id:" "$file" && return 0
    if grep -q "^$name:" "$file"; then line="oci-$id:${line#*:}"; fi
    printf '%s\n' "$line" >>"$file"
}
for kind in group passwd; do
    for src in "$glue/$kind" "$launcher/$kind"; do
        [ -r "$src" ] || continue
        while IFS= read -r line; do add /etc/$kind "$line"; done <"$src"
    done
done
"#;

/// `/oci/ready`, run by the base's `/bin/sh` in `sdme-oci-ready.service`:
/// `SDME_NOTIFY=started` (the app was executed and is running) or
/// `healthy` (its health check passed once, tried every second while the
/// app runs); an app that is being restarted is waited for, for at most
/// `SDME_READY_WITHIN` seconds (default 60, within the host unit's default
/// start timeout). Set by the launcher.
pub fn ready_script(slot: &Slot) -> String {
    script(
        "Exits 0 when the app is ready; otherwise\n# says why and exits 1, which makes the container exit (FailureAction=exit).",
        &[
            ("app", slot.app_service()),
            ("check", slot.health_check_service()),
            ("state_dir", slot.health_state()),
        ],
        READY_BODY,
    )
}

const READY_BODY: &str = r#"# (systemctl show --property= --value: -P is systemd 246 and later.)
mode=${SDME_NOTIFY:-started}
within=${SDME_READY_WITHIN:-60}
show() { systemctl show --property="$1" --value "$app"; }
# 0: running; 1: on its way (starting, or waiting to be restarted); 2: gone.
state() {
    state=$(show ActiveState)
    case $state in
    active | reloading) return 0 ;;
    inactive | failed) [ -n "$(systemctl list-jobs --no-legend "$app")" ] && return 1 || return 2 ;;
    *) return 1 ;;
    esac
}
stopped() {
    echo "not ready: $app is $state ($(show Result), exit status $(show ExecMainStatus))"
    exit 1
}
case $mode in
started | healthy) ;;
*)
    echo "not ready: unknown SDME_NOTIFY=$mode"
    exit 1 ;;
esac
begin=$(cut -d. -f1 /proc/uptime)
elapsed() { echo $(($(cut -d. -f1 /proc/uptime) - begin)); }
mkdir -p "$state_dir"
while :; do
    state
    case $? in
    0)
        if [ "$mode" = started ]; then
            echo "ready: $app started"
            exit 0
        fi
        if systemctl start "$check"; then
            echo healthy >"$state_dir/status"
            echo "ready: the health check passed after $(elapsed) s"
            exit 0
        fi
        echo starting >"$state_dir/status" ;;
    2) stopped ;;
    esac
    if [ "$(elapsed)" -ge "$within" ]; then
        if [ "$mode" = started ]; then
            echo "not ready: $app did not start within $within s ($state)"
        else
            echo "not ready: the health check did not pass within $within s"
            echo unhealthy >"$state_dir/status"
        fi
        exit 1
    fi
    sleep 1
done
"#;

/// `/oci/health`, run by the base's `/bin/sh`: Docker's retries, start period
/// and an action after the last failed retry.
pub fn health_script(slot: &Slot) -> String {
    script(
        "Runs the health check unit once (the image's\n# HEALTHCHECK, run as the app) and acts after SDME_HEALTH_RETRIES\n# consecutive failures: restart, stop or none (SDME_HEALTH_ON_FAILURE).",
        &[
            ("app", slot.app_service()),
            ("check", slot.health_check_service()),
            ("state", slot.health_state()),
        ],
        HEALTH_BODY,
    )
}

const HEALTH_BODY: &str = r#"mkdir -p "$state"
retries=${SDME_HEALTH_RETRIES:-3}
start_period=${SDME_HEALTH_START_PERIOD:-0}
action=${SDME_HEALTH_ON_FAILURE:-restart}
if systemctl start "$check"; then
    echo 0 >"$state/failures"
    echo healthy >"$state/status"
    exit 0
fi
if [ "$start_period" -gt 0 ]; then
    since=$(systemctl show --property=ActiveEnterTimestampMonotonic --value "$app")
    now=$(cut -d. -f1 /proc/uptime)
    if [ $((now - ${since:-0} / 1000000)) -lt "$start_period" ]; then
        echo starting >"$state/status"
        exit 0
    fi
fi
failures=$(($(cat "$state/failures" 2>/dev/null || echo 0) + 1))
echo "$failures" >"$state/failures"
if [ "$failures" -lt "$retries" ]; then
    echo "health check failed ($failures of $retries)"
    exit 0
fi
echo unhealthy >"$state/status"
echo 0 >"$state/failures"
case "$action" in
restart)
    echo "unhealthy after $failures failed checks: restarting $app"
    systemctl restart --no-block "$app" ;;
stop)
    echo "unhealthy after $failures failed checks: stopping $app"
    systemctl stop --no-block "$app" ;;
*)
    echo "unhealthy after $failures failed checks" ;;
esac
exit 1
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AppSpec {
        AppSpec {
            name: "nginx".into(),
            slot: Slot::First,
            argv: vec![
                "/docker-entrypoint.sh".into(),
                "nginx".into(),
                "-g".into(),
                "daemon off;".into(),
            ],
            workdir: "/".into(),
            credentials: Credentials {
                uid: 101,
                gid: 101,
                groups: vec![4],
                home: "/var/cache/nginx".into(),
            },
            kill_signal: Some("SIGQUIT".into()),
            bind_ro: vec!["/etc/resolv.conf".into()],
            connector: false,
            health: None,
        }
    }

    #[test]
    fn app_service_has_the_seed_layout_and_numeric_ids() {
        let u = app_service(&spec()).unwrap();
        for line in [
            "RootDirectory=/oci/root\n",
            "MountAPIVFS=yes\n",
            "EnvironmentFile=-/oci/env\n",
            "EnvironmentFile=-/run/sdme/environment\n",
            "ExecStart=/docker-entrypoint.sh nginx -g \"daemon off;\"\n",
            "User=101\nGroup=101\nSupplementaryGroups=4\n",
            "KillSignal=SIGQUIT\n",
            "StandardOutput=file:/run/sdme-oci-app/stdout\n",
            "WantedBy=multi-user.target\n",
            "BindReadOnlyPaths=-/etc/resolv.conf\n",
        ] {
            assert!(u.contains(line), "missing {line:?} in\n{u}");
        }
        // The image env file comes after the launcher-independent defaults, the
        // launcher's file last (later files win).
        assert!(u.find("Environment=PATH").unwrap() < u.find("EnvironmentFile=-/oci/env").unwrap());
        assert!(u.find("/oci/env").unwrap() < u.find("/run/sdme/environment").unwrap());
    }

    #[test]
    fn connector_service_runs_the_server_and_is_socket_activated() {
        let mut s = spec();
        s.connector = true;
        let u = app_service(&s).unwrap();
        assert!(
            u.contains("ExecStart=/usr/libexec/sdme-connector-server -- /docker-entrypoint.sh"),
            "{u}"
        );
        assert!(u.contains("Requires=sdme-oci-app.socket"));
        assert!(!u.contains("[Install]"));
        assert!(connector_socket("nginx")
            .unwrap()
            .contains("ListenStream=/var/lib/sdme/connectors/nginx/nginx.sock\n"));
    }

    #[test]
    fn health_defaults_follow_docker() {
        let h = HealthSpec::with_defaults(vec!["/bin/true".into()], 0, 1_500_000_000, 0, 0);
        assert_eq!(
            (h.interval, h.timeout, h.start_period, h.retries),
            (30, 2, 0, 3)
        );
        let t = health_timer(&spec(), &h).unwrap();
        assert!(t.contains("OnUnitActiveSec=30\n") && t.contains("BindsTo=sdme-oci-app.service"));
        let c = health_check_service(&spec(), &h).unwrap();
        assert!(c.contains("TimeoutStartSec=2\n") && c.contains("ExecStart=/bin/true\n"));
        // Run as the app: its root, its /run, its identity and environment.
        for line in [
            "RootDirectory=/oci/root\n",
            "BindPaths=/run/sdme-oci-run:/run\n",
            "User=101\n",
            "EnvironmentFile=-/oci/env\n",
        ] {
            assert!(c.contains(line), "missing {line:?} in\n{c}");
        }
        assert!(
            c.contains("Requisite=sdme-oci-app.service\nAfter=sdme-oci-app.service\n"),
            "{c}"
        );
        // Only the app owns its /run (a runtime directory, new at every start).
        assert!(!c.contains("RuntimeDirectory"), "{c}");
        let u = app_service(&spec()).unwrap();
        assert!(
            u.contains("RuntimeDirectory=sdme-oci-run\nRuntimeDirectoryMode=0755\n"),
            "{u}"
        );
        assert!(u.contains("BindPaths=/run/sdme-oci-run:/run\n"), "{u}");
    }

    #[test]
    fn another_app_has_the_same_units_as_instances_and_its_own_files() {
        let mut other = spec();
        other.slot = Slot::Other("db".into());
        let u = app_service(&other).unwrap();
        for line in [
            "RootDirectory=/oci/apps/db/root\n",
            "EnvironmentFile=-/oci/apps/db/env\n",
            "EnvironmentFile=-/run/sdme/apps/db/environment\n",
            "StandardOutput=file:/run/sdme-oci-app@db/stdout\n",
            "Requires=sdme-oci-users@db.service\n",
            "Wants=sdme-oci-app-log@db.service\n",
            "Wants=sdme-oci-app-output@db.service\n",
        ] {
            assert!(u.contains(line), "missing {line:?} in\n{u}");
        }
        assert!(!u.contains("/oci/root") && !u.contains("/oci/env"), "{u}");
        let log = log_service(&other).unwrap();
        assert!(
            log.contains("OBJECT_SYSTEMD_UNIT=sdme-oci-app@db.service"),
            "{log}"
        );
        assert!(
            log.contains("/bin/cat /run/sdme-oci-app@db/stdout"),
            "{log}"
        );
        let ready = ready_service(&other).unwrap();
        assert!(
            ready.contains("After=sdme-oci-app@db.service") && ready.contains("/oci/apps/db/ready")
        );
        let h = HealthSpec::with_defaults(vec!["/bin/true".into()], 0, 0, 0, 0);
        let c = health_check_service(&other, &h).unwrap();
        assert!(
            c.contains("ExecStart=/bin/true\n")
                && c.contains("RootDirectory=/oci/apps/db/root\n")
                && c.contains("BindPaths=/run/sdme-oci-run@db:/run\n"),
            "{c}"
        );
        assert!(health_timer(&other, &h)
            .unwrap()
            .contains("BindsTo=sdme-oci-app@db.service"));
        // The scripts name only this app's units and state.
        let slot = &other.slot;
        for (script, names) in [
            (
                health_script(slot),
                vec![
                    "check='sdme-oci-health-check@db.service'",
                    "state='/run/sdme-oci-health@db'",
                ],
            ),
            (
                ready_script(slot),
                vec![
                    "app='sdme-oci-app@db.service'",
                    "state_dir='/run/sdme-oci-health@db'",
                ],
            ),
            (
                users_script(slot),
                vec!["glue='/oci/apps/db'", "launcher='/run/sdme/apps/db'"],
            ),
        ] {
            for n in names {
                assert!(script.contains(&format!("\n{n}\n")), "{n} in\n{script}");
            }
            assert!(!script.contains("sdme-oci-app.service"), "{script}");
            assert!(!script.contains("/run/sdme-oci-health/"), "{script}");
        }
    }

    /// The scripts are valid sh (`sh -n`), for either slot.
    #[test]
    fn scripts_parse() {
        for slot in [Slot::First, Slot::Other("db".into())] {
            for script in [
                health_script(&slot),
                ready_script(&slot),
                users_script(&slot),
            ] {
                let out = std::process::Command::new("sh")
                    .args(["-n", "-c", &script])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{script}\n{out:?}");
            }
        }
    }
}
