//! `User=` of an image resolved to numeric ids against the image's own
//! `/etc/passwd` and `/etc/group`: systemd resolves `User=` against the
//! container's passwd, not the one under `RootDirectory=`, so names would
//! resolve to the wrong account or fail with 217/USER.

/// Numeric credentials for the app service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups from `/etc/group` membership (Docker does the same).
    pub groups: Vec<u32>,
    /// Home directory from passwd, `/` if unknown.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// (name, gid, members)
fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolves a Docker `USER` value (`user`, `uid`, `user:group`, `uid:gid`, …).
/// Names must exist in the image; numbers need not (as with Docker).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Credentials, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = if let Ok(uid) = user.parse::<u32>() {
        passwd_entries(passwd).find(|e| e.uid == uid)
    } else {
        Some(
            passwd_entries(passwd)
                .find(|e| e.name == user)
                .ok_or_else(|| {
                    format!("user {user:?} (image USER {spec:?}) is not in the image's /etc/passwd")
                })?,
        )
    };
    let uid = match &entry {
        Some(e) => e.uid,
        None => user
            .parse::<u32>()
            .map_err(|_| format!("invalid user {user:?}"))?,
    };
    let gid = match grp {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|(name, _, _)| *name == g)
                .map(|(_, gid, _)| gid)
                .ok_or_else(|| {
                    format!("group {g:?} (image USER {spec:?}) is not in the image's /etc/group")
                })?,
        },
        _ => entry.as_ref().map(|e| e.gid).unwrap_or(0),
    };
    let groups = match (&entry, grp) {
        (Some(e), None) => {
            let mut gs: Vec<u32> = group_entries(group)
                .filter(|(_, g, members)| *g != gid && members.contains(&e.name))
                .map(|(_, g, _)| g)
                .collect();
            gs.sort_unstable();
            gs.dedup();
            gs
        }
        _ => Vec::new(),
    };
    let home = entry
        .as_ref()
        .map(|e| e.home)
        .filter(|h| h.starts_with('/'))
        .unwrap_or("/")
        .to_string();
    Ok(Credentials {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nnginx:x:101:101:nginx:/nonexistent:/bin/false\n\
                          redis:x:999:999::/data:/bin/sh\nbroken line\n";
    const GROUP: &str = "root:x:0:\nnginx:x:101:\nredis:x:999:\nextra:x:50:redis,other\n";

    #[test]
    fn names_resolve_to_numbers_with_primary_and_supplementary_groups() {
        let c = resolve("redis", PASSWD, GROUP).unwrap();
        assert_eq!(
            (c.uid, c.gid, c.groups.clone(), c.home.as_str()),
            (999, 999, vec![50], "/data")
        );
        let c = resolve("nginx:redis", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid), (101, 999));
        assert!(c.groups.is_empty());
    }

    #[test]
    fn numbers_need_not_exist() {
        let c = resolve("1234:5678", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid, c.home.as_str()), (1234, 5678, "/"));
        let c = resolve("101", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid), (101, 101));
        let c = resolve("4242", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid), (4242, 0));
    }

    #[test]
    fn empty_is_root_and_unknown_names_fail() {
        assert_eq!(resolve("", PASSWD, GROUP).unwrap().uid, 0);
        let e = resolve("mysql", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("mysql") && e.contains("/etc/passwd"), "{e}");
        assert!(resolve("redis:nogroup", PASSWD, GROUP)
            .unwrap_err()
            .contains("nogroup"));
    }
}
