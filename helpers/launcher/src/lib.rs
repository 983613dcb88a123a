//! sdme-launcher: `sdme-nspawn`, run by each container's systemd-nspawn@
//! drop-in: assembles the container's root from the store (overlay stacks
//! of the image's layers under the container's own upper layers), its
//! volumes, its root-only environment file and the drop-ins that carry the
//! descriptor's overrides into the container, then execs `systemd-nspawn`
//! (same PID, so the stock unit's `Type=notify` holds).
//!
//! It may read the store (`sdme-store`), use the in-container layout of
//! `sdme-import`'s glue and the unit writer, and write only the container's
//! own directories (confined where the container controls them) and its
//! runtime directory. It must never fetch, unpack, or change an image.

pub mod apps;
pub mod credentials;
pub mod dropin;
pub mod limits;
pub mod network;
/// The command line, the generator's and the launcher's one type.
pub use sdme_launch as options;
pub mod userns;
pub mod volumes;

use sdme_launch::{Launch as Options, PrivateUsers, Volume};
use sdme_store::merged::MergedView;
use sdme_store::userns::{IdRange, Request};
use sdme_store::Kind;
use sdme_store::Store;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Runtime files of containers: outside `/run/sdme`, a descriptor directory.
/// The generated drop-in names `sdme-containers/NAME` as the service's
/// `RuntimeDirectory=`, so systemd removes it when the container stops.
pub const RUNTIME_ROOT: &str = "/run/sdme-containers";

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// The layer whose tree nspawn checks for an OS (`--directory`); the root
/// itself is the overlay on top.
fn os_tree(lowers: &[PathBuf]) -> PathBuf {
    lowers
        .iter()
        .find(|l| {
            l.join("etc/os-release").symlink_metadata().is_ok()
                || l.join("usr/lib/os-release").symlink_metadata().is_ok()
        })
        .or(lowers.first())
        .cloned()
        .unwrap_or_default()
}

fn overlay_arg(lowers: &[PathBuf], upper: &Path, target: &str) -> Result<OsString, String> {
    let mut parts = Vec::new();
    for p in lowers.iter().map(|p| p.as_path()).chain([upper]) {
        let s = p
            .to_str()
            .ok_or_else(|| format!("{}: not UTF-8", p.display()))?;
        if s.contains(':') {
            return Err(format!("{s}: store paths cannot contain ':'"));
        }
        parts.push(s.to_string());
    }
    Ok(format!("--overlay={}:{target}", parts.join(":")).into())
}

/// A path in `systemd-nspawn --bind=SRC:DST`, which splits on `:` and
/// drops a backslash before the next character: `\` and `:` escaped.
fn bind_escape(path: &str) -> String {
    path.replace('\\', "\\\\").replace(':', "\\:")
}

fn mkdir(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| err(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| err(path, e))
}

