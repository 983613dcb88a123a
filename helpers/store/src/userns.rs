//! User-namespace ranges of containers: which host ids each container's
//! ids 0… are, recorded as `containers/NAME/userns` (`BASE SIZE`), chosen
//! under an exclusive lock so that no two containers share one.
//!
//! A range is chosen once per container and kept while its directory
//! exists: its writable layers are owned in that range, so a new range
//! would mean shifting them (the launcher does that when a descriptor pins
//! another one). The automatic choice is a slot of 65536 ids in systemd's
//! container range 0x00080000…0x6FFFFFFF (what `systemd-nspawn -U` picks
//! from), preferred by a hash of the machine name, so a container keeps
//! its range across resets of the store's records, and probed linearly
//! past ranges other containers hold.

use crate::Store;
use std::fs;
use std::io::Write;
use std::path::Path;

/// Ids of one container: host ids `base..base+size` are its `0..size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub base: u32,
    pub size: u32,
}

/// The size of every automatic range, and the alignment of every base.
pub const RANGE_SIZE: u32 = sdme_launch::ID_RANGE_SIZE;
/// systemd's range for containers' ids (`CONTAINER_UID_BASE_MIN/MAX`).
pub const AUTO_FIRST: u32 = 0x0008_0000;
pub const AUTO_END: u32 = 0x7000_0000;

impl IdRange {
    fn end(&self) -> u64 {
        self.base as u64 + self.size as u64
    }

    fn overlaps(&self, other: &IdRange) -> bool {
        (self.base as u64) < other.end() && (other.base as u64) < self.end()
    }

    /// The one rule for ranges (sdme-launch's, which the descriptor and
    /// the launcher's command line are read with).
    pub fn check(&self) -> Result<(), String> {
        sdme_launch::check_id_range(self.base, self.size)
    }
}

/// What a container asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Keep its recorded range, or choose one.
    Auto,
    /// Exactly this range.
    Pinned(IdRange),
}

fn parse_record(text: &str, path: &Path) -> Result<IdRange, String> {
    let bad = || format!("{}: not \"BASE SIZE\": {:?}", path.display(), text.trim());
    let mut words = text.split_whitespace();
    let (Some(base), Some(size), None) = (words.next(), words.next(), words.next()) else {
        return Err(bad());
    };
    let range = IdRange {
        base: base.parse().map_err(|_| bad())?,
        size: size.parse().map_err(|_| bad())?,
    };
    range
        .check()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(range)
}

