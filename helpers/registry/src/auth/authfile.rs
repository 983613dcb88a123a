//! Credential files: containers-auth.json(5) and Docker's config.json.
//!
//! Search order (the first file that has an entry wins): `--authfile`, else
//! `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `/run/containers/UID/auth.json`, `~/.config/containers/auth.json`,
//! `~/.docker/config.json`. In a file, `credHelpers` for the registry wins over
//! `auths`, which wins over `credsStore`.

use super::{base64, credhelper, Credentials};
use crate::error::{Error, ErrorKind};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: HashMap<String, String>,
    #[serde(rename = "credsStore", default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

/// What a file says about a registry.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Credentials(Credentials),
    Helper(String),
}

/// The files to search, in order. An explicit file (option or
/// `REGISTRY_AUTH_FILE`) is the only one searched.
pub fn search_paths(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut paths = Vec::new();
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        paths.push(Path::new(&d).join("containers/auth.json"));
    }
    let uid = rustix::process::getuid().as_raw();
    paths.push(PathBuf::from(format!("/run/containers/{uid}/auth.json")));
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    if let Some(c) = config {
        paths.push(c.join("containers/auth.json"));
    }
    let docker = std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".docker")));
    if let Some(d) = docker {
        paths.push(d.join("config.json"));
    }
    paths
}

/// A key as written in a file → `host[/path]`, Docker Hub spelled `docker.io`.
fn normalize_key(key: &str) -> String {
    let (had_scheme, rest) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(r) => (true, r),
        None => (false, key),
    };
    // Docker writes URLs (`https://index.docker.io/v1/`): only the host counts.
    let rest = if had_scheme {
        rest.split('/').next().unwrap_or(rest)
    } else {
        rest.trim_end_matches('/')
    };
    match rest.split_once('/') {
        Some((host, path)) => format!("{}/{path}", normalize_host(host)),
        None => normalize_host(rest).to_string(),
    }
}

fn normalize_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => crate::reference::DOCKER_HUB_DOMAIN,
        h => h,
    }
}

/// Looks a registry up in one file's contents: the most specific `auths` key
/// (`host/namespace/repo` before `host`) wins.
pub fn lookup_in(
    contents: &[u8],
    domain: &str,
    path: &str,
    what: &str,
) -> Result<Option<Found>, Error> {
    let file: AuthFile = serde_json::from_slice(contents).map_err(|e| {
        Error::new(
            ErrorKind::Unauthorized,
            format!("{what}: invalid JSON: {e}"),
        )
    })?;
    let domain = normalize_host(domain);
    if let Some((_, helper)) = file
        .cred_helpers
        .iter()
        .find(|(k, _)| normalize_key(k) == domain)
    {
        return Ok(Some(Found::Helper(helper.clone())));
    }
    let full = format!("{domain}/{path}");
    let best = file
        .auths
        .iter()
        .map(|(k, v)| (normalize_key(k), v))
        .filter(|(k, v)| {
            v.auth.as_deref().is_some_and(|a| !a.is_empty())
                && (*k == domain || full == *k || full.starts_with(&format!("{k}/")))
        })
        .max_by_key(|(k, _)| k.len());
    if let Some((key, entry)) = best {
        let encoded = entry.auth.as_deref().unwrap_or_default();
        let decoded = base64::decode(encoded)
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthorized,
                    format!("{what}: auths[{key}]: \"auth\" is not valid base64"),
                )
            })?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("{what}: auths[{key}]: \"auth\" is not USER:PASSWORD"),
            )
        })?;
        return Ok(Some(Found::Credentials(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        })));
    }
    Ok(file
        .creds_store
        .filter(|s| !s.is_empty())
        .map(Found::Helper))
}

/// The server name a credential helper knows a registry by.
fn helper_server(domain: &str) -> String {
    if normalize_host(domain) == crate::reference::DOCKER_HUB_DOMAIN {
        "https://index.docker.io/v1/".to_string()
    } else {
        domain.to_string()
    }
}

/// Credentials for `domain`/`path` from the first file that has any.
/// A missing explicit `--authfile` is an error; other missing files are skipped.
pub fn find(
    domain: &str,
    path: &str,
    explicit: Option<&Path>,
) -> Result<Option<Credentials>, Error> {
    for file in search_paths(explicit) {
        let what = file.display().to_string();
        let contents = match std::fs::read(&file) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => continue,
            Err(e) => return Err(Error::new(ErrorKind::Unauthorized, format!("{what}: {e}"))),
        };
        match lookup_in(&contents, domain, path, &what)? {
            Some(Found::Credentials(c)) => return Ok(Some(c)),
            Some(Found::Helper(h)) => {
                if let Some(c) = credhelper::get(&h, &helper_server(domain))? {
                    return Ok(Some(c));
                }
            }
            None => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
#[path = "authfile_tests.rs"]
mod tests;
