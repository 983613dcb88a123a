//! Drop-ins that carry the container's overrides (entrypoint, cmd, user,
//! workdir, restart, health) into the container, bound at
//! `/run/systemd/system/UNIT.d/50-launcher.conf`.

use sdme_import::glue::{account_lines, resolve_argv, resolve_user};
use sdme_import::units;
use sdme_launch::Launch as Options;
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

pub fn build(
    o: &Options,
    record: &ImageRecord,
    app_view: Option<&MergedView>,
) -> Result<Dropins, String> {
    let mut out = Dropins::default();
    if !any_override(o) {
        // Credentials alone: only the app's LoadCredential= lines (a base
        // OS image's own services import the system credentials themselves).
        if !o.credentials.is_empty() && record.kind != Kind::Base {
            let mut app = dropin();
            load_credentials(app.section("Service"), o)?;
            push(&mut out, units::APP_SERVICE, &app);
        }
        return Ok(out);
    }
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
    let has_identity = credentials.is_some() || o.workdir.is_some();
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
        out.masked.push(units::HEALTH_TIMER.to_string());
    } else if h.any() || (has_identity && info.health) {
        let mut check = dropin();
        let s = check.section("Service");
        identity(s)?;
        if let Some(cmd) = &h.cmd {
            let argv = ["/bin/sh", "-c", cmd.as_str()];
            s.set("ExecStart", Value::reset())
                .set("ExecStart", Value::command(&argv).map_err(unit_err)?);
            app.section("Unit")
                .set("Wants", Value::word(units::HEALTH_TIMER).map_err(unit_err)?);
        }
        if let Some(t) = &h.timeout {
            s.set("TimeoutStartSec", Value::word(t).map_err(unit_err)?);
        }
        push(&mut out, units::HEALTH_CHECK_SERVICE, &check);
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
            push(&mut out, units::HEALTH_SERVICE, &service);
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
            push(&mut out, units::HEALTH_TIMER, &timer);
        }
    }
    if !app.is_empty() {
        out.units.insert(
            0,
            UnitDropin {
                unit: units::APP_SERVICE.to_string(),
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
        assert_eq!(build(&opts(), &r, Some(&v)).unwrap(), Dropins::default());
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
        assert!(
            check.text.contains("ExecStart=/bin/sh -c \"test -e /ok\"")
                && check.text.contains("User=7")
        );
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
        assert_eq!(build(&o, &r, Some(&v)).unwrap(), Dropins::default());
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
        assert_eq!(d.units.len(), 1);
        assert_eq!(d.units[0].unit, units::APP_SERVICE);
        assert!(
            d.units[0]
                .text
                .ends_with("[Service]\nLoadCredential=db.pw\nLoadCredential=tls\n"),
            "{}",
            d.units[0].text
        );
        o.restart = Some("always");
        let d = build(&o, &r, Some(&v)).unwrap();
        assert!(d.units[0]
            .text
            .contains("LoadCredential=tls\nRestart=always\n"));
        // A base image gets the system credentials only (no app service).
        o.restart = None;
        r.kind = Kind::Base;
        assert_eq!(build(&o, &r, None).unwrap(), Dropins::default());
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
}