/// FNV-1a: a stable hash of the machine name (not for security: a name
/// that collides only moves to the next free slot).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Store {
    fn userns_record(&self, machine: &str) -> std::path::PathBuf {
        self.containers_dir().join(machine).join("userns")
    }

    /// The range recorded for `machine`, if any.
    pub fn recorded_range(&self, machine: &str) -> Result<Option<IdRange>, String> {
        let path = self.userns_record(machine);
        match fs::read_to_string(&path) {
            Ok(text) => parse_record(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Every other container's recorded range. A record that cannot be
    /// read is an error: its range would otherwise be handed out again.
    fn ranges_of_others(&self, machine: &str) -> Result<Vec<(String, IdRange)>, String> {
        let dir = self.containers_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if name == machine || name.starts_with('.') {
                continue;
            }
            if let Some(range) = self.recorded_range(&name)? {
                out.push((name, range));
            }
        }
        Ok(out)
    }

    /// The range `machine` runs with: its recorded one, or (Auto) the first
    /// free slot from its name's, or (Pinned) the one asked for if no other
    /// container holds ids of it. Chosen and recorded under an exclusive
    /// lock of its own, so two starts cannot pick one range.
    pub fn assign_range(&self, machine: &str, request: Request) -> Result<IdRange, String> {
        self.choose_range(machine, request, true)
    }

    /// What [`Store::assign_range`] would choose, recording nothing.
    pub fn preview_range(&self, machine: &str, request: Request) -> Result<IdRange, String> {
        self.choose_range(machine, request, false)
    }

    fn choose_range(
        &self,
        machine: &str,
        request: Request,
        record: bool,
    ) -> Result<IdRange, String> {
        crate::check_name(machine)?;
        let dir = self.containers_dir();
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock_path = dir.join(".userns.lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;

        let recorded = self.recorded_range(machine)?;
        let others = self.ranges_of_others(machine)?;
        let holder = |r: &IdRange| others.iter().find(|(_, o)| o.overlaps(r)).map(|(n, _)| n);
        let range = match (request, recorded) {
            (Request::Auto, Some(r)) => r,
            (Request::Pinned(r), _) => {
                r.check()?;
                if let Some(other) = holder(&r) {
                    return Err(format!(
                        "user namespace range {}:{} overlaps the range of container {other}",
                        r.base, r.size
                    ));
                }
                r
            }
            (Request::Auto, None) => {
                // Ids the host hands out itself are not sdme's to give:
                // subordinate ranges (/etc/subuid, /etc/subgid) and the
                // accounts of the user database's files.
                let host = host_ids(&self.host_files);
                let slots = (AUTO_END - AUTO_FIRST) / RANGE_SIZE;
                let first = (name_hash(machine) % slots as u64) as u32;
                (0..slots)
                    .map(|i| IdRange {
                        base: AUTO_FIRST + ((first + i) % slots) * RANGE_SIZE,
                        size: RANGE_SIZE,
                    })
                    .find(|r| holder(r).is_none() && !host.iter().any(|h| h.overlaps(r)))
                    .ok_or("no free user namespace range is left")?
            }
        };
        if record && recorded != Some(range) {
            let path = self.userns_record(machine);
            let tmp = path.with_file_name(".userns.tmp");
            let write = || -> std::io::Result<()> {
                fs::create_dir_all(dir.join(machine))?;
                let mut f = fs::File::create(&tmp)?;
                writeln!(f, "{} {}", range.base, range.size)?;
                f.sync_all()?;
                fs::rename(&tmp, &path)?;
                fs::File::open(dir.join(machine))?.sync_all()
            };
            write().map_err(|e| format!("{}: {e}", path.display()))?;
        }
        drop(lock);
        Ok(range)
    }
}

/// The host's own id ranges, from the files that hand them out: each
/// subordinate range of `/etc/subuid` and `/etc/subgid` (`NAME:FIRST:COUNT`)
/// and each id of `/etc/passwd` and `/etc/group` (the third field). A file
/// that is missing or a line that does not parse counts for nothing: this
/// only avoids ranges, it never allows one.
fn host_ids(files: &HostIdFiles) -> Vec<IdRange> {
    let mut out = Vec::new();
    for path in [&files.subuid, &files.subgid] {
        for line in fs::read_to_string(path).unwrap_or_default().lines() {
            let mut f = line.trim().split(':').skip(1).map(str::parse::<u64>);
            if let (Some(Ok(first)), Some(Ok(count))) = (f.next(), f.next()) {
                if count > 0 && first <= u32::MAX as u64 {
                    out.push(IdRange {
                        base: first as u32,
                        size: count.min(u32::MAX as u64 - first) as u32,
                    });
                }
            }
        }
    }
    for path in [&files.passwd, &files.group] {
        for line in fs::read_to_string(path).unwrap_or_default().lines() {
            if let Some(Ok(id)) = line.split(':').nth(2).map(str::parse::<u32>) {
                out.push(IdRange { base: id, size: 1 });
            }
        }
    }
    out
}

/// Where the host's own ids are listed (tests point these elsewhere).
#[derive(Debug, Clone)]
pub struct HostIdFiles {
    pub subuid: std::path::PathBuf,
    pub subgid: std::path::PathBuf,
    pub passwd: std::path::PathBuf,
    pub group: std::path::PathBuf,
}

impl Default for HostIdFiles {
    fn default() -> Self {
        HostIdFiles {
            subuid: "/etc/subuid".into(),
            subgid: "/etc/subgid".into(),
            passwd: "/etc/passwd".into(),
            group: "/etc/group".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_stable_unique_and_checked() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().to_path_buf());
        let a = store.assign_range("alpha", Request::Auto).unwrap();
        assert_eq!(a.size, RANGE_SIZE);
        assert!(a.base >= AUTO_FIRST && a.base < AUTO_END && a.base % RANGE_SIZE == 0);
        // Recorded: asked again, the same.
        assert_eq!(store.assign_range("alpha", Request::Auto).unwrap(), a);
        assert_eq!(store.recorded_range("alpha").unwrap(), Some(a));
        // Another container whose preferred slot is taken moves on: pin
        // beta onto alpha's range and it is refused, naming alpha.
        let e = store.assign_range("beta", Request::Pinned(a)).unwrap_err();
        assert!(e.contains("overlaps the range of container alpha"), "{e}");
        let wide = IdRange {
            base: a.base - RANGE_SIZE,
            size: 2 * RANGE_SIZE,
        };
        assert!(store.assign_range("beta", Request::Pinned(wide)).is_err());
        // Many containers: all distinct.
        let mut seen = vec![a];
        for n in 0..200 {
            let r = store.assign_range(&format!("c{n}"), Request::Auto).unwrap();
            assert!(seen.iter().all(|s| !s.overlaps(&r)), "{r:?}");
            seen.push(r);
        }
        // A pinned range replaces the recorded one.
        let pinned = IdRange {
            base: 0x4000_0000,
            size: RANGE_SIZE,
        };
        assert_eq!(
            store
                .assign_range("alpha", Request::Pinned(pinned))
                .unwrap(),
            pinned
        );
        assert_eq!(store.assign_range("alpha", Request::Auto).unwrap(), pinned);
        // Bad pins and bad records.
        for (base, size) in [
            (0, RANGE_SIZE),
            (12345 * 65536 + 1, RANGE_SIZE),
            (65536, 100),
            (0xFFFF_0000, RANGE_SIZE),
        ] {
            let r = IdRange { base, size };
            assert!(
                store.assign_range("gamma", Request::Pinned(r)).is_err(),
                "{r:?}"
            );
        }
        std::fs::write(t.path().join("containers/c7/userns"), "junk\n").unwrap();
        let e = store.assign_range("delta", Request::Auto).unwrap_err();
        assert!(
            e.contains("c7/userns") && e.contains("not \"BASE SIZE\""),
            "{e}"
        );
    }

    #[test]
    fn host_ranges_are_avoided_and_previews_record_nothing() {
        let t = tempfile::tempdir().unwrap();
        let mut store = Store::new(t.path().join("store"));
        // Where "alpha" would go, found first with empty host files.
        store.host_files = HostIdFiles {
            subuid: t.path().join("subuid"),
            subgid: t.path().join("subgid"),
            passwd: t.path().join("passwd"),
            group: t.path().join("group"),
        };
        let preferred = store.preview_range("alpha", Request::Auto).unwrap();
        assert!(
            store.recorded_range("alpha").unwrap().is_none(),
            "a preview records nothing"
        );
        // A subordinate range of a host user covering it, and an account
        // inside the next slot: both skipped.
        std::fs::write(
            t.path().join("subuid"),
            format!("someone:{}:65536\nbroken line\n", preferred.base),
        )
        .unwrap();
        let next = preferred.base as u64 + RANGE_SIZE as u64;
        std::fs::write(
            t.path().join("passwd"),
            format!("svc:x:{}:{}::/:/bin/sh\n", next + 7, next + 7),
        )
        .unwrap();
        let r = store.assign_range("alpha", Request::Auto).unwrap();
        assert_ne!(r.base, preferred.base, "subuid range skipped");
        if next < AUTO_END as u64 {
            assert_ne!(r.base as u64, next, "account's slot skipped");
        }
        assert_eq!(store.recorded_range("alpha").unwrap(), Some(r));
    }
}
