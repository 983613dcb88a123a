//! Quoting for unit settings that take a value verbatim (`WorkingDirectory=`)
//! and for `EnvironmentFile=` lines. Command lines (`ExecStart=`) are quoted
//! by `sdme_generator::escape`, the one implementation the generator uses too.

/// Escapes a value for a unit setting that takes the rest of the line verbatim
/// but expands specifiers (`WorkingDirectory=`, `Description=`): `%` → `%%`;
/// line breaks cannot be represented and are refused by the caller.
pub fn setting_value(value: &str) -> String {
    value.replace('%', "%%")
}

/// Whether `name` is acceptable as an environment variable name for systemd
/// (`env_name_is_valid`): non-empty, no `=`, printable ASCII without spaces, not
/// starting with a digit.
pub fn env_name_valid(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'=' && b != b'\'' && b != b'"' && b != b'\\')
}

/// One `EnvironmentFile=` line: `KEY="VALUE"` with `\`, `"`, `` ` `` and `$`
/// backslash-escaped (systemd's `SHELL_NEED_ESCAPE` inside double quotes);
/// newlines are kept literally inside the quotes, which systemd preserves.
/// `None` if the name is not valid.
pub fn env_file_line(name: &str, value: &str) -> Option<String> {
    if !env_name_valid(name) {
        return None;
    }
    let mut out = String::with_capacity(name.len() + value.len() + 4);
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '`' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str("\"\n");
    Some(out)
}

/// A complete environment file from `KEY=VALUE` strings (the OCI `Env` form).
/// Entries without `=` or with an invalid name are returned in the second list.
pub fn env_file(entries: &[String]) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut rejected = Vec::new();
    for entry in entries {
        let Some((name, value)) = entry.split_once('=') else {
            rejected.push(entry.clone());
            continue;
        };
        match env_file_line(name, value) {
            Some(line) => out.push_str(&line),
            None => rejected.push(entry.clone()),
        }
    }
    (out, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_escapes_shell_specials_and_keeps_newlines() {
        let (text, rejected) = env_file(&[
            "PATH=/usr/bin:/bin".into(),
            "Q=say \"hi\" $USER `x` \\n".into(),
            "EMPTY=".into(),
            "ML=a\nb".into(),
            "NOEQUALS".into(),
            "1BAD=x".into(),
            "WITH=eq=inside".into(),
        ]);
        assert_eq!(
            text,
            "PATH=\"/usr/bin:/bin\"\nQ=\"say \\\"hi\\\" \\$USER \\`x\\` \\\\n\"\nEMPTY=\"\"\nML=\"a\nb\"\nWITH=\"eq=inside\"\n"
        );
        assert_eq!(rejected, vec!["NOEQUALS".to_string(), "1BAD=x".to_string()]);
    }

    #[test]
    fn env_names() {
        assert!(env_name_valid("NGINX_VERSION"));
        assert!(env_name_valid("lower.dot"));
        assert!(!env_name_valid(""));
        assert!(!env_name_valid("A B"));
        assert!(!env_name_valid("9A"));
    }

    #[test]
    fn setting_values_double_percent() {
        assert_eq!(setting_value("/srv/100%"), "/srv/100%%");
    }
}
