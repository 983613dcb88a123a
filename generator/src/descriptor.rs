//! The meaning of one descriptor after its file and drop-ins are merged.

use crate::values::{Port, Timespan, Volume};

/// Where a setting was made, for error messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct ImageSection {
    pub origin: Origin,
    pub source: Option<String>,
    pub mode: Option<&'static str>,
    pub base: Option<Located<String>>,
    pub platform: Option<String>,
    pub pull: Option<&'static str>,
    pub tls_verify: Option<bool>,
    pub auth_file: Option<String>,
    pub cert_dir: Option<String>,
    pub timeout: Option<Timespan>,
    pub registries_conf: Option<RegistriesConf>,
    pub retries: Option<u32>,
    /// `AutoUpdate=registry`: sdme-auto-update.service may replace the image.
    pub auto_update: Option<Located<bool>>,
}

/// Which containers-registries.conf(5) files the import reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistriesConf {
    System,
    Off,
    File(String),
}

impl ImageSection {
    pub fn mode(&self) -> &'static str {
        self.mode.unwrap_or("auto")
    }

    /// `AutoUpdate=registry`.
    pub fn auto_updates(&self) -> bool {
        self.auto_update.as_ref().is_some_and(|a| a.value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    #[default]
    Host,
    Private,
    Veth,
    Bridge(String),
    /// `zone:NAME`: `--network-zone=NAME` (a bridge `vz-NAME` of its own).
    Zone(String),
    /// `container:OTHER`: OTHER's network namespace (a pod).
    Container(String),
}

#[derive(Debug, Clone, Default)]
pub struct Health {
    pub command: Option<String>,
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub retries: Option<u32>,
    pub on_failure: Option<&'static str>,
}

/// The settings of one app of a container: `[Container]`'s for its first
/// app, `[App]`'s for a descriptor that containers run with `App=`. The
/// same keys, parsed by the same code (`keys::assign_app`).
#[derive(Debug, Clone, Default)]
pub struct AppSettings {
    pub volumes: Vec<Located<Volume>>,
    pub environment: Vec<String>,
    pub environment_files: Vec<String>,
    /// `None`: the image's own; `Some(words)`: replaced (one empty word: empty).
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_directory: Option<String>,
    pub restart: Option<&'static str>,
    pub health: Health,
    /// `StopSignal=`: a signal name as systemd takes it.
    pub stop_signal: Option<String>,
    /// `StopTimeoutSec=`: whole seconds.
    pub stop_timeout: Option<u64>,
}

/// `[App]`: the settings of an application image that containers run
/// beside their own with `App=` (a descriptor with `[Image]` and without
/// `[Container]`).
#[derive(Debug, Clone, Default)]
pub struct AppSection {
    pub origin: Origin,
    pub settings: AppSettings,
}

#[derive(Debug, Clone, Default)]
pub struct ContainerSection {
    pub origin: Origin,
    /// Another descriptor whose image this container runs.
    pub image: Option<Located<String>>,
    pub network: Network,
    /// Where `Network=` was last set.
    pub network_origin: Origin,
    pub ports: Vec<Located<Port>>,
    /// The first app's settings (`Volume=`, `Environment=`, …, `StopSignal=`,
    /// `StopTimeoutSec=`).
    pub app: AppSettings,
    pub memory_max: Option<String>,
    pub cpu_quota: Option<String>,
    pub tasks_max: Option<String>,
    pub connectors: Vec<Located<String>>,
    /// `App=`: other descriptors' application images that run in this
    /// container too, each as `sdme-oci-app@NAME.service`.
    pub apps: Vec<Located<String>>,
    /// `StartOnDemand=`: `None` = the default (on, for connector containers).
    pub start_on_demand: Option<Located<bool>>,
    /// `ConnectorAllowUID=`, `ConnectorAllowGID=`, `ConnectorEnvironmentFiles=`.
    pub connector_access: sdme_launch::ConnectorAccess,
    /// Where the first of them was set (they apply to connectors only).
    pub connector_access_origin: Option<Origin>,
    /// `PrivateUsers=`: `None` = the default (see [`Descriptor::private_users`]).
    pub private_users: Option<Located<sdme_launch::PrivateUsers>>,
    pub nspawn_arguments: Vec<String>,
    /// `Credential=`, `EncryptedCredential=`, in order.
    pub credentials: Vec<Located<sdme_launch::Credential>>,
    /// `Secret=ID:VAR`.
    pub secrets: Vec<Located<sdme_launch::Secret>>,
    /// `After=`, `Before=`, `Requires=`, `Wants=`, `BindsTo=` naming other
    /// descriptors' containers, in order.
    pub dependencies: Vec<Dependency>,
    /// `Notify=`, `ReloadSignal=`, `ReloadCmd=` and `Type=oneshot`
    /// (`oneshot`: where it was said); its stop settings are unset here
    /// (the app's, in `app`).
    pub lifecycle: sdme_launch::Lifecycle,
    pub reload_origin: Option<Origin>,
    pub oneshot_origin: Option<Origin>,
}

/// The unit dependency keys a `[Container]` may name other descriptors in.
pub const DEPENDENCY_KEYS: &[&str] = &["After", "Before", "Requires", "Wants", "BindsTo"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// One of [`DEPENDENCY_KEYS`].
    pub key: &'static str,
    pub target: Located<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InstallSection {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    /// A template's instance when no `NAME@INST.oci` names one.
    pub default_instance: Option<Located<String>>,
}

/// A `[Unit]` or `[Service]` line copied into the nspawn drop-in.
#[derive(Debug, Clone)]
pub struct PassThrough {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct Descriptor {
    pub name: String,
    /// The descriptor file, as seen on the target system.
    pub path: String,
    pub dropins: Vec<String>,
    /// The image of a template (`NAME@.oci`, read as `build::Mode::TemplateImage`).
    pub template: bool,
    pub image: Option<ImageSection>,
    pub container: Option<ContainerSection>,
    pub app: Option<AppSection>,
    pub install: InstallSection,
    pub unit: Vec<PassThrough>,
    pub service: Vec<PassThrough>,
    /// `[ImportUnit]`/`[ImportService]`: copied into the import unit.
    pub import_unit: Vec<PassThrough>,
    pub import_service: Vec<PassThrough>,
}

impl Descriptor {
    /// Whether this is a connector whose container a host socket starts on
    /// the first connection (`Mode=connector`, `[Container]`, and
    /// `StartOnDemand=` not off).
    pub fn starts_on_demand(&self) -> bool {
        let is_connector = self.image.as_ref().is_some_and(|i| i.mode() == "connector");
        match &self.container {
            Some(c) if is_connector => c.start_on_demand.as_ref().map_or(true, |s| s.value),
            _ => false,
        }
    }

    /// The descriptor whose import provides the container's image.
    /// Whether and how the container gets a user namespace: as the
    /// descriptor says, else one of its own, except
    /// - in the host's network, or another container's (a pod), which
    ///   belong to a user namespace where the container's root has no
    ///   capabilities (an app could not bind a port below 1024): there the
    ///   launcher decides by the ports its images expose;
    /// - for a connector, which cannot have one (build.rs): its commands get
    ///   the callers' descriptors, which a process in another user namespace
    ///   cannot reopen by path (nginx's `/var/log/nginx/error.log` →
    ///   `/dev/stderr`: EACCES); its allow lists could never match (callers
    ///   read as uid 65534 inside); and it writes the connector directory
    ///   its clients bind, where through an idmapped bind its root's files
    ///   would be the host root's (a setuid file, for one).
    pub fn private_users(&self) -> sdme_launch::PrivateUsers {
        let is_connector = self.image.as_ref().is_some_and(|i| i.mode() == "connector");
        match &self.container {
            None => sdme_launch::PrivateUsers::No,
            Some(c) => match &c.private_users {
                Some(p) => p.value,
                None if is_connector => sdme_launch::PrivateUsers::No,
                // In the host's network, or another container's (a pod: the
                // launcher joins it for the container), a root in a user
                // namespace of its own cannot bind a port below 1024.
                None if matches!(c.network, Network::Host | Network::Container(_)) => {
                    sdme_launch::PrivateUsers::UnlessPrivilegedPorts
                }
                None => sdme_launch::PrivateUsers::Auto,
            },
        }
    }

    pub fn image_provider(&self) -> &str {
        match self.container.as_ref().and_then(|c| c.image.as_ref()) {
            Some(other) => &other.value,
            None => &self.name,
        }
    }

    /// Every other descriptor this one needs, with where it says so.
    pub fn references(&self) -> Vec<(&str, &Origin, &'static str)> {
        let mut refs = Vec::new();
        if let Some(base) = self.image.as_ref().and_then(|i| i.base.as_ref()) {
            refs.push((base.value.as_str(), &base.origin, "Base="));
        }
        if let Some(container) = &self.container {
            if let Some(image) = container.image.as_ref().filter(|i| i.value != self.name) {
                refs.push((image.value.as_str(), &image.origin, "Image="));
            }
            for connector in &container.connectors {
                refs.push((connector.value.as_str(), &connector.origin, "Connector="));
            }
            for app in &container.apps {
                refs.push((app.value.as_str(), &app.origin, "App="));
            }
            for dep in &container.dependencies {
                refs.push((
                    dep.target.value.as_str(),
                    &dep.target.origin,
                    dep_label(dep.key),
                ));
            }
            if let Network::Container(other) = &container.network {
                refs.push((
                    other.as_str(),
                    &container.network_origin,
                    "Network=container:",
                ));
            }
        }
        refs
    }

    /// The ordering edges between descriptors (`self` starts after each
    /// target): every reference but `Requires=`, `Wants=`, `BindsTo=`
    /// (which order nothing by themselves), and each `Before=` turned
    /// around, as `(from, to, origin, label)`.
    pub fn orderings(&self) -> Vec<(&str, &str, &Origin, &'static str)> {
        self.references()
            .into_iter()
            .filter(|(_, _, key)| !matches!(*key, "Requires=" | "Wants=" | "BindsTo="))
            .map(|(target, origin, key)| match key {
                "Before=" => (target, self.name.as_str(), origin, key),
                _ => (self.name.as_str(), target, origin, key),
            })
            .collect()
    }
}

/// `After=` for `After`, …: the label references carry.
fn dep_label(key: &str) -> &'static str {
    match key {
        "After" => "After=",
        "Before" => "Before=",
        "Requires" => "Requires=",
        "Wants" => "Wants=",
        _ => "BindsTo=",
    }
}
