//! Finds descriptors and their drop-ins in the search path, with systemd's
//! precedence: `/etc/sdme` over `/run/sdme` over `/usr/lib/sdme`; a
//! descriptor that is empty or a symlink to `/dev/null` is masked; drop-ins
//! `NAME.oci.d/*.conf` come from all three directories, a same-named drop-in
//! in a higher-priority directory replacing the lower one, applied in
//! file-name order.

use crate::diagnostic::Diagnostic;
use crate::names::check_machine_name;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Highest priority first.
pub const SEARCH_DIRS: [&str; 3] = ["etc/sdme", "run/sdme", "usr/lib/sdme"];

/// Descriptors and drop-ins are small; anything bigger is a mistake.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

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
}

struct Candidate {
    dir: &'static str,
    file_name: String,
}

/// Everything found under `root`, by descriptor name, and the problems met.
pub fn discover(root: &Path) -> (BTreeMap<String, Found>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut mains: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut dropin_dirs: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();

    for dir in SEARCH_DIRS {
        for file_name in list_dir(root, dir, &mut diagnostics) {
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
        if let Err(e) = check_machine_name(&name) {
            diagnostics.push(Diagnostic::at(
                &shown,
                0,
                format!("bad descriptor name: {e}"),
            ));
            found.insert(name, Found::Broken);
            continue;
        }
        let entry = match read_in_root(root, &shown) {
            Ok(None) => Found::Masked { shown },
            Ok(Some(contents)) if contents.is_empty() => Found::Masked { shown },
            Ok(Some(contents)) => {
                let dirs = dropin_dirs.get(&name).map(Vec::as_slice).unwrap_or(&[]);
                match read_dropins(root, &name, dirs, &mut diagnostics) {
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

/// Names in `root/dir`, sorted; hidden files skipped. A missing directory is
/// normal (most systems have no `/run/sdme`).
fn list_dir(root: &Path, dir: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<String> {
    let shown = format!("/{dir}");
    let entries = match std::fs::read_dir(root.join(dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            diagnostics.push(Diagnostic::at(
                &shown,
                0,
                format!("cannot read directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => match entry.file_name().into_string() {
                Ok(name) if !name.starts_with('.') => names.push(name),
                Ok(_) => {}
                Err(raw) => diagnostics.push(Diagnostic::at(
                    &shown,
                    0,
                    format!("ignoring file name that is not UTF-8: {:?}", raw),
                )),
            },
            Err(e) => diagnostics.push(Diagnostic::at(
                &shown,
                0,
                format!("cannot read directory: {e}"),
            )),
        }
    }
    names.sort();
    names
}

/// Merges `NAME.oci.d/*.conf` over the directories that have one. `None`
/// if a drop-in is unreadable (the descriptor is then skipped: using it
/// without one of its drop-ins could run something the admin overrode).
fn read_dropins(
    root: &Path,
    name: &str,
    dirs: &[&'static str],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<SourceFile>> {
    let mut chosen: BTreeMap<String, &'static str> = BTreeMap::new();
    for dir in dirs {
        let sub = format!("{dir}/{name}.oci.d");
        for file_name in list_dir(root, &sub, diagnostics) {
            if file_name.ends_with(".conf") {
                chosen.entry(file_name).or_insert(dir);
            }
        }
    }
    let mut dropins = Vec::new();
    let mut ok = true;
    for (file_name, dir) in chosen {
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

/// Reads `shown` (an absolute path on the target system) under `root`,
/// resolving symlinks with absolute targets inside `root`. `Ok(None)` means
/// masked: a symlink to `/dev/null`. Regular files take one `open()`
/// (`O_NOFOLLOW`); only symlinks pay for `readlink()`.
fn read_in_root(root: &Path, shown: &str) -> Result<Option<Vec<u8>>, String> {
    let mut path: PathBuf = root.join(shown.trim_start_matches('/'));
    for _ in 0..32 {
        let error = match open_no_follow(&path) {
            Ok(file) => return read_limited(file).map(Some),
            Err(e) => e,
        };
        if error.raw_os_error() != Some(rustix::io::Errno::LOOP.raw_os_error()) {
            return Err(format!("cannot open: {error}"));
        }
        let target = std::fs::read_link(&path).map_err(|e| format!("cannot read symlink: {e}"))?;
        if target == Path::new("/dev/null") {
            return Ok(None);
        }
        path = match target.strip_prefix("/") {
            Ok(inside) => root.join(inside),
            Err(_) => path.parent().unwrap_or(root).join(target),
        };
    }
    Err("too many levels of symbolic links".to_string())
}

fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
}

fn read_limited(file: std::fs::File) -> Result<Vec<u8>, String> {
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mut contents = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut contents)
        .map_err(|e| format!("cannot read: {e}"))?;
    if contents.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("file is larger than {MAX_FILE_SIZE} bytes"));
    }
    Ok(contents)
}
