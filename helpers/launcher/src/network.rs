//! Networks between containers: the network namespace of another machine
//! (`Network=container:OTHER`, a pod) and the name service of a zone
//! (`Network=zone:NAME`). Also the lookup `sdme-netns` uses to run a port
//! proxy in a container's network namespace.

use crate::dropin::{Dropins, UnitDropin};
use sdme_import::units;
use sdme_store::merged::MergedView;
use sdme_unitfile::{Unit, Value};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// `machinectl`, or `$SDME_MACHINECTL` (tests).
fn machinectl() -> OsString {
    std::env::var_os("SDME_MACHINECTL").unwrap_or_else(|| "machinectl".into())
}

/// The host PID of machine `name`'s leader (its init), from machined.
pub fn machine_leader(name: &str) -> Result<u32, String> {
    sdme_launch::check_machine_name(name)?;
    let out = Command::new(machinectl())
        .args(["show", "--property=Leader", "--value", "--", name])
        .output()
        .map_err(|e| format!("machine {name}: running machinectl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<u32>() {
        Ok(pid) if out.status.success() && pid > 1 => Ok(pid),
        _ => Err(format!(
            "machine {name} is not running (machinectl show: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// `/proc/PID/ns/net` of machine `name`'s leader, checked to be a network
/// namespace of its own (not the host's: a container in the host's network
/// has none to share).
pub fn machine_netns(name: &str) -> Result<String, String> {
    let pid = machine_leader(name)?;
    let path = format!("/proc/{pid}/ns/net");
    let theirs = std::fs::read_link(&path).map_err(|e| format!("machine {name}: {path}: {e}"))?;
    let ours =
        std::fs::read_link("/proc/self/ns/net").map_err(|e| format!("/proc/self/ns/net: {e}"))?;
    if theirs == ours {
        return Err(format!(
            "machine {name} runs in this host's network namespace: there is none of its own to join"
        ));
    }
    Ok(path)
}

/// The nspawn option for `--network-namespace-of=OTHER`. A dry run that
/// cannot find the machine shows where the path would come from.
pub fn netns_arg(other: &str, dry_run: bool) -> Result<OsString, String> {
    let path = match machine_netns(other) {
        Ok(path) => path,
        Err(_) if dry_run => format!("/proc/LEADER-OF-{other}/ns/net"),
        Err(e) => {
            return Err(format!(
                "Network=container:{other}: {e} (it starts first: the container's unit is ordered after it)"
            ))
        }
    };
    Ok(format!("--network-namespace-path={path}").into())
}

const RESOLVED: &str = "systemd-resolved.service";

/// Whether the container's root has systemd-resolved.
fn has_resolved(root: &MergedView) -> bool {
    [
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
        "/etc/systemd/system",
    ]
    .iter()
    .any(|dir| root.exists(&format!("{dir}/{RESOLVED}")))
}

/// Containers of a zone find each other by machine name through LLMNR,
/// which systemd-resolved in each of them answers (for its host name, the
/// machine name) and asks on the zone's link. The app is started after it,
/// so that the container's `/etc/resolv.conf` (resolved's stub, bound into
/// the app's root) exists when the app starts. Without resolved in the
/// base, the journal says what is missing and the container still starts.
pub fn zone_dropin(
    zone: &str,
    root: &MergedView,
    is_app: bool,
    dropins: &mut Dropins,
) -> Result<(), String> {
    if !has_resolved(root) {
        eprintln!(
            "sdme-nspawn: Network=zone:{zone}: the base has no systemd-resolved, so this container \
             neither answers nor resolves the zone's machine names (LLMNR); it reaches the others \
             by address only. Install systemd-resolved in the base image (sdme.oci(5), Network=)"
        );
        return Ok(());
    }
    if !is_app {
        return Ok(());
    }
    let mut unit = Unit::new();
    unit.comment(&format!(
        "Network=zone:{zone}: machine names by LLMNR (sdme-nspawn)."
    ));
    unit.section("Unit")
        .set("Wants", Value::word(RESOLVED).map_err(|e| e.to_string())?)
        .set("After", Value::word(RESOLVED).map_err(|e| e.to_string())?);
    let text = unit.render();
    match dropins
        .units
        .iter_mut()
        .find(|d| d.unit == units::APP_SERVICE)
    {
        // One drop-in file per unit: appended (sections may repeat).
        Some(d) => {
            d.text.push('\n');
            d.text.push_str(&text);
        }
        None => dropins.units.push(UnitDropin {
            unit: units::APP_SERVICE.to_string(),
            text,
        }),
    }
    Ok(())
}

/// `sdme-netns --machine=NAME -- COMMAND [ARGS…]`: runs COMMAND in machine
/// NAME's network namespace as nobody (65534:65534), with the descriptors
/// and environment it was given (a socket unit's `LISTEN_FDS`: the
/// listening sockets stay in the host's namespace, the connections COMMAND
/// makes are the container's). Returns only on error.
pub fn exec_in_netns(args: Vec<OsString>) -> String {
    use std::os::unix::process::CommandExt;
    let mut machine = None;
    let mut rest = args.into_iter();
    let mut command: Vec<OsString> = Vec::new();
    for a in rest.by_ref() {
        match a.to_str() {
            Some("--") => break,
            Some(s) if s.starts_with("--machine=") => {
                machine = Some(s["--machine=".len()..].to_string())
            }
            _ => return format!("unexpected argument {a:?}\n{NETNS_USAGE}"),
        }
    }
    command.extend(rest);
    let (Some(machine), Some(program)) = (machine, command.first().cloned()) else {
        return NETNS_USAGE.to_string();
    };
    let path = match machine_netns(&machine) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let ns = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => return format!("{path}: {e}"),
    };
    if let Err(e) = rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&ns),
        Some(rustix::thread::LinkNameSpaceType::Network),
    ) {
        return format!("joining the network namespace of machine {machine}: {e}");
    }
    drop(ns);
    // std drops the supplementary groups too when it changes the uid as root.
    let e = Command::new(&program)
        .args(&command[1..])
        .uid(NOBODY)
        .gid(NOBODY)
        .exec();
    format!("executing {}: {e}", Path::new(&program).display())
}

const NOBODY: u32 = 65534;

pub const NETNS_USAGE: &str = "usage: sdme-netns --machine=NAME -- COMMAND [ARGS…]";
