//! Host limits a container's boot depends on, checked before each start.
//!
//! One so far: inotify instances. Every container's systemd (PID 1,
//! dbus-daemon, logind, a getty) opens inotify instances, and all of them
//! count against one per-user budget, root's,
//! `fs.inotify.max_user_instances`: 128 on a stock Debian. That holds with
//! user namespaces too: the kernel charges an instance to its creator's uid
//! in each user namespace up to the initial one, where the creator of a
//! container's namespace (systemd-nspawn, as root) is charged (measured:
//! with root holding 600 of 1024, a process that is root in a namespace
//! mapped to host uid 200000 got only 408 more). When it runs out, the
//! container's systemd fails in ways that say nothing about the cause. So
//! before each start the launcher counts the instances charged to root and
//! says so, at warning priority in the unit's journal (and so in
//! `systemctl status`), when this container or the next would not fit.
//! It is a warning, not a refusal: the count is an estimate (see
//! [`count_instances`]) and the container may well boot; refusing would
//! turn an estimate into an outage.
//!
//! The check costs one `readlink` per open descriptor of root's processes
//! (e2e E15 prints what that scan costs with 40 containers running).

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Inotify instances one container's systemd takes: 8 measured in every
/// one of 40 nginx containers on a Debian 12 base, under systemd 252 and
/// 257 hosts (e2e E15: systemd 5, dbus-daemon, logind, agetty 1 each). An
/// application that uses inotify itself adds its own.
pub const INOTIFY_PER_CONTAINER: u64 = 8;

/// The limits that apply to root here: the per-user limit of the initial
/// user namespace, and of the namespace the launcher runs in (the smaller
/// one counts; either may be missing on older kernels).
pub const INOTIFY_LIMIT_FILES: [&str; 2] = [
    "/proc/sys/fs/inotify/max_user_instances",
    "/proc/sys/user/max_inotify_instances",
];

/// How the budget stands for one more container.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Room for this container and the next.
    Room,
    /// Room for this one, not for another after it.
    Low { left: u64 },
    /// Not enough left for this container.
    Short { left: u64 },
}

/// The decision, given the limit, the instances in use and what one
/// container needs.
pub fn decide(limit: u64, used: u64, need: u64) -> Verdict {
    let left = limit.saturating_sub(used);
    if left < need {
        Verdict::Short { left }
    } else if left < need.saturating_mul(2) {
        Verdict::Low { left }
    } else {
        Verdict::Room
    }
}

/// A limit file's value (`128\n`).
pub fn parse_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The smallest readable limit of `files`; `None` if none can be read.
pub fn read_limit(files: &[&str]) -> Option<u64> {
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|t| parse_limit(&t))
        .min()
}

/// Inotify instances open in one process (`/proc/PID`): descriptors whose
/// link reads `anon_inode:inotify`. A process that is gone or unreadable
/// counts 0.
pub fn count_process(dir: &Path) -> u64 {
    let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
        return 0;
    };
    fds.filter_map(Result::ok)
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .map(|t| t.as_os_str() == "anon_inode:inotify")
                .unwrap_or(false)
        })
        .count() as u64
}

/// Whom a process's inotify instances are charged to, in the initial user
/// namespace's terms: its uid when it lives in ours, otherwise the owner of
/// its user namespace (`NS_GET_OWNER_UID`: the uid that created it, e.g.
/// root for systemd-nspawn's). `None` when that cannot be read.
fn charged_uid(
    pid_dir: &Path,
    our_userns: Option<u64>,
    owners: &mut Vec<(u64, Option<u32>)>,
) -> Option<u32> {
    let uid = std::fs::metadata(pid_dir).ok()?.uid();
    let ns = pid_dir.join("ns/user");
    let ino = std::fs::metadata(&ns).ok().map(|m| m.ino());
    match (ino, our_userns) {
        (Some(ino), Some(ours)) if ino != ours => {
            if let Some((_, owner)) = owners.iter().find(|(i, _)| *i == ino) {
                return *owner;
            }
            let owner = std::fs::File::open(&ns).ok().and_then(|f| userns_owner(&f));
            owners.push((ino, owner));
            owner
        }
        _ => Some(uid),
    }
}

