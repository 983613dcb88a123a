//! systemd's environment-file format (`EnvironmentFile=`, read by
//! `load_env_file()`): `NAME="VALUE"` lines, and the one rule for what an
//! environment variable name may be.

use crate::Error;

/// systemd's `env_name_is_valid()`: letters, digits and `_`, not starting
/// with a digit (names systemd would ignore in a file or refuse in a unit).
pub fn is_valid_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 4096
}

pub fn check_name(name: &str) -> Result<(), Error> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{:?} is not a valid environment variable name (letters, digits, '_', not starting with a digit)",
            name.escape_debug().to_string()
        )))
    }
}

/// One line `NAME="VALUE"`: inside double quotes systemd removes the
/// backslash before `\`, `"`, `` ` `` and `$` (`SHELL_NEED_ESCAPE`) and keeps
/// everything else, line breaks included.
pub fn line(name: &str, value: &str) -> Result<String, Error> {
    check_name(name)?;
    if value.contains('\0') {
        return Err(Error::new(format!(
            "the value of {name} contains a NUL byte"
        )));
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
    Ok(out)
}

/// A whole file from `(name, value)` pairs, in order (later ones win).
pub fn render<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Result<String, Error> {
    let mut out = String::new();
    for (name, value) in pairs {
        out.push_str(&line(name.as_ref(), value.as_ref())?);
    }
    Ok(out)
}

/// Reads a file written by [`render`] back (for tests and for checking
/// what a container will see): `NAME="VALUE"` lines with the escapes above.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return Err(Error::new(format!("{name}: value is not quoted")));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(Error::new(format!("{name}: unterminated value"))),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some(c @ ('\\' | '"' | '`' | '$')) => value.push(c),
                    Some(c) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(Error::new(format!("{name}: unterminated value"))),
                },
                Some(c) => value.push(c),
            }
        }
        if chars.next() != Some('\n') {
            return Err(Error::new(format!("{name}: no line break after the value")));
        }
        out.push((name, value));
    }
    Ok(out)
}
