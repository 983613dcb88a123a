//! Finds descriptors and their drop-ins in the search path, with systemd's
//! precedence: `/etc/sdme` over `/run/sdme` over `/usr/lib/sdme`; a
//! descriptor that is empty or a symlink to `/dev/null` is masked; drop-ins
//! `NAME.oci.d/*.conf` come from all three directories, a same-named drop-in
//! in a higher-priority directory replacing the lower one, applied in
//! file-name order.
//!
//! Every path is resolved below the root fd by the kernel
//! (`openat2(RESOLVE_IN_ROOT)`), as `systemd-analyze --root` would: an
//! absolute symlink target starts at the root and `..` stops there, so
//! nothing under `--root` can make the generator read a file outside it.
//! Only regular files are opened for reading, and never in a way that can
//! block (a FIFO) or acquire a terminal.

use crate::diagnostic::Diagnostic;
use crate::names::check_machine_name;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Highest priority first.
pub const SEARCH_DIRS: [&str; 3] = ["etc/sdme", "run/sdme", "usr/lib/sdme"];

/// Descriptors and drop-ins are small; anything bigger is a mistake (and
/// reading it whole at boot would be one too).
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Symlinks followed for one file before giving up, as the kernel's limit
/// (40) and systemd's `chase()` (32) bound theirs.
const MAX_SYMLINK_HOPS: usize = 32;

/// One file's contents and the path it has on the target system.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub shown: String,
    pub contents: Vec<u8>,
}

#[derive(Debug)]
pub enum Found {
    Descriptor {
        main: SourceFile,
        dropins: Vec<SourceFile>,
    },
    Masked {
        shown: String,
    },
    /// The descriptor cannot be read; the diagnostics were already reported.
    Broken,
    /// `NAME@.oci`, keyed `NAME@`: a template, with its own drop-ins
    /// (`NAME@.oci.d/`, which apply to every instance).
    Template {
        main: SourceFile,
        dropins: Vec<SourceFile>,
        /// For each `NAME@INST.oci.d/` in the search path: the drop-ins an
        /// instance INST gets (its own merged over the template's), used
        /// for a `DefaultInstance=` that no `NAME@INST.oci` names.
        instance_dropins: BTreeMap<String, Vec<SourceFile>>,
    },
    /// `NAME@INST.oci`, keyed `NAME@INST`: an instance, a symlink to its
    /// template; `dropins` are its own (`NAME@INST.oci.d/`), in file-name
    /// order, already merged with the template's (a same-named one of the
    /// instance replacing the template's).
    Instance {
        shown: String,
        template: String,
        instance: String,
        dropins: Vec<SourceFile>,
    },
    /// `NAME@INST.oci` masked: no instance INST, not even a `DefaultInstance=`.
    MaskedInstance {
        template: String,
        instance: String,
    },
}

/// `NAME@INST` → (`NAME`, `INST`); `INST` is empty for a template.
pub fn split_template(name: &str) -> Option<(&str, &str)> {
    name.split_once('@')
}

struct Candidate {
    dir: &'static str,
    file_name: String,
}

/// Everything found under `root`, by descriptor name, and the problems met.
pub fn discover(root: &Path) -> (BTreeMap<String, Found>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let root = match Root::open(root) {
        Ok(root) => root,
        Err(message) => {
            diagnostics.push(Diagnostic::general(message));
            return (BTreeMap::new(), diagnostics);
        }
    };
    let mut mains: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut dropin_dirs: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();

    for dir in SEARCH_DIRS {
        for file_name in list_dir(&root, dir, &mut diagnostics).unwrap_or_default() {
            if let Some(name) = file_name.strip_suffix(".oci.d") {
                dropin_dirs.entry(name.to_string()).or_default().push(dir);
            } else if let Some(name) = file_name.strip_suffix(".oci") {
                mains
                    .entry(name.to_string())
                    .or_insert(Candidate { dir, file_name });
            }
        }
    }

    let mut found = BTreeMap::new();
    for (name, candidate) in mains {
        let shown = format!("/{}/{}", candidate.dir, candidate.file_name);
        if let Some((template, instance)) = split_template(&name) {
            let entry = discover_templated(
                &root,
                &shown,
                template,
                instance,
                &dropin_dirs,
                &mut diagnostics,
            );
            found.insert(name.clone(), entry);
            continue;
        }
        if let Err(e) = check_machine_name(&name) {
            diagnostics.push(Diagnostic::at(
                &shown,
                0,
                format!("bad descriptor name: {e}"),
            ));
            found.insert(name, Found::Broken);
            continue;
        }
        let entry = match read_in_root(&root, &shown) {
            Ok(None) => Found::Masked { shown },
            Ok(Some(contents)) if contents.is_empty() => Found::Masked { shown },
            Ok(Some(contents)) => {
                let dirs_of = |n: &str| dropin_dirs.get(n).map(Vec::as_slice).unwrap_or(&[]);
                match read_dropins(&root, &[&name], dirs_of, &mut diagnostics) {
                    Some(dropins) => Found::Descriptor {
                        main: SourceFile { shown, contents },
                        dropins,
                    },
                    None => Found::Broken,
                }
            }
            Err(message) => {
                diagnostics.push(Diagnostic::at(&shown, 0, message));
                Found::Broken
            }
        };
        found.insert(name, entry);
    }
    (found, diagnostics)
}

