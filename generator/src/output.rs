//! Writes the output tree into the generator directory, or prints it.

use sdme_generator::emit::{Entry, Tree};
use std::io::Write;
use std::path::Path;

/// Writes every entry under `dir`, creating subdirectories. Returns one
/// message per entry that could not be written.
pub fn write_tree(dir: &Path, tree: &Tree) -> Vec<String> {
    let mut errors = Vec::new();
    for (relative, entry) in tree {
        let path = dir.join(relative);
        if let Err(e) = write_entry(&path, entry) {
            errors.push(format!("cannot write {}: {e}", path.display()));
        }
    }
    errors
}

fn write_entry(path: &Path, entry: &Entry) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The directory is normally fresh; replace leftovers from a rerun.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    match entry {
        Entry::File(contents) => std::fs::write(path, contents),
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
