//! Installing systemd into a base OS image that lacks it: the distribution's
//! package manager runs inside a `systemd-nspawn` container (its own PID, IPC,
//! UTS and mount namespaces, /dev and /proc; the host's network) whose root is
//! an overlayfs of the image's layers; the overlay's upper directory becomes a
//! layer of its own.
//!
//! Nothing here writes into the image's tree by a host path: sdme's own
//! changes (a `policy-rc.d`) are made by the shell command in the container,
//! the resolver file by nspawn (`--resolv-conf=replace-host`, which replaces
//! a symlink instead of following it), and the clean-up of the upper
//! directory afterwards goes through fds that refuse symlinks.

use crate::notify::Progress;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::mount::{
    mount, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags,
};
use sdme_store::merged::MergedView;
use sdme_store::remove_tree;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the merged layers contain systemd as PID 1 can run it.
pub fn has_systemd(view: &MergedView) -> bool {
    ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"]
        .iter()
        .any(|p| matches!(view.file_path(p), Ok(Some((_, m))) if m.is_file()))
}

/// `ID` and `ID_LIKE` words from os-release text.
pub fn os_ids(os_release: &str) -> Vec<String> {
    let mut id = Vec::new();
    let mut like = Vec::new();
    for line in os_release.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'');
        match k.trim() {
            "ID" => id.push(v.to_string()),
            "ID_LIKE" => like.extend(v.split_whitespace().map(String::from)),
            _ => {}
        }
    }
    id.extend(like);
    id
}

/// The shell command that installs systemd for a distribution, by os-release ids.
pub fn install_command(ids: &[String]) -> Option<(&'static str, &'static str)> {
    for id in ids {
        let found = match id.as_str() {
            "debian" | "ubuntu" => Some((
                "apt",
                "apt-get update && apt-get install -y --no-install-recommends systemd systemd-sysv dbus && apt-get clean",
            )),
            "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "amzn" | "ol" => Some((
                "dnf",
                "pm=$(command -v dnf || command -v microdnf || command -v yum) && \"$pm\" -y install systemd && \"$pm\" clean all",
            )),
            "arch" | "archlinux" => Some(("pacman", "pacman -Sy --noconfirm systemd && pacman -Scc --noconfirm")),
            "suse" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" | "sles" => Some((
                "zypper",
                "zypper --non-interactive install --no-recommends systemd dbus-1 && zypper clean --all",
            )),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The program that runs the install.
pub const NSPAWN: &str = "systemd-nspawn";

/// `PATH` for systemd-nspawn and for the command in the container.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the install command gets in the container besides `PATH`. nspawn
/// starts the payload with an environment of its own making (`container=`,
/// `HOME`, `USER`, `LOGNAME`, `LANG`, `container_uuid`, …) plus `--setenv=`,
/// so nothing of the import's environment (registry credentials included)
/// reaches the image's code; systemd-nspawn itself is started with only `PATH`.
const CONTAINER_ENV: &[&str] = &[
    "DEBIAN_FRONTEND=noninteractive",
    "DEBCONF_NONINTERACTIVE_SEEN=true",
    "LC_ALL=C",
];

/// Entries of the install's upper directory that are not part of the systemd
/// layer: removing one there brings back what the image's own layers have
/// (the image's `resolv.conf`, which nspawn replaced with the host's; its
/// `machine-id`; no `policy-rc.d`) and drops the package caches.
const LEFTOVERS: &[&str] = &[
    "etc/resolv.conf",
    "etc/machine-id",
    "usr/sbin/policy-rc.d",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/dnf",
    "var/cache/zypp",
    "var/cache/pacman/pkg",
];

/// The script `/bin/sh -c` runs in the container. For apt, a `policy-rc.d`
/// that keeps package scripts from starting services is made first (inside
/// the container, so whatever the image's paths resolve to stays inside it)
/// unless the image has its own, and removed afterwards. The script's exit
/// status is the package manager's.
pub fn container_script(manager: &str, command: &str) -> String {
    if manager != "apt" {
        return format!("{command}\n");
    }
    format!(
        "p=/usr/sbin/policy-rc.d; made=\n\
         if [ ! -e $p ] && [ ! -L $p ]; then printf '#!/bin/sh\\nexit 101\\n' >$p && chmod 755 $p && made=1; fi\n\
         {command}\n\
         rc=$?\n\
         [ -z \"$made\" ] || rm -f $p\n\
         exit $rc\n"
    )
}

