//! Builds a [`Descriptor`] from a descriptor file and its drop-ins: reads
//! them in order, dispatches sections (the keys are in `keys.rs`), and runs
//! the checks that need the whole merged descriptor.

use crate::descriptor::*;
use crate::diagnostic::Diagnostic;
use crate::keys::{assign_app, assign_container, assign_image, assign_install, pass_through};
use crate::search::SourceFile;
use crate::syntax::{self, Item};

/// Stop listing problems in one file after this many.
const MAX_ERRORS_PER_DESCRIPTOR: usize = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Image,
    Container,
    App,
    Install,
    Unit,
    Service,
    /// `[ImportUnit]`, `[ImportService]`: lines for the import unit.
    ImportUnit,
    ImportService,
    /// An `X-` section (systemd's forward-compatibility convention):
    /// accepted, its keys ignored.
    Extension,
    /// An unknown section: reported once at its header, its keys ignored.
    Unknown,
}

/// What a file set is read as.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// `NAME.oci`.
    Plain,
    /// `NAME@.oci` read for its image: `[Image]`, `[ImportUnit]`,
    /// `[ImportService]` and `[Install] DefaultInstance=`; the sections
    /// that belong to the instances are left to them.
    TemplateImage,
    /// Instance `instance` of template `template`: the template's settings,
    /// `%i` expanded in [`INSTANCE_KEYS`], its `[Image]` imported once
    /// under the template's name (so the container runs `Image=TEMPLATE`).
    Instance {
        template: &'a str,
        instance: &'a str,
    },
}

/// The `[Container]` keys whose values may use `%i` (the instance name) in
/// a template; `%%` is a `%` there, any other `%` is an error.
pub const INSTANCE_KEYS: &[&str] = &[
    "Environment",
    "EnvironmentFile",
    "Volume",
    "Credential",
    "EncryptedCredential",
];

/// `%i` → `instance`, `%%` → `%`.
pub fn expand_instance(value: &str, instance: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('i') => out.push_str(instance),
            Some('%') => out.push('%'),
            Some(other) => {
                return Err(format!(
                    "%{other} is not a specifier sdme expands in a template (only %i and %%)"
                ))
            }
            None => return Err("a lone % at the end (write %% for a %)".into()),
        }
    }
    Ok(out)
}

pub fn build(
    name: &str,
    main: &SourceFile,
    dropins: &[SourceFile],
) -> Result<Descriptor, Vec<Diagnostic>> {
    build_as(name, main, dropins, Mode::Plain)
}