/// The launcher's work: the nspawn argument list and the user namespace's
/// mounts, after writing the runtime files (environment, drop-ins) it
/// binds into the container and giving its writable layers their owners.
pub fn prepare(o: &Options) -> Result<Prepared, String> {
    sdme_store::check_name(&o.machine)?;
    sdme_store::check_name(&o.image)?;
    // The other apps' volumes are in volumes/MACHINE@APP: a machine
    // name has no '@' (systemd-machined's rule).
    sdme_launch::check_machine_name(&o.machine).map_err(|e| format!("--machine: {e}"))?;
    let store = Store::new(
        o.store
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(sdme_store::DEFAULT_STORE)),
    );
    // The store's shared lock from choosing the generations until they are
    // recorded: gc takes it exclusively, so it cannot remove a generation
    // between this choice and the record that protects it. The lock's
    // descriptor is close-on-exec (std opens with O_CLOEXEC) and dropped
    // here anyway, long before systemd-nspawn is executed.
    let lock = store.lock(false)?;
    let sdme_store::RootStack {
        mut lowers,
        mut generations,
        generation,
        record,
    } = store.root_stack(&o.image)?;
    record.check_glue()?;
    let container = store.containers_dir().join(&o.machine);
    let upper = container.join("root");
    let app_upper = container.join("app");
    let is_app = record.kind != Kind::Base;
    // The other apps (App=): read under the same lock, their generations
    // recorded with the container's, their units' glue over its root.
    let (extras, extra_generations) = apps::load(&store, &container, &o.apps)?;
    for g in extra_generations {
        if !generations.contains(&g) {
            generations.push(g);
        }
    }
    lowers.extend(extras.iter().map(|a| a.glue.clone()));
    let existing: Vec<PathBuf> = [&upper, &app_upper]
        .into_iter()
        .chain(extras.iter().map(|a| &a.upper))
        .filter(|p| p.exists())
        .cloned()
        .collect();
    mkdir(&upper, 0o755)?;
    record_generations(&container, &generations, o.dry_run)?;
    drop(lock);
    let runtime = o
        .runtime_dir
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(RUNTIME_ROOT).join(&o.machine));
    empty_runtime_dir(&runtime)?;
    mkdir(&runtime, 0o700)?;
    if !o.dry_run && o.runtime_dir.is_none() {
        clear_unix_export(&o.machine)?;
    }

    // The user namespace: the container's range, its writable layers owned
    // in it, and idmapped views of the layers it shares (userns.rs).
    if record.kind == Kind::Connector && o.private_users != PrivateUsers::No {
        // The generator never asks for it (sdme.oci(5), PrivateUsers=).
        return Err(format!(
            "image {} is a connector: connectors run without a user namespace (--private-users=no)",
            o.image
        ));
    }
    let request = match o.private_users {
        PrivateUsers::No => None,
        PrivateUsers::UnlessPrivilegedPorts => {
            // Every app's image: they all share the container's network.
            let exposed = std::iter::once((o.image.as_str(), &record))
                .chain(extras.iter().map(|a| (a.options.image.as_str(), &a.record)))
                .find_map(|(image, r)| {
                    privileged_port(&r.config.exposed_ports).map(|port| (image, port))
                });
            match exposed {
                Some((image, port)) => {
                    eprintln!(
                        "sdme-nspawn: no user namespace: image {image} exposes port {port}, which \
                         its root could not bind from one in a network it shares (the host's, or \
                         a pod's) (PrivateUsers=, sdme.oci(5))"
                    );
                    None
                }
                None => Some(Request::Auto),
            }
        }
        PrivateUsers::Auto => Some(Request::Auto),
        PrivateUsers::Range { base, size } => Some(Request::Pinned(IdRange { base, size })),
    };
    let range = match request {
        None => None,
        // A dry run records nothing: the range it would get.
        Some(r) if o.dry_run => Some(store.preview_range(&o.machine, r)?),
        Some(r) => Some(store.assign_range(&o.machine, r)?),
    };
    if is_app {
        mkdir(&app_upper, 0o755)?;
    }
    let mut uppers = vec![upper.clone()];
    if is_app {
        uppers.push(app_upper.clone());
    }
    if !extras.is_empty() {
        mkdir(&container.join("apps"), 0o700)?;
    }
    for app in &extras {
        mkdir(&app.upper, 0o755)?;
        uppers.push(app.upper.clone());
    }
    // Checked now, changed last: nothing that can still fail below runs
    // after the writable layers were given new owners.
    let ownership = plan_ownership(&container, &uppers, &existing, range)?;
    let mut idmapped: Vec<userns::IdmapMount> = Vec::new();
    let mut seen = |l: &PathBuf| -> PathBuf {
        match range {
            None => l.clone(),
            Some(_) => {
                if let Some(m) = idmapped.iter().find(|m| &m.source == l) {
                    return m.target.clone();
                }
                let target = runtime.join("idmapped").join(idmapped.len().to_string());
                idmapped.push(userns::IdmapMount {
                    source: l.clone(),
                    target: target.clone(),
                });
                target
            }
        }
    };
    let os = os_tree(&lowers);
    let mapped_lowers: Vec<PathBuf> = lowers.iter().map(&mut seen).collect();
    let mapped_os = lowers
        .iter()
        .position(|l| l == &os)
        .map_or(os.clone(), |i| mapped_lowers[i].clone());

    let mut args: Vec<OsString> = vec![format!("--directory={}", mapped_os.display()).into()];
    args.push(overlay_arg(&mapped_lowers, &upper, "/")?);
    // What the binds are mounted into, as the container will see it: its
    // image's layers and its own writable layer (which its root may have
    // changed, planted symlinks included).
    let mut mount_root: Vec<PathBuf> = lowers.clone();
    mount_root.push(upper.clone());
    let app_view = if is_app {
        let app_lowers = store.app_lowers(&generation, &record)?;
        let mapped: Vec<PathBuf> = app_lowers.iter().map(&mut seen).collect();
        args.push(overlay_arg(&mapped, &app_upper, "/oci/root")?);
        mount_root = app_lowers.clone();
        mount_root.push(app_upper.clone());
        Some((MergedView::new(app_lowers), app_upper))
    } else {
        None
    };
    for app in &extras {
        let mapped: Vec<PathBuf> = app.lowers.iter().map(&mut seen).collect();
        args.push(overlay_arg(&mapped, &app.upper, &app.slot.root())?);
    }
    let mount_view = MergedView::new(mount_root);
    let app_root = if is_app { "/oci/root" } else { "" };

    // The first app's volumes (or the base's), then the other apps'.
    let bind_options = if range.is_some() { ":idmap" } else { "" };
    let mut idmapped_binds: Vec<(PathBuf, String)> = Vec::new();
    let first = AppMounts {
        what: String::new(),
        volumes: &o.volumes,
        declared: if is_app { &record.config.volumes } else { &[] },
        volumes_dir: store.volumes_dir().join(&o.machine),
        mount_view: &mount_view,
        image_view: app_view.as_ref().map(|(v, _)| v),
        root: app_root.to_string(),
    };
    let mut extra_views = Vec::new();
    for app in &extras {
        let mut view = app.lowers.clone();
        view.push(app.upper.clone());
        extra_views.push((MergedView::new(view), MergedView::new(app.lowers.clone())));
    }
    let mut mounts = vec![first];
    for (app, (mount_view, image_view)) in extras.iter().zip(&extra_views) {
        mounts.push(AppMounts {
            what: format!("app {}: ", app.options.image),
            volumes: &app.options.volumes,
            declared: &app.record.config.volumes,
            // A directory per app beside the first app's: MACHINE@APP is
            // a name no machine can have.
            volumes_dir: store
                .volumes_dir()
                .join(format!("{}@{}", o.machine, app.options.image)),
            mount_view,
            image_view: Some(image_view),
            root: app.slot.root(),
        });
    }
    for m in &mounts {
        for (host, target, ro) in m.binds()? {
            if range.is_some() {
                idmapped_binds.push((host.clone(), target.clone()));
                if !ro
                    && m.volumes
                        .iter()
                        .any(|v| v.container() == target && matches!(v, Volume::Bind { .. }))
                {
                    warn_if_suid_allowed(&host, &target);
                }
            }
            let host = host.to_str().ok_or("volume path is not UTF-8")?;
            let flag = if ro { "--bind-ro" } else { "--bind" };
            args.push(
                format!(
                    "{flag}={}:{}{}{bind_options}",
                    bind_escape(host),
                    m.root,
                    bind_escape(&target)
                )
                .into(),
            );
        }
    }

    // The environment: the env files' contents (systemd EnvironmentFile
    // syntax) then --env, in a root-only file bound read-only.
    // A connector's callers run commands with this environment: they get
    // the descriptor's EnvironmentFile= values (usually secrets) only when
    // it says so (ConnectorEnvironmentFiles=yes).
    let env_files: &[String] = match record.kind {
        Kind::Connector if !o.connector.environment_files => &[],
        _ => &o.env_files,
    };
    // Credentials: nspawn's options (an encrypted one decrypted here into
    // a memfd), and the secrets among them as variables, last (they win).
    let loaded = credentials::load(&o.credentials, &o.secrets)?;
    let mut env_pairs = o.env.clone();
    match record.kind {
        // As EnvironmentFile=: a connector's callers get them only when it says so.
        Kind::Connector if !o.connector.environment_files => {}
        _ => env_pairs.extend(loaded.env.iter().cloned()),
    }
    let env = environment_file(env_files, &env_pairs)?;
    if !env.is_empty() {
        let path = runtime.join("environment");
        write_private(&path, env.as_bytes())?;
        // Read by the container's root, which is the range's first id.
        if let Some(r) = range {
            chown(&path, r.base)?;
        }
        args.push(format!("--bind-ro={}:/run/sdme/environment", path.display()).into());
    }
    // Each other app's own Environment= and EnvironmentFile= (its [App]).
    for app in &extras {
        let env = environment_file(&app.options.env_files, &app.options.env)
            .map_err(|e| format!("app {}: {e}", app.options.image))?;
        if env.is_empty() {
            continue;
        }
        let dir = runtime.join("apps").join(&app.options.image);
        mkdir(&dir, 0o700)?;
        let path = dir.join("environment");
        write_private(&path, env.as_bytes())?;
        if let Some(r) = range {
            chown(&path, r.base)?;
        }
        args.push(format!("--bind-ro={}:{}", path.display(), app.slot.launcher_env()).into());
    }

    // A connector that checks its callers also listens where host users
    // can reach it (sdme-connector(1)): a directory of its own outside the
    // private store, bound at the same path into the container, whose
    // socket unit gets a second ListenStream= (dropin.rs).
    if record.kind == Kind::Connector {
        let public = match &o.runtime_dir {
            Some(r) => PathBuf::from(format!("{r}.public")),
            None => PathBuf::from(sdme_launch::public_connector_dir(&o.image)),
        };
        if o.connector.restricted() {
            if range.is_some() {
                // Callers' ids read as the overflow id in the server's own
                // namespace: the allow list could never match.
                return Err(
                    "--connector-allow-uid/--connector-allow-gid need --private-users=no: \
                     in a user namespace the server sees every caller from outside as uid 65534"
                        .into(),
                );
            }
            if let Some(parent) = public.parent() {
                mkdir(parent, 0o755)?;
            }
            mkdir(&public, 0o755)?;
            if o.runtime_dir.is_none() {
                refuse_suid_or_devices(&public)?;
            }
            let host = public
                .to_str()
                .ok_or("connector directory path is not UTF-8")?;
            args.push(
                format!(
                    "--bind={}:{}",
                    bind_escape(host),
                    sdme_launch::public_connector_dir(&o.image)
                )
                .into(),
            );
        } else {
            // Left by a start that allowed host users: nothing listens there now.
            sdme_store::remove_tree(&public)?;
        }
    }

    let mut dropins = dropin::build(o, &record, app_view.as_ref().map(|(v, _)| v))?;
    // The longest any app may take to be ready, if one waits for its health check.
    let mut ready_bound =
        (dropins.notify == sdme_launch::Notify::Healthy).then_some(dropins.ready_bound);
    let mut extra_accounts = Vec::new();
    let mut extra_workdirs = Vec::new();
    for (app, (_, image_view)) in extras.iter().zip(&extra_views) {
        // The container's readiness covers every app: each is ready as
        // its own check says, unless the container waits for none or
        // only for the apps to have started.
        let mut options = app.options.clone();
        // The container's credentials are every app's to load.
        options.credentials = o.credentials.clone();
        options.lifecycle.notify = match o.lifecycle.notify {
            _ if o.lifecycle.oneshot => sdme_launch::Notify::No,
            n @ (sdme_launch::Notify::No | sdme_launch::Notify::Started) => n,
            _ => sdme_launch::Notify::Auto,
        };
        let d = dropin::build_for(&app.slot, &options, &app.record, Some(image_view))
            .map_err(|e| format!("app {}: {e}", app.options.image))?;
        dropins.units.extend(d.units);
        dropins.masked.extend(d.masked);
        if d.notify == sdme_launch::Notify::Healthy {
            ready_bound = Some(ready_bound.unwrap_or(0).max(d.ready_bound));
        }
        if let Some(accounts) = d.accounts {
            extra_accounts.push((app, accounts));
        }
        if let Some(dir) = d.create_workdir {
            extra_workdirs.push((app, dir));
        }
    }
    if let Some(zone) = &o.zone {
        let mut root = lowers.clone();
        root.push(upper.clone());
        let mut app_units: Vec<String> = extras.iter().map(|a| a.slot.app_service()).collect();
        if is_app {
            app_units.insert(0, sdme_import::units::APP_SERVICE.to_string());
        }
        network::zone_dropin(zone, &MergedView::new(root), &app_units, &mut dropins)?;
        // The name the zone's other containers ask for is the one the
        // container's resolved answers: its host name, which its systemd
        // sets from /etc/hostname (the base's, whatever that says).
        let path = runtime.join("hostname");
        write_private(&path, format!("{}\n", o.machine).as_bytes())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| err(&path, e))?;
        if let Some(r) = range {
            chown(&path, r.base)?;
        }
        args.push(format!("--bind-ro={}:/etc/hostname", path.display()).into());
    }
    // A pod member: nspawn joins OTHER's network namespace, or, in a user
    // namespace of its own, the launcher does (network::open_netns).
    let mut join_netns = None;
    if let Some(other) = &o.netns_of {
        match range {
            None => args.push(network::netns_arg(other, o.dry_run)?),
            Some(_) if o.dry_run => {
                println!("# joins the network namespace of machine {other} before systemd-nspawn")
            }
            Some(_) => join_netns = Some(network::open_netns(other)?),
        }
    }
    if range.is_some() && !(dropins.units.is_empty() && dropins.masked.is_empty()) {
        // nspawn creates a bind's missing parents as the host's root, which
        // in a user namespace reads as nobody: /run/systemd would not be
        // the container's systemd's to write ("Failed to allocate manager
        // object: Permission denied"). A tmpfs there is owned by the
        // container's root (nspawn adds the uid); the drop-ins go on top.
        args.push("--tmpfs=/run/systemd:mode=0755".into());
    }
    for d in &dropins.units {
        let dir = runtime.join("units").join(format!("{}.d", d.unit));
        mkdir(&dir, 0o755)?;
        std::fs::write(dir.join("50-launcher.conf"), &d.text).map_err(|e| err(&dir, e))?;
        args.push(
            format!(
                "--bind-ro={}:/run/systemd/system/{}.d",
                dir.display(),
                d.unit
            )
            .into(),
        );
    }
    for unit in &dropins.masked {
        args.push(format!("--bind-ro=/dev/null:/run/systemd/system/{unit}").into());
    }
    if let Some((passwd, group)) = &dropins.accounts {
        for (file, text) in [("passwd", passwd), ("group", group)] {
            let path = runtime.join(file);
            std::fs::write(&path, text).map_err(|e| err(&path, e))?;
            args.push(format!("--bind-ro={}:/run/sdme/{file}", path.display()).into());
        }
    }
    for (app, (passwd, group)) in &extra_accounts {
        let dir = runtime.join("apps").join(&app.options.image);
        mkdir(&dir, 0o700)?;
        for (file, text) in [("passwd", passwd), ("group", group)] {
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(|e| err(&path, e))?;
            args.push(
                format!(
                    "--bind-ro={}:{}/{file}",
                    path.display(),
                    app.slot.launcher_dir()
                )
                .into(),
            );
        }
    }
    if !o.dry_run {
        apply_ownership(&container, &ownership)?;
    }
    if let (Some(dir), Some((_, app_upper))) = (&dropins.create_workdir, &app_view) {
        // The app's upper layer is the container's to write: confined, so a
        // symlink planted there cannot send this mkdir onto the host.
        sdme_extract::confined::Tree::open(app_upper)
            .and_then(|tree| tree.make_dirs(dir, 0o755, range.map(|r| (r.base, r.base))))
            .map_err(|e| format!("working directory {dir} in {}: {e}", app_upper.display()))?;
    }
    for (app, dir) in &extra_workdirs {
        sdme_extract::confined::Tree::open(&app.upper)
            .and_then(|tree| tree.make_dirs(dir, 0o755, range.map(|r| (r.base, r.base))))
            .map_err(|e| {
                format!(
                    "app {}: working directory {dir} in {}: {e}",
                    app.options.image,
                    app.upper.display()
                )
            })?;
    }

    if let Some(r) = range {
        // The tree is already in the range's ids (idmapped lowers, uppers
        // owned in it): nspawn must not chown anything.
        args.push(format!("--private-users={}:{}", r.base, r.size).into());
        args.push("--private-users-ownership=off".into());
    }
    // Ready when the container's boot is done, which the glue's
    // sdme-oci-ready.service holds until the app is (Notify=).
    let mut extend_start = None;
    if dropins.notify != sdme_launch::Notify::No {
        args.push("--notify-ready=yes".into());
        extend_start = ready_bound.map(|b| b + BOOT_ALLOWANCE);
    }
    args.extend(loaded.args.iter().cloned());
    args.extend(o.nspawn_args.iter().map(OsString::from));
    let userns = range.map(|range| userns::Plan {
        range,
        mounts: idmapped,
        idmapped_binds,
    });
    Ok(Prepared {
        args,
        userns,
        extend_start,
        fds: loaded.fds,
        join_netns,
    })
}

