//! Escaping by kind of value, after how systemd reads each kind back:
//! `%` specifiers are expanded in almost every setting; `Exec*=` lines are
//! split into words (quotes, C escapes) after the specifiers, and `$VAR`
//! is expanded in their words at run time; a line ending in an odd number
//! of backslashes continues on the next line; leading and trailing white
//! space of a value is dropped.

use crate::Error;

/// Characters that need no quoting in an `Exec*=` argument.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_@+=:,./-".contains(c)
}

/// Characters systemd takes as prefixes (`-`, `@`, `:`, `+`, `!`, `|`) when
/// they start the raw text of an `Exec*=` command, before any unquoting.
const EXEC_PREFIXES: &str = "-@:+!|";

pub fn check_no_nul(value: &str, what: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::new(format!("{what}: value contains a NUL byte")));
    }
    Ok(())
}

/// One `Exec*=` argument: `%` doubled, `$` doubled, and anything beyond
/// plain characters in double quotes with C escapes. Quoting also keeps `;`
/// from being a command separator and a continuation line from looking like
/// a comment.
pub fn exec_arg(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(is_plain) {
        return arg.to_string();
    }
    quoted(arg, true)
}

/// One `Environment=` word `NAME=VALUE`: as it is when plain, otherwise
/// quoted (`$` is not expanded there, so it is not doubled).
pub fn env_word(assignment: &str) -> String {
    if assignment.chars().all(is_plain) {
        return assignment.to_string();
    }
    quoted(assignment, false)
}

/// The program, the first word: quoted also when it starts with a prefix
/// character, since systemd reads prefixes from the raw text and a quote
/// ends them.
pub fn exec_program(program: &str) -> String {
    if program.starts_with(|c| EXEC_PREFIXES.contains(c)) {
        quoted(program, true)
    } else {
        exec_arg(program)
    }
}

/// A command: program, then arguments joined by `separator` (a space, or a
/// continuation and indentation).
pub fn command<S: AsRef<str>>(argv: &[S], separator: &str) -> Result<String, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::new("a command needs at least a program"));
    };
    let program = program.as_ref();
    // systemd unquotes the first word and then reads exec prefixes (`+`,
    // `-`, `@`, `:`, `!`, `|`) and a lone `;` from it, so no quoting can
    // protect them: the program must be an absolute path, which starts with
    // none of them.
    if !program.starts_with('/') {
        return Err(Error::new(format!(
            "a command's program must be an absolute path, not {:?}",
            program.escape_debug().to_string()
        )));
    }
    check_no_nul(program, "command")?;
    let mut line = exec_program(program);
    for (i, arg) in args.iter().enumerate() {
        let arg = arg.as_ref();
        check_no_nul(arg, "command argument")?;
        line.push_str(if i == 0 { " " } else { separator });
        line.push_str(&exec_arg(arg));
    }
    Ok(line)
}

/// Double quotes with C escapes; `$` doubled where the setting expands
/// variables (`Exec*=`), kept where it does not (`Environment=`).
pub fn quoted(arg: &str, double_dollar: bool) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' if double_dollar => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Free text: `%` doubled, control characters written as visible escapes
/// so the value stays on its line, no trailing backslash.
pub fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%%"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    // A trailing backslash would continue the line; the space after it is
    // dropped again when systemd strips the value.
    if out.ends_with('\\') {
        out.push(' ');
    }
    out
}

/// A path taken verbatim: absolute, no control characters, no white space
/// at either end (systemd would drop it), no trailing backslash.
pub fn path(path: &str) -> Result<String, Error> {
    if !path.starts_with('/') {
        return Err(Error::new(format!("{path:?} is not an absolute path")));
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(Error::new(format!(
            "path {:?} contains the control character U+{:04X}",
            path.escape_debug().to_string(),
            c as u32
        )));
    }
    if path.trim_end() != path {
        return Err(Error::new(format!("path {path:?} ends in white space")));
    }
    if path.ends_with('\\') {
        return Err(Error::new(format!("path {path:?} ends in a backslash")));
    }
    if path.len() > 4096 {
        return Err(Error::new("path longer than PATH_MAX"));
    }
    Ok(path.replace('%', "%%"))
}

/// A name or keyword written as it is.
pub fn check_word(word: &str) -> Result<(), Error> {
    let ok = !word.is_empty()
        && !word.starts_with('-')
        && word.len() <= 256
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:@+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{:?} is not a plain name ([A-Za-z0-9_.:@+-], not starting with '-')",
            word.escape_debug().to_string()
        )))
    }
}

/// A comment line: no specifiers there, but it must stay one line.
pub fn comment(text: &str) -> String {
    format!("# {}\n", text.escape_debug())
}
