//! Which connector a client invocation talks to.
//!
//! Busybox style: the client is invoked through a symlink
//! `/connectors/NAME/<command>`; the symlink's directory is the connector
//! directory, its name is the connector name and the socket is
//! `<dir>/<name>.sock`. When the shell found the symlink through `PATH`,
//! `argv[0]` has no directory: the client then looks it up in `PATH` the same
//! way, and failing that uses `$SDME_CONNECTOR_DIR`, the connector directory
//! the generator sets for a client container (`/connectors/X` for its first
//! `Connector=X`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Where connector directories are inside a client container.
pub const CONNECTORS_ROOT: &str = "/connectors";
/// Environment variable naming the default connector directory.
pub const CONNECTOR_DIR_ENV: &str = "SDME_CONNECTOR_DIR";

/// A resolved connector: its name and socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub socket: PathBuf,
}

impl Target {
    /// The connector in directory `dir`, named after it unless `name` is given.
    pub fn in_dir(dir: &Path, name: Option<&str>) -> Result<Self, String> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => dir
                .file_name()
                .and_then(OsStr::to_str)
                .ok_or_else(|| {
                    format!("cannot name a connector after directory {}", dir.display())
                })?
                .to_owned(),
        };
        let socket = dir.join(format!("{name}.sock"));
        Ok(Self { name, socket })
    }
}

/// What the process environment tells about where to look.
pub struct Lookup<'a> {
    pub path_var: Option<&'a OsStr>,
    /// `$SDME_CONNECTOR_DIR`.
    pub connector_dir: Option<&'a OsStr>,
    pub cwd: Option<&'a Path>,
}

impl Lookup<'_> {
    fn default_dir(&self) -> Option<PathBuf> {
        self.connector_dir
            .filter(|d| !d.is_empty())
            .map(|d| absolute_dir(Path::new(d), self.cwd))
    }
}

/// The connector `$SDME_CONNECTOR_DIR` names.
pub fn default_connector(env: &Lookup<'_>) -> Result<Target, String> {
    let dir = env
        .default_dir()
        .ok_or_else(|| format!("no connector given and {CONNECTOR_DIR_ENV} is not set"))?;
    Target::in_dir(&dir, None)
}

/// Finds the connector for a busybox-style invocation named `argv0`.
pub fn from_argv0(argv0: &OsStr, env: &Lookup<'_>) -> Result<Target, String> {
    let invoked = Path::new(argv0);
    let command = invoked
        .file_name()
        .ok_or_else(|| format!("cannot tell a command from argv[0] {:?}", argv0))?;
    let dir = if has_directory(argv0) {
        let parent = invoked.parent().unwrap_or(Path::new("."));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        absolute_dir(parent, env.cwd)
    } else {
        search_path(command, env)
            .or_else(|| env.default_dir())
            .ok_or_else(|| {
                format!(
                "cannot tell which connector runs '{}': not found in PATH and {CONNECTOR_DIR_ENV} \
                 is not set; invoke it by its path ({CONNECTORS_ROOT}/NAME/{0}) or as \
                 sdme-connector-client --name=NAME -- ARGS",
                command.to_string_lossy(),
            )
            })?
    };
    Target::in_dir(&dir, None)
}

/// The connector named `name`: `/connectors/NAME`.
pub fn by_name(name: &str) -> Result<Target, String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!("invalid connector name {name:?}"));
    }
    Target::in_dir(&Path::new(CONNECTORS_ROOT).join(name), Some(name))
}

fn has_directory(argv0: &OsStr) -> bool {
    argv0.as_encoded_bytes().contains(&b'/')
}

/// Resolves `.`/`..` and relative paths so that the directory has a real
/// name (`./docker-entrypoint.sh` run inside `/connectors/nginx`).
fn absolute_dir(dir: &Path, cwd: Option<&Path>) -> PathBuf {
    let joined = match cwd {
        Some(cwd) if dir.is_relative() => cwd.join(dir),
        _ => dir.to_path_buf(),
    };
    std::fs::canonicalize(&joined).unwrap_or(joined)
}

/// The first `PATH` directory holding an entry named `command`, as the
/// shell found it.
fn search_path(command: &OsStr, env: &Lookup<'_>) -> Option<PathBuf> {
    let path_var = env.path_var?;
    std::env::split_paths(path_var).find_map(|entry| {
        let entry = if entry.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            entry
        };
        let candidate = entry.join(command);
        candidate
            .symlink_metadata()
            .is_ok()
            .then(|| absolute_dir(&entry, env.cwd))
    })
}

/// Converts the client's arguments for the JSON request (strings only).
pub fn utf8_args(args: Vec<OsString>) -> Result<Vec<String>, String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string()
                .map_err(|a| format!("argument {} is not valid UTF-8: {:?}", i + 1, a))
        })
        .collect()
}

#[cfg(test)]
#[path = "locate_tests.rs"]
mod tests;