pub fn build_as(
    name: &str,
    main: &SourceFile,
    dropins: &[SourceFile],
    mode: Mode,
) -> Result<Descriptor, Vec<Diagnostic>> {
    let mut d = Descriptor {
        name: name.to_string(),
        path: main.shown.clone(),
        // An empty (or /dev/null) drop-in only hides lower ones of its name.
        dropins: dropins
            .iter()
            .map(|f| match f.contents.is_empty() {
                true => format!("{} (empty)", f.shown),
                false => f.shown.clone(),
            })
            .collect(),
        template: matches!(mode, Mode::TemplateImage),
        ..Descriptor::default()
    };
    let mut errors = Vec::new();
    for file in std::iter::once(main).chain(dropins) {
        let (items, syntax_errors) = syntax::parse(&file.contents);
        let first_of_file = errors.len();
        errors.extend(
            syntax_errors
                .into_iter()
                .map(|e| Diagnostic::at(&file.shown, e.line, e.message)),
        );
        let mut section = None;
        for item in items {
            match item {
                Item::Section { name, line } => {
                    let origin = Origin {
                        file: file.shown.clone(),
                        line,
                    };
                    let opened = open_section(&mut d, &name, origin, &mut errors);
                    section = Some(match (mode, opened) {
                        // Its instances are containers: [App] is for a
                        // descriptor that containers run with App=.
                        (Mode::TemplateImage, Section::App) => {
                            errors.push(Diagnostic::at(
                                &file.shown,
                                line,
                                "[App] is for a descriptor without [Container] that containers \
                                 run with App=, and a template's instances are containers",
                            ));
                            Section::Extension
                        }
                        // The instances' own sections, not the template's image.
                        (
                            Mode::TemplateImage,
                            Section::Container | Section::Unit | Section::Service,
                        ) => Section::Extension,
                        // The template's image is imported once, for all.
                        (
                            Mode::Instance { template, instance },
                            Section::Image | Section::ImportUnit | Section::ImportService,
                        ) => {
                            if file
                                .shown
                                .contains(&format!("/{template}@{instance}.oci.d/"))
                            {
                                errors.push(Diagnostic::at(
                                    &file.shown,
                                    line,
                                    format!(
                                        "[{name}] of a template is shared by all its instances: \
                                         set it in {template}@.oci or {template}@.oci.d/"
                                    ),
                                ));
                            }
                            Section::Extension
                        }
                        (_, s) => s,
                    });
                }
                Item::Assignment { key, value, line } => {
                    let origin = Origin {
                        file: file.shown.clone(),
                        line,
                    };
                    let result = match section {
                        None => Err("assignment outside of any section".to_string()),
                        Some(Section::Unknown | Section::Extension) => Ok(()),
                        // systemd's convention: `X-` keys are for other
                        // programs and ignored in every section.
                        Some(_) if key.starts_with("X-") => Ok(()),
                        Some(s) => assign(&mut d, s, &key, &value, &origin, mode),
                    };
                    if let Err(message) = result {
                        errors.push(Diagnostic::at(&origin.file, line, message));
                    }
                }
            }
        }
        // Report in line order (a stable sort keeps same-line order).
        errors[first_of_file..].sort_by_key(|e| e.line);
    }
    // Whole-descriptor checks only make sense once every line was accepted
    // (a rejected Image= line would also show up as a missing image).
    match mode {
        Mode::Plain => {}
        Mode::TemplateImage => {
            // Only the image is this descriptor's; the rest is checked in
            // each instance.
            d.container = None;
            d.unit.clear();
            d.service.clear();
            if let Some(image) = d.image.as_ref().filter(|i| i.source.is_none()) {
                errors.push(Diagnostic::at(
                    &image.origin.file,
                    image.origin.line,
                    "[Image] has no Image= (the image to import)",
                ));
            }
            return finish(d, errors);
        }
        Mode::Instance { template, .. } => {
            // The template's [Image] section opened a (never filled) image
            // here: the container runs the template's import instead.
            if let Some(image) = d.image.take() {
                match d.container.as_mut() {
                    Some(c) if c.image.is_none() => {
                        c.image = Some(Located {
                            value: template.to_string(),
                            origin: image.origin,
                        })
                    }
                    Some(_) => d.image = Some(image),
                    None => errors.push(Diagnostic::at(
                        &image.origin.file,
                        image.origin.line,
                        "a template needs a [Container] section: its instances are containers",
                    )),
                }
            }
        }
    }
    if errors.is_empty() {
        check_whole(&d, &mut errors);
    }
    finish(d, errors)
}

fn finish(d: Descriptor, mut errors: Vec<Diagnostic>) -> Result<Descriptor, Vec<Diagnostic>> {
    if errors.is_empty() {
        return Ok(d);
    }
    if errors.len() > MAX_ERRORS_PER_DESCRIPTOR {
        let more = errors.len() - MAX_ERRORS_PER_DESCRIPTOR;
        errors.truncate(MAX_ERRORS_PER_DESCRIPTOR);
        errors.push(Diagnostic::at(
            &d.path,
            0,
            format!("{more} more problems not shown"),
        ));
    }
    Err(errors)
}

fn open_section(
    d: &mut Descriptor,
    name: &str,
    origin: Origin,
    errors: &mut Vec<Diagnostic>,
) -> Section {
    match name {
        "Image" => {
            d.image.get_or_insert_with(|| ImageSection {
                origin,
                ..ImageSection::default()
            });
            Section::Image
        }
        "Container" => {
            d.container.get_or_insert_with(|| ContainerSection {
                origin,
                ..ContainerSection::default()
            });
            Section::Container
        }
        "App" => {
            d.app.get_or_insert_with(|| AppSection {
                origin,
                ..AppSection::default()
            });
            Section::App
        }
        "Install" => Section::Install,
        "Unit" => Section::Unit,
        "Service" => Section::Service,
        "ImportUnit" => Section::ImportUnit,
        "ImportService" => Section::ImportService,
        _ if name.starts_with("X-") => Section::Extension,
        _ => {
            errors.push(Diagnostic::at(
                &origin.file,
                origin.line,
                format!(
                    "unknown section [{name}] (known: Image, Container, App, Install, Unit, Service, ImportUnit, ImportService), or X-… to be ignored"
                ),
            ));
            Section::Unknown
        }
    }
}

