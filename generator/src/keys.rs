//! The keys of `[Image]`, `[Container]` and `[Install]`, and the
//! pass-through of `[Unit]`/`[Service]`: each assignment checked and applied.
//! Scalar keys: the last assignment wins, an empty one restores the default.
//! List keys: each assignment appends, an empty one clears.

use crate::descriptor::*;
use crate::names::{check_interface_name, check_machine_name, check_unit_name};
use crate::source::check_source;
use crate::values::*;
use crate::words;

const MODES: &[&str] = &["auto", "base", "app", "connector"];
const PULL_POLICIES: &[&str] = &["missing", "always", "never", "newer"];
use sdme_launch::{HEALTH_ACTIONS, RESTART_POLICIES};

/// Applies a scalar: empty restores the default, otherwise `parse` decides.
fn scalar<T>(
    slot: &mut Option<T>,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<(), String> {
    *slot = if value.is_empty() {
        None
    } else {
        Some(parse(value)?)
    };
    Ok(())
}

/// Applies one list assignment: empty clears, otherwise `items` are appended.
fn list<T>(
    slot: &mut Vec<T>,
    value: &str,
    items: impl FnOnce(&str) -> Result<Vec<T>, String>,
) -> Result<(), String> {
    if value.is_empty() {
        slot.clear();
    } else {
        slot.extend(items(value)?);
    }
    Ok(())
}

fn one<T>(
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> impl FnOnce(&str) -> Result<Vec<T>, String> {
    move |v| parse(v).map(|x| vec![x])
}

fn path(v: &str) -> Result<String, String> {
    check_absolute_path(v).map(|()| v.to_string())
}

/// `RegistriesConf=`: `yes` (the system's files), `no`, or one absolute file.
fn registries_conf(v: &str) -> Result<RegistriesConf, String> {
    match parse_bool(v) {
        Ok(true) => Ok(RegistriesConf::System),
        Ok(false) => Ok(RegistriesConf::Off),
        Err(_) => path(v)
            .map(RegistriesConf::File)
            .map_err(|e| format!("expected yes, no or an absolute path: {e}")),
    }
}

fn machine(v: &str) -> Result<String, String> {
    check_machine_name(v).map(|()| v.to_string())
}

/// Health check spans: the launcher takes whole seconds.
fn span(v: &str) -> Result<u64, String> {
    let usec = parse_timespan(v)?.ok_or_else(|| "must be finite".to_string())?;
    if usec % 1_000_000 != 0 {
        return Err(format!("{v:?} must be a whole number of seconds"));
    }
    Ok(usec)
}

pub fn assign_image(
    image: &mut ImageSection,
    key: &str,
    value: &str,
    origin: &Origin,
) -> Result<(), String> {
    match key {
        "Image" => scalar(&mut image.source, value, |v| {
            check_source(v).map(|()| v.to_string())
        }),
        "Mode" => scalar(&mut image.mode, value, |v| parse_choice(v, MODES)),
        "Base" => scalar(&mut image.base, value, |v| {
            Ok(Located {
                value: machine(v)?,
                origin: origin.clone(),
            })
        }),
        "Platform" => scalar(&mut image.platform, value, |v| {
            check_platform(v).map(|()| v.to_string())
        }),
        "Pull" => scalar(&mut image.pull, value, |v| parse_choice(v, PULL_POLICIES)),
        "TLSVerify" => scalar(&mut image.tls_verify, value, parse_bool),
        "AuthFile" => scalar(&mut image.auth_file, value, path),
        "CertDir" => scalar(&mut image.cert_dir, value, path),
        "ImportTimeoutSec" => scalar(&mut image.timeout, value, parse_timespan),
        "RegistriesConf" => scalar(&mut image.registries_conf, value, registries_conf),
        "AutoUpdate" => scalar(&mut image.auto_update, value, |v| {
            let on = match v {
                "registry" => true,
                "no" | "false" | "off" | "0" => false,
                _ => return Err(format!("{v:?} is not one of registry, no")),
            };
            Ok(Located {
                value: on,
                origin: origin.clone(),
            })
        }),
        "Retries" => scalar(&mut image.retries, value, |v| match v.parse::<u32>() {
            Ok(n) if n <= 100 && v.chars().all(|c| c.is_ascii_digit()) => Ok(n),
            _ => Err(format!("{v:?} is not a number from 0 to 100")),
        }),
        _ => Err(unknown_key("Image", IMAGE_KEYS)),
    }
}

const IMAGE_KEYS: &[&str] = &[
    "Image",
    "Mode",
    "Base",
    "Platform",
    "Pull",
    "TLSVerify",
    "AuthFile",
    "CertDir",
    "ImportTimeoutSec",
    "RegistriesConf",
    "Retries",
    "AutoUpdate",
];

/// The keys of `[Container]` besides the first app's ([`APP_KEYS`]).
const CONTAINER_ONLY_KEYS: &[&str] = &[
    "Image",
    "Network",
    "Port",
    "MemoryMax",
    "CPUQuota",
    "TasksMax",
    "Connector",
    "App",
    "StartOnDemand",
    "ConnectorAllowUID",
    "ConnectorAllowGID",
    "ConnectorEnvironmentFiles",
    "PrivateUsers",
    "NspawnArgument",
    "After",
    "Before",
    "Requires",
    "Wants",
    "BindsTo",
    "Notify",
    "ReloadSignal",
    "ReloadCmd",
    "Type",
    "Credential",
    "EncryptedCredential",
    "Secret",
];

fn unknown_key(section: &str, known: &[&str]) -> String {
    format!("unknown key in [{section}] (known: {})", known.join(", "))
}

pub fn assign_container(
    c: &mut ContainerSection,
    key: &str,
    value: &str,
    origin: &Origin,
) -> Result<(), String> {
    let located = |v: String| Located {
        value: v,
        origin: origin.clone(),
    };
    match key {
        // The first app's settings: the keys of [App], parsed by its code.
        _ if APP_KEYS.contains(&key) => assign_app(&mut c.app, key, value, origin),
        "Image" => scalar(&mut c.image, value, |v| machine(v).map(located)),
        "Network" => {
            c.network = match value {
                "" | "host" => Network::Host,
                "private" => Network::Private,
                "veth" => Network::Veth,
                _ => match value.split_once(':') {
                    Some(("bridge", bridge)) => check_interface_name(bridge)
                        .map(|()| Network::Bridge(bridge.to_string()))?,
                    Some(("zone", zone)) => sdme_launch::check_zone_name(zone)
                        .map(|()| Network::Zone(zone.to_string()))?,
                    Some(("container", other)) => {
                        machine(other).map(Network::Container)?
                    }
                    _ => {
                        return Err(format!(
                            "{value:?} is not one of host, private, veth, bridge:NAME, zone:NAME, container:NAME"
                        ))
                    }
                },
            };
            c.network_origin = origin.clone();
            Ok(())
        }
        "Port" => list(
            &mut c.ports,
            value,
            one(|v| {
                parse_port(v).map(|p| Located {
                    value: p,
                    origin: origin.clone(),
                })
            }),
        ),
        "MemoryMax" => scalar(&mut c.memory_max, value, |v| {
            check_memory(v).map(|()| v.to_string())
        }),
        "CPUQuota" => scalar(&mut c.cpu_quota, value, |v| {
            check_cpu_quota(v).map(|()| v.to_string())
        }),
        "TasksMax" => scalar(&mut c.tasks_max, value, |v| {
            check_tasks(v).map(|()| v.to_string())
        }),
        "Connector" => list(&mut c.connectors, value, one(|v| machine(v).map(located))),
        // Words, as systemd's unit lists: `App=db cache`.
        "App" => list(&mut c.apps, value, |v| {
            words::split(v)?
                .iter()
                .map(|w| machine(w).map(&located))
                .collect()
        }),
        "StartOnDemand" => scalar(&mut c.start_on_demand, value, |v| {
            parse_bool(v).map(|b| Located {
                value: b,
                origin: origin.clone(),
            })
        }),
        "PrivateUsers" => scalar(&mut c.private_users, value, |v| {
            sdme_launch::PrivateUsers::parse(v).map(|p| Located {
                value: p,
                origin: origin.clone(),
            })
        }),
        "ConnectorAllowUID" | "ConnectorAllowGID" => {
            c.connector_access_origin
                .get_or_insert_with(|| origin.clone());
            let ids = if key == "ConnectorAllowUID" {
                &mut c.connector_access.allow_uids
            } else {
                &mut c.connector_access.allow_gids
            };
            list(ids, value, |v| {
                words::split(v)?
                    .iter()
                    .map(|w| sdme_launch::connector_id(w))
                    .collect()
            })
        }
        "ConnectorEnvironmentFiles" => {
            c.connector_access_origin
                .get_or_insert_with(|| origin.clone());
            c.connector_access.environment_files = !value.is_empty() && parse_bool(value)?;
            Ok(())
        }
        "NspawnArgument" => list(&mut c.nspawn_arguments, value, words::split),
        "After" | "Before" | "Requires" | "Wants" | "BindsTo" => {
            let key = DEPENDENCY_KEYS
                .iter()
                .find(|k| **k == key)
                .copied()
                .unwrap_or("After");
            if value.is_empty() {
                c.dependencies.retain(|d| d.key != key);
                return Ok(());
            }
            for name in words::split(value)? {
                c.dependencies.push(Dependency {
                    key,
                    target: located(machine(&name)?),
                });
            }
            Ok(())
        }
        "Notify" => {
            c.lifecycle.notify = if value.is_empty() {
                sdme_launch::Notify::Auto
            } else {
                sdme_launch::Notify::parse(value)?
            };
            Ok(())
        }
        "ReloadSignal" => {
            c.reload_origin = Some(origin.clone());
            scalar(
                &mut c.lifecycle.reload_signal,
                value,
                sdme_launch::signal_name,
            )
        }
        "ReloadCmd" => {
            c.reload_origin = Some(origin.clone());
            if value.is_empty() {
                c.lifecycle.reload_cmd = None;
                return Ok(());
            }
            let words = words::split(value)?;
            if words.iter().any(String::is_empty) {
                return Err("empty words are not allowed".to_string());
            }
            c.lifecycle.reload_cmd = Some(words);
            Ok(())
        }
        "Type" => {
            c.lifecycle.oneshot = match value {
                "" | "service" => false,
                "oneshot" => true,
                _ => return Err(format!("{value:?} is not one of service, oneshot")),
            };
            c.oneshot_origin = c.lifecycle.oneshot.then(|| origin.clone());
            Ok(())
        }
        "Credential" | "EncryptedCredential" => {
            let encrypted = key == "EncryptedCredential";
            list(
                &mut c.credentials,
                value,
                one(|v| {
                    sdme_launch::parse_credential(v, encrypted).map(|value| Located {
                        value,
                        origin: origin.clone(),
                    })
                }),
            )
        }
        "Secret" => list(
            &mut c.secrets,
            value,
            one(|v| {
                sdme_launch::parse_secret(v).map(|value| Located {
                    value,
                    origin: origin.clone(),
                })
            }),
        ),
        _ => {
            let known: Vec<&str> = CONTAINER_ONLY_KEYS
                .iter()
                .chain(APP_KEYS)
                .copied()
                .collect();
            Err(unknown_key("Container", &known))
        }
    }
}

/// The keys of one app: `[App]`'s, and the first app's among `[Container]`'s.
pub const APP_KEYS: &[&str] = &[
    "Volume",
    "Environment",
    "EnvironmentFile",
    "Entrypoint",
    "Command",
    "User",
    "WorkingDirectory",
    "Restart",
    "HealthCmd",
    "HealthIntervalSec",
    "HealthTimeoutSec",
    "HealthRetries",
    "HealthStartPeriodSec",
    "HealthOnFailure",
    "StopSignal",
    "StopTimeoutSec",
];

/// One app's setting: a key of [`APP_KEYS`], in `[App]` or `[Container]`.
pub fn assign_app(
    a: &mut AppSettings,
    key: &str,
    value: &str,
    origin: &Origin,
) -> Result<(), String> {
    match key {
        "Volume" => list(
            &mut a.volumes,
            value,
            one(|v| {
                parse_volume(v).map(|value| Located {
                    value,
                    origin: origin.clone(),
                })
            }),
        ),
        "Environment" => list(&mut a.environment, value, |v| {
            let words = words::split(v)?;
            words.iter().try_for_each(|w| check_env_assignment(w))?;
            Ok(words)
        }),
        "EnvironmentFile" => list(&mut a.environment_files, value, one(path)),
        "Entrypoint" => word_list(&mut a.entrypoint, value),
        "Command" => word_list(&mut a.command, value),
        "User" => scalar(&mut a.user, value, |v| {
            check_user(v).map(|()| v.to_string())
        }),
        "WorkingDirectory" => scalar(&mut a.working_directory, value, path),
        "Restart" => scalar(&mut a.restart, value, |v| parse_choice(v, RESTART_POLICIES)),
        "HealthCmd" => scalar(&mut a.health.command, value, |v| Ok(v.to_string())),
        "HealthIntervalSec" => scalar(&mut a.health.interval, value, span),
        "HealthTimeoutSec" => scalar(&mut a.health.timeout, value, span),
        "HealthStartPeriodSec" => scalar(&mut a.health.start_period, value, span),
        "HealthRetries" => scalar(&mut a.health.retries, value, |v| match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) && v.chars().all(|c| c.is_ascii_digit()) => Ok(n),
            _ => Err(format!("{v:?} is not a number from 1 to 1000")),
        }),
        "HealthOnFailure" => scalar(&mut a.health.on_failure, value, |v| {
            parse_choice(v, HEALTH_ACTIONS)
        }),
        "StopSignal" => scalar(&mut a.stop_signal, value, sdme_launch::signal_name),
        "StopTimeoutSec" => scalar(&mut a.stop_timeout, value, |v| {
            let usec = span(v)?;
            match usec / 1_000_000 {
                s @ 1..=86400 => Ok(s),
                _ => Err(format!("{v:?} is not between 1 s and 24 h")),
            }
        }),
        _ => Err(unknown_key("App", APP_KEYS)),
    }
}