/// `ioctl(NS_GET_OWNER_UID)` on a user namespace file.
fn userns_owner(ns: &std::fs::File) -> Option<u32> {
    // NS_GET_OWNER_UID is _IO(0xb7, 0x4) with a `uid_t *` argument.
    // SAFETY: the opcode is the kernel's and `u32` is its `uid_t`; `ns` is
    // borrowed for the call.
    unsafe {
        rustix::ioctl::ioctl(
            ns,
            rustix::ioctl::Getter::<{ rustix::ioctl::opcode::none(0xb7, 0x4) }, u32>::new(),
        )
    }
    .ok()
}

/// Inotify instances charged to `uid` among the processes this PID
/// namespace sees: those of processes running as `uid` in our user
/// namespace, and those of processes in user namespaces `uid` owns (a
/// container's). An estimate: an instance shared by several processes
/// (inherited across fork) counts once per process; a namespace nested in
/// another one counts for its own owner; processes in other PID
/// namespaces (say, an outer container's neighbours) are not seen; the
/// kernel's own count is not exported.
pub fn count_instances(proc: &Path, uid: u32) -> io::Result<u64> {
    let our_userns = std::fs::metadata(proc.join("self/ns/user"))
        .ok()
        .map(|m| m.ino());
    let mut owners = Vec::new();
    let mut n = 0;
    for entry in std::fs::read_dir(proc)? {
        let Ok(entry) = entry else { continue };
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let path = entry.path();
        if charged_uid(&path, our_userns, &mut owners) != Some(uid) {
            continue;
        }
        n += count_process(&path);
    }
    Ok(n)
}

/// The warning for a verdict, or `None` when there is room.
pub fn message(verdict: &Verdict, limit: u64, used: u64, need: u64) -> Option<String> {
    let what = match verdict {
        Verdict::Room => return None,
        Verdict::Short { left } => format!(
            "only {left} left, and this container's systemd needs about {need}: \
             it may fail to boot"
        ),
        Verdict::Low { left } => {
            format!("{left} left, about {need} per container: the next container may fail to boot")
        }
    };
    Some(format!(
        "warning: inotify instances nearly used up: root has {used} of \
         fs.inotify.max_user_instances={limit} open; {what}. Raise the limit \
         (sdme ships /usr/lib/sysctl.d/50-sdme.conf with 1024: run \
         '/usr/lib/systemd/systemd-sysctl 50-sdme.conf', or set \
         fs.inotify.max_user_instances in /etc/sysctl.d/)"
    ))
}

/// The check on this host: the warning to give, if any. Says nothing when
/// the limits or `/proc` cannot be read (no warning is better than a wrong
/// one; the container's start does not depend on it).
pub fn check() -> Option<String> {
    let limit = read_limit(&INOTIFY_LIMIT_FILES)?;
    let used = count_instances(Path::new("/proc"), 0).ok()?;
    message(
        &decide(limit, used, INOTIFY_PER_CONTAINER),
        limit,
        used,
        INOTIFY_PER_CONTAINER,
    )
}

/// Whether stderr is the journal (`JOURNAL_STREAM` names its device and
/// inode), where a `<4>` prefix sets the line's priority to warning.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    match rustix::fs::fstat(io::stderr().as_fd()) {
        Ok(st) => st.st_dev.to_string() == dev && st.st_ino.to_string() == ino,
        Err(_) => false,
    }
}