fn assign(
    d: &mut Descriptor,
    section: Section,
    key: &str,
    value: &str,
    origin: &Origin,
    mode: Mode,
) -> Result<(), String> {
    let expanded;
    let value = match mode {
        Mode::Instance { instance, .. }
            if section == Section::Container && INSTANCE_KEYS.contains(&key) =>
        {
            expanded = expand_instance(value, instance).map_err(|e| format!("{key}=: {e}"))?;
            expanded.as_str()
        }
        _ => value,
    };
    if key == "DefaultInstance" && section == Section::Install {
        return match mode {
            Mode::Plain => {
                Err("DefaultInstance=: applies to templates (NAME@.oci) only".to_string())
            }
            Mode::TemplateImage => assign_default_instance(&mut d.install, value, origin),
            // The template's, read by its TemplateImage pass.
            Mode::Instance { .. } => Ok(()),
        };
    }
    if matches!(mode, Mode::TemplateImage) && section == Section::Install {
        // WantedBy= and the rest install each instance's container.
        return Ok(());
    }
    let result = match section {
        Section::Image => match d.image.as_mut() {
            Some(image) => assign_image(image, key, value, origin),
            None => Ok(()),
        },
        Section::Container => match d.container.as_mut() {
            Some(container) => assign_container(container, key, value, origin),
            None => Ok(()),
        },
        Section::App => match d.app.as_mut() {
            Some(app) => assign_app(&mut app.settings, key, value, origin),
            None => Ok(()),
        },
        Section::Install => assign_install(&mut d.install, key, value),
        Section::Unit => pass_through(&mut d.unit, key, value, origin),
        Section::Service => pass_through(&mut d.service, key, value, origin),
        Section::ImportUnit => pass_through(&mut d.import_unit, key, value, origin),
        Section::ImportService => pass_through(&mut d.import_service, key, value, origin),
        Section::Unknown | Section::Extension => Ok(()),
    };
    result.map_err(|e| format!("{key}=: {e}"))
}

fn assign_default_instance(
    install: &mut InstallSection,
    value: &str,
    origin: &Origin,
) -> Result<(), String> {
    if value.is_empty() {
        install.default_instance = None;
        return Ok(());
    }
    crate::names::check_machine_name(value)
        .map_err(|e| format!("DefaultInstance=: bad instance name: {e}"))?;
    install.default_instance = Some(Located {
        value: value.to_string(),
        origin: origin.clone(),
    });
    Ok(())
}

