//! sdme's own small layers of an image generation:
//! `glue/` over the container root (the seed's `/oci/*` layout and the units of
//! the app) and `appglue/` over the app's layers (runtime directories and files
//! the app root needs but the image may lack).

use crate::classify::Kind;
use crate::passwd::{self, Credentials};
use crate::units::{self, AppSpec, HealthSpec};
use sdme_extract::confined::Tree;
use sdme_store::merged::MergedView;
use sdme_store::record::AppInfo;
use sdme_store::runconfig::RunConfig;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Creates `rel` (and its parents) in the glue tree, giving every new
/// directory the mode and owner it has in `view` (an upper layer's directory
/// attributes win in overlayfs, so a glue `etc/` must look like the image's
/// `/etc`). Writes are confined to the tree (sdme_extract::confined).
pub fn mkdir_like(top: &Tree, rel: &str, view: Option<&MergedView>) -> Result<(), String> {
    let mut seen = String::new();
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        seen.push('/');
        seen.push_str(comp);
        let (mode, uid, gid) = match view.map(|v| v.dir_metadata(&seen)) {
            Some(Ok(Some(m))) => (m.mode() & 0o7777, m.uid(), m.gid()),
            _ => (0o755, 0, 0),
        };
        let owner = rustix::process::geteuid().is_root().then_some((uid, gid));
        top.make_dir(&seen, mode, owner)
            .map_err(|e| format!("glue {seen}: {e}"))?;
    }
    Ok(())
}

/// Writes a file in the glue tree, creating parents like [`mkdir_like`].
pub fn write_file(
    top: &Tree,
    rel: &str,
    contents: &[u8],
    mode: u32,
    view: Option<&MergedView>,
) -> Result<(), String> {
    if let Some((parent, _)) = rel.rsplit_once('/') {
        mkdir_like(top, parent, view)?;
    }
    top.write_file(rel, contents, mode, None)
        .map_err(|e| format!("glue {rel}: {e}"))
}

fn symlink(top: &Tree, rel: &str, target: &str, view: Option<&MergedView>) -> Result<(), String> {
    if let Some((parent, _)) = rel.rsplit_once('/') {
        mkdir_like(top, parent, view)?;
    }
    top.symlink(rel, target)
        .map_err(|e| format!("glue {rel}: {e}"))
}

/// A new, empty layer directory: mode 0755 (it becomes the merged root's
/// attributes when it is the topmost layer), opened for confined writes.
pub fn create_layer_dir(dir: &Path) -> Result<Tree, String> {
    fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| err(dir, e))?;
    Tree::open(dir).map_err(|e| err(dir, e))
}

/// One entry of a glue layer, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlueEntry {
    /// A directory (and its parents), with the image's attributes where the
    /// image has the directory, and then `mode` if given.
    Dir {
        path: String,
        mode: Option<u32>,
    },
    File {
        path: String,
        contents: Vec<u8>,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// A glue layer as a value: what [`write_plan`] will write, in order. Pure
/// functions make it from the image configuration (and, for the app root,
/// from what the image's layers already have), so it is tested without a
/// file system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GluePlan {
    pub entries: Vec<GlueEntry>,
}

impl GluePlan {
    fn dir(&mut self, path: &str, mode: Option<u32>) {
        self.entries.push(GlueEntry::Dir {
            path: path.to_string(),
            mode,
        });
    }

    fn file(&mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) {
        self.entries.push(GlueEntry::File {
            path: path.to_string(),
            contents: contents.into(),
            mode,
        });
    }

    fn unit(
        &mut self,
        name: &str,
        text: Result<String, sdme_unitfile::Error>,
    ) -> Result<(), String> {
        let text = text.map_err(|e| format!("unit {name}: {e}"))?;
        self.file(&format!("etc/systemd/system/{name}"), text, 0o644);
        Ok(())
    }

    fn enable(&mut self, wants: &str, name: &str) {
        self.entries.push(GlueEntry::Symlink {
            path: format!("etc/systemd/system/{wants}/{name}"),
            target: format!("../{name}"),
        });
    }

    /// The file at `path`, if the plan writes one.
    pub fn file_at(&self, path: &str) -> Option<&[u8]> {
        self.entries.iter().find_map(|e| match e {
            GlueEntry::File {
                path: p, contents, ..
            } if p == path => Some(contents.as_slice()),
            _ => None,
        })
    }
}