/// The arguments of `systemd-nspawn` (after the program name) that run
/// `script` with `/bin/sh` in a container whose root is the directory
/// `root`, already mounted: no boot (`--as-pid2`: a stub init is PID 1 and
/// reaps), nspawn's own PID/IPC/UTS/mount namespaces, /dev, /proc and
/// capability set, the host's network (for the distribution's mirrors),
/// non-interactive stdio. `--keep-unit`: the container stays in the
/// import's own service (its timeout and `systemctl stop` cover it);
/// `--register=no`: no machined; `--settings=no`: no `.nspawn` file changes
/// any of this; `--resolv-conf=replace-host`: the tree's `/etc/resolv.conf`
/// (even a symlink) is replaced by a copy of the host's, never written
/// through; `--timezone=off`, `--link-journal=no`: nspawn leaves
/// `/etc/localtime` and `/var/log/journal` of the tree alone.
pub fn nspawn_args(root: &Path, machine: &str, script: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--settings=no",
        "--as-pid2",
        "--pipe",
        "--resolv-conf=replace-host",
        "--timezone=off",
        "--link-journal=no",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.push(format!("--machine={machine}").into());
    let mut directory = OsString::from("--directory=");
    directory.push(root);
    args.push(directory);
    args.push(format!("--setenv=PATH={PATH}").into());
    args.extend(
        CONTAINER_ENV
            .iter()
            .map(|e| OsString::from(format!("--setenv={e}"))),
    );
    args.extend(["--", "/bin/sh", "-c", script].map(OsString::from));
    args
}

/// The overlay mount of the install root, undone even on failure.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if unmount(&self.0, UnmountFlags::empty()).is_err() {
            if let Err(e) = unmount(&self.0, UnmountFlags::DETACH) {
                eprintln!("warning: unmounting {}: {e}", self.0.display());
            }
        }
    }
}

/// Opens the directory `rel` below `layer` without following any symlink
/// or crossing a mount: what the container made of the path never leads
/// outside the layer.
fn open_beneath(layer: &OwnedFd, rel: &str) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut tries = 0;
    loop {
        // EAGAIN: a concurrent rename was seen during the lookup; retry.
        match rustix::fs::openat2(layer, rel, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 16 => tries += 1,
            other => return other,
        }
    }
}

/// Removes `rel` (a file, whiteout or whole tree) from the layer directory
/// `layer`, confined to it. A path that is not there as such (a missing
/// component, or a symlink or non-directory in the middle) is left alone.
fn discard_in_layer(layer: &OwnedFd, rel: &str) -> Result<(), String> {
    let (parent, leaf) = match rel.rsplit_once('/') {
        Some((p, l)) => (Some(p), l),
        None => (None, rel),
    };
    let opened;
    let parent_fd = match parent {
        None => layer.as_fd(),
        Some(p) => match open_beneath(layer, p) {
            Ok(fd) => {
                opened = fd;
                opened.as_fd()
            }
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => return Ok(()),
            Err(e) => return Err(format!("{p}: {e}")),
        },
    };
    sdme_extract::remove_all(parent_fd, OsStr::new(leaf))
        .map_err(|e| format!("removing {rel}: {e}"))
}

/// Removes the [`LEFTOVERS`] from the upper directory `upper`.
fn clean_layer(upper: &Path) -> Result<(), String> {
    let layer = rustix::fs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("{}: {e}", upper.display()))?;
    for rel in LEFTOVERS {
        discard_in_layer(&layer, rel).map_err(|e| format!("{}: {e}", upper.display()))?;
    }
    Ok(())
}