/// The launcher's one call: runs the checks and prints their warnings on
/// stderr (the unit's journal, at warning priority).
pub fn warn() {
    if let Some(m) = check() {
        let prefix = if stderr_is_journal() { "<4>" } else { "" };
        let _ = writeln!(io::stderr(), "{prefix}sdme-nspawn: {m}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_at_the_edges() {
        assert_eq!(decide(1024, 100, 8), Verdict::Room);
        assert_eq!(decide(128, 112, 8), Verdict::Room);
        assert_eq!(decide(128, 113, 8), Verdict::Low { left: 15 });
        assert_eq!(decide(128, 120, 8), Verdict::Low { left: 8 });
        assert_eq!(decide(128, 121, 8), Verdict::Short { left: 7 });
        // More in use than the limit (lowered while in use): nothing left.
        assert_eq!(decide(128, 200, 8), Verdict::Short { left: 0 });
        assert_eq!(decide(u64::MAX, 0, u64::MAX), Verdict::Room); // no overflow
    }

    #[test]
    fn messages_say_what_and_how() {
        assert_eq!(message(&Verdict::Room, 1024, 10, 8), None);
        let m = message(&Verdict::Short { left: 3 }, 128, 125, 8).unwrap();
        assert!(
            m.contains("root has 125 of fs.inotify.max_user_instances=128"),
            "{m}"
        );
        assert!(
            m.contains("only 3 left") && m.contains("may fail to boot"),
            "{m}"
        );
        assert!(m.contains("50-sdme.conf"), "{m}");
        let m = message(&Verdict::Low { left: 12 }, 128, 116, 8).unwrap();
        assert!(m.contains("the next container may fail"), "{m}");
        assert!(!m.contains('\n'));
    }

    #[test]
    fn limits_parse_and_the_smaller_wins() {
        assert_eq!(parse_limit("128\n"), Some(128));
        assert_eq!(parse_limit(" 2147483647 "), Some(2147483647));
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_limit("-1"), None);
        assert_eq!(parse_limit("12 34"), None);
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::write(&a, "1024\n").unwrap();
        std::fs::write(&b, "128\n").unwrap();
        let missing = t.path().join("missing");
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let (a, b, missing) = (s(&a), s(&b), s(&missing));
        assert_eq!(read_limit(&[&a, &b]), Some(128));
        assert_eq!(read_limit(&[&missing, &a]), Some(1024));
        assert_eq!(read_limit(&[&missing]), None);
    }

    #[test]
    fn counts_inotify_links_of_the_uid_only() {
        let t = tempfile::tempdir().unwrap();
        let uid = rustix::process::geteuid().as_raw();
        let mk = |pid: &str, links: &[&str]| {
            let fd = t.path().join(pid).join("fd");
            std::fs::create_dir_all(&fd).unwrap();
            for (i, l) in links.iter().enumerate() {
                std::os::unix::fs::symlink(l, fd.join(i.to_string())).unwrap();
            }
        };
        mk(
            "1",
            &["anon_inode:inotify", "/dev/null", "anon_inode:inotify"],
        );
        mk("42", &["anon_inode:[eventfd]", "anon_inode:inotify"]);
        mk("self", &["anon_inode:inotify"]); // not a PID
        mk("7", &[]);
        std::fs::create_dir_all(t.path().join("9")).unwrap(); // no fd/ (gone)
        assert_eq!(count_instances(t.path(), uid).unwrap(), 3);
        assert_eq!(count_instances(t.path(), uid.wrapping_add(1)).unwrap(), 0);
        assert!(count_instances(&t.path().join("missing"), uid).is_err());
    }

    #[test]
    fn reads_the_owner_of_a_user_namespace() {
        // Our own namespace's owner (0 for the initial one): the ioctl
        // works on a namespace file; what it returns is the kernel's.
        let f = std::fs::File::open("/proc/self/ns/user").unwrap();
        assert!(userns_owner(&f).is_some());
        // Not a namespace file: no owner, no guess.
        let t = tempfile::tempfile().unwrap();
        assert_eq!(userns_owner(&t), None);
    }

    #[test]
    fn counts_a_real_instance() {
        let me = Path::new("/proc/self");
        let before = count_process(me);
        let fd = rustix::fs::inotify::init(rustix::fs::inotify::CreateFlags::CLOEXEC).unwrap();
        assert_eq!(count_process(me), before + 1);
        drop(fd);
        assert_eq!(count_process(me), before);
    }
}
