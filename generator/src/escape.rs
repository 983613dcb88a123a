//! Escaping of everything written into a unit file, so that no value can
//! add a line, a directive or a specifier. Shared with sdme-import, which
//! writes the units that run inside the container.

/// Characters that need no quoting in an `Exec*=` argument.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_@+=:,./-".contains(c)
}

/// One `Exec*=` argument. systemd expands `%` specifiers over the whole
/// line, then splits words (unquoting, C unescapes), then expands `$VAR`;
/// so `%` is doubled, `$` is doubled, and anything beyond plain characters
/// goes in double quotes with C escapes. Quoting also keeps `;` from being a
/// command separator and keeps a continuation line from looking like a
/// comment.
pub fn exec_arg(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(is_plain) {
        return arg.to_string();
    }
    quoted(arg)
}

/// Characters systemd takes as prefixes (`-`, `@`, `:`, `+`, `!`, `|`) when
/// they start the raw text of an `Exec*=` command, before any unquoting.
const EXEC_PREFIXES: &str = "-@:+!|";

/// The program, the first word of an `Exec*=` command: as [`exec_arg`], but
/// quoted when it starts with a prefix character, since systemd reads
/// prefixes from the raw text and a quote ends them.
pub fn exec_program(program: &str) -> String {
    if program.starts_with(|c| EXEC_PREFIXES.contains(c)) {
        quoted(program)
    } else {
        exec_arg(program)
    }
}

/// A whole command on one line (program, then arguments), for a value
/// after `ExecStart=`; empty for an empty `argv`.
pub fn exec_command(argv: &[String]) -> String {
    let mut words = argv.iter();
    let Some(program) = words.next() else {
        return String::new();
    };
    let mut line = exec_program(program);
    for arg in words {
        line.push(' ');
        line.push_str(&exec_arg(arg));
    }
    line
}

/// Double quotes with C escapes (see [`exec_arg`]).
fn quoted(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
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

/// A whole `Exec*=` line: the program and its first argument, then one
/// argument per continuation line, which `systemctl cat` shows readably.
pub fn exec_line(key: &str, program: &str, args: &[String]) -> String {
    let mut line = format!("{key}={}", exec_program(program));
    if let Some(first) = args.first() {
        line.push(' ');
        line.push_str(&exec_arg(first));
    }
    for arg in args.iter().skip(1) {
        line.push_str(" \\\n        ");
        line.push_str(&exec_arg(arg));
    }
    line.push('\n');
    line
}

/// A free-text value such as `Description=`: `%` doubled, control
/// characters written as escapes so the value stays on its line.
pub fn text_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%%"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    // A trailing backslash would continue the line.
    if out.ends_with('\\') {
        out.push(' ');
    }
    out
}

/// A comment line (no specifiers there, but it must stay one line).
pub fn comment(text: &str) -> String {
    format!("# {}\n", text.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words;

    /// What systemd does to an exec argument before running it: specifier
    /// `%%` → `%`, word splitting with unquoting, `$$` → `$`.
    fn systemd_reads(escaped: &str) -> Vec<String> {
        let unspecified = escaped.replace("%%", "%");
        words::split(&unspecified)
            .unwrap()
            .into_iter()
            .map(|w| w.replace("$$", "$"))
            .collect()
    }

    #[test]
    fn plain_args_stay_plain() {
        assert_eq!(exec_arg("--name=nginx"), "--name=nginx");
        assert_eq!(exec_arg(""), "\"\"");
    }

    #[test]
    fn hostile_args_round_trip() {
        for arg in [
            "a b",
            "%i",
            "$HOME",
            "${X}",
            "\"q\"",
            "'",
            "\\",
            "x\\",
            ";",
            "#c",
            "line\nbreak",
            "\x01\x7f",
            "\u{85}é",
        ] {
            let escaped = exec_arg(arg);
            assert!(!escaped.contains('\n'), "{escaped}");
            assert_eq!(systemd_reads(&escaped), [arg], "{escaped}");
        }
    }

    #[test]
    fn exec_commands_protect_the_program_from_prefixes() {
        let argv: Vec<String> = ["-x", "-g", "daemon off;", "100%", "", "é\u{85}"]
            .map(String::from)
            .to_vec();
        let line = exec_command(&argv);
        assert_eq!(
            line,
            "\"-x\" -g \"daemon off;\" \"100%%\" \"\" \"é\\u0085\""
        );
        // Quoted, no prefix character is left at the start of the raw text.
        for program in ["-a", "@a", ":a", "+a", "!a", "|a"] {
            assert!(exec_program(program).starts_with('"'), "{program}");
        }
        assert_eq!(exec_program("/bin/x"), "/bin/x");
        assert_eq!(systemd_reads(&line), argv);
        assert_eq!(exec_command(&[]), "");
    }

    #[test]
    fn exec_line_layout() {
        let line = exec_line("ExecStart", "/bin/x", &["a".into(), "b c".into()]);
        assert_eq!(line, "ExecStart=/bin/x a \\\n        \"b c\"\n");
    }

    #[test]
    fn text_values() {
        assert_eq!(text_value("50% of x\n"), "50%% of x\\u{a}");
        assert_eq!(text_value("a\\"), "a\\ ");
        assert_eq!(comment("a\nb"), "# a\\nb\n");
    }
}