/// systemd-nspawn 252 reads `ROOT/etc/machine-id` by host path before it
/// enters the container (`setup_machine_id()`), so an image's symlink there
/// would be followed on the host (an invalid id makes nspawn refuse; a valid
/// one, the host's own for example, becomes the container's id). An empty
/// regular `etc/machine-id` in the fresh upper directory hides the image's
/// entry from nspawn and from the install; it is one of the [`LEFTOVERS`].
/// `etc` gets the mode and owner of the image's `/etc`, which must be a
/// directory (not a symlink).
fn seed_machine_id(upper: &Path, view: &MergedView) -> Result<(), String> {
    let etc = match view.resolve("/etc", false) {
        Ok(Some(sdme_store::merged::Resolved {
            node: sdme_store::merged::Node::Dir(_),
            ..
        })) => view.dir_metadata("/etc").ok().flatten(),
        _ => None,
    };
    let Some(etc) = etc else {
        return Err("the image's /etc is not a directory".to_string());
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let e = |what: &str, err: Errno| format!("{}: {what}: {err}", upper.display());
    let layer = rustix::fs::open(upper, dir_flags, Mode::empty()).map_err(|x| e("open", x))?;
    rustix::fs::mkdirat(&layer, "etc", Mode::from_raw_mode(0o700))
        .map_err(|x| e("mkdir etc", x))?;
    let etc_fd = rustix::fs::openat(&layer, "etc", dir_flags, Mode::empty())
        .map_err(|x| e("open etc", x))?;
    use std::os::unix::fs::MetadataExt;
    if rustix::process::geteuid().is_root() {
        rustix::fs::fchown(
            &etc_fd,
            Some(rustix::fs::Uid::from_raw(etc.uid())),
            Some(rustix::fs::Gid::from_raw(etc.gid())),
        )
        .map_err(|x| e("chown etc", x))?;
    }
    rustix::fs::fchmod(&etc_fd, Mode::from_raw_mode(etc.mode() & 0o7777))
        .map_err(|x| e("chmod etc", x))?;
    let file = rustix::fs::openat(
        &etc_fd,
        "machine-id",
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )
    .map_err(|x| e("create etc/machine-id", x))?;
    rustix::fs::fchmod(&file, Mode::from_raw_mode(0o444)).map_err(|x| e("chmod etc/machine-id", x))
}

/// The name of the install's container (its hostname; `--register=no`, so
/// machined never sees it): unique among concurrent imports.
fn machine_name() -> String {
    format!("sdme-install-{}", std::process::id())
}

fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<CString, String> {
    let check = |p: &Path| -> Result<String, String> {
        let s = p
            .to_str()
            .ok_or_else(|| format!("{}: not UTF-8", p.display()))?;
        if s.contains([',', ':', '\\']) {
            return Err(format!(
                "{s}: overlayfs paths cannot contain ',', ':' or '\\'"
            ));
        }
        Ok(s.to_string())
    };
    // overlayfs lists the topmost lower first.
    let lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| check(p))
        .collect::<Result<_, _>>()?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        check(upper)?,
        check(work)?
    );
    if opts.len() > 4000 {
        return Err(format!(
            "{} layers are too many for one overlayfs mount",
            lowers.len()
        ));
    }
    CString::new(opts).map_err(|_| "overlay options contain NUL".to_string())
}