/// Writes a plan into the new layer directory `dir`, confined to it;
/// directories take their attributes from `view` (the tree the layer goes over).
pub fn write_plan(dir: &Path, plan: &GluePlan, view: Option<&MergedView>) -> Result<(), String> {
    let tree = create_layer_dir(dir)?;
    for entry in &plan.entries {
        match entry {
            GlueEntry::Dir { path, mode } => {
                mkdir_like(&tree, path, view)?;
                if let Some(mode) = mode {
                    tree.set_dir_mode(path, *mode)
                        .map_err(|e| format!("glue {path}: {e}"))?;
                }
            }
            GlueEntry::File {
                path,
                contents,
                mode,
            } => write_file(&tree, path, contents, *mode, view)?,
            GlueEntry::Symlink { path, target } => symlink(&tree, path, target, view)?,
        }
    }
    Ok(())
}

/// The glue of a base image: an empty `/etc/machine-id`, so every container
/// gets a transient id (and nested journals link).
pub fn write_base_glue(glue: &Path, base_view: &MergedView) -> Result<(), String> {
    write_plan(glue, &plan_base_glue(), Some(base_view))
}

pub fn plan_base_glue() -> GluePlan {
    let mut plan = GluePlan::default();
    plan.file("etc/machine-id", "", 0o444);
    plan
}

fn image_path_env(config: &RunConfig) -> String {
    config
        .env_value("PATH")
        .unwrap_or(units::DEFAULT_PATH)
        .to_string()
}

fn workdir(config: &RunConfig) -> String {
    if config.working_dir.starts_with('/') {
        config.working_dir.clone()
    } else {
        "/".into()
    }
}

/// Entrypoint + cmd with argv[0] made absolute by a `PATH` search in the app's
/// layers (systemd would search its own `PATH` outside the app root).
pub fn resolve_argv(
    view: &MergedView,
    argv: &[String],
    path_env: &str,
    workdir: &str,
) -> Result<Vec<String>, String> {
    let Some(program) = argv.first() else {
        return Err("the image has neither Entrypoint nor Cmd: nothing to run (use Mode=base for an OS image)".into());
    };
    let resolved = view
        .find_program(program, path_env, workdir)
        .ok_or_else(|| format!("the image's command {program:?} is not an executable in the image (PATH={path_env})"))?;
    let mut out = vec![resolved];
    out.extend(argv[1..].iter().cloned());
    Ok(out)
}

fn read_text(view: &MergedView, p: &str) -> Result<String, String> {
    view.read(p)
        .map(|c| String::from_utf8_lossy(&c.unwrap_or_default()).into_owned())
        .map_err(|e| format!("reading {p} of the image: {e}"))
}

/// A Docker `USER` value resolved with the app's own passwd and group.
pub fn resolve_user(view: &MergedView, spec: &str) -> Result<Credentials, String> {
    passwd::resolve(
        spec,
        &read_text(view, "/etc/passwd")?,
        &read_text(view, "/etc/group")?,
    )
}

/// The passwd and group lines the container needs for these credentials.
pub fn account_lines(view: &MergedView, c: &Credentials) -> Result<(String, String), String> {
    Ok(passwd::account_lines(
        c,
        &read_text(view, "/etc/passwd")?,
        &read_text(view, "/etc/group")?,
    ))
}

/// Docker's health `Test` as an argv.
pub fn health_argv(
    view: &MergedView,
    test: &[String],
    path_env: &str,
    workdir: &str,
) -> Option<Vec<String>> {
    match test.split_first() {
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        // A program the image lacks would fail every check; it is left out
        // (an unresolved name must never reach ExecStart=).
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => {
            match resolve_argv(view, rest, path_env, workdir) {
                Ok(argv) => Some(argv),
                Err(e) => {
                    eprintln!("warning: the image's health check is left out: {e}");
                    None
                }
            }
        }
        _ => None,
    }
}

/// What a connector runs before the client's arguments: the entrypoint, or
/// without one the program of the command (its arguments are the client's
/// to give, as `docker run IMAGE ARGS` replaces the command).
pub fn connector_command(entrypoint: &[String], cmd: &[String]) -> Vec<String> {
    if entrypoint.is_empty() {
        cmd.iter().take(1).cloned().collect()
    } else {
        entrypoint.to_vec()
    }
}

