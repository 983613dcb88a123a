//! `User=` of an image resolved to numeric ids against the image's own
//! `/etc/passwd` and `/etc/group`: systemd resolves `User=` against the
//! container's passwd, not the one under `RootDirectory=`, so names would
//! resolve to the wrong account or fail with 217/USER.

use sdme_store::runconfig::valid_id;

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
    // Ids come from the image's files: systemd ignores a User= it cannot
    // use, which would run the app as root.
    for (what, id) in [("uid", uid), ("gid", gid)]
        .into_iter()
        .chain(groups.iter().map(|g| ("supplementary gid", *g)))
    {
        if !valid_id(id) {
            return Err(format!(
                "{what} {id} (image USER {spec:?}, from the image's /etc/passwd or /etc/group) is not an id systemd accepts"
            ));
        }
    }
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

/// The lines of the container's `/etc/passwd` and `/etc/group` that must
/// exist for `User=`/`Group=`/`SupplementaryGroups=` (systemd fails with
/// 217/USER on a numeric id the container does not know): the image's own
/// entries, or `oci-ID` placeholders for ids the image does not name. Empty
/// for root.
pub fn account_lines(c: &Credentials, passwd: &str, group: &str) -> (String, String) {
    let mut users = String::new();
    let mut groups = String::new();
    if c.uid == 0 && c.gid == 0 && c.groups.is_empty() {
        return (users, groups);
    }
    for gid in std::iter::once(c.gid).chain(c.groups.iter().copied()) {
        if gid == 0 {
            continue;
        }
        match group_entries(group).find(|(_, g, _)| *g == gid) {
            Some((name, _, _)) => groups.push_str(&format!("{name}:x:{gid}:\n")),
            None => groups.push_str(&format!("oci-{gid}:x:{gid}:\n")),
        }
    }
    if c.uid != 0 {
        match passwd_entries(passwd).find(|e| e.uid == c.uid) {
            Some(e) => users.push_str(&format!(
                "{}:x:{}:{}::{}:/usr/sbin/nologin\n",
                e.name, c.uid, c.gid, c.home
            )),
            None => users.push_str(&format!(
                "oci-{}:x:{}:{}::{}:/usr/sbin/nologin\n",
                c.uid, c.uid, c.gid, c.home
            )),
        }
    }
    (users, groups)
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
    fn account_lines_for_the_container() {
        let c = resolve("redis", PASSWD, GROUP).unwrap();
        let (u, g) = account_lines(&c, PASSWD, GROUP);
        assert_eq!(u, "redis:x:999:999::/data:/usr/sbin/nologin\n");
        assert_eq!(g, "redis:x:999:\nextra:x:50:\n");
        let c = resolve("4242:4343", PASSWD, GROUP).unwrap();
        let (u, g) = account_lines(&c, PASSWD, GROUP);
        assert_eq!(u, "oci-4242:x:4242:4343::/:/usr/sbin/nologin\n");
        assert_eq!(g, "oci-4343:x:4343:\n");
        let root = resolve("", PASSWD, GROUP).unwrap();
        assert_eq!(
            account_lines(&root, PASSWD, GROUP),
            (String::new(), String::new())
        );
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