/// A template `NAME@.oci` or an instance `NAME@INST.oci` (see
/// sdme.oci(5), TEMPLATES). Names are checked here; the machine name an
/// instance gets (`NAME-INST`) and its collisions are lib.rs's.
fn discover_templated(
    root: &Root,
    shown: &str,
    template: &str,
    instance: &str,
    dropin_dirs: &BTreeMap<String, Vec<&'static str>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Found {
    let bad = |diagnostics: &mut Vec<Diagnostic>, message: String| {
        diagnostics.push(Diagnostic::at(shown, 0, message));
        Found::Broken
    };
    if let Err(e) = check_machine_name(template) {
        return bad(diagnostics, format!("bad template name: {e}"));
    }
    let dirs_of = |n: &str| dropin_dirs.get(n).map(Vec::as_slice).unwrap_or(&[]);
    let template_key = format!("{template}@");
    if instance.is_empty() {
        return match read_in_root(root, shown) {
            Ok(None) => Found::Masked {
                shown: shown.to_string(),
            },
            Ok(Some(contents)) if contents.is_empty() => Found::Masked {
                shown: shown.to_string(),
            },
            Ok(Some(contents)) => {
                let Some(dropins) = read_dropins(root, &[&template_key], dirs_of, diagnostics)
                else {
                    return Found::Broken;
                };
                let mut instance_dropins = BTreeMap::new();
                for key in dropin_dirs.keys() {
                    let Some(inst) = key.strip_prefix(&template_key) else {
                        continue;
                    };
                    if inst.is_empty() || check_machine_name(inst).is_err() {
                        continue;
                    }
                    let names = [key.as_str(), template_key.as_str()];
                    match read_dropins(root, &names, dirs_of, diagnostics) {
                        Some(d) => {
                            instance_dropins.insert(inst.to_string(), d);
                        }
                        None => return Found::Broken,
                    }
                }
                Found::Template {
                    main: SourceFile {
                        shown: shown.to_string(),
                        contents,
                    },
                    dropins,
                    instance_dropins,
                }
            }
            Err(message) => bad(diagnostics, message),
        };
    }
    if let Err(e) = check_machine_name(instance) {
        return bad(diagnostics, format!("bad instance name: {e}"));
    }
    // A symlink to the template (by its file name) is an instance, read
    // as the template; masked (a link to /dev/null, or empty): no such
    // instance. Anything else is a mistake: an instance's own settings go
    // in its drop-ins.
    let template_file = format!("{template}@.oci");
    let masked = || Found::MaskedInstance {
        template: template.to_string(),
        instance: instance.to_string(),
    };
    match link_target(root, shown) {
        Some(target) if target.rsplit('/').next() == Some(template_file.as_str()) => {}
        _ => {
            return match read_in_root(root, shown) {
                Ok(None) => masked(),
                Ok(Some(contents)) if contents.is_empty() => masked(),
                Ok(Some(_)) => bad(
                    diagnostics,
                    format!(
                        "an instance must be a symlink to its template {template_file} \
                         (its own settings go in {template}@{instance}.oci.d/)"
                    ),
                ),
                Err(message) => bad(diagnostics, message),
            }
        }
    }
    let instance_key = format!("{template}@{instance}");
    match read_dropins(root, &[&instance_key, &template_key], dirs_of, diagnostics) {
        Some(dropins) => Found::Instance {
            shown: shown.to_string(),
            template: template.to_string(),
            instance: instance.to_string(),
            dropins,
        },
        None => Found::Broken,
    }
}