/// `Entrypoint=`/`Command=`: words appended; empty assignment: the image's
/// own. A single empty word (`Entrypoint=""`) replaces it with nothing; any
/// other empty word is refused, because the launcher reads an empty
/// `--entrypoint=`/`--cmd=` as "empty list", not as an empty argument.
fn word_list(slot: &mut Option<Vec<String>>, value: &str) -> Result<(), String> {
    if value.is_empty() {
        *slot = None;
        return Ok(());
    }
    let new = words::split(value)?;
    let list = slot.get_or_insert_with(Vec::new);
    let lone_empty = new.len() == 1 && new[0].is_empty() && list.is_empty();
    if !lone_empty && (new.iter().any(String::is_empty) || list.iter().any(String::is_empty)) {
        return Err("empty words are not allowed (only a lone \"\" clears the list)".to_string());
    }
    list.extend(new);
    Ok(())
}

pub fn assign_install(install: &mut InstallSection, key: &str, value: &str) -> Result<(), String> {
    let units = |v: &str| {
        let names = words::split(v)?;
        names.iter().try_for_each(|n| check_unit_name(n))?;
        Ok(names)
    };
    match key {
        "WantedBy" => list(&mut install.wanted_by, value, units),
        "RequiredBy" => list(&mut install.required_by, value, units),
        // A template's (build.rs reads it): known here for the list.
        "DefaultInstance" => Ok(()),
        _ => Err(unknown_key(
            "Install",
            &["WantedBy", "RequiredBy", "DefaultInstance"],
        )),
    }
}

/// `[Unit]`/`[Service]` lines are copied verbatim (systemd judges the key);
/// the parser already refused control characters, and a value cannot end in
/// a continuation backslash, so a copied line can never become two.
pub fn pass_through(
    lines: &mut Vec<PassThrough>,
    key: &str,
    value: &str,
    origin: &Origin,
) -> Result<(), String> {
    // The unit writer's rule for verbatim values, checked here so the
    // descriptor is refused with its file and line.
    sdme_unitfile::Value::verbatim(value)
        .map_err(|e| format!("value would not stay one line: {e}"))?;
    lines.push(PassThrough {
        key: key.to_string(),
        value: value.to_string(),
        origin: origin.clone(),
    });
    Ok(())
}
