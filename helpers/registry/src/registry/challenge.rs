//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1): several challenges in one
//! header, parameters as tokens or quoted strings that may contain commas.

use std::collections::HashMap;

/// One challenge: a scheme (lowercased) and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | ',')) {
            self.pos += 1;
        }
    }
    fn token(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }
    /// A token68 value such as base64: tchars plus '/' and trailing '='.
    fn token68(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|c| is_tchar(c) || c == '/') {
            self.pos += 1;
        }
        while self.peek() == Some('=') {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }
    fn quoted(&mut self) -> String {
        let mut out = String::new();
        self.pos += 1; // opening quote
        while let Some(c) = self.peek() {
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\\' => {
                    if let Some(n) = self.peek() {
                        self.pos += n.len_utf8();
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        out
    }
    /// True if the next thing is `name =` (a parameter) rather than a new scheme.
    fn at_param(&self) -> bool {
        let rest = &self.s[self.pos..];
        let name_len = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
        name_len > 0
            && rest[name_len..]
                .trim_start_matches([' ', '\t'])
                .starts_with('=')
    }
}

/// Parses every challenge in one or more `WWW-Authenticate` header values.
pub fn parse<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for header in headers {
        let mut c = Cursor { s: header, pos: 0 };
        loop {
            c.skip_ws_and_commas();
            let scheme = c.token().to_ascii_lowercase();
            if scheme.is_empty() {
                break; // end of header, or garbage we cannot parse
            }
            let mut params = HashMap::new();
            c.skip_ws();
            if !c.at_param() && c.peek().is_some_and(|ch| ch != ',') {
                let t = c.token68().to_string();
                params.insert("token68".to_string(), t);
            }
            loop {
                c.skip_ws_and_commas();
                if !c.at_param() {
                    break;
                }
                let name = c.token().to_ascii_lowercase();
                c.skip_ws();
                c.pos += 1; // '='
                c.skip_ws();
                let value = if c.peek() == Some('"') {
                    c.quoted()
                } else {
                    c.token().to_string()
                };
                params.insert(name, value);
            }
            out.push(Challenge { scheme, params });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &str) -> Challenge {
        let v = parse([h]);
        assert_eq!(v.len(), 1, "{h}: {v:?}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn docker_hub_bearer() {
        let c = one(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn commas_inside_quotes_and_several_challenges() {
        let v = parse([
            r#"Bearer realm="http://a/t",scope="repository:x:pull,push" , Basic realm="Registry Realm", Newauth realm="apps", type=1, title="Login to \"apps\"""#,
        ]);
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(v[0].param("scope"), Some("repository:x:pull,push"));
        assert_eq!(v[1].scheme, "basic");
        assert_eq!(v[1].param("realm"), Some("Registry Realm"));
        assert_eq!(v[2].param("type"), Some("1"));
        assert_eq!(v[2].param("title"), Some("Login to \"apps\""));
    }

    #[test]
    fn several_headers_spaces_case_and_token68() {
        let v = parse(["BASIC  REALM = x", "Negotiate abc+/d==, bearer realm=\"r\""]);
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(v[0].scheme, "basic");
        assert_eq!(v[0].param("realm"), Some("x"));
        assert_eq!(v[1].param("token68"), Some("abc+/d=="));
        assert_eq!(v[2].param("realm"), Some("r"));
        assert!(parse([""]).is_empty());
        assert_eq!(one("Basic").params.len(), 0);
    }
}
