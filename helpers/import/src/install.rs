//! Installing systemd into a base OS image that lacks it: the distribution's
//! package manager runs in a chroot on an overlayfs of the image's layers,
//! whose upper directory becomes a layer of its own.

use crate::notify::Progress;
use rustix::mount::{
    mount, mount_bind, mount_bind_recursive, mount_change, unmount, MountFlags,
    MountPropagationFlags, UnmountFlags,
};
use sdme_store::merged::MergedView;
use sdme_store::remove_tree;
use std::ffi::CString;
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

/// Mounts made for the install, undone in reverse order even on failure.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        while let Some(target) = self.0.pop() {
            if unmount(&target, UnmountFlags::empty()).is_err() {
                if let Err(e) = unmount(&target, UnmountFlags::DETACH) {
                    eprintln!("warning: unmounting {}: {e}", target.display());
                }
            }
        }
    }
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

/// Installs systemd on top of `lowers` (lowest first); the changes land in
/// `upper` (a new directory), which is then a layer in overlayfs format.
/// `scratch` is a private directory for the mount point and overlay work dir.
pub fn install_systemd(
    lowers: &[PathBuf],
    view: &MergedView,
    upper: &Path,
    scratch: &Path,
    progress: &Progress,
) -> Result<(), String> {
    let os_release = view
        .read("/etc/os-release")
        .ok()
        .flatten()
        .or_else(|| view.read("/usr/lib/os-release").ok().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let ids = os_ids(&os_release);
    let Some((manager, command)) = install_command(&ids) else {
        return Err(format!(
            "the base image has no systemd and sdme cannot install it: unsupported distribution (os-release ID/ID_LIKE: {}); \
             use an image that contains systemd",
            if ids.is_empty() { "none".to_string() } else { ids.join(" ") }
        ));
    };
    progress.status(&format!("Installing systemd ({manager})"));
    let mnt = scratch.join("mnt");
    let work = scratch.join("work");
    for d in [&mnt, &work, &upper.to_path_buf()] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    crate::glue::create_layer_dir(upper)?;
    // A mount namespace of our own: nothing leaks to the host, and everything
    // is gone when the process ends, whatever happens.
    // SAFETY: only CLONE_NEWNS is unshared (no fd table); called after the
    // fetch threads have ended.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    let mut mounts = Mounts(Vec::new());
    let opts = overlay_options(lowers, upper, &work)?;
    mount(
        "overlay",
        &mnt,
        "overlay",
        MountFlags::empty(),
        Some(opts.as_c_str()),
    )
    .map_err(|e| format!("mounting overlayfs on {}: {e}", mnt.display()))?;
    mounts.0.push(mnt.clone());
    for (src, recursive) in [("/proc", false), ("/sys", false), ("/dev", true)] {
        let target = mnt.join(&src[1..]);
        std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        let r = if recursive {
            mount_bind_recursive(src, &target)
        } else {
            mount_bind(src, &target)
        };
        r.map_err(|e| format!("binding {src} into the install root: {e}"))?;
        mounts.0.push(target);
    }
    // The host's resolver configuration and a policy that keeps package
    // scripts from starting services; both removed from the layer afterwards.
    let resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    let etc = mnt.join("etc");
    let _ = std::fs::remove_file(etc.join("resolv.conf"));
    std::fs::write(etc.join("resolv.conf"), &resolv)
        .map_err(|e| format!("writing resolv.conf: {e}"))?;
    let policy = mnt.join("usr/sbin/policy-rc.d");
    if manager == "apt" {
        std::fs::write(&policy, "#!/bin/sh\nexit 101\n")
            .map_err(|e| format!("{}: {e}", policy.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755));
    }
    progress.log(&format!("running in the image: {command}"));
    let status = Command::new("chroot")
        .arg(&mnt)
        .args(["/bin/sh", "-c", command])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .env("LC_ALL", "C")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("running chroot: {e}"))?;
    // Every container gets a fresh transient machine id.
    let _ = std::fs::write(etc.join("machine-id"), b"");
    drop(mounts);
    for leftover in [
        "etc/resolv.conf",
        "usr/sbin/policy-rc.d",
        "var/lib/apt/lists",
        "var/cache/apt",
        "var/cache/dnf",
        "var/cache/zypp",
        "var/cache/pacman/pkg",
    ] {
        remove_tree(&upper.join(leftover))?;
    }
    remove_tree(&work)?;
    if !status.success() {
        return Err(format!(
            "installing systemd with {manager} failed ({status}); see the log above"
        ));
    }
    let after = MergedView::new(
        lowers
            .iter()
            .cloned()
            .chain([upper.to_path_buf()])
            .collect(),
    );
    if !has_systemd(&after) {
        return Err(format!(
            "{manager} succeeded but the image still has no /usr/lib/systemd/systemd"
        ));
    }
    Ok(())
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
}