/// Resolves what the app service runs from the image configuration.
pub fn app_spec(
    name: &str,
    kind: Kind,
    config: &RunConfig,
    app_view: &MergedView,
) -> Result<AppSpec, String> {
    let path_env = image_path_env(config);
    let workdir = workdir(config);
    let argv = if kind == Kind::Connector {
        connector_command(config.entrypoint(), config.cmd())
    } else {
        let mut argv = config.entrypoint().to_vec();
        argv.extend(config.cmd().iter().cloned());
        argv
    };
    let argv = resolve_argv(app_view, &argv, &path_env, &workdir)?;
    let credentials = resolve_user(app_view, &config.user)?;
    let health = config.effective_healthcheck().and_then(|hc| {
        let argv = health_argv(app_view, &hc.test, &path_env, &workdir)?;
        Some(HealthSpec::with_defaults(
            argv,
            hc.interval,
            hc.timeout,
            hc.start_period,
            hc.retries,
        ))
    });
    Ok(AppSpec {
        name: name.to_string(),
        slot: units::Slot::First,
        argv,
        workdir,
        credentials,
        kill_signal: (!config.stop_signal.is_empty()).then(|| config.stop_signal.clone()),
        bind_ro: Vec::new(),
        connector: kind == Kind::Connector,
        health,
    })
}

/// Writes `appglue/`: what the app root needs at run time and may lack.
/// Returns the container files to bind into the app root.
pub fn write_app_root_glue(
    appglue: &Path,
    view: &MergedView,
    spec: &AppSpec,
) -> Result<Vec<String>, String> {
    let (plan, binds) = plan_app_root_glue(view, spec)?;
    write_plan(appglue, &plan, Some(view))?;
    Ok(binds)
}

/// `appglue/`, from what the app's layers have (read, never written), and
/// the container files to bind into the app root.
pub fn plan_app_root_glue(
    view: &MergedView,
    spec: &AppSpec,
) -> Result<(GluePlan, Vec<String>), String> {
    let mut plan = GluePlan::default();
    for (dir, mode) in [
        ("/tmp", 0o1777),
        ("/var/tmp", 0o1777),
        ("/run", 0o755),
        ("/dev", 0o755),
        ("/proc", 0o555),
        ("/sys", 0o555),
    ] {
        if !view.exists(dir) {
            plan.dir(dir, Some(mode));
        }
    }
    if !view.exists(&spec.workdir) {
        plan.dir(&spec.workdir, None);
    }
    // The container's resolver and hosts files, like Docker provides them.
    let mut binds = Vec::new();
    for file in ["/etc/resolv.conf", "/etc/hosts"] {
        match view
            .resolve(file, false)
            .map_err(|e| format!("{file}: {e}"))?
        {
            None => {
                plan.file(file, "", 0o644);
                binds.push(file.to_string());
            }
            Some(r) => {
                if let sdme_store::merged::Node::Other { metadata, .. } = r.node {
                    if metadata.is_file() {
                        binds.push(file.to_string());
                    }
                }
            }
        }
    }
    if spec.connector && !view.exists(units::CONNECTOR_SERVER) {
        plan.file(units::CONNECTOR_SERVER, "", 0o755);
    }
    Ok((plan, binds))
}

/// Writes `glue/` of an app or connector image and returns what the launcher
/// needs to know. `base_view` is the base's root (for directory attributes).
pub fn write_app_glue(
    glue: &Path,
    spec: &AppSpec,
    config: &RunConfig,
    accounts: &(String, String),
    base_view: Option<&MergedView>,
) -> Result<AppInfo, String> {
    write_plan(glue, &plan_app_glue(spec, config, accounts)?, base_view)?;
    Ok(app_info(spec))
}

