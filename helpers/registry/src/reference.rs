//! Image references, parsed and normalized as distribution/reference's
//! `ParseDockerRef` does: `busybox` → `docker.io/library/busybox:latest`.
//!
//! Grammar (distribution/reference):
//!
//! ```text
//! reference   := name [ ":" tag ] [ "@" digest ]
//! name        := [domain '/'] path          (path at most 255 characters)
//! domain      := host [':' port]
//! host        := domain-name | '[' ipv6 ']'
//! domain-name := component ('.' component)*, component := [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
//! path        := path-component ('/' path-component)*
//! path-component := [a-z0-9]+ (separator [a-z0-9]+)*,  separator := [_.] | "__" | "-"+
//! tag         := [\w][\w.-]{0,127}
//! digest      := algorithm ':' hex, algorithm := [A-Za-z][A-Za-z0-9]* ([+._-][A-Za-z][A-Za-z0-9]*)*
//! ```

use crate::error::{Error, ErrorKind};
use std::fmt;

/// Docker Hub's name in references and credential files.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
/// Docker Hub's API endpoint.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
const LEGACY_DOCKER_HUB_DOMAIN: &str = "index.docker.io";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry as written, normalized (`docker.io` for Docker Hub), with `:port` if any.
    pub domain: String,
    /// Repository path (`library/busybox` for Docker Hub official images).
    pub path: String,
    /// Tag as written; `None` when only a digest was given.
    pub tag: Option<String>,
    /// `algorithm:hex` when the reference pins a digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes a reference. With neither tag nor digest the tag is `latest`.
    pub fn parse(s: &str) -> Result<Reference, Error> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidReference,
                format!("invalid reference {s:?}: {why}"),
            )
        };
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid(
                "a 64-character hexadecimal string is an image ID, not a repository name",
            ));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remainder = remainder.as_str();
        let remote_name = remainder.split(':').next().unwrap_or(remainder);
        if remote_name.to_ascii_lowercase() != remote_name {
            return Err(invalid("repository name must be lowercase"));
        }

        let (rest, digest) = match remainder.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (remainder, None),
        };
        // The tag separator is the first ':' after the last '/': paths never contain ':'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };

        if !valid_domain(&domain) {
            return Err(invalid("malformed registry host"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(invalid("malformed repository name"));
        }
        // distribution/reference v0.6 counts the path only, not the registry host.
        if path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(
                "repository path longer than 255 characters (the registry host not counted)",
            ));
        }
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(invalid("malformed tag"));
            }
        }
        if let Some(digest) = digest {
            validate_digest(digest).map_err(|why| invalid(&why))?;
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            domain,
            path: path.to_string(),
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// The host (and port) to send API requests to: Docker Hub's API host for `docker.io`.
    pub fn api_host(&self) -> &str {
        if self.domain == DOCKER_HUB_DOMAIN {
            DOCKER_HUB_API_HOST
        } else {
            &self.domain
        }
    }

    /// What to ask the manifest endpoint for: the digest if pinned (it wins over a tag), else the tag.
    pub fn manifest_reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d,
            (None, Some(t)) => t,
            (None, None) => "latest",
        }
    }

    /// `domain/path` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// True when the registry is on this machine (`localhost`, 127.0.0.0/8, `[::1]`).
    pub fn is_loopback(&self) -> bool {
        let host = host_without_port(&self.domain);
        host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `host[:port]` → `host` (IPv6 hosts keep their brackets).
pub fn host_without_port(domain: &str) -> &str {
    if domain.starts_with('[') {
        return match domain.find(']') {
            Some(i) => &domain[..=i],
            None => domain,
        };
    }
    domain.split(':').next().unwrap_or(domain)
}

/// Whether the first component of a name is a registry host, as
/// distribution's splitDockerDomain decides it.
fn names_a_registry(first: &str) -> bool {
    first == "localhost" || first.contains(['.', ':']) || first.to_ascii_lowercase() != first
}

/// True when `s` names no registry (`busybox`, `library/busybox:1`): a short
/// name, which containers-registries.conf(5) may resolve.
pub fn is_short_name(s: &str) -> bool {
    match s.split_once('/') {
        None => true,
        Some((first, _)) => first != LEGACY_DOCKER_HUB_DOMAIN && !names_a_registry(first),
    }
}

/// Checks a registries.conf `prefix` or `location`: `HOST[:PORT][/PATH][:TAG|@DIGEST]`
/// with an explicit host (no Docker Hub default applies to it).
pub(crate) fn check_qualified_prefix(s: &str) -> Result<(), String> {
    let (host, rest) = s.split_once('/').unwrap_or((s, ""));
    if !names_a_registry(host) || !valid_domain(host) {
        return Err(format!("{s:?} does not start with a registry host"));
    }
    if rest.is_empty() {
        return Ok(());
    }
    match Reference::parse(s) {
        Ok(r) if r.domain == host || (host == LEGACY_DOCKER_HUB_DOMAIN) => Ok(()),
        Ok(_) => Err(format!("{s:?} is not a qualified name")),
        Err(e) => Err(e.message().to_string()),
    }
}

/// Decides whether the first component is a registry, as distribution's splitDockerDomain
/// does, and adds `library/` to single-component Docker Hub names.
fn split_docker_domain(s: &str) -> (String, String) {
    let (domain, remainder) = match s.split_once('/') {
        None => (DOCKER_HUB_DOMAIN, s),
        Some((first, rest)) if first == LEGACY_DOCKER_HUB_DOMAIN => (DOCKER_HUB_DOMAIN, rest),
        Some((first, rest)) if names_a_registry(first) => (first, rest),
        Some(_) => (DOCKER_HUB_DOMAIN, s),
    };
    if domain == DOCKER_HUB_DOMAIN && !remainder.contains('/') {
        (domain.to_string(), format!("library/{remainder}"))
    } else {
        (domain.to_string(), remainder.to_string())
    }
}

pub(crate) fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            a => match a.strip_prefix(':') {
                Some(p) => ("x", Some(p)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host.split('.').all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: one '.', one '_', exactly "__", or any number of '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= TAG_LENGTH_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// Checks `algorithm:hex`: the grammar, then the algorithm's exact length in lowercase hex.
pub fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("malformed digest {digest:?}"));
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphabetic()
                && b.iter().all(|x| x.is_ascii_alphanumeric())
        });
    if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("malformed digest {digest:?}"));
    }
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm in {digest:?}")),
    };
    if hex.len() != expected_len || hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("invalid {algorithm} digest {digest:?}"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
