//! Networks between containers: the network namespace of another machine
//! (`Network=container:OTHER`, a pod) and the name service of a zone
//! (`Network=zone:NAME`). Also the lookup `sdme-netns` uses to run a port
//! proxy in a container's network namespace.

use crate::dropin::{Dropins, UnitDropin};
use sdme_store::merged::MergedView;
use sdme_unitfile::{Unit, Value};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// `machinectl`, or `$SDME_MACHINECTL` (tests).
fn machinectl() -> OsString {
    std::env::var_os("SDME_MACHINECTL").unwrap_or_else(|| "machinectl".into())
}

/// The host PID of machine `name`'s leader (its init), from machined, and
/// only if the machine is sdme's container of that name: a container
/// whose unit is `systemd-nspawn@NAME.service` (machined registers
/// machines for unprivileged users too, from systemd 257, under any name).
pub fn machine_leader(name: &str) -> Result<u32, String> {
    sdme_launch::check_machine_name(name)?;
    let out = Command::new(machinectl())
        .args([
            "show",
            "--property=Leader",
            "--property=Unit",
            "--property=Class",
            "--",
            name,
        ])
        .output()
        .map_err(|e| format!("machine {name}: running machinectl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .unwrap_or("")
    };
    let unit = format!("systemd-nspawn@{name}.service");
    match field("Leader").parse::<u32>() {
        Ok(pid) if out.status.success() && pid > 1 => {
            if field("Unit") != unit || field("Class") != "container" {
                return Err(format!(
                    "machine {name} is not sdme's container: its unit is {:?} (class {:?}), not {unit}",
                    field("Unit"),
                    field("Class")
                ));
            }
            Ok(pid)
        }
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

/// Machine `name`'s network namespace, opened (close-on-exec): for a pod
/// member in a user namespace of its own. systemd-nspawn joins a
/// `--network-namespace-path=` from inside the container's new user
/// namespace, which needs CAP_SYS_ADMIN over the user namespace owning
/// the network namespace: OTHER's, or the host's, never the member's. So
/// the launcher, the host's root, joins it before executing nspawn, which
/// then runs as if in the host's network: the member shares OTHER's
/// network and its root has no privileges there (it binds no port below
/// 1024 and changes no link).
///
/// Opened first and checked after, on the descriptor: not the host's
/// namespace, and the machine's leader still the process it was opened
/// through (a PID reused in between could hand over anyone's namespace).
pub fn open_netns(name: &str) -> Result<std::os::fd::OwnedFd, String> {
    use rustix::fs::{Mode, OFlags};
    let fail = |e: String| {
        format!(
            "Network=container:{name}: {e} (it starts first: the container's unit is ordered after it)"
        )
    };
    let pid = machine_leader(name).map_err(fail)?;
    let path = format!("/proc/{pid}/ns/net");
    let fd = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| fail(format!("{path}: {e}")))?;
    let theirs = rustix::fs::fstat(&fd).map_err(|e| fail(format!("{path}: {e}")))?;
    let ours = rustix::fs::stat("/proc/self/ns/net")
        .map_err(|e| fail(format!("/proc/self/ns/net: {e}")))?;
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino) {
        return Err(fail(format!(
            "machine {name} runs in this host's network namespace: there is none of its own to join"
        )));
    }
    if machine_leader(name).map_err(fail)? != pid {
        return Err(fail(format!(
            "machine {name}'s leader changed while its namespace was opened"
        )));
    }
    Ok(fd)
}

/// Moves this process (its only thread) into the network namespace `fd`.
pub fn join_netns(fd: &std::os::fd::OwnedFd) -> Result<(), String> {
    use std::os::fd::AsFd;
    rustix::thread::move_into_link_name_space(
        fd.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("joining the pod's network namespace: {e}"))
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
const NETWORKD: &str = "systemd-networkd.service";

/// Whether the container's root has `unit` (a system unit file).
fn has_unit(root: &MergedView, unit: &str) -> bool {
    [
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
        "/etc/systemd/system",
    ]
    .iter()
    .any(|dir| root.exists(&format!("{dir}/{unit}")))
}

/// In a zone the container's `host0` gets its address by DHCP from the
/// base's systemd-networkd (Debian ships it disabled), and containers find
/// each other by machine name through LLMNR, which systemd-resolved in
/// each of them answers (for its host name, the machine name) and asks on
/// the zone's link. Both are started with the container (a drop-in for
/// `multi-user.target`), and the app after resolved, so that the
/// container's `/etc/resolv.conf` (resolved's stub, bound into the app's
/// root) exists when the app starts. What the base lacks is said in the
/// journal; the container still starts.
pub fn zone_dropin(
    zone: &str,
    root: &MergedView,
    apps: &[String],
    dropins: &mut Dropins,
) -> Result<(), String> {
    let word = |w: &str| Value::word(w).map_err(|e| e.to_string());
    let networkd = has_unit(root, NETWORKD);
    let resolved = has_unit(root, RESOLVED);
    if !networkd {
        eprintln!(
            "sdme-nspawn: Network=zone:{zone}: the base has no systemd-networkd, so nothing \
             configures this container's link (host0) in the zone; install and enable it in the \
             base image (sdme.oci(5), Network=)"
        );
    }
    if !resolved {
        eprintln!(
            "sdme-nspawn: Network=zone:{zone}: the base has no systemd-resolved, so this container \
             neither answers nor resolves the zone's machine names (LLMNR); it reaches the others \
             by address only. Install systemd-resolved in the base image (sdme.oci(5), Network=)"
        );
    }
    let mut target = Unit::new();
    target.comment(&format!(
        "Network=zone:{zone}: the link's address and machine names (sdme-nspawn)."
    ));
    let t = target.section("Unit");
    for (present, unit) in [(networkd, NETWORKD), (resolved, RESOLVED)] {
        if present {
            t.set("Wants", word(unit)?);
        }
    }
    if networkd || resolved {
        add(dropins, "multi-user.target", target.render());
    }
    for unit in apps.iter().filter(|_| resolved) {
        let mut app = Unit::new();
        app.comment(&format!(
            "Network=zone:{zone}: names resolve when the app starts (sdme-nspawn)."
        ));
        app.section("Unit")
            .set("Wants", word(RESOLVED)?)
            .set("After", word(RESOLVED)?);
        add(dropins, unit, app.render());
    }
    Ok(())
}

/// Adds `text` to the drop-in of `unit`: one drop-in file per unit, so
/// appended to one already there (sections may repeat).
fn add(dropins: &mut Dropins, unit: &str, text: String) {
    match dropins.units.iter_mut().find(|d| d.unit == unit) {
        Some(d) => {
            d.text.push('\n');
            d.text.push_str(&text);
        }
        None => dropins.units.push(UnitDropin {
            unit: unit.to_string(),
            text,
        }),
    }
}

/// `sdme-netns --machine=NAME [--connect=PORT] -- COMMAND [ARGS…]`: runs
/// COMMAND in machine NAME's network namespace as nobody (65534:65534),
/// with the descriptors and environment it was given (a socket unit's
/// `LISTEN_FDS`: the listening sockets stay in the host's namespace, the
/// connections COMMAND makes are the container's). With `--connect=PORT`
/// the namespace's own address and PORT (`ADDR:PORT`) are added as the
/// last argument: the proxy then connects to the container's address, not
/// to 127.0.0.1, so that the app never sees a host user's connection come
/// from its own loopback (which images trust: postgres's `127.0.0.1/32
/// trust`). Returns only on error.
pub fn exec_in_netns(args: Vec<OsString>) -> String {
    use std::os::unix::process::CommandExt;
    let mut machine = None;
    let mut connect = None;
    let mut rest = args.into_iter();
    let mut command: Vec<OsString> = Vec::new();
    for a in rest.by_ref() {
        match a.to_str() {
            Some("--") => break,
            Some(s) if s.starts_with("--machine=") => {
                machine = Some(s["--machine=".len()..].to_string())
            }
            Some(s) if s.starts_with("--connect=") => {
                match s["--connect=".len()..].parse::<u16>() {
                    Ok(p) if p > 0 => connect = Some(p),
                    _ => return format!("invalid {s:?}: a port from 1 to 65535\n{NETNS_USAGE}"),
                }
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
    if let Some(port) = connect {
        match own_address() {
            Some(addr) => command.push(format!("{addr}:{port}").into()),
            None => {
                return format!(
                "machine {machine} has no IPv4 address of its own (yet) to connect to port {port}"
            )
            }
        }
    }
    // std drops the supplementary groups too when it changes the uid as root.
    let e = Command::new(&program)
        .args(&command[1..])
        .uid(NOBODY)
        .gid(NOBODY)
        .exec();
    format!("executing {}: {e}", Path::new(&program).display())
}

/// The first IPv4 address of this network namespace that is not a
/// loopback one, waiting a few seconds for one (DHCP right after a
/// boot). From the kernel's local routes in `/proc/net/fib_trie` (the
/// reader's namespace), where each is an address line followed by
/// `/32 host LOCAL`.
fn own_address() -> Option<std::net::Ipv4Addr> {
    for _ in 0..50 {
        if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
            if let Some(a) = local_addresses(&text).into_iter().next() {
                return Some(a);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

fn local_addresses(fib_trie: &str) -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    let mut last = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(a) = t.parse::<std::net::Ipv4Addr>() {
            last = Some(a);
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last.filter(|a| !a.is_loopback() && !out.contains(a)) {
                out.push(a);
            }
        }
    }
    out
}

const NOBODY: u32 = 65534;

pub const NETNS_USAGE: &str =
    "usage: sdme-netns --machine=NAME [--connect=PORT] -- COMMAND [ARGS…]";

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(units: &[&str]) -> (tempfile::TempDir, MergedView) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("usr/lib/systemd/system");
        std::fs::create_dir_all(&dir).unwrap();
        for u in units {
            std::fs::write(dir.join(u), "[Unit]\n").unwrap();
        }
        let view = MergedView::new(vec![t.path().to_path_buf()]);
        (t, view)
    }

    #[test]
    fn a_zone_starts_networkd_and_resolved_and_the_app_after_resolved() {
        let (_t, root) = root_with(&[NETWORKD, RESOLVED]);
        let mut d = Dropins::default();
        d.units.push(UnitDropin {
            unit: "sdme-oci-app.service".into(),
            text: "[Service]\nRestart=always\n".into(),
        });
        let apps = [
            "sdme-oci-app.service".to_string(),
            "sdme-oci-app@db.service".into(),
        ];
        zone_dropin("apps", &root, &apps, &mut d).unwrap();
        assert_eq!(d.units.len(), 3, "{d:?}");
        assert_eq!(d.units[2].unit, "sdme-oci-app@db.service");
        assert!(d.units[2]
            .text
            .ends_with("After=systemd-resolved.service\n"));
        d.units.remove(2);
        let app = &d.units[0];
        assert!(app.text.starts_with("[Service]\nRestart=always\n\n# "));
        assert!(app
            .text
            .ends_with("[Unit]\nWants=systemd-resolved.service\nAfter=systemd-resolved.service\n"));
        assert_eq!(d.units[1].unit, "multi-user.target");
        assert!(d.units[1]
            .text
            .ends_with("[Unit]\nWants=systemd-networkd.service\nWants=systemd-resolved.service\n"));
    }

    #[test]
    fn a_base_without_them_gets_nothing_to_start() {
        let (_t, root) = root_with(&[]);
        let mut d = Dropins::default();
        zone_dropin("apps", &root, &["sdme-oci-app.service".into()], &mut d).unwrap();
        assert!(d.units.is_empty());
        let (_t, root) = root_with(&[RESOLVED]);
        zone_dropin("apps", &root, &[], &mut d).unwrap();
        assert_eq!(d.units.len(), 1);
        assert_eq!(d.units[0].unit, "multi-user.target");
    }

    #[test]
    fn the_namespace_address_comes_from_its_local_routes() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.0.0/28 2 0 2\n        |-- 10.0.0.0\n           /28 link UNICAST\n        |-- 10.0.0.2\n           /32 host LOCAL\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\nLocal:\n        |-- 10.0.0.2\n           /32 host LOCAL\n        |-- 10.0.0.15\n           /32 link BROADCAST\n";
        assert_eq!(
            local_addresses(fib),
            ["10.0.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert!(local_addresses("Main:\n |-- 127.0.0.1\n    /32 host LOCAL\n").is_empty());
    }

    #[test]
    fn sdme_netns_refuses_bad_command_lines() {
        assert!(exec_in_netns(vec![]).starts_with("usage"));
        assert!(exec_in_netns(vec!["--machine=a".into()]).starts_with("usage"));
        assert!(exec_in_netns(vec!["-x".into()]).starts_with("unexpected argument"));
        let e = exec_in_netns(vec![
            "--machine=a b".into(),
            "--".into(),
            "/bin/true".into(),
        ]);
        assert!(e.contains("not a machine name"), "{e}");
    }
}