/// `glue/` of an app or connector image (`spec.slot` first) or
/// `extraglue/` of an app image (another slot), from the resolved app and
/// the image configuration alone: the seed's `/oci/*` files (or
/// `/oci/apps/NAME/*`) and the units.
pub fn plan_app_glue(
    spec: &AppSpec,
    config: &RunConfig,
    accounts: &(String, String),
) -> Result<GluePlan, String> {
    let slot = &spec.slot;
    let dir = slot.dir();
    let dir = dir.trim_start_matches('/');
    let file = |name: &str| format!("{dir}/{name}");
    let mut plan = GluePlan::default();
    plan.dir(&file("root"), None);
    let env = sdme_unitfile::envfile::render(&config.env_pairs())
        .map_err(|e| format!("image environment: {e}"))?;
    plan.file(&file("env"), env, 0o644);
    plan.file(&file("ports"), lines(&config.exposed_ports), 0o644);
    plan.file(&file("volumes"), lines(&config.volumes), 0o644);
    plan.file(&file("health"), units::health_script(slot), 0o755);
    plan.file(&file("users"), units::users_script(slot), 0o755);
    plan.file(&file("passwd"), accounts.0.as_str(), 0o644);
    plan.file(&file("group"), accounts.1.as_str(), 0o644);
    plan.unit(&slot.app_service(), units::app_service(spec))?;
    plan.unit(&slot.users_service(), units::users_service(spec))?;
    if spec.connector {
        if *slot != units::Slot::First {
            return Err("a connector is always its container's first app".into());
        }
        plan.file(&file("proxy-mode"), "", 0o644);
        plan.unit(units::APP_SOCKET, units::connector_socket(&spec.name))?;
        plan.enable("sockets.target.wants", units::APP_SOCKET);
    } else {
        plan.unit(&slot.output_service(), units::output_service(spec))?;
        plan.unit(&slot.log_service(), units::log_service(spec))?;
        plan.enable("multi-user.target.wants", &slot.app_service());
        // Part of the boot, so that the boot ends (and the container is
        // ready) when the app is; the launcher sets its mode or masks it.
        plan.file(&file("ready"), units::ready_script(slot), 0o755);
        plan.unit(&slot.ready_service(), units::ready_service(spec))?;
        plan.enable("multi-user.target.wants", &slot.ready_service());
    }
    // The health units always exist so that the launcher can switch a check
    // on (--health-cmd); the image's HEALTHCHECK enables them.
    let default_health = HealthSpec::with_defaults(vec!["/bin/true".into()], 0, 0, 0, 0);
    let health = spec.health.as_ref().unwrap_or(&default_health);
    plan.unit(
        &slot.health_check_service(),
        units::health_check_service(spec, health),
    )?;
    plan.unit(
        &slot.health_service(),
        units::health_service(spec, health, "restart"),
    )?;
    plan.unit(&slot.health_timer(), units::health_timer(spec, health))?;
    if spec.health.is_some() {
        plan.enable(
            &format!("{}.wants", slot.app_service()),
            &slot.health_timer(),
        );
    }
    Ok(plan)
}

/// What the record keeps of the resolved app for the launcher.
pub fn app_info(spec: &AppSpec) -> AppInfo {
    let c = &spec.credentials;
    AppInfo {
        argv: spec.argv.clone(),
        workdir: spec.workdir.clone(),
        user: if c.uid == 0 && c.gid == 0 {
            String::new()
        } else {
            format!("{}:{}", c.uid, c.gid)
        },
        health: spec.health.is_some(),
    }
}

fn lines(items: &[String]) -> String {
    items
        .iter()
        .filter(|i| !i.contains('\n'))
        .map(|i| format!("{i}\n"))
        .collect()
}

