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

/// Reads an environment file the way systemd reads one `EnvironmentFile=`
/// (`parse_env_file_internal()`): `#`/`;` comment lines, `KEY=VALUE` with
/// surrounding blanks dropped, single quotes kept literally, double quotes
/// with the escapes above, a backslash elsewhere taking the next character
/// literally and a backslash-newline joining lines; a quote left open runs
/// to the end of the file (as in systemd; reading each file on its own keeps
/// it from swallowing the next one). Later assignments replace earlier ones
/// in place. A name systemd would drop is an error naming its line: the
/// file's author should learn of it, not lose the assignment silently.
pub fn read(text: &str) -> Result<Vec<(String, String)>, Error> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        SingleQuote,
        DoubleQuote,
        DoubleQuoteEscape,
        Comment,
        CommentEscape,
    }
    use State::*;
    let newline = |c: char| c == '\n' || c == '\r';

    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |line: usize, key: &str, value: &str| -> Result<(), Error> {
        if !is_valid_name(key) {
            return Err(Error::new(format!(
                "line {line}: {:?} is not a valid environment variable name (letters, digits, '_', not starting with a digit)",
                key.escape_debug().to_string()
            )));
        }
        if value.contains('\0') {
            return Err(Error::new(format!(
                "line {line}: the value of {key} contains a NUL byte"
            )));
        }
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => out.push((key.to_string(), value.to_string())),
        }
        Ok(())
    };

    let (mut key, mut value) = (String::new(), String::new());
    // Where trailing blanks of the key or of an unquoted value begin.
    let (mut key_blank, mut value_blank): (Option<usize>, Option<usize>) = (None, None);
    let (mut line, mut key_line) = (1usize, 1usize);
    let mut state = PreKey;
    for c in text.chars() {
        match state {
            PreKey => {
                if c == '#' || c == ';' {
                    state = Comment;
                } else if !is_blank(c) {
                    state = Key;
                    key_line = line;
                    key_blank = None;
                    key.push(c);
                }
            }
            Key => {
                if newline(c) {
                    // A line without `=` is ignored, as systemd does.
                    state = PreKey;
                    key.clear();
                } else if c == '=' {
                    state = PreValue;
                    value_blank = None;
                } else {
                    push_marking_blanks(&mut key, &mut key_blank, c);
                }
            }
            PreValue | Value if newline(c) => {
                if state == Value {
                    if let Some(n) = value_blank {
                        value.truncate(n);
                    }
                }
                if let Some(n) = key_blank {
                    key.truncate(n);
                }
                push(key_line, &key, &value)?;
                key.clear();
                value.clear();
                state = PreKey;
            }
            PreValue => match c {
                '\'' => state = SingleQuote,
                '"' => state = DoubleQuote,
                '\\' => state = ValueEscape,
                c if !is_blank(c) => {
                    state = Value;
                    value.push(c);
                }
                _ => {}
            },
            Value => {
                if c == '\\' {
                    state = ValueEscape;
                    value_blank = None;
                } else {
                    push_marking_blanks(&mut value, &mut value_blank, c);
                }
            }
            ValueEscape => {
                state = Value;
                if !newline(c) {
                    value.push(c);
                }
            }
            SingleQuote => match c {
                '\'' => state = PreValue,
                c => value.push(c),
            },
            DoubleQuote => match c {
                '"' => state = PreValue,
                '\\' => state = DoubleQuoteEscape,
                c => value.push(c),
            },
            DoubleQuoteEscape => {
                state = DoubleQuote;
                if matches!(c, '"' | '\\' | '`' | '$') {
                    value.push(c);
                } else if c != '\n' {
                    value.push('\\');
                    value.push(c);
                }
            }
            Comment => {
                if c == '\\' {
                    state = CommentEscape;
                } else if newline(c) {
                    state = PreKey;
                }
            }
            CommentEscape => state = if newline(c) { PreKey } else { Comment },
        }
        if c == '\n' {
            line += 1;
        }
    }
    if !matches!(state, PreKey | Key | Comment | CommentEscape) {
        if state == Value {
            if let Some(n) = value_blank {
                value.truncate(n);
            }
        }
        if let Some(n) = key_blank {
            key.truncate(n);
        }
        push(key_line, &key, &value)?;
    }
    Ok(out)
}

/// Appends `c` to `text`, keeping `trailing` at where the run of blanks
/// that ends `text` begins (`None` when it ends in another character).
fn push_marking_blanks(text: &mut String, trailing: &mut Option<usize>, c: char) {
    if !is_blank(c) {
        *trailing = None;
    } else if trailing.is_none() {
        *trailing = Some(text.len());
    }
    text.push(c);
}

/// systemd's `WHITESPACE` in environment files.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}
