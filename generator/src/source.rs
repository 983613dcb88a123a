//! Checks the `[Image] Image=` source: a registry reference or a local
//! `oci:`, `oci-archive:` or `docker-archive:` source. The generator only
//! checks the shape (so a typo fails at daemon-reload, with a line number);
//! `sdme-import` does the real resolution.

pub const LOCAL_TRANSPORTS: &[&str] = &["oci:", "oci-archive:", "docker-archive:"];

pub fn check_source(s: &str) -> Result<(), String> {
    if let Some(transport) = LOCAL_TRANSPORTS.iter().find(|t| s.starts_with(**t)) {
        let path = &s[transport.len()..];
        if !path.starts_with('/') || path.chars().any(char::is_control) {
            return Err(format!(
                "{s:?}: a {transport} source needs an absolute path"
            ));
        }
        return Ok(());
    }
    check_reference(s).map_err(|why| format!("{s:?} is not an image reference: {why}"))
}

/// The grammar of `distribution/reference`: `[DOMAIN/]PATH[:TAG][@DIGEST]`.
fn check_reference(s: &str) -> Result<(), String> {
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(format!("bad tag {tag:?}"));
        }
    }
    if name.is_empty() || name.len() > 255 {
        return Err("the name must be 1 to 255 characters".into());
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains(['.', ':']) || first == "localhost" {
            check_domain(first)?;
            components.remove(0);
        }
    }
    for component in components {
        check_path_component(component)?;
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || domain.starts_with('[') => (h, Some(p)),
        _ => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty()
            || !port.chars().all(|c| c.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return Err(format!("bad port in {domain:?}"));
        }
    }
    let ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    if ok {
        Ok(())
    } else {
        Err(format!("bad registry host {domain:?}"))
    }
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_path_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "bad path component {c:?} (lowercase letters, digits, '.', '_', '-')"
        ))
    };
    let bytes = c.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return bad();
    }
    if c.chars()
        .any(|ch| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)))
    {
        return bad();
    }
    let separators_ok = c
        .split(|ch: char| ch.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .all(|sep| sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-'));
    if separators_ok {
        Ok(())
    } else {
        bad()
    }
}

fn check_digest(d: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return Err(format!("bad digest {d:?}"));
    };
    let ok = !algorithm.is_empty()
        && algorithm
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
        && hex.len() >= 32
        && hex.chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(format!("bad digest {d:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::check_source;

    #[test]
    fn good_sources() {
        for s in [
            "nginx",
            "docker.io/library/nginx:1.27",
            "localhost:5000/a/b-c__d:v1.2",
            "127.0.0.1:5000/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/x",
            "oci:/srv/images/x:latest",
            "oci-archive:/tmp/a.tar",
            "docker-archive:/tmp/b.tar",
        ] {
            assert!(check_source(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn bad_sources() {
        for s in [
            "",
            "-rf",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "a//b",
            "a b",
            "docker.io/library/nginx@sha256:xyz",
            "oci:relative",
            "bad_host.:5000/x",
            "localhost:99999/x",
            "x--",
        ] {
            assert!(check_source(s).is_err(), "{s}");
        }
    }
}