/// Where one app's volumes come from and go.
struct AppMounts<'a> {
    /// For messages: empty for the first app, `app NAME: ` for another.
    what: String,
    volumes: &'a [Volume],
    /// The image's declared volumes (`Volumes` of its configuration).
    declared: &'a [String],
    /// Its anonymous volumes: `volumes/MACHINE/` or `volumes/MACHINE@APP/`.
    volumes_dir: PathBuf,
    /// The tree the binds are mounted into, as the container will see it:
    /// the image's layers and the writable layer (which the container's
    /// root may have changed, planted symlinks included).
    mount_view: &'a MergedView,
    /// The image's layers alone (what a new anonymous volume is seeded from).
    image_view: Option<&'a MergedView>,
    /// The app's root in the container (empty: the container's own).
    root: String,
}

impl AppMounts<'_> {
    /// (host directory, path in the app's root, read-only): the app's
    /// volumes, then every volume the image declares that none of them
    /// covers (Docker gives those an anonymous volume too), parents before
    /// what lies below them (a stable sort by path), so that a volume
    /// inside another one is mounted on top of it, not hidden by it.
    fn binds(&self) -> Result<Vec<(PathBuf, String, bool)>, String> {
        let what = &self.what;
        let mut warn = |w: String| eprintln!("sdme-nspawn: {what}{w}");
        let declared = volumes::uncovered(self.declared, self.volumes, &mut warn);
        // Every mount point is checked before any volume is created or seeded.
        for target in self
            .volumes
            .iter()
            .map(Volume::container)
            .chain(declared.iter().map(String::as_str))
        {
            volumes::check_mount_point(self.mount_view, target)
                .map_err(|e| format!("{what}{e}"))?;
        }
        let mut binds = Vec::new();
        for v in self.volumes {
            binds.push(match v {
                Volume::Bind {
                    host,
                    container,
                    read_only,
                } => (PathBuf::from(host), container.clone(), *read_only),
                Volume::Anonymous { container: c } => (
                    volumes::ensure(&self.volumes_dir, c, self.image_view)?,
                    c.clone(),
                    false,
                ),
            });
        }
        for path in declared {
            binds.push((
                volumes::ensure(&self.volumes_dir, &path, self.image_view)?,
                path,
                false,
            ));
        }
        binds.sort_by(|a, b| Path::new(&a.1).cmp(Path::new(&b.1)));
        Ok(binds)
    }
}

