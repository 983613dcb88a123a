//! Quoting for the two systemd syntaxes sdme writes: unit-file command lines and
//! settings (`ExecStart=`, `WorkingDirectory=`), and `EnvironmentFile=` lines.

/// Quotes one word for a unit-file command line (`ExecStart=`): always double
/// quotes, C escapes for `\` `"` and control characters, `%%` for specifiers and
/// `$$` so systemd does not expand variables. The image's argv reaches the
/// program byte for byte.
pub fn exec_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A whole command line for `ExecStart=`.
pub fn exec_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| exec_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

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
    fn exec_words_escape_specifiers_variables_and_quotes() {
        assert_eq!(exec_word("daemon off;"), "\"daemon off;\"");
        assert_eq!(exec_word("100%"), "\"100%%\"");
        assert_eq!(exec_word("$HOME"), "\"$$HOME\"");
        assert_eq!(exec_word("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(exec_word("l1\nl2"), "\"l1\\nl2\"");
        assert_eq!(exec_word(";"), "\";\"");
        assert_eq!(exec_word(""), "\"\"");
        assert_eq!(exec_word("\x01"), "\"\\x01\"");
    }

    #[test]
    fn exec_line_joins_quoted_words() {
        let argv = vec![
            "/usr/sbin/nginx".to_string(),
            "-g".into(),
            "daemon off;".into(),
        ];
        assert_eq!(
            exec_line(&argv),
            "\"/usr/sbin/nginx\" \"-g\" \"daemon off;\""
        );
    }

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
