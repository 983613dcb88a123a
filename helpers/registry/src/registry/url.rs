//! The little URL handling the client needs: origins (to decide where
//! credentials may go), redirect targets, and query encoding.

/// `(scheme, host, port)` with the scheme's default port filled in.
pub fn origin(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    // Drop userinfo, if any.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let port = authority[end + 1..].strip_prefix(':');
        (&authority[..=end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ => default,
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

/// Resolves a `Location` header against the URL that returned it.
pub fn resolve(base: &str, location: &str) -> Option<String> {
    if location.contains("://") {
        return Some(location.to_string());
    }
    let (scheme, rest) = base.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(r) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{r}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = rest[authority_end..].split(['?', '#']).next().unwrap_or("");
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{scheme}://{authority}{dir}/{location}"))
}

/// Percent-encodes a query parameter value.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let o = |u| origin(u).unwrap();
        assert_eq!(
            o("https://Reg.example/v2/"),
            ("https".into(), "reg.example".into(), 443)
        );
        assert_eq!(o("https://reg.example:443/x"), o("https://reg.example/y"));
        assert_ne!(o("http://reg.example/x"), o("https://reg.example/x"));
        assert_ne!(o("http://127.0.0.1:5000/x"), o("http://127.0.0.1:5001/x"));
        assert_eq!(
            o("http://[::1]:5000/v2/"),
            ("http".into(), "[::1]".into(), 5000)
        );
        assert_eq!(o("http://u:p@h:1/"), ("http".into(), "h".into(), 1));
        assert!(origin("ftp://x/").is_none());
        assert!(origin("nonsense").is_none());
    }

    #[test]
    fn redirects() {
        let b = "https://r.example:5000/v2/a/blobs/sha256:1?x=y";
        assert_eq!(resolve(b, "http://cdn/x").unwrap(), "http://cdn/x");
        assert_eq!(resolve(b, "//cdn/x").unwrap(), "https://cdn/x");
        assert_eq!(
            resolve(b, "/other").unwrap(),
            "https://r.example:5000/other"
        );
        assert_eq!(
            resolve(b, "rel?q").unwrap(),
            "https://r.example:5000/v2/a/blobs/rel?q"
        );
        assert_eq!(
            encode_query("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