/// Seconds a container's boot may take besides waiting for its app.
pub const BOOT_ALLOWANCE: u64 = 90;

/// Tells the service manager (`$NOTIFY_SOCKET`, the unit's main process
/// being this one) that the start may take `secs` seconds from now,
/// beyond `TimeoutStartSec=` if need be (sd_notify(3)
/// `EXTEND_TIMEOUT_USEC=`): the health check's own bound, which only the
/// image knows, is longer than the unit's default. A failure only costs
/// that extension, and is said.
pub fn extend_start_timeout(secs: u64) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("EXTEND_TIMEOUT_USEC={}", secs.saturating_mul(1_000_000));
    if let Err(e) = notify(&socket, message.as_bytes()) {
        eprintln!("sdme-nspawn: cannot extend the start timeout ({socket:?}): {e}");
    }
}

fn notify(socket: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(Path::new(socket))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(message, &addr)?;
    Ok(())
}

/// What `prepare` leaves to do: the idmapped mounts (in a mount namespace
/// of the launcher's own, see userns.rs), then systemd-nspawn with `args`.
#[derive(Debug)]
pub struct Prepared {
    pub args: Vec<OsString>,
    pub userns: Option<userns::Plan>,
    /// Seconds the start may take (see [`extend_start_timeout`]).
    pub extend_start: Option<u64>,
    /// Decrypted credentials (memfds `args` name): open until the exec.
    pub fds: Vec<std::os::fd::OwnedFd>,
    /// A pod member in a user namespace of its own: the network namespace
    /// to join right before the exec ([`network::join_netns`]).
    pub join_netns: Option<std::os::fd::OwnedFd>,
}