/// Installs systemd into base image `name` made of `lowers` (lowest first;
/// `view` is their merged view); the changes land in `upper` (a new
/// directory), which is then a layer in overlayfs format. `scratch` is a
/// private directory for the mount point and the overlay's work dir. On
/// failure `upper` is removed and nothing stays mounted.
pub fn install_systemd(
    name: &str,
    lowers: &[PathBuf],
    view: &MergedView,
    upper: &Path,
    scratch: &Path,
    progress: &Progress,
) -> Result<(), String> {
    let Some(os_release) = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| view.read(p).ok().flatten())
    else {
        return Err(format!(
            "base image {name} has no systemd and sdme cannot install it: unsupported distribution \
             (no /etc/os-release or /usr/lib/os-release says which it is); use an image that contains systemd"
        ));
    };
    let ids = os_ids(&String::from_utf8_lossy(&os_release));
    let distribution = if ids.is_empty() {
        "none".to_string()
    } else {
        ids.join(" ")
    };
    let Some((manager, command)) = install_command(&ids) else {
        return Err(format!(
            "base image {name} has no systemd and sdme cannot install it: unsupported distribution \
             (os-release ID/ID_LIKE: {distribution}); use an image that contains systemd"
        ));
    };
    if !matches!(view.file_path("/bin/sh"), Ok(Some((_, m))) if m.is_file()) {
        return Err(format!(
            "base image {name} ({distribution}) has no systemd and no /bin/sh to run {manager} with; \
             use an image that contains systemd"
        ));
    }
    progress.status(&format!("Installing systemd ({manager})"));
    let mnt = scratch.join("mnt");
    let work = scratch.join("work");
    for d in [&mnt, &work] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    crate::glue::create_layer_dir(upper)?;
    if let Err(e) = seed_machine_id(upper, view) {
        let _ = remove_tree(upper);
        return Err(format!("base image {name} ({distribution}): {e}"));
    }
    let ran = run_in_container(lowers, upper, &mnt, &work, manager, command, progress);
    remove_tree(&work)?;
    let failed = match ran {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!(
            "installing systemd into base image {name} ({distribution}) with {manager} failed: \
             the command in the container ended with {status}; see the log above"
        )),
        Err(e) => Some(format!(
            "installing systemd into base image {name} ({distribution}) with {manager}: {e}"
        )),
    };
    let failed = failed.or_else(|| clean_layer(upper).err()).or_else(|| {
        let after = MergedView::new(lowers.iter().cloned().chain([upper.to_path_buf()]).collect());
        (!has_systemd(&after)).then(|| {
            format!(
                "{manager} succeeded but base image {name} ({distribution}) still has no /usr/lib/systemd/systemd"
            )
        })
    });
    match failed {
        None => Ok(()),
        Some(e) => {
            if let Err(r) = remove_tree(upper) {
                progress.log(&format!("warning: {r}"));
            }
            Err(e)
        }
    }
}