/// Checks that need the merged descriptor.
fn check_whole(d: &Descriptor, errors: &mut Vec<Diagnostic>) {
    let mut fail = |origin: &Origin, message: String| {
        errors.push(Diagnostic::at(&origin.file, origin.line, message))
    };
    let other_image = d
        .container
        .as_ref()
        .and_then(|c| c.image.as_ref())
        .filter(|i| i.value != d.name);
    match (&d.image, other_image) {
        (Some(image), None) if image.source.is_none() => {
            fail(&image.origin, "[Image] has no Image= (the image to import)".to_string())
        }
        (Some(image), Some(other)) => fail(
            &other.origin,
            format!(
                "Image={} runs another descriptor's image, so this one must not have an [Image] section \
                 (line {})",
                other.value, image.origin.line
            ),
        ),
        (None, None) => fail(
            &Origin { file: d.path.clone(), line: 0 },
            "no image: needs [Image] Image= or [Container] Image=".to_string(),
        ),
        _ => {}
    }
    if let Some(image) = &d.image {
        let local = image.source.as_deref().is_some_and(|s| {
            crate::source::LOCAL_TRANSPORTS
                .iter()
                .any(|p| s.starts_with(p))
        });
        if let Some(a) = image.auto_update.as_ref().filter(|a| a.value && local) {
            fail(
                &a.origin,
                "AutoUpdate=registry needs a registry reference in Image= (this is a local source)"
                    .into(),
            );
        }
    }
    if let Some(c) = &d.container {
        // nspawn forwards ports only over a link to the host: a veth or a
        // bridge. Network=private is a namespace with loopback only.
        let no_link = match c.network {
            Network::Host => Some("host"),
            Network::Private => Some("private, which has only a loopback device"),
            _ => None,
        };
        if let Some(network) = no_link {
            for port in &c.ports {
                fail(
                    &port.origin,
                    format!("Port= needs Network=veth, bridge:NAME or zone:NAME (the network is {network})"),
                );
            }
        }
        if let Network::Container(other) = &c.network {
            for port in &c.ports {
                fail(
                    &port.origin,
                    format!(
                        "Port= cannot go with Network=container:{other}: this container runs in \
                         {other}'s network namespace, so its ports are published there"
                    ),
                );
            }
            if other == &d.name {
                fail(
                    &c.network_origin,
                    "Network=container: names this descriptor itself".into(),
                );
            }
        }
        check_port_conflicts(&c.ports, &mut fail);
        check_volume_conflicts(&c.app.volumes, &mut fail);
        let is_connector = d.image.as_ref().is_some_and(|i| i.mode() == "connector");
        if let Some(on_demand) = c.start_on_demand.as_ref().filter(|_| !is_connector) {
            fail(
                &on_demand.origin,
                "StartOnDemand= applies to connector containers only ([Image] Mode=connector)"
                    .into(),
            );
        }
        if let Some(origin) = c.connector_access_origin.as_ref().filter(|_| !is_connector) {
            fail(
                origin,
                "ConnectorAllowUID=, ConnectorAllowGID= and ConnectorEnvironmentFiles= apply to connector containers only ([Image] Mode=connector)"
                    .into(),
            );
        }
        if let Some(p) = c
            .private_users
            .as_ref()
            .filter(|p| p.value != sdme_launch::PrivateUsers::No && is_connector)
        {
            fail(
                &p.origin,
                "PrivateUsers= must be no for a connector: its commands reopen the callers' \
                 descriptors, its allow lists would see every caller as uid 65534, and what its \
                 root leaves in the connector directory would be root's on the host"
                    .into(),
            );
        }
        for (i, cred) in c.credentials.iter().enumerate() {
            let id = &cred.value.id;
            if let Some(first) = c.credentials[..i].iter().find(|o| &o.value.id == id) {
                fail(
                    &cred.origin,
                    format!(
                        "credential {id} is already defined ({}:{})",
                        first.origin.file, first.origin.line
                    ),
                );
            }
        }
        for (i, secret) in c.secrets.iter().enumerate() {
            let s = &secret.value;
            if !c.credentials.iter().any(|cred| cred.value.id == s.id) {
                fail(
                    &secret.origin,
                    format!(
                        "Secret={}:{}: no Credential= or EncryptedCredential= defines {}",
                        s.id, s.var, s.id
                    ),
                );
            }
            if c.secrets[..i].iter().any(|o| o.value.var == s.var) {
                fail(
                    &secret.origin,
                    format!(
                        "Secret=: variable {} is already set by another Secret=",
                        s.var
                    ),
                );
            }
        }
        for connector in &c.connectors {
            if connector.value == d.name {
                fail(
                    &connector.origin,
                    "Connector= names this descriptor itself".into(),
                );
            }
        }
        for (i, app) in c.apps.iter().enumerate() {
            if app.value == d.name {
                fail(
                    &app.origin,
                    format!(
                        "App={}: names this descriptor itself, whose image is the container's first app",
                        app.value
                    ),
                );
            } else if app.value == d.image_provider() {
                fail(
                    &app.origin,
                    format!("App={}: that is this container's own image", app.value),
                );
            } else if let Some(first) = c.apps[..i].iter().find(|a| a.value == app.value) {
                fail(
                    &app.origin,
                    format!(
                        "App={}: already named ({}:{})",
                        app.value, first.origin.file, first.origin.line
                    ),
                );
            }
        }
        if let Some(app) = c.apps.first().filter(|_| is_connector) {
            // Its container serves the connector's callers, on demand.
            fail(
                &app.origin,
                "App= in a connector's container: a connector's container runs its server only"
                    .into(),
            );
        }
        for dep in &c.dependencies {
            if dep.target.value == d.name {
                fail(
                    &dep.target.origin,
                    format!("{}= names this descriptor itself", dep.key),
                );
            }
        }
        let l = &c.lifecycle;
        if let (Some(origin), true) = (
            &c.reload_origin,
            l.reload_signal.is_some() && l.reload_cmd.is_some(),
        ) {
            fail(
                origin,
                "ReloadSignal= and ReloadCmd= exclude each other: say one way to reload".into(),
            );
        }
        if let Some(origin) = &c.oneshot_origin {
            let conflict = if is_connector {
                Some("a connector, which is started on demand".to_string())
            } else if let Some(r) = c.app.restart.filter(|r| *r != "no") {
                Some(format!("Restart={r}: a job runs once"))
            } else if l.notify != sdme_launch::Notify::Auto && l.notify != sdme_launch::Notify::No {
                Some(format!(
                    "Notify={}: a job is done when it exits, and the unit active only while it runs",
                    l.notify.to_spec()
                ))
            } else if l.reload_signal.is_some() || l.reload_cmd.is_some() {
                Some("ReloadSignal=/ReloadCmd=: a job is not reloaded".to_string())
            } else {
                None
            };
            if let Some(conflict) = conflict {
                fail(origin, format!("Type=oneshot does not go with {conflict}"));
            }
        }
    }
    if let Some(app) = &d.app {
        let mode = d.image.as_ref().map(|i| i.mode());
        if d.container.is_some() {
            fail(
                &app.origin,
                "[App] is for a descriptor without [Container], which containers run with App=: \
                 this container's own app takes the same keys in [Container]"
                    .into(),
            );
        } else if d.image.is_none() {
            fail(
                &app.origin,
                "[App] needs an [Image] section: the application image it sets up".into(),
            );
        } else if let Some(mode @ ("base" | "connector")) = mode {
            fail(
                &app.origin,
                format!("[App] goes with an application image, not Mode={mode}"),
            );
        }
        check_volume_conflicts(&app.settings.volumes, &mut fail);
    }
    if d.image.is_none() {
        if let Some(line) = d.import_unit.first().or(d.import_service.first()) {
            fail(
                &line.origin,
                "[ImportUnit] and [ImportService] apply to the import: add an [Image] section"
                    .into(),
            );
        }
    }
    if d.container.is_none() {
        if let Some(line) = d.unit.first().or(d.service.first()) {
            fail(
                &line.origin,
                "[Unit] and [Service] apply to the container: add a [Container] section".into(),
            );
        }
    }
}