/// The first port below 1024 of the image's `ExposedPorts` (`80/tcp`,
/// normalized where the configuration is read), if any.
fn privileged_port(exposed: &[String]) -> Option<&str> {
    exposed
        .iter()
        .map(|p| p.split('/').next().unwrap_or(p))
        .find(|p| p.parse::<u16>().is_ok_and(|n| n < 1024))
}

/// Empties the runtime directory of an earlier start, keeping the
/// directory itself: systemd creates it (`RuntimeDirectory=`), and when the
/// unit has a mount namespace of its own (a descriptor's
/// `BindReadOnlyPaths=`, say) it is a mount point there, which cannot be
/// removed ("Device or resource busy").
fn empty_runtime_dir(runtime: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(runtime) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(runtime, e)),
        Ok(m) if !m.is_dir() => return sdme_store::remove_tree(runtime),
        Ok(_) => {}
    }
    let entries = std::fs::read_dir(runtime).map_err(|e| err(runtime, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| err(runtime, e))?;
        sdme_store::remove_tree(&entry.path())?;
    }
    Ok(())
}

/// systemd-nspawn 257 and newer keep a per-machine directory (a tmpfs
/// mount) at /run/systemd/nspawn/unix-export/NAME and refuse to start when
/// it exists ("Mount point ... exists already, refusing"); a stopped
/// container can leave it behind (systemd issue 36455, met by E16 on 257:
/// a stop then a start). The machine is stopped while its launcher runs,
/// so what is there is a leftover: unmounted (detached) and removed.
/// Older nspawn has no such directory: nothing to do.
fn clear_unix_export(machine: &str) -> Result<(), String> {
    let dir = Path::new(NSPAWN_UNIX_EXPORT).join(machine);
    if std::fs::symlink_metadata(&dir).is_err() {
        return Ok(());
    }
    // EINVAL: not a mount point (only the directory was left).
    let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
    match std::fs::remove_dir(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
            "{}: left over by an earlier systemd-nspawn and cannot be removed: {e}",
            dir.display()
        )),
        _ => {
            eprintln!(
                "sdme-nspawn: removed {}, left over by an earlier systemd-nspawn",
                dir.display()
            );
            Ok(())
        }
    }
}