/// The text of the symlink `shown` (below the root), `None` when it is no
/// symlink.
fn link_target(root: &Root, shown: &str) -> Option<String> {
    let (dir, name) = split_last(shown.as_bytes());
    let parent = root.open_at(dir, OFlags::PATH | OFlags::DIRECTORY).ok()?;
    let target = rustix::fs::readlinkat(&parent, name, Vec::new()).ok()?;
    target.into_string().ok()
}

/// The directory the search path is read under, as an fd: `/`, or
/// `--root=DIR`.
struct Root {
    fd: OwnedFd,
    /// `/` itself: plain resolution means the same there, so a kernel
    /// without `openat2` (before 5.6, or a seccomp filter) still works.
    is_slash: bool,
}

impl Root {
    fn open(path: &Path) -> Result<Root, String> {
        // The root's own path is the caller's, resolved as usual.
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open root directory {}: {e}", path.display()))?;
        Ok(Root {
            fd,
            is_slash: path == Path::new("/"),
        })
    }

    /// Opens `path` (absolute on the target system) confined to the root;
    /// symlinks in every component, the last one included, are followed
    /// inside it. `O_CLOEXEC` is always added.
    fn open_at(&self, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        let flags = flags | OFlags::CLOEXEC;
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: a concurrent rename while resolving `..`; the kernel asks
        // for a retry.
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, path, flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                Err(Errno::NOSYS) if self.is_slash => {
                    return rustix::fs::open(path, flags, Mode::empty())
                }
                Err(Errno::NOSYS) => return Err(Errno::NOSYS),
                other => return other,
            }
        }
    }
}

