//! Writes the output tree into the generator directory, or prints it.

use sdme_generator::emit::{Entry, Tree};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes every entry under `dir`, creating subdirectories. Returns one
/// message per entry that could not be written.
pub fn write_tree(dir: &Path, tree: &Tree) -> Vec<String> {
    let mut errors = Vec::new();
    // systemd always passes an existing directory; by hand it may not exist.
    if let Err(e) = std::fs::create_dir_all(dir) {
        return vec![format!("cannot create {}: {e}", dir.display())];
    }
    // Each subdirectory is created once, not once per file in it.
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    for (relative, entry) in tree {
        let path = dir.join(relative);
        if let Some(parent) = path.parent().filter(|p| *p != dir) {
            if !made.contains(parent) {
                if let Err(e) = std::fs::create_dir_all(parent) {
                    errors.push(format!("cannot create {}: {e}", parent.display()));
                    continue;
                }
                made.insert(parent.to_path_buf());
            }
        }
        if let Err(e) = write_entry(&path, entry) {
            errors.push(format!("cannot write {}: {e}", path.display()));
        }
    }
    errors
}

fn write_entry(path: &Path, entry: &Entry) -> std::io::Result<()> {
    match create(path, entry) {
        // The directory is normally fresh; replace leftovers from a rerun.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            create(path, entry)
        }
        result => result,
    }
}

fn create(path: &Path, entry: &Entry) -> std::io::Result<()> {
    match entry {
        Entry::File(contents) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            file.write_all(contents.as_bytes())
        }
        Entry::Symlink(target) => std::os::unix::fs::symlink(target, path),
    }
}

/// The `--dry-run` format: each entry preceded by a header line,
/// `# sdme-generator: file PATH` then the contents, or
/// `# sdme-generator: symlink PATH -> TARGET`; PATH relative to the output
/// directory; entries sorted by path, separated by an empty line.
pub fn print_tree(tree: &Tree, out: &mut impl Write) -> std::io::Result<()> {
    let mut first = true;
    for (relative, entry) in tree {
        if !first {
            writeln!(out)?;
        }
        first = false;
        match entry {
            Entry::File(contents) => {
                writeln!(out, "# sdme-generator: file {relative}")?;
                out.write_all(contents.as_bytes())?;
            }
            Entry::Symlink(target) => {
                writeln!(out, "# sdme-generator: symlink {relative} -> {target}")?
            }
        }
    }
    out.flush()
}
