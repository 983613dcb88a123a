//! Drop-ins that carry the container's overrides (entrypoint, cmd, user,
//! workdir, restart, health) into the container, bound at
//! `/run/systemd/system/UNIT.d/50-launcher.conf`.

use sdme_import::glue::{account_lines, resolve_argv, resolve_user};
use sdme_import::units::{self, Slot};
use sdme_launch::{Launch as Options, Notify};
use sdme_store::merged::MergedView;
use sdme_store::record::ImageRecord;
use sdme_store::Kind;
use sdme_unitfile::{Section, Unit, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitDropin {
    pub unit: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropins {
    pub units: Vec<UnitDropin>,
    /// Units masked (bound to /dev/null), e.g. the health timer for `--health-cmd=none`.
    pub masked: Vec<String>,
    /// A working directory to create in the app's upper layer.
    pub create_workdir: Option<String>,
    /// passwd and group lines for `--user` (bound at /run/sdme/passwd, /run/sdme/group).
    pub accounts: Option<(String, String)>,
    /// Readiness as decided here (`--notify-ready=yes` unless `No`), and
    /// the seconds the app may take to become ready (the host's unit must
    /// wait that long, plus the boot).
    pub notify: Notify,
    pub ready_within: u64,
    /// How long sdme-oci-ready.service may take (its `TimeoutStartSec=`).
    pub ready_bound: u64,
}

fn any_override(o: &Options) -> bool {
    o.entrypoint.is_some()
        || o.cmd.is_some()
        || o.user.is_some()
        || o.workdir.is_some()
        || o.restart.is_some()
        || o.health.any()
        || restricts_callers(o)
}

fn restricts_callers(o: &Options) -> bool {
    o.connector.restricted()
}

/// The drop-ins of the container's first app.
pub fn build(
    o: &Options,
    record: &ImageRecord,
    app_view: Option<&MergedView>,
) -> Result<Dropins, String> {
    build_for(&Slot::First, o, record, app_view)
}

/// The drop-ins of the app in `slot` (another app: `o` is its `--app=`).
pub fn build_for(
    slot: &Slot,
    o: &Options,
    record: &ImageRecord,
    app_view: Option<&MergedView>,
) -> Result<Dropins, String> {
    let mut out = if any_override(o) {
        overrides(slot, o, record, app_view)?
    } else {
        let mut out = Dropins::default();
        // Credentials alone: only the app's LoadCredential= lines (a base
        // OS image's own services import the system credentials themselves).
        if !o.credentials.is_empty() && record.kind != Kind::Base {
            let mut app = dropin();
            load_credentials(app.section("Service"), o)?;
            push(&mut out, &slot.app_service(), &app);
        }
        out
    };
    lifecycle(slot, o, record, app_view, &mut out)?;
    if !o.credentials.is_empty() && record.kind != Kind::Base {
        // The check runs as the app does: with its credentials too.
        let mut check = dropin();
        load_credentials(check.section("Service"), o)?;
        merge(
            &mut out,
            &slot.health_check_service(),
            check.render(),
            false,
        );
    }
    Ok(out)
}

/// The app's health check as it will run: the descriptor's settings over
/// the image's, Docker's defaults for the rest. `None`: no check.
fn effective_health(o: &Options, record: &ImageRecord) -> Option<units::HealthSpec> {
    let h = &o.health;
    let image = record
        .app
        .as_ref()
        .is_some_and(|a| a.health)
        .then(|| record.config.effective_healthcheck())
        .flatten();
    match h.cmd.as_deref() {
        Some("none" | "NONE") => return None,
        None if image.is_none() => return None,
        _ => {}
    }
    let ns = |v: u64| v;
    let base = match image {
        Some(hc) => units::HealthSpec::with_defaults(
            Vec::new(),
            ns(hc.interval),
            ns(hc.timeout),
            ns(hc.start_period),
            hc.retries,
        ),
        None => units::HealthSpec::with_defaults(Vec::new(), 0, 0, 0, 0),
    };
    // The launcher's seconds may be fractional: whole seconds, rounded up.
    let secs = |v: &Option<String>, default: u64| {
        v.as_ref()
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(default, |x| x.ceil() as u64)
    };
    Some(units::HealthSpec {
        argv: Vec::new(),
        interval: secs(&h.interval, base.interval).max(1),
        timeout: secs(&h.timeout, base.timeout),
        start_period: secs(&h.start_period, base.start_period),
        retries: h.retries.unwrap_or(base.retries),
    })
}

/// Readiness, stop and reload settings, and a job's exit (sdme.oci(5)
/// `Notify=`, `StopSignal=`, `StopTimeoutSec=`, `ReloadSignal=`,
/// `ReloadCmd=`, `Type=oneshot`).
fn lifecycle(
    slot: &Slot,
    o: &Options,
    record: &ImageRecord,
    app_view: Option<&MergedView>,
    out: &mut Dropins,
) -> Result<(), String> {
    let l = &o.lifecycle;
    let unit_err = |e: sdme_unitfile::Error| e.to_string();
    let app_kind = record.kind != Kind::Base && record.app.is_some();
    let changes_app = l.stop_signal.is_some()
        || l.stop_timeout.is_some()
        || l.reload_signal.is_some()
        || l.reload_cmd.is_some()
        || l.oneshot;
    let writes_app =
        l.stop_signal.is_some() || l.stop_timeout.is_some() || l.reload_cmd.is_some() || l.oneshot;
    if !app_kind {
        if changes_app || matches!(l.notify, Notify::Started | Notify::Healthy) {
            return Err(format!(
                "image {} is a base OS image: Notify=, StopSignal=, StopTimeoutSec=, ReloadSignal=, ReloadCmd= and Type=oneshot apply to application images only",
                o.image
            ));
        }
        // A base is ready when its boot is done.
        out.notify = if l.notify == Notify::No {
            Notify::No
        } else {
            Notify::Started
        };
        return Ok(());
    }
    let connector = record.kind == Kind::Connector;
    if connector && (l.oneshot || l.notify == Notify::Healthy) {
        return Err(format!(
            "image {} is a connector: its server starts on demand; Type=oneshot and Notify=healthy do not apply",
            o.image
        ));
    }
    let health = effective_health(o, record);
    out.notify = match (l.notify, &health) {
        _ if l.oneshot => Notify::No,
        (Notify::Auto, Some(_)) if !connector => Notify::Healthy,
        (Notify::Auto, _) => Notify::Started,
        (Notify::Healthy, None) => {
            return Err(format!(
                "Notify=healthy: image {} has no health check and HealthCmd= is not set",
                o.image
            ))
        }
        (n, _) => n,
    };
    if !connector {
        if out.notify == Notify::No {
            // Not part of the boot: a job may be done before it would look.
            out.masked.push(slot.ready_service());
            if l.oneshot && !out.masked.iter().any(|m| m == &slot.health_timer()) {
                // A failed check would restart (or stop) the job, and its
                // stop would end the container as if the job were done.
                out.masked.push(slot.health_timer());
            }
        } else if out.notify == Notify::Healthy {
            // Docker's time to call it unhealthy: the start period, then
            // `retries` failed checks `interval` apart.
            let h = health.as_ref().ok_or("health check expected")?;
            out.ready_within = h.start_period + u64::from(h.retries) * h.interval;
            out.ready_bound = out.ready_within + h.timeout + 30;
            let mut ready = dropin();
            ready
                .section("Service")
                .set(
                    "Environment",
                    Value::environment(&[
                        ("SDME_NOTIFY", "healthy".to_string()),
                        ("SDME_READY_WITHIN", out.ready_within.to_string()),
                    ])
                    .map_err(unit_err)?,
                )
                // The script ends itself; a check that hangs is bounded by its own timeout.
                .set("TimeoutStartSec", Value::number(out.ready_bound));
            push(out, &slot.ready_service(), &ready);
        }
    }
    if !writes_app {
        return Ok(());
    }
    let mut app = dropin();
    let s = app.section("Service");
    if let Some(sig) = &l.stop_signal {
        s.set("KillSignal", Value::word(sig).map_err(unit_err)?);
    }
    if let Some(t) = l.stop_timeout {
        s.set("TimeoutStopSec", Value::number(t));
    }
    // ReloadSignal= needs nothing here: the host's unit sends it with
    // systemd's own kill of the main process (sdme-generator), never from
    // a process of the container that could be given the image's
    // environment, and never to `$MAINPID`, which that environment may set.
    if let Some(cmd) = &l.reload_cmd {
        // A control process of the app's unit: in its root, as its user,
        // with its environment and its /run (units.rs), where nginx's pid
        // file is.
        let (Some(view), Some(info)) = (app_view, &record.app) else {
            return Err(format!("image {}: no application to reload", o.image));
        };
        let path_env = record
            .config
            .env_value("PATH")
            .unwrap_or(units::DEFAULT_PATH)
            .to_string();
        let workdir = o.workdir.clone().unwrap_or_else(|| info.workdir.clone());
        let resolved =
            resolve_argv(view, cmd, &path_env, &workdir).map_err(|e| format!("ReloadCmd=: {e}"))?;
        s.set("ExecReload", Value::command(&resolved).map_err(unit_err)?);
    }
    if l.oneshot {
        // The container's manager exits with the app's exit status, which
        // systemd-nspawn returns to the host's unit.
        s.set("Restart", Value::word("no").map_err(unit_err)?);
        app.section("Unit")
            .set("SuccessAction", Value::word("exit").map_err(unit_err)?)
            .set("FailureAction", Value::word("exit").map_err(unit_err)?);
    }
    merge(out, &slot.app_service(), app.render(), true);
    Ok(())
}

fn overrides(
    slot: &Slot,
    o: &Options,
    record: &ImageRecord,
    app_view: Option<&MergedView>,
) -> Result<Dropins, String> {
    let mut out = Dropins::default();
    let (Some(view), Some(info), true) = (app_view, &record.app, record.kind != Kind::Base) else {
        return Err(format!(
            "image {} is a base OS image: entrypoint, cmd, user, workdir, restart and health settings apply to application images only",
            o.image
        ));
    };
    if restricts_callers(o) && record.kind != Kind::Connector {
        return Err(format!(
            "image {} is not a connector: --connector-allow-uid/--connector-allow-gid apply to connector images only",
            o.image
        ));
    }
    let config = &record.config;
    let path_env = config
        .env_value("PATH")
        .unwrap_or(units::DEFAULT_PATH)
        .to_string();
    let workdir = o.workdir.clone().unwrap_or_else(|| info.workdir.clone());
    let unit_err = |e: sdme_unitfile::Error| e.to_string();
    let credentials = match &o.user {
        Some(u) => {
            let c = resolve_user(view, u)?;
            // A name is looked up in the image's passwd, which the image
            // controls: an administrator's `User=app` must not become root.
            let name = u.split(':').next().unwrap_or_default();
            let numeric = name.bytes().all(|b| b.is_ascii_digit());
            if !numeric && name != "root" && (c.uid == 0 || c.gid == 0 || c.groups.contains(&0)) {
                return Err(format!(
                    "User={u}: the image's /etc/passwd or /etc/group maps {name:?} to uid/gid 0; give numeric ids to run as root deliberately"
                ));
            }
            out.accounts = Some(account_lines(view, &c)?);
            Some(c)
        }
        None => None,
    };
    // Identity and directory, shared by the app and its health check.
    let identity = |s: &mut Section| -> Result<(), String> {
        if let Some(c) = &credentials {
            units::identity(s, c, true).map_err(unit_err)?;
            s.set(
                "Environment",
                Value::environment(&[("HOME", c.home.as_str())]).map_err(unit_err)?,
            );
        }
        if o.workdir.is_some() {
            s.set("WorkingDirectory", Value::path(&workdir).map_err(unit_err)?);
        }
        Ok(())
    };
    if o.workdir.is_some() && !view.exists(&workdir) {
        out.create_workdir = Some(workdir.clone());
    }

    let mut app = dropin();
    identity(app.section("Service"))?;
    load_credentials(app.section("Service"), o)?;
    let new_command = o.entrypoint.is_some() || o.cmd.is_some();
    if new_command || restricts_callers(o) {
        // Docker: a new entrypoint drops the image's cmd unless one is given.
        let mut argv = o
            .entrypoint
            .clone()
            .unwrap_or_else(|| config.entrypoint().to_vec());
        if record.kind == Kind::Connector {
            // The client supplies the arguments; only the program is set here.
            let cmd = o.cmd.clone().unwrap_or_else(|| config.cmd().to_vec());
            argv = sdme_import::glue::connector_command(&argv, &cmd);
        } else {
            match &o.cmd {
                Some(c) => argv.extend(c.iter().cloned()),
                None if o.entrypoint.is_none() => argv.extend(config.cmd().iter().cloned()),
                None => {}
            }
        }
        let mut argv = if new_command {
            resolve_argv(view, &argv, &path_env, &workdir)?
        } else {
            info.argv.clone()
        };
        if record.kind == Kind::Connector {
            // Who may call is the server's to check, on every connection.
            let mut server = vec![units::CONNECTOR_SERVER.to_string()];
            let c = &o.connector;
            server.extend(c.allow_uids.iter().map(|u| format!("--allow-uid={u}")));
            server.extend(c.allow_gids.iter().map(|g| format!("--allow-gid={g}")));
            server.push("--".to_string());
            argv.splice(0..0, server);
        }
        app.section("Service")
            .set("ExecStart", Value::reset())
            .set("ExecStart", Value::command(&argv).map_err(unit_err)?);
    }
    if restricts_callers(o) {
        // The second socket, for host users (the launcher binds its
        // directory): the server gets both and checks every caller.
        let mut socket = dropin();
        socket.section("Socket").set(
            "ListenStream",
            Value::path(&sdme_launch::public_connector_socket(&o.image)).map_err(unit_err)?,
        );
        push(&mut out, units::APP_SOCKET, &socket);
    }
    if let Some(r) = &o.restart {
        app.section("Service")
            .set("Restart", Value::word(r).map_err(unit_err)?);
    }

    let h = &o.health;
    if matches!(h.cmd.as_deref(), Some("none" | "NONE")) {
        out.masked.push(slot.health_timer());
    } else if h.any() || credentials.is_some() || o.workdir.is_some() {
        // The check runs as the app (units.rs): the same identity and
        // directory as the app's overrides.
        let mut check = dropin();
        let s = check.section("Service");
        identity(s)?;
        if let Some(cmd) = &h.cmd {
            // Docker's CMD-SHELL: the app root's shell.
            let argv = ["/bin/sh", "-c", cmd.as_str()];
            s.set("ExecStart", Value::reset())
                .set("ExecStart", Value::command(&argv).map_err(unit_err)?);
            app.section("Unit").set(
                "Wants",
                Value::word(&slot.health_timer()).map_err(unit_err)?,
            );
        }
        if let Some(t) = &h.timeout {
            s.set("TimeoutStartSec", Value::word(t).map_err(unit_err)?);
        }
        push(&mut out, &slot.health_check_service(), &check);
        // /oci/health compares whole seconds.
        let start_period = h
            .start_period
            .as_ref()
            .map(|s| s.parse::<f64>().map(|x| x.ceil() as u64).unwrap_or(0));
        if let Some(env) =
            units::health_environment(h.retries, start_period, h.on_failure).map_err(unit_err)?
        {
            let mut service = dropin();
            service.section("Service").set("Environment", env);
            push(&mut out, &slot.health_service(), &service);
        }
        if let Some(i) = &h.interval {
            let interval = Value::word(i).map_err(unit_err)?;
            let mut timer = dropin();
            // An empty assignment resets every monotonic timer of the unit,
            // not only its own kind.
            timer
                .section("Timer")
                .set("OnActiveSec", Value::reset())
                .set("OnActiveSec", interval.clone())
                .set("OnUnitActiveSec", interval);
            push(&mut out, &slot.health_timer(), &timer);
        }
    }
    if !app.is_empty() {
        out.units.insert(
            0,
            UnitDropin {
                unit: slot.app_service(),
                text: app.render(),
            },
        );
    }
    Ok(out)
}

/// `LoadCredential=ID` for each credential: the container's systemd got
/// them from nspawn as system credentials, and a name without a path loads
/// the system credential of that name (systemd 252; `ImportCredential=`
/// only exists from 254). systemd mounts the service's credentials at
/// `/run/credentials/sdme-oci-app.service` inside its `RootDirectory=`,
/// which is where `$CREDENTIALS_DIRECTORY` points.
fn load_credentials(s: &mut Section, o: &Options) -> Result<(), String> {
    for c in &o.credentials {
        s.set(
            "LoadCredential",
            Value::word(&c.id).map_err(|e| e.to_string())?,
        );
    }
    Ok(())
}

/// Adds the rendered drop-in `text` to `unit`'s, one file per unit: after
/// the one already there (without its comment; sections may repeat), or
/// as a new one (`first`: before the others).
fn merge(out: &mut Dropins, unit: &str, text: String, first: bool) {
    match out.units.iter_mut().find(|u| u.unit == unit) {
        Some(existing) => existing.text.extend(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{l}\n")),
        ),
        None => {
            let dropin = UnitDropin {
                unit: unit.to_string(),
                text,
            };
            match first {
                true => out.units.insert(0, dropin),
                false => out.units.push(dropin),
            }
        }
    }
}

/// A drop-in of the launcher's, `[Unit]` before `[Service]`.
fn dropin() -> Unit {
    let mut unit = Unit::new();
    unit.comment("Generated by sdme-nspawn from the container's settings.");
    unit.section("Unit");
    unit
}

fn push(out: &mut Dropins, unit: &str, dropin: &Unit) {
    if !dropin.is_empty() {
        out.units.push(UnitDropin {
            unit: unit.to_string(),
            text: dropin.render(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdme_store::record::{AppInfo, GLUE_VERSION};
    use sdme_store::runconfig::RunConfig;
    use std::os::unix::fs::PermissionsExt;

    fn fixture(t: &std::path::Path) -> (MergedView, ImageRecord) {
        let l = t.join("l");
        for (p, body) in [("usr/bin/app", ""), ("usr/bin/other", "")] {
            std::fs::create_dir_all(l.join(p).parent().unwrap()).unwrap();
            std::fs::write(l.join(p), body).unwrap();
            std::fs::set_permissions(l.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::create_dir_all(l.join("etc")).unwrap();
        std::fs::write(
            l.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nsvc:x:7:8::/home/svc:/bin/sh\nnobody:x:0:0::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(l.join("etc/group"), "root:x:0:\nsvc:x:8:\n").unwrap();
        let config =
            RunConfig::from_image_config(br#"{"config":{"Entrypoint":["app"],"Cmd":["--serve"]}}"#)
                .unwrap();
        let record = ImageRecord {
            name: "a".into(),
            source: "s".into(),
            reference: "s".into(),
            manifest_digest: "sha256:0".into(),
            mode: "auto".into(),
            kind: Kind::App,
            base: Some("b".into()),
            layers: vec![],
            systemd_layer: false,
            app_glue: true,
            extra_glue: false,
            app: Some(AppInfo {
                argv: vec!["/usr/bin/app".into(), "--serve".into()],
                workdir: "/".into(),
                user: String::new(),
                health: false,
            }),
            glue_version: GLUE_VERSION,
            config,
            image_config: serde_json::Value::Null,
        };
        (MergedView::new(vec![l]), record)
    }

    /// Nothing to write: ready when started.
    fn started() -> Dropins {
        Dropins {
            notify: Notify::Started,
            ..Dropins::default()
        }
    }

    fn opts() -> Options {
        Options {
            machine: "m".into(),
            image: "a".into(),
            ..Default::default()
        }
    }

    #[test]
    fn no_overrides_no_dropins() {
        let t = tempfile::tempdir().unwrap();
        let (v, r) = fixture(t.path());
        assert_eq!(build(&opts(), &r, Some(&v)).unwrap(), started());
    }

    #[test]
    fn cmd_override_keeps_entrypoint_and_entrypoint_override_drops_cmd() {
        let t = tempfile::tempdir().unwrap();
        let (v, r) = fixture(t.path());
        let mut o = opts();
        o.cmd = Some(vec!["--other".into()]);
        let d = build(&o, &r, Some(&v)).unwrap();
        assert!(
            d.units[0]
                .text
                .contains("ExecStart=\nExecStart=/usr/bin/app --other\n"),
            "{}",
            d.units[0].text
        );
        let mut o = opts();
        o.entrypoint = Some(vec!["other".into()]);
        let d = build(&o, &r, Some(&v)).unwrap();
        assert!(d.units[0].text.contains("ExecStart=/usr/bin/other\n"));
    }

    #[test]
    fn user_workdir_restart_and_health() {
        let t = tempfile::tempdir().unwrap();
        let (v, r) = fixture(t.path());
        let mut o = opts();
        o.user = Some("svc".into());
        o.workdir = Some("/work".into());
        o.restart = Some("always");
        o.health.cmd = Some("test -e /ok".into());
        o.health.interval = Some("7".into());
        let d = build(&o, &r, Some(&v)).unwrap();
        let app = &d.units[0];
        assert_eq!(app.unit, "sdme-oci-app.service");
        assert!(
            app.text.contains("[Unit]\nWants=sdme-oci-health.timer\n"),
            "{}",
            app.text
        );
        assert!(app.text.contains("User=7\nGroup=8\n") && app.text.contains("Restart=always\n"));
        assert_eq!(
            d.accounts,
            Some((
                "svc:x:7:8::/home/svc:/usr/sbin/nologin\n".to_string(),
                "svc:x:8:\n".to_string()
            ))
        );
        assert!(app.text.contains("WorkingDirectory=/work\n"));
        assert_eq!(d.create_workdir.as_deref(), Some("/work"));
        let check = d
            .units
            .iter()
            .find(|u| u.unit == "sdme-oci-health-check.service")
            .unwrap();
        // The check runs as the app runs: the same identity and directory.
        for line in [
            "ExecStart=/bin/sh -c \"test -e /ok\"\n",
            "User=\nGroup=\nSupplementaryGroups=\nUser=7\nGroup=8\n",
            "HOME=/home/svc",
            "WorkingDirectory=/work\n",
        ] {
            assert!(
                check.text.contains(line),
                "missing {line:?} in\n{}",
                check.text
            );
        }
        let timer = d
            .units
            .iter()
            .find(|u| u.unit == "sdme-oci-health.timer")
            .unwrap();
        assert!(timer
            .text
            .ends_with("[Timer]\nOnActiveSec=\nOnActiveSec=7\nOnUnitActiveSec=7\n"));
        let mut o = opts();
        o.health.cmd = Some("none".into());
        assert_eq!(
            build(&o, &r, Some(&v)).unwrap().masked,
            vec!["sdme-oci-health.timer"]
        );
    }

    #[test]
    fn connector_callers_are_restricted_by_the_server() {
        let t = tempfile::tempdir().unwrap();
        let (v, mut r) = fixture(t.path());
        let mut o = opts();
        o.connector.allow_uids = vec![1000];
        o.connector.allow_gids = vec![27, 28];
        assert!(build(&o, &r, Some(&v))
            .unwrap_err()
            .contains("not a connector"));
        r.kind = Kind::Connector;
        let d = build(&o, &r, Some(&v)).unwrap();
        assert!(
            d.units[0].text.contains(
                "ExecStart=\nExecStart=/usr/libexec/sdme-connector-server --allow-uid=1000 \
                 --allow-gid=27 --allow-gid=28 -- /usr/bin/app --serve\n"
            ),
            "{}",
            d.units[0].text
        );
        // ... and its socket also listens where host users reach it.
        let socket = d
            .units
            .iter()
            .find(|u| u.unit == units::APP_SOCKET)
            .unwrap();
        assert_eq!(
            socket
                .text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            [
                "[Socket]",
                &format!("ListenStream=/run/sdme-connectors/{0}/{0}.sock", o.image)
            ]
        );
        // Without a list the image's own unit stays as it is.
        let mut o = opts();
        o.connector.environment_files = true;
        assert_eq!(build(&o, &r, Some(&v)).unwrap(), started());
    }

    #[test]
    fn credentials_are_loaded_by_the_app_alone_or_with_overrides() {
        let t = tempfile::tempdir().unwrap();
        let (v, mut r) = fixture(t.path());
        let mut o = opts();
        o.credentials = vec![
            sdme_launch::Credential {
                id: "db.pw".into(),
                path: "/etc/pw".into(),
                encrypted: false,
            },
            sdme_launch::Credential {
                id: "tls".into(),
                path: "/etc/tls".into(),
                encrypted: true,
            },
        ];
        let d = build(&o, &r, Some(&v)).unwrap();
        // The app and its health check (which runs as the app).
        assert_eq!(d.units.len(), 2);
        for (unit, want) in [
            (units::APP_SERVICE, units::APP_SERVICE),
            (units::HEALTH_CHECK_SERVICE, units::HEALTH_CHECK_SERVICE),
        ] {
            let u = d.units.iter().find(|u| u.unit == unit).unwrap();
            assert!(
                u.text
                    .ends_with("[Service]\nLoadCredential=db.pw\nLoadCredential=tls\n"),
                "{want}: {}",
                u.text
            );
        }
        o.restart = Some("always");
        o.health.cmd = Some("true".into());
        let d = build(&o, &r, Some(&v)).unwrap();
        assert!(d.units[0]
            .text
            .contains("LoadCredential=tls\nRestart=always\n"));
        let check = d
            .units
            .iter()
            .find(|u| u.unit == units::HEALTH_CHECK_SERVICE)
            .unwrap();
        assert!(
            check.text.contains("ExecStart=/bin/sh -c true\n")
                && check
                    .text
                    .ends_with("LoadCredential=db.pw\nLoadCredential=tls\n"),
            "{}",
            check.text
        );
        o.health.cmd = None;
        // A base image gets the system credentials only (no app service).
        o.restart = None;
        r.kind = Kind::Base;
        assert_eq!(build(&o, &r, None).unwrap(), started());
    }

    #[test]
    fn a_user_name_the_image_maps_to_root_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let (v, r) = fixture(t.path());
        let mut o = opts();
        o.user = Some("nobody".into());
        assert!(build(&o, &r, Some(&v)).unwrap_err().contains("uid/gid 0"));
        // Root on purpose: by name or number.
        for u in ["root", "0:0"] {
            o.user = Some(u.into());
            assert!(build(&o, &r, Some(&v)).is_ok(), "{u}");
        }
    }

    #[test]
    fn overrides_on_a_base_image_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let (_, mut r) = fixture(t.path());
        r.kind = Kind::Base;
        let mut o = opts();
        o.user = Some("svc".into());
        assert!(build(&o, &r, None).unwrap_err().contains("base OS image"));
    }

    #[test]
    fn readiness_follows_the_health_check() {
        let t = tempfile::tempdir().unwrap();
        let (v, mut r) = fixture(t.path());
        // No check anywhere: started, nothing to write.
        let d = build(&opts(), &r, Some(&v)).unwrap();
        assert_eq!(
            (d.notify, d.units.len(), d.masked.len()),
            (Notify::Started, 0, 0)
        );
        // The descriptor's check: healthy, with Docker's bound.
        let mut o = opts();
        o.health.cmd = Some("true".into());
        o.health.interval = Some("2".into());
        o.health.retries = Some(3);
        o.health.start_period = Some("4.5".into());
        let d = build(&o, &r, Some(&v)).unwrap();
        assert_eq!((d.notify, d.ready_within), (Notify::Healthy, 5 + 3 * 2));
        let ready = d
            .units
            .iter()
            .find(|u| u.unit == units::READY_SERVICE)
            .unwrap();
        assert!(
            ready
                .text
                .contains("Environment=SDME_NOTIFY=healthy SDME_READY_WITHIN=11\n"),
            "{}",
            ready.text
        );
        // The image's check (Docker's defaults: 30 s, 3 retries) unless masked.
        r.app.as_mut().unwrap().health = true;
        r.config = sdme_store::runconfig::RunConfig::from_image_config(
            br#"{"config":{"Entrypoint":["app"],"Healthcheck":{"Test":["CMD","app","--check"]}}}"#,
        )
        .unwrap();
        let d = build(&opts(), &r, Some(&v)).unwrap();
        assert_eq!((d.notify, d.ready_within), (Notify::Healthy, 90));
        let mut o = opts();
        o.health.cmd = Some("none".into());
        assert_eq!(build(&o, &r, Some(&v)).unwrap().notify, Notify::Started);
        o.lifecycle.notify = Notify::Healthy;
        assert!(build(&o, &r, Some(&v))
            .unwrap_err()
            .contains("no health check"));
        // Started on request; no readiness at all masks the unit.
        let mut o = opts();
        o.lifecycle.notify = Notify::Started;
        assert_eq!(build(&o, &r, Some(&v)).unwrap().notify, Notify::Started);
        o.lifecycle.notify = Notify::No;
        let d = build(&o, &r, Some(&v)).unwrap();
        assert_eq!(
            (d.notify, d.masked.clone()),
            (Notify::No, vec![units::READY_SERVICE.to_string()])
        );
    }

    #[test]
    fn stop_reload_and_jobs_reach_the_app_service() {
        let t = tempfile::tempdir().unwrap();
        let (v, r) = fixture(t.path());
        let mut o = opts();
        o.lifecycle.stop_signal = Some("SIGINT".into());
        o.lifecycle.stop_timeout = Some(300);
        o.lifecycle.reload_signal = Some("SIGHUP".into());
        o.restart = Some("always");
        let d = build(&o, &r, Some(&v)).unwrap();
        assert_eq!(
            d.units
                .iter()
                .filter(|u| u.unit == units::APP_SERVICE)
                .count(),
            1
        );
        let app = &d.units[0];
        for line in [
            "Restart=always\n",
            "KillSignal=SIGINT\n",
            "TimeoutStopSec=300\n",
        ] {
            assert!(app.text.contains(line), "missing {line:?} in\n{}", app.text);
        }
        // The signal is the host's unit's to send (sdme-generator): nothing
        // in the container runs for it.
        assert!(!app.text.contains("ExecReload"), "{}", app.text);
        // A command: resolved in the image's PATH, run like the app.
        let mut o = opts();
        o.lifecycle.reload_cmd = Some(vec!["other".into(), "--reload".into()]);
        let d = build(&o, &r, Some(&v)).unwrap();
        assert!(
            d.units[0]
                .text
                .contains("ExecReload=/usr/bin/other --reload\n")
                && !d.units[0].text.contains("RootDirectoryStartOnly")
                && !d.units[0].text.contains("ExecReload=+"),
            "{}",
            d.units[0].text
        );
        o.lifecycle.reload_cmd = Some(vec!["nosuch".into()]);
        assert!(build(&o, &r, Some(&v))
            .unwrap_err()
            .starts_with("ReloadCmd=:"));
        // A job: the container's manager exits with the app.
        let mut o = opts();
        o.lifecycle.oneshot = true;
        let d = build(&o, &r, Some(&v)).unwrap();
        assert_eq!(d.notify, Notify::No);
        assert!(d.masked.contains(&units::READY_SERVICE.to_string()));
        assert!(d.masked.contains(&units::HEALTH_TIMER.to_string()));
        let text = &d.units[0].text;
        assert!(
            text.contains("SuccessAction=exit\nFailureAction=exit\n")
                && text.contains("Restart=no\n"),
            "{text}"
        );
    }

    #[test]
    fn lifecycle_settings_on_other_kinds() {
        let t = tempfile::tempdir().unwrap();
        let (v, mut r) = fixture(t.path());
        r.kind = Kind::Connector;
        let mut o = opts();
        o.lifecycle.oneshot = true;
        assert!(build(&o, &r, Some(&v)).unwrap_err().contains("connector"));
        // A connector is ready when started; it has no ready unit to mask.
        let d = build(&opts(), &r, Some(&v)).unwrap();
        assert_eq!((d.notify, d.masked.len()), (Notify::Started, 0));
        r.kind = Kind::Base;
        r.app = None;
        let d = build(&opts(), &r, None).unwrap();
        assert_eq!(d.notify, Notify::Started);
        let mut o = opts();
        o.lifecycle.stop_timeout = Some(5);
        assert!(build(&o, &r, None).unwrap_err().contains("base OS image"));
    }
}