/// Names in `root/dir`, sorted; hidden files skipped. A missing directory is
/// normal (most systems have no `/run/sdme`): no names. `None` when it
/// exists but cannot be read (reported).
fn list_dir(root: &Root, dir: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<Vec<String>> {
    let shown = format!("/{dir}");
    let problem = |e: Errno| match e {
        Errno::NOSYS => {
            format!("cannot read directory: {e} (openat2 is needed to resolve paths inside --root)")
        }
        Errno::NOTDIR => "cannot read directory: not a directory".to_string(),
        e => format!("cannot read directory: {e}"),
    };
    // O_NONBLOCK: O_DIRECTORY already refuses a FIFO, this is belt and braces.
    let fd = match root.open_at(
        shown.as_bytes(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Some(Vec::new()),
        Err(e) => {
            diagnostics.push(Diagnostic::at(&shown, 0, problem(e)));
            return None;
        }
    };
    let mut entries = match rustix::fs::Dir::new(fd) {
        Ok(entries) => entries,
        Err(e) => {
            diagnostics.push(Diagnostic::at(&shown, 0, problem(e)));
            return None;
        }
    };
    let mut names = Vec::new();
    while let Some(entry) = entries.read() {
        match entry {
            Ok(entry) => match entry.file_name().to_str() {
                Ok(name) if !name.starts_with('.') => names.push(name.to_string()),
                Ok(_) => {}
                Err(_) => diagnostics.push(Diagnostic::at(
                    &shown,
                    0,
                    format!(
                        "ignoring file name that is not UTF-8: {:?}",
                        String::from_utf8_lossy(entry.file_name().to_bytes())
                    ),
                )),
            },
            Err(e) => {
                diagnostics.push(Diagnostic::at(&shown, 0, problem(e)));
                return None;
            }
        }
    }
    names.sort();
    Some(names)
}

/// Merges `NAME.oci.d/*.conf` over the directories that have one; for an
/// instance, `names` are the instance's then the template's, and in each
/// directory the instance's drop-in of a file name comes before the
/// template's. `None` if a drop-in is unreadable (the descriptor is then
/// skipped: using it without one of its drop-ins could run something the
/// admin overrode).
fn read_dropins<'a>(
    root: &Root,
    names: &[&str],
    dirs_of: impl Fn(&str) -> &'a [&'static str],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<SourceFile>> {
    let mut chosen: BTreeMap<String, (&'static str, String)> = BTreeMap::new();
    let mut ok = true;
    for dir in SEARCH_DIRS {
        for name in names.iter().filter(|n| dirs_of(n).contains(&dir)) {
            let sub = format!("{dir}/{name}.oci.d");
            // An unreadable drop-in directory counts as unreadable drop-ins.
            let Some(file_names) = list_dir(root, &sub, diagnostics) else {
                ok = false;
                continue;
            };
            for file_name in file_names {
                if file_name.ends_with(".conf") {
                    chosen.entry(file_name).or_insert((dir, name.to_string()));
                }
            }
        }
    }
    let mut dropins = Vec::new();
    for (file_name, (dir, name)) in chosen {
        let shown = format!("/{dir}/{name}.oci.d/{file_name}");
        if file_name.chars().any(char::is_control) {
            diagnostics.push(Diagnostic::at(
                &shown,
                0,
                "drop-in file name contains a control character",
            ));
            ok = false;
            continue;
        }
        match read_in_root(root, &shown) {
            // A masked drop-in contributes nothing but still hides lower ones.
            Ok(contents) => dropins.push(SourceFile {
                shown,
                contents: contents.unwrap_or_default(),
            }),
            Err(message) => {
                diagnostics.push(Diagnostic::at(&shown, 0, message));
                ok = false;
            }
        }
    }
    ok.then_some(dropins)
}

/// Reads `shown` (an absolute path on the target system) below the root.
/// `Ok(None)` means masked: a symlink whose target is `/dev/null`, judged
/// by the link's text (the root need not have a `/dev`). The directories
/// are resolved by the kernel inside the root; the last component is
/// followed here, one link at a time, so each link's text can be checked
/// for `/dev/null` and its type before anything is opened.
fn read_in_root(root: &Root, shown: &str) -> Result<Option<Vec<u8>>, String> {
    let mut path: Vec<u8> = shown.as_bytes().to_vec();
    for _ in 0..MAX_SYMLINK_HOPS {
        let (dir, name) = split_last(&path);
        if name.is_empty() || name == b"." || name == b".." {
            return Err("not a regular file (a directory)".to_string());
        }
        let parent = root
            .open_at(dir, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| format!("cannot open: {}", describe_errno(e)))?;
        let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| format!("cannot open: {}", describe_errno(e)))?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&parent, name, Vec::new())
                    .map_err(|e| format!("cannot read symlink: {e}"))?;
                let target = target.as_bytes();
                if target == b"/dev/null" {
                    return Ok(None);
                }
                // An absolute target starts at the root again (open_at
                // resolves it inside); a relative one is taken from the
                // link's directory, `..` being resolved by the kernel.
                path = if target.starts_with(b"/") {
                    target.to_vec()
                } else {
                    [dir, b"/", target].concat()
                };
            }
            FileType::RegularFile => return read_regular(&parent, name).map(Some),
            other => return Err(format!("not a regular file ({})", describe_type(other))),
        }
    }
    Err("cannot open: too many levels of symbolic links".to_string())
}

/// `/a/b/c` → (`/a/b`, `c`); `/c` → (`/`, `c`).
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(0) => (b"/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"/", path),
    }
}

/// Opens `name` in `parent`, which was a regular file when looked at, and
/// reads it. The flags close the race with a replacement: `O_NOFOLLOW`
/// (a symlink now fails), `O_NONBLOCK` (a FIFO now cannot block the boot),
/// `O_NOCTTY` (a terminal now is not acquired); `fstat` then insists on a
/// regular file again.
fn read_regular(parent: &impl AsFd, name: &[u8]) -> Result<Vec<u8>, String> {
    let fd = open_file(parent, name).map_err(|e| format!("cannot open: {}", describe_errno(e)))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| format!("cannot stat: {e}"))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(format!("not a regular file ({})", describe_type(kind)));
    }
    if stat.st_size as u64 > MAX_FILE_SIZE {
        return Err(too_big());
    }
    let mut contents = Vec::new();
    // The size may grow after fstat; never read more than the limit + 1.
    std::fs::File::from(fd)
        .take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut contents)
        .map_err(|e| format!("cannot read: {e}"))?;
    if contents.len() as u64 > MAX_FILE_SIZE {
        return Err(too_big());
    }
    Ok(contents)
}