const NSPAWN_UNIX_EXPORT: &str = "/run/systemd/nspawn/unix-export";

fn chown(path: &Path, id: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(id), Some(id)).map_err(|e| err(path, e))
}

/// `containers/NAME/owner` (`BASE SIZE`, `0 65536` without a namespace):
/// the range the writable layers are owned in. Layers that existed before
/// the file did were written without a user namespace. When the range
/// changes (a first start in a namespace, a pinned range, `PrivateUsers=no`
/// again) the layers are shifted to the new one before it is recorded. A
/// new range may not overlap the old one (unless it starts at the same
/// id), so a start interrupted mid-shift shifts the rest next time: ids
/// already moved lie outside the old range and are left alone.
struct Ownership {
    file: PathBuf,
    want: IdRange,
    recorded: bool,
    /// Writable layers to shift, from the range given.
    shift: Vec<(PathBuf, IdRange)>,
    /// New writable layers, owned by the range's root from the start.
    fresh: Vec<PathBuf>,
}

fn plan_ownership(
    container: &Path,
    uppers: &[PathBuf],
    existed: &[PathBuf],
    range: Option<IdRange>,
) -> Result<Ownership, String> {
    let file = container.join("owner");
    let want = range.unwrap_or(IdRange {
        base: 0,
        size: sdme_store::userns::RANGE_SIZE,
    });
    let have = match std::fs::read_to_string(&file) {
        Ok(text) => {
            let bad = || format!("{}: not \"BASE SIZE\": {:?}", file.display(), text.trim());
            let mut w = text.split_whitespace().map(str::parse::<u32>);
            let (Some(Ok(base)), Some(Ok(size)), None) = (w.next(), w.next(), w.next()) else {
                return Err(bad());
            };
            let r = IdRange { base, size };
            if base != 0 {
                r.check().map_err(|e| format!("{}: {e}", file.display()))?;
            } else if size != sdme_store::userns::RANGE_SIZE {
                return Err(bad());
            }
            Some(r)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(err(&file, e)),
    };
    let mut plan = Ownership {
        file,
        want,
        recorded: have == Some(want),
        shift: Vec::new(),
        fresh: Vec::new(),
    };
    for upper in uppers {
        let from = match have {
            // New (an app added to the container), or left empty by a
            // start that failed before giving it its owner (or a dry
            // run): owned from the start.
            _ if !existed.contains(upper) || unowned_and_empty(upper, want) => {
                plan.fresh.push(upper.clone());
                continue;
            }
            Some(h) => h,
            None => IdRange {
                base: 0,
                size: sdme_store::userns::RANGE_SIZE,
            },
        };
        if from.base == want.base {
            continue;
        }
        let (a, b) = (from.base as u64, want.base as u64);
        if a < b + want.size as u64 && b < a + from.size as u64 {
            return Err(format!(
                "{}: its layers are owned in ids {}:{}, which the new range {}:{} overlaps; \
                 choose a range apart from it (or the same base)",
                upper.display(),
                from.base,
                from.size,
                want.base,
                want.size
            ));
        }
        plan.shift.push((upper.clone(), from));
    }
    Ok(plan)
}

/// A writable layer nothing was written to, not yet owned in `want`.
fn unowned_and_empty(upper: &Path, want: IdRange) -> bool {
    use std::os::unix::fs::MetadataExt;
    let owned = std::fs::symlink_metadata(upper).is_ok_and(|m| m.is_dir() && m.uid() == want.base);
    !owned && std::fs::read_dir(upper).is_ok_and(|mut d| d.next().is_none())
}

fn apply_ownership(container: &Path, plan: &Ownership) -> Result<(), String> {
    let want = plan.want;
    for upper in &plan.fresh {
        chown(upper, want.base)?;
    }
    for (upper, from) in &plan.shift {
        eprintln!(
            "sdme-nspawn: {}: moving its owners from ids {}… to {}… (user namespace range changed)",
            upper.display(),
            from.base,
            want.base
        );
        userns::shift_tree(upper, from.base, want.base, from.size.min(want.size))?;
    }
    if !plan.recorded {
        use std::io::Write;
        let tmp = container.join(".owner.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{} {}", want.base, want.size)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &plan.file)?;
            std::fs::File::open(container)?.sync_all()
        };
        write().map_err(|e| err(&plan.file, e))?;
    }
    Ok(())
}

