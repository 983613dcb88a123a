//! Builds a [`Descriptor`] from a descriptor file and its drop-ins: reads
//! them in order, dispatches sections (the keys are in `keys.rs`), and runs
//! the checks that need the whole merged descriptor.

use crate::descriptor::*;
use crate::diagnostic::Diagnostic;
use crate::keys::{assign_container, assign_image, assign_install, pass_through};
use crate::search::SourceFile;
use crate::syntax::{self, Item};

/// Stop listing problems in one file after this many.
const MAX_ERRORS_PER_DESCRIPTOR: usize = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Image,
    Container,
    Install,
    Unit,
    Service,
    /// An unknown section: reported once at its header, its keys ignored.
    Unknown,
}

pub fn build(
    name: &str,
    main: &SourceFile,
    dropins: &[SourceFile],
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
                    section = Some(open_section(&mut d, &name, origin, &mut errors));
                }
                Item::Assignment { key, value, line } => {
                    let origin = Origin {
                        file: file.shown.clone(),
                        line,
                    };
                    let result = match section {
                        None => Err("assignment outside of any section".to_string()),
                        Some(Section::Unknown) => Ok(()),
                        Some(s) => assign(&mut d, s, &key, &value, &origin),
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
    if errors.is_empty() {
        check_whole(&d, &mut errors);
    }
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
        "Install" => Section::Install,
        "Unit" => Section::Unit,
        "Service" => Section::Service,
        _ => {
            errors.push(Diagnostic::at(
                &origin.file,
                origin.line,
                format!(
                    "unknown section [{name}] (known: Image, Container, Install, Unit, Service)"
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
) -> Result<(), String> {
    let result = match section {
        Section::Image => match d.image.as_mut() {
            Some(image) => assign_image(image, key, value, origin),
            None => Ok(()),
        },
        Section::Container => match d.container.as_mut() {
            Some(container) => assign_container(container, key, value, origin),
            None => Ok(()),
        },
        Section::Install => assign_install(&mut d.install, key, value),
        Section::Unit => pass_through(&mut d.unit, key, value, origin),
        Section::Service => pass_through(&mut d.service, key, value, origin),
        Section::Unknown => Ok(()),
    };
    result.map_err(|e| format!("{key}=: {e}"))
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
            if let Some(p) = c
                .private_users
                .as_ref()
                .filter(|p| p.value != sdme_launch::PrivateUsers::No)
            {
                fail(
                    &p.origin,
                    format!(
                        "PrivateUsers= must be no with Network=container:{other}: a container \
                         joins another's network namespace only without a user namespace of its \
                         own (the kernel asks for CAP_SYS_ADMIN over the namespace's owner)"
                    ),
                );
            }
        }
        check_port_conflicts(&c.ports, &mut fail);
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
        for connector in &c.connectors {
            if connector.value == d.name {
                fail(
                    &connector.origin,
                    "Connector= names this descriptor itself".into(),
                );
            }
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