/// Two `Port=` that would listen on the same host port and protocol: the
/// same address, or one of them on every address.
fn check_port_conflicts(
    ports: &[Located<crate::values::Port>],
    fail: &mut impl FnMut(&Origin, String),
) {
    for (i, b) in ports.iter().enumerate() {
        let earlier = ports[..i].iter().find(|a| {
            a.value.protocol == b.value.protocol
                && a.value.host == b.value.host
                && (a.value.address.is_none()
                    || b.value.address.is_none()
                    || a.value.address == b.value.address)
        });
        if let Some(a) = earlier {
            fail(
                &b.origin,
                format!(
                    "Port=: host port {}/{} is already published by line {}",
                    b.value.host, b.value.protocol, a.origin.line
                ),
            );
        }
    }
}

/// Two `Volume=` of one app at the same path in its root: the later bind
/// would hide the earlier. (Each app has a root of its own, so two apps may
/// use the same path.)
fn check_volume_conflicts(
    volumes: &[Located<sdme_launch::Volume>],
    fail: &mut impl FnMut(&Origin, String),
) {
    for (i, b) in volumes.iter().enumerate() {
        let path = b.value.container();
        if let Some(a) = volumes[..i].iter().find(|a| a.value.container() == path) {
            fail(
                &b.origin,
                format!(
                    "Volume=: {path} is already the mount point of a volume ({}:{})",
                    a.origin.file, a.origin.line
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::expand_instance;

    #[test]
    fn instance_specifiers() {
        assert_eq!(expand_instance("/srv/%i/x", "a.b").unwrap(), "/srv/a.b/x");
        assert_eq!(
            expand_instance("100%% %%i %i%i", "z").unwrap(),
            "100% %i zz"
        );
        assert_eq!(expand_instance("plain", "z").unwrap(), "plain");
        for bad in ["%", "a%", "%n", "%I", "%%%"] {
            assert!(expand_instance(bad, "z").is_err(), "{bad}");
        }
    }
}