/// Mounts the overlay of `lowers` with `upper` on `mnt` in a mount
/// namespace of this process's own and runs the install in a container on
/// it; the mount is gone when this returns (and with the namespace, should
/// the process die).
fn run_in_container(
    lowers: &[PathBuf],
    upper: &Path,
    mnt: &Path,
    work: &Path,
    manager: &str,
    command: &str,
    progress: &Progress,
) -> Result<std::process::ExitStatus, String> {
    // SAFETY: only CLONE_NEWNS is unshared (no fd table); called after the
    // fetch threads have ended.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    let opts = overlay_options(lowers, upper, work)?;
    mount(
        "overlay",
        mnt,
        "overlay",
        MountFlags::empty(),
        Some(opts.as_c_str()),
    )
    .map_err(|e| format!("mounting overlayfs on {}: {e}", mnt.display()))?;
    let _mounted = Mounted(mnt.to_path_buf());
    let args = nspawn_args(mnt, &machine_name(), &container_script(manager, command));
    progress.log(&format!("running in a container on the image: {command}"));
    Command::new(NSPAWN)
        .args(&args)
        .env_clear()
        .env("PATH", PATH)
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("running {NSPAWN} (package systemd-container): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_manager_from_os_release() {
        let deb = os_ids("PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n");
        assert_eq!(install_command(&deb).unwrap().0, "apt");
        let ubuntu = os_ids("ID=ubuntu\nID_LIKE=debian\n");
        assert_eq!(install_command(&ubuntu).unwrap().0, "apt");
        let mint = os_ids("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(mint, vec!["linuxmint", "ubuntu", "debian"]);
        assert_eq!(install_command(&mint).unwrap().0, "apt");
        assert_eq!(
            install_command(&os_ids("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\""))
                .unwrap()
                .0,
            "dnf"
        );
        assert_eq!(install_command(&os_ids("ID=arch")).unwrap().0, "pacman");
        assert_eq!(
            install_command(&os_ids("ID=opensuse-leap\nID_LIKE=\"suse opensuse\""))
                .unwrap()
                .0,
            "zypper"
        );
        assert!(install_command(&os_ids("ID=alpine")).is_none());
        assert!(install_command(&[]).is_none());
    }

    #[test]
    fn overlay_options_list_the_top_first() {
        let o = overlay_options(
            &[PathBuf::from("/l/0"), PathBuf::from("/l/1")],
            Path::new("/u"),
            Path::new("/w"),
        )
        .unwrap();
        assert_eq!(
            o.to_str().unwrap(),
            "lowerdir=/l/1:/l/0,upperdir=/u,workdir=/w"
        );
        assert!(
            overlay_options(&[PathBuf::from("/a:b")], Path::new("/u"), Path::new("/w")).is_err()
        );
    }

    #[test]
    fn nspawn_command_line() {
        let args = nspawn_args(Path::new("/s/mnt"), "sdme-install-7", "echo hi\n");
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--quiet",
                "--register=no",
                "--keep-unit",
                "--settings=no",
                "--as-pid2",
                "--pipe",
                "--resolv-conf=replace-host",
                "--timezone=off",
                "--link-journal=no",
                "--machine=sdme-install-7",
                "--directory=/s/mnt",
                "--setenv=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--setenv=DEBIAN_FRONTEND=noninteractive",
                "--setenv=DEBCONF_NONINTERACTIVE_SEEN=true",
                "--setenv=LC_ALL=C",
                "--",
                "/bin/sh",
                "-c",
                "echo hi\n",
            ]
        );
        // Nothing beyond nspawn's defaults: no binds, capabilities, boot.
        for a in &args {
            for bad in [
                "--bind",
                "--capability",
                "--boot",
                "--overlay",
                "--private-users",
                "-b",
            ] {
                assert!(!a.starts_with(bad) || *a == "--", "{a}");
            }
        }
    }

    #[test]
    fn the_script_is_one_argument_whatever_the_path() {
        let args = nspawn_args(Path::new("/a b/m,n:o"), "m", "x; y");
        assert!(args.contains(&OsString::from("--directory=/a b/m,n:o")));
        assert_eq!(args.last(), Some(&OsString::from("x; y")));
        assert_eq!(args[args.len() - 4], OsString::from("--"));
    }

    #[test]
    fn machine_name_is_a_hostname() {
        let n = machine_name();
        assert!(n.len() <= 64);
        assert!(n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }

    #[test]
    fn container_script_keeps_the_exit_status_and_parses() {
        let (manager, command) = install_command(&["debian".to_string()]).unwrap();
        let apt = container_script(manager, command);
        assert!(apt.contains(command));
        assert!(apt.contains("exit 101"));
        assert!(apt.ends_with("exit $rc\n"));
        assert_eq!(
            container_script("dnf", "dnf -y install systemd"),
            "dnf -y install systemd\n"
        );
        // `sh -n` parses without running anything.
        let st = Command::new("sh")
            .args(["-n", "-c", &apt])
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn dir_fd(p: &Path) -> OwnedFd {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn cleaning_the_layer_removes_leftovers_and_nothing_outside() {
        let t = tempfile::tempdir().unwrap();
        let upper = t.path().join("upper");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("var/cache/apt/archives")).unwrap();
        std::fs::create_dir_all(upper.join("usr/sbin")).unwrap();
        std::fs::create_dir_all(outside.join("lib/apt/lists")).unwrap();
        std::fs::create_dir_all(outside.join("etc")).unwrap();
        std::fs::write(outside.join("lib/apt/lists/canary"), "c").unwrap();
        std::fs::write(outside.join("etc/machine-id"), "canary").unwrap();
        std::fs::write(upper.join("etc/resolv.conf"), "nameserver 1.2.3.4\n").unwrap();
        std::fs::write(upper.join("var/cache/apt/archives/x.deb"), "x").unwrap();
        std::fs::write(upper.join("etc/hostname"), "kept").unwrap();
        // The container made /var/lib a symlink to a host path and
        // /etc/machine-id one: neither is followed.
        std::os::unix::fs::symlink(outside.join("lib"), upper.join("var/lib")).unwrap();
        std::os::unix::fs::symlink(outside.join("etc/machine-id"), upper.join("etc/machine-id"))
            .unwrap();
        std::os::unix::fs::symlink(&outside, upper.join("usr/sbin/policy-rc.d")).unwrap();
        clean_layer(&upper).unwrap();
        assert!(!upper.join("etc/resolv.conf").exists());
        assert!(!upper.join("var/cache/apt").exists());
        assert!(upper.join("var/cache").is_dir());
        assert!(std::fs::symlink_metadata(upper.join("etc/machine-id")).is_err());
        assert!(std::fs::symlink_metadata(upper.join("usr/sbin/policy-rc.d")).is_err());
        assert_eq!(
            std::fs::read_to_string(upper.join("etc/hostname")).unwrap(),
            "kept"
        );
        assert!(upper.join("var/lib").is_symlink());
        assert_eq!(
            std::fs::read_to_string(outside.join("lib/apt/lists/canary")).unwrap(),
            "c"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("etc/machine-id")).unwrap(),
            "canary"
        );
        assert!(outside.is_dir());
    }

    #[test]
    fn discarding_a_missing_path_is_not_an_error() {
        let t = tempfile::tempdir().unwrap();
        let layer = dir_fd(t.path());
        discard_in_layer(&layer, "var/cache/dnf").unwrap();
        discard_in_layer(&layer, "nothing").unwrap();
        std::fs::write(t.path().join("file"), "").unwrap();
        // A file where a directory is expected.
        discard_in_layer(&layer, "file/below").unwrap();
        assert!(t.path().join("file").exists());
    }

    #[test]
    fn install_fails_cleanly_without_os_release_or_shell() {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().join("l0");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        let view = MergedView::new(vec![layer.clone()]);
        let progress = Progress::from_env().quiet();
        let upper = t.path().join("upper");
        let lowers = [layer.clone()];
        let refusal = || {
            install_systemd(
                "img",
                &lowers,
                &view,
                &upper,
                &t.path().join("s"),
                &progress,
            )
            .unwrap_err()
        };
        let e = refusal();
        assert!(
            e.contains("base image img") && e.contains("os-release"),
            "{e}"
        );
        std::fs::write(layer.join("etc/os-release"), "ID=debian\n").unwrap();
        let e = refusal();
        assert!(
            e.contains("base image img (debian)") && e.contains("/bin/sh"),
            "{e}"
        );
        std::fs::write(layer.join("etc/os-release"), "ID=alpine\n").unwrap();
        let e = refusal();
        assert!(
            e.contains("unsupported distribution") && e.contains("alpine"),
            "{e}"
        );
        assert!(!upper.exists());
    }

    #[test]
    fn the_upper_dir_hides_the_images_machine_id() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("l0");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::set_permissions(
            lower.join("etc"),
            std::os::unix::fs::PermissionsExt::from_mode(0o751),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/machine-id", lower.join("etc/machine-id")).unwrap();
        let upper = t.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        seed_machine_id(&upper, &MergedView::new(vec![lower.clone()])).unwrap();
        let m = std::fs::symlink_metadata(upper.join("etc/machine-id")).unwrap();
        assert!(m.is_file() && m.len() == 0);
        use std::os::unix::fs::PermissionsExt;
        let etc = std::fs::symlink_metadata(upper.join("etc")).unwrap();
        assert_eq!(etc.permissions().mode() & 0o7777, 0o751);
        // The clean-up brings the image's entry back.
        clean_layer(&upper).unwrap();
        assert!(std::fs::symlink_metadata(upper.join("etc/machine-id")).is_err());
        // An image whose /etc is a symlink is refused.
        let odd = t.path().join("odd");
        std::fs::create_dir(&odd).unwrap();
        std::os::unix::fs::symlink("/etc", odd.join("etc")).unwrap();
        let upper2 = t.path().join("upper2");
        std::fs::create_dir(&upper2).unwrap();
        assert!(seed_machine_id(&upper2, &MergedView::new(vec![odd])).is_err());
        assert!(!upper2.join("etc").exists());
    }
}