/// The host side of a connector: `connectors/NAME/<entrypoint basename>` →
/// `sdme-connector-client`, so `/connectors/NAME/<cmd>` runs the entrypoint.
/// The server container writes this directory (its socket lives there), so
/// the link is made through confined fds and switched atomically; a link to
/// the client left from an earlier entrypoint is removed.
pub fn write_connector_dir(dir: &Path, argv0: &str) -> Result<(), String> {
    const CLIENT: &str = "/usr/libexec/sdme-connector-client";
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    if base.is_empty() || base.starts_with('.') {
        return Err(format!("connector entrypoint {argv0:?} has no usable name"));
    }
    // The directory also holds the socket, NAME.sock.
    let socket = dir
        .file_name()
        .map(|n| format!("{}.sock", n.to_string_lossy()));
    if socket.as_deref() == Some(base) {
        return Err(format!(
            "connector entrypoint {argv0:?} has the name of the connector's socket"
        ));
    }
    fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let tree = Tree::open(dir).map_err(|e| err(dir, e))?;
    tree.symlink(base, CLIENT)
        .map_err(|e| err(&dir.join(base), e))?;
    for entry in fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let entry = entry.map_err(|e| err(dir, e))?;
        let name = entry.file_name();
        let stale = name.to_str() != Some(base)
            && fs::read_link(entry.path()).is_ok_and(|t| t == Path::new(CLIENT));
        if stale {
            // remove_file does not follow the link.
            fs::remove_file(entry.path()).map_err(|e| err(&entry.path(), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(t: &Path) -> MergedView {
        let l = t.join("layer");
        fs::create_dir_all(l.join("usr/sbin")).unwrap();
        fs::create_dir_all(l.join("etc")).unwrap();
        fs::create_dir_all(l.join("tmp")).unwrap();
        fs::write(l.join("usr/sbin/nginx"), "").unwrap();
        fs::set_permissions(l.join("usr/sbin/nginx"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            l.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101::/var/cache/nginx:/bin/false\n",
        )
        .unwrap();
        fs::write(l.join("etc/group"), "root:x:0:\nnginx:x:101:\n").unwrap();
        fs::write(l.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        MergedView::new(vec![l])
    }

    fn config() -> RunConfig {
        RunConfig::from_image_config(
            br#"{"config":{"User":"nginx","Env":["PATH=/usr/sbin:/usr/bin","X=a$b"],"Cmd":["nginx","-g","daemon off;"],
                "ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}},"WorkingDir":"/srv/app","StopSignal":"SIGQUIT",
                "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":10000000000}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn app_glue_has_the_seed_layout() {
        let t = tempfile::tempdir().unwrap();
        let view = image(t.path());
        let mut spec = app_spec("web", Kind::App, &config(), &view).unwrap();
        assert_eq!(spec.argv[0], "/usr/sbin/nginx");
        assert_eq!((spec.credentials.uid, spec.credentials.gid), (101, 101));
        let appglue = t.path().join("appglue");
        spec.bind_ro = write_app_root_glue(&appglue, &view, &spec).unwrap();
        assert_eq!(spec.bind_ro, vec!["/etc/resolv.conf", "/etc/hosts"]);
        assert!(appglue.join("srv/app").is_dir() && appglue.join("etc/resolv.conf").is_file());
        assert!(appglue.join("var/tmp").is_dir() && !appglue.join("tmp").exists());
        let glue = t.path().join("glue");
        let accounts = account_lines(&view, &spec.credentials).unwrap();
        let info = write_app_glue(&glue, &spec, &config(), &accounts, None).unwrap();
        assert_eq!(
            fs::read_to_string(glue.join("oci/passwd")).unwrap(),
            "nginx:x:101:101::/var/cache/nginx:/usr/sbin/nologin\n"
        );
        assert_eq!(
            fs::read_to_string(glue.join("oci/group")).unwrap(),
            "nginx:x:101:\n"
        );
        assert!(glue
            .join("etc/systemd/system/sdme-oci-users.service")
            .is_file());
        assert_eq!(info.user, "101:101");
        assert!(info.health);
        assert!(glue.join("oci/root").is_dir());
        assert_eq!(
            fs::read_to_string(glue.join("oci/env")).unwrap(),
            "PATH=\"/usr/sbin:/usr/bin\"\nX=\"a\\$b\"\n"
        );
        assert_eq!(
            fs::read_to_string(glue.join("oci/ports")).unwrap(),
            "80/tcp\n"
        );
        assert_eq!(
            fs::read_to_string(glue.join("oci/volumes")).unwrap(),
            "/data\n"
        );
        let unit =
            fs::read_to_string(glue.join("etc/systemd/system/sdme-oci-app.service")).unwrap();
        assert!(unit.contains("WorkingDirectory=/srv/app\n"), "{unit}");
        let wants = glue.join("etc/systemd/system/multi-user.target.wants/sdme-oci-app.service");
        assert_eq!(
            fs::read_link(wants).unwrap().to_str(),
            Some("../sdme-oci-app.service")
        );
        assert!(glue
            .join("etc/systemd/system/sdme-oci-app.service.wants/sdme-oci-health.timer")
            .symlink_metadata()
            .is_ok());
        assert!(!glue.join("oci/proxy-mode").exists());
        assert_eq!(fs::metadata(&glue).unwrap().mode() & 0o777, 0o755);
    }

    #[test]
    fn the_glue_is_planned_without_writing_anything() {
        let t = tempfile::tempdir().unwrap();
        let view = image(t.path());
        let before = fs::read_dir(t.path()).unwrap().count();
        let spec = app_spec("web", Kind::App, &config(), &view).unwrap();
        let plan = plan_app_glue(&spec, &config(), &(String::new(), String::new())).unwrap();
        let (root_plan, binds) = plan_app_root_glue(&view, &spec).unwrap();
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            before,
            "planning wrote files"
        );
        let unit = String::from_utf8(
            plan.file_at("etc/systemd/system/sdme-oci-app.service")
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(
            unit.contains("ExecStart=/usr/sbin/nginx -g \"daemon off;\"\n"),
            "{unit}"
        );
        assert_eq!(plan.file_at("oci/ports"), Some(&b"80/tcp\n"[..]));
        assert!(plan.entries.contains(&GlueEntry::Symlink {
            path: "etc/systemd/system/multi-user.target.wants/sdme-oci-app.service".into(),
            target: "../sdme-oci-app.service".into(),
        }));
        assert!(root_plan.entries.contains(&GlueEntry::Dir {
            path: "/var/tmp".into(),
            mode: Some(0o1777)
        }));
        assert_eq!(binds, ["/etc/resolv.conf", "/etc/hosts"]);
        assert_eq!(plan_base_glue().file_at("etc/machine-id"), Some(&b""[..]));
    }

    #[test]
    fn connectors_run_the_entrypoint_without_the_cmd() {
        let t = tempfile::tempdir().unwrap();
        let view = image(t.path());
        let mut c = config();
        c.entrypoint = Some(vec!["/usr/sbin/nginx".into()]);
        let spec = app_spec("web", Kind::Connector, &c, &view).unwrap();
        assert_eq!(spec.argv, vec!["/usr/sbin/nginx"]);
        let spec = app_spec("web", Kind::Connector, &config(), &view).unwrap();
        assert_eq!(
            spec.argv,
            vec!["/usr/sbin/nginx"],
            "no entrypoint: the command's program"
        );
        let spec = app_spec("web", Kind::App, &c, &view).unwrap();
        assert_eq!(spec.argv.len(), 4, "apps keep the cmd");
    }

    #[test]
    fn connector_glue_has_marker_and_socket() {
        let t = tempfile::tempdir().unwrap();
        let view = image(t.path());
        let spec = app_spec("web", Kind::Connector, &config(), &view).unwrap();
        let glue = t.path().join("glue");
        write_app_glue(
            &glue,
            &spec,
            &config(),
            &(String::new(), String::new()),
            None,
        )
        .unwrap();
        assert!(glue.join("oci/proxy-mode").is_file());
        assert!(glue
            .join("etc/systemd/system/sockets.target.wants/sdme-oci-app.socket")
            .symlink_metadata()
            .is_ok());
        assert!(!glue
            .join("etc/systemd/system/multi-user.target.wants")
            .exists());
        let dir = t.path().join("connectors/web");
        write_connector_dir(&dir, &spec.argv[0]).unwrap();
        assert!(write_connector_dir(&dir, "/usr/bin/web.sock")
            .unwrap_err()
            .contains("socket"));
        assert_eq!(
            fs::read_link(dir.join("nginx")).unwrap().to_str(),
            Some("/usr/libexec/sdme-connector-client")
        );
        // A new entrypoint replaces the old link; other files stay.
        fs::write(dir.join("web.sock"), "").unwrap();
        write_connector_dir(&dir, "/usr/bin/psql").unwrap();
        assert!(dir.join("psql").symlink_metadata().is_ok());
        assert!(dir.join("nginx").symlink_metadata().is_err());
        assert!(dir.join("web.sock").exists());
    }

    #[test]
    fn missing_programs_and_users_are_clear_errors() {
        let t = tempfile::tempdir().unwrap();
        let view = image(t.path());
        let mut c = config();
        c.cmd = Some(vec!["redis-server".into()]);
        assert!(app_spec("x", Kind::App, &c, &view)
            .unwrap_err()
            .contains("redis-server"));
        let mut c = config();
        c.user = "mysql".into();
        assert!(app_spec("x", Kind::App, &c, &view)
            .unwrap_err()
            .contains("mysql"));
        let mut c = config();
        c.cmd = None;
        assert!(app_spec("x", Kind::App, &c, &view)
            .unwrap_err()
            .contains("neither Entrypoint nor Cmd"));
    }
}