fn open_file(parent: &impl AsFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn too_big() -> String {
    format!("file is larger than {MAX_FILE_SIZE} bytes (1 MiB), not read")
}

/// The kernel's words, except where they would mislead: `ELOOP` from
/// `RESOLVE_NO_MAGICLINKS` or a long chain.
fn describe_errno(e: Errno) -> String {
    match e {
        Errno::LOOP => "too many levels of symbolic links (or a /proc magic link)".to_string(),
        Errno::NOSYS => format!("{e} (openat2 is needed to resolve paths inside --root)"),
        e => std::io::Error::from(e).to_string(),
    }
}

fn describe_type(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn flags_of(fd: &impl AsFd) -> rustix::io::FdFlags {
        rustix::io::fcntl_getfd(fd).unwrap()
    }

    #[test]
    fn split_last_keeps_the_root() {
        assert_eq!(split_last(b"/a/b/c"), (&b"/a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"/c"), (&b"/"[..], &b"c"[..]));
        assert_eq!(split_last(b"/a/.."), (&b"/a"[..], &b".."[..]));
    }

    /// The fds this module opens must not leak into programs started
    /// later by whoever links the library (sdme connector).
    #[test]
    fn every_fd_is_close_on_exec() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/sdme")).unwrap();
        std::fs::write(dir.path().join("etc/sdme/a.oci"), "x").unwrap();
        let root = Root::open(dir.path()).unwrap();
        assert!(flags_of(&root.fd).contains(rustix::io::FdFlags::CLOEXEC));
        // open_at adds O_CLOEXEC even when the caller forgets it.
        let sub = root.open_at(b"/etc/sdme", OFlags::RDONLY).unwrap();
        assert!(flags_of(&sub).contains(rustix::io::FdFlags::CLOEXEC));
        let file = open_file(&sub, b"a.oci").unwrap();
        assert!(flags_of(&file).contains(rustix::io::FdFlags::CLOEXEC));
    }

    /// A relative link in a symlinked directory is taken from where the
    /// directory really is (the kernel's `..`), not lexically.
    #[test]
    fn relative_links_follow_the_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(top.join("srv/conf/sdme")).unwrap();
        symlink("/srv/conf/sdme", top.join("etc/sdme")).unwrap();
        std::fs::write(top.join("srv/conf/real.oci"), "real").unwrap();
        symlink("../real.oci", top.join("srv/conf/sdme/a.oci")).unwrap();
        let root = Root::open(top).unwrap();
        assert_eq!(
            read_in_root(&root, "/etc/sdme/a.oci").unwrap(),
            Some(b"real".to_vec())
        );
    }

    #[test]
    fn a_chain_ending_in_dev_null_is_a_mask_and_a_loop_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        std::fs::create_dir_all(top.join("etc/sdme")).unwrap();
        symlink("b.oci", top.join("etc/sdme/a.oci")).unwrap();
        symlink("/dev/null", top.join("etc/sdme/b.oci")).unwrap();
        symlink("loop2.oci", top.join("etc/sdme/loop1.oci")).unwrap();
        symlink("loop1.oci", top.join("etc/sdme/loop2.oci")).unwrap();
        symlink(".", top.join("etc/sdme/dot.oci")).unwrap();
        let root = Root::open(top).unwrap();
        assert_eq!(read_in_root(&root, "/etc/sdme/a.oci").unwrap(), None);
        let err = read_in_root(&root, "/etc/sdme/loop1.oci").unwrap_err();
        assert!(err.contains("too many levels"), "{err}");
        let err = read_in_root(&root, "/etc/sdme/dot.oci").unwrap_err();
        assert_eq!(err, "not a regular file (a directory)");
    }

    #[test]
    fn the_size_limit_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        std::fs::create_dir_all(top.join("etc/sdme")).unwrap();
        let at_limit = vec![b'#'; MAX_FILE_SIZE as usize];
        std::fs::write(top.join("etc/sdme/max.oci"), &at_limit).unwrap();
        std::fs::write(
            top.join("etc/sdme/over.oci"),
            [&at_limit[..], b"\n"].concat(),
        )
        .unwrap();
        let root = Root::open(top).unwrap();
        assert_eq!(
            read_in_root(&root, "/etc/sdme/max.oci").unwrap(),
            Some(at_limit)
        );
        let err = read_in_root(&root, "/etc/sdme/over.oci").unwrap_err();
        assert!(err.contains("larger than 1048576 bytes"), "{err}");
    }
}