/// A writable host directory bound idmapped: what the container's root
/// creates there is the host root's on disk, so a setuid or
/// file-capability binary it leaves is root's for whoever can run it on
/// the host, unless the file system is mounted nosuid (which also makes
/// the kernel ignore file capabilities). Said in the journal, not refused:
/// the administrator chose the directory.
fn warn_if_suid_allowed(host: &Path, volume: &str) {
    use rustix::fs::StatVfsMountFlags as F;
    if let Ok(fs) = rustix::fs::statvfs(host) {
        if !fs.f_flag.contains(F::NOSUID) {
            eprintln!(
                "sdme-nspawn: warning: volume {volume}: {} is bound idmapped, so files the \
                 container's root creates there are owned by the host's root, and its file system \
                 is not mounted nosuid: a setuid or file-capability program left there runs with \
                 root's privileges for any host user who can reach it",
                host.display()
            );
        }
    }
}

/// The server's container writes the public connector directory, and every
/// host user can reach it: what its root leaves there must not run setuid
/// or open devices for them. /run is mounted nosuid,nodev by systemd; a
/// host where it is not gets an error, not a way up.
fn refuse_suid_or_devices(dir: &Path) -> Result<(), String> {
    use rustix::fs::StatVfsMountFlags as F;
    let fs = rustix::fs::statvfs(dir).map_err(|e| err(dir, e))?;
    if fs.f_flag.contains(F::NOSUID) && fs.f_flag.contains(F::NODEV) {
        Ok(())
    } else {
        Err(format!(
            "{}: the file system is not mounted nosuid,nodev; host users reach this connector \
             directory and the container writes it, so it is not used (mount /run nosuid,nodev, \
             as systemd does)",
            dir.display()
        ))
    }
}

/// `containers/NAME/generations`: the generations this start uses, one a
/// line, replaced atomically (gc keeps what it names). A `--dry-run` adds
/// its generations to those already named instead of replacing them: the
/// container may be running on the ones recorded by its real start.
fn record_generations(
    container: &Path,
    generations: &[String],
    dry_run: bool,
) -> Result<(), String> {
    use std::io::Write;
    let path = container.join("generations");
    let mut names: Vec<String> = Vec::new();
    if dry_run {
        match std::fs::read_to_string(&path) {
            Ok(text) => names.extend(text.lines().filter(|l| !l.is_empty()).map(String::from)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&path, e)),
        }
    }
    for g in generations {
        if !names.contains(g) {
            names.push(g.clone());
        }
    }
    let tmp = container.join(format!(
        "{}generations.{}",
        sdme_store::TMP_PREFIX,
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all((names.join("\n") + "\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(&path, e));
    }
    sdme_store::sync_dir(container)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(path, e))?;
    f.write_all(contents).map_err(|e| err(path, e))
}

pub fn environment_file(files: &[String], env: &[(String, String)]) -> Result<String, String> {
    // Each file is read on its own, as systemd reads one EnvironmentFile=,
    // and written again in one form: a quote left open in one file cannot
    // swallow the next file's lines, and a line systemd would drop is an
    // error here, naming the file and the line.
    let mut pairs: Vec<(String, String)> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("--env-file={f}: {e}"))?;
        pairs.extend(sdme_unitfile::envfile::read(&text).map_err(|e| format!("{f}: {e}"))?);
    }
    pairs.extend(env.iter().cloned());
    sdme_unitfile::envfile::render(&pairs).map_err(|e| format!("the environment: {e}"))
}

/// `systemd-nspawn`, or `$SDME_NSPAWN` (tests).
pub fn nspawn_binary() -> OsString {
    std::env::var_os("SDME_NSPAWN").unwrap_or_else(|| "systemd-nspawn".into())
}

/// Shell-quoted, for `--dry-run` and logs.
pub fn shell_quote(arg: &std::ffi::OsStr) -> String {
    let s = arg.to_string_lossy();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=/.:,@+%".contains(&b))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_ports_are_those_below_1024() {
        let ports = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(privileged_port(&ports(&["8080/tcp", "80/tcp"])), Some("80"));
        assert_eq!(privileged_port(&ports(&["1023/udp"])), Some("1023"));
        assert_eq!(privileged_port(&ports(&["1024/tcp", "6379/tcp"])), None);
        assert_eq!(privileged_port(&[]), None);
    }

    #[test]
    fn env_files_come_first_and_env_is_escaped() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("e");
        std::fs::write(&f, "SECRET=s3cret").unwrap();
        let text = environment_file(
            &[f.to_str().unwrap().to_string()],
            &[("A".into(), "x $y".into())],
        )
        .unwrap();
        assert_eq!(text, "SECRET=\"s3cret\"\nA=\"x \\$y\"\n");
        // A quote left open in the first file ends with that file: the
        // second file's assignment survives.
        let g = t.path().join("g");
        std::fs::write(&f, "OPEN=\"never closed\n").unwrap();
        std::fs::write(&g, "AFTER=kept\n").unwrap();
        let files = [
            f.to_str().unwrap().to_string(),
            g.to_str().unwrap().to_string(),
        ];
        let text = environment_file(&files, &[]).unwrap();
        assert_eq!(
            sdme_unitfile::envfile::read(&text).unwrap(),
            [
                ("OPEN".to_string(), "never closed\n".to_string()),
                ("AFTER".into(), "kept".into())
            ]
        );
        std::fs::write(&g, "ok=1\nnot a name=2\n").unwrap();
        let e = environment_file(&files, &[]).unwrap_err();
        assert!(e.starts_with(&format!("{}: line 2: ", g.display())), "{e}");
        assert!(
            environment_file(&[format!("{}/missing", t.path().display())], &[])
                .unwrap_err()
                .contains("--env-file=")
        );
    }

    #[test]
    fn overlay_lists_lowest_first_then_upper() {
        let a = overlay_arg(
            &[PathBuf::from("/l/0"), PathBuf::from("/l/1")],
            Path::new("/c/root"),
            "/",
        )
        .unwrap();
        assert_eq!(a, OsString::from("--overlay=/l/0:/l/1:/c/root:/"));
        assert_eq!(shell_quote("a b".as_ref()), "'a b'");
    }
}
