//! sdme-unitfile: the systemd unit-file format, read and written. This crate
//! is the one writer of every unit, drop-in and environment file sdme
//! produces (the generator's units, the glue inside images, the launcher's
//! drop-ins) and the one reader of unit-file syntax (descriptors are written
//! in it, and tests read units back with it).
//!
//! A unit is built from typed values: each [`Value`] constructor knows how
//! systemd parses that kind of setting (a command line, a path, free text,
//! an environment assignment, a list of names, a number) and escapes or
//! refuses its input accordingly, so that no value can add a line, a
//! setting, a specifier or an exec prefix. Callers never format unit text
//! themselves.
//!
//! It owns nothing else: no file system access, no knowledge of sdme's
//! units or paths. It must never grow a way to put raw, unchecked text
//! into a unit.

pub mod envfile;
mod escape;
pub mod syntax;
pub mod words;

use std::fmt;

/// A value that cannot be written as the kind of setting asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// A setting's value, already in the form systemd reads back as exactly the
/// value it was made from. Only the constructors below make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(String);

impl Value {
    /// An empty assignment (`Key=`): resets a list or a setting.
    pub fn reset() -> Value {
        Value(String::new())
    }

    /// Free text shown to people (`Description=`, `SyslogIdentifier=`):
    /// specifiers are doubled, control characters shown as escapes, and a
    /// trailing backslash cannot continue the line. Never fails; the text
    /// read back may differ from the input only where it could not be
    /// represented at all.
    pub fn text(text: &str) -> Value {
        Value(escape::text(text))
    }

    /// A whole number.
    pub fn number(n: impl Into<u64>) -> Value {
        Value(n.into().to_string())
    }

    /// `yes` or `no`.
    pub fn boolean(b: bool) -> Value {
        Value(if b { "yes" } else { "no" }.to_string())
    }

    /// One name or keyword (a unit name, a signal, a policy, a numeric id):
    /// only `[A-Za-z0-9_.:@+-]`, and not starting with `-`.
    pub fn word(word: &str) -> Result<Value, Error> {
        escape::check_word(word)?;
        Ok(Value(word.to_string()))
    }

    /// A size, count or percentage for a resource-control setting, which
    /// systemd reads without specifier expansion (`MemoryMax=512M`,
    /// `CPUQuota=50%`, `TasksMax=infinity`): `[A-Za-z0-9.%]` only.
    pub fn quantity(q: &str) -> Result<Value, Error> {
        let ok = !q.is_empty()
            && q.len() <= 64
            && q.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '%');
        if !ok {
            return Err(Error::new(format!(
                "{:?} is not a size, count or percentage",
                q.escape_debug().to_string()
            )));
        }
        Ok(Value(q.to_string()))
    }

    /// A space-separated list of [`Value::word`]s (`Wants=`, `SupplementaryGroups=`).
    pub fn words<S: AsRef<str>>(words: &[S]) -> Result<Value, Error> {
        if words.is_empty() {
            return Err(Error::new("an empty list is written as a reset"));
        }
        let mut out = Vec::with_capacity(words.len());
        for w in words {
            escape::check_word(w.as_ref())?;
            out.push(w.as_ref());
        }
        Ok(Value(out.join(" ")))
    }

    /// An absolute path for a setting that takes the rest of the line as
    /// one path (`WorkingDirectory=`, `RootDirectory=`, `ListenStream=`,
    /// `EnvironmentFile=`): `%` doubled; control characters, surrounding
    /// white space and a trailing backslash refused.
    pub fn path(path: &str) -> Result<Value, Error> {
        Ok(Value(escape::path(path)?))
    }

    /// A path whose absence is fine (`-` prefix: `EnvironmentFile=-/oci/env`).
    pub fn optional_path(path: &str) -> Result<Value, Error> {
        Value::prefixed_path("-", path)
    }

    /// A path after a fixed prefix of the setting's own syntax
    /// (`StandardOutput=file:/run/x`).
    pub fn prefixed_path(prefix: &'static str, path: &str) -> Result<Value, Error> {
        debug_assert!(!prefix.contains(['%', '\\', '\n']));
        Ok(Value(format!("{prefix}{}", escape::path(path)?)))
    }

    /// A relative path of plain names for settings such as
    /// `RuntimeDirectory=` and `StateDirectory=`: [`Value::word`]s joined
    /// by `/`, no `.` or `..` components.
    pub fn relative_path(path: &str) -> Result<Value, Error> {
        for component in path.split('/') {
            if component == "." || component == ".." {
                return Err(Error::new(format!("{path:?} has a . or .. component")));
            }
            escape::check_word(component)?;
        }
        Ok(Value(path.to_string()))
    }

    /// A path in a setting that splits words (`BindReadOnlyPaths=`): as
    /// [`Value::path`] and additionally without white space, quotes, `:` or
    /// backslashes, so that it stays one source path.
    pub fn bind_path(path: &str, optional: bool) -> Result<Value, Error> {
        let escaped = escape::path(path)?;
        if let Some(c) = path
            .chars()
            .find(|c| c.is_whitespace() || "\"':\\".contains(*c))
        {
            return Err(Error::new(format!(
                "bind path {path:?} contains {c:?}, which this setting would split on"
            )));
        }
        Ok(Value(if optional {
            format!("-{escaped}")
        } else {
            escaped
        }))
    }

    /// `[-]SOURCE:DESTINATION` of `BindPaths=` and `BindReadOnlyPaths=`,
    /// each path as [`Value::bind_path`] takes it.
    pub fn bind(source: &str, destination: &str, optional: bool) -> Result<Value, Error> {
        let source = Value::bind_path(source, optional)?;
        let destination = Value::bind_path(destination, false)?;
        Ok(Value(format!("{}:{}", source.0, destination.0)))
    }

    /// A command line for `ExecStart=` and friends, on one line: argv[0]
    /// must be an absolute path (systemd reads exec prefixes such as `+`
    /// and a `;` separator from the *unquoted* first word, so quoting cannot
    /// neutralize them), and `%`, `$`, `;`, quotes and line breaks in any
    /// other word reach the program unchanged.
    pub fn command<S: AsRef<str>>(argv: &[S]) -> Result<Value, Error> {
        Ok(Value(escape::command(argv, " ")?))
    }

    /// As [`Value::command`], run with full privileges (the `+` prefix: no
    /// `User=`, no sandboxing), the only exec prefix the writer emits.
    pub fn privileged_command<S: AsRef<str>>(argv: &[S]) -> Result<Value, Error> {
        Ok(Value(format!("+{}", escape::command(argv, " ")?)))
    }

    /// As [`Value::command`], one argument per continuation line after the
    /// first (readable in `systemctl cat`).
    pub fn command_lines<S: AsRef<str>>(argv: &[S]) -> Result<Value, Error> {
        Ok(Value(escape::command(argv, " \\\n        ")?))
    }

    /// `Environment=` assignments, each `"NAME=VALUE"` quoted so that white
    /// space, quotes, `%` and line breaks in the value stay in it (`$` is
    /// not expanded there and stays as it is).
    pub fn environment<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Result<Value, Error> {
        if pairs.is_empty() {
            return Err(Error::new("an empty list is written as a reset"));
        }
        let mut words = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            envfile::check_name(name)?;
            escape::check_no_nul(value, name)?;
            words.push(escape::env_word(&format!("{name}={value}")));
        }
        Ok(Value(words.join(" ")))
    }

    /// A line of an administrator's descriptor passed through on purpose
    /// (`[Unit]`/`[Service]` pass-through): specifiers keep their meaning,
    /// but it must be one line that does not continue onto the next.
    pub fn verbatim(text: &str) -> Result<Value, Error> {
        // Trimmed first, as systemd will: the check must see what is written.
        let text = text.trim_matches([' ', '\t']);
        if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(Error::new(format!(
                "value {text:?} contains the control character U+{:04X}",
                c as u32
            )));
        }
        if text.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1 {
            return Err(Error::new(format!(
                "value {text:?} ends in a backslash, which would continue the line"
            )));
        }
        Ok(Value(text.to_string()))
    }
}

enum Line {
    Setting { key: String, value: Value },
    Comment(String),
}

/// One `[Section]` of a unit, its lines in order.
pub struct Section {
    name: String,
    lines: Vec<Line>,
}

impl Section {
    /// Adds `key=value`. Keys are the caller's constants; a key that is not
    /// a valid name is a bug in sdme, refused in debug builds and written
    /// as a comment otherwise (a comment can do nothing).
    pub fn set(&mut self, key: &str, value: Value) -> &mut Section {
        if syntax::is_key_name(key) {
            self.lines.push(Line::Setting {
                key: key.to_string(),
                value,
            });
        } else {
            debug_assert!(false, "invalid unit key {key:?}");
            self.lines
                .push(Line::Comment(format!("invalid key {key:?} left out")));
        }
        self
    }

    /// Adds a key and value from an administrator's descriptor, checked:
    /// the key must be a name, the value [`Value::verbatim`].
    pub fn pass_through(&mut self, key: &str, value: &str) -> Result<&mut Section, Error> {
        if !syntax::is_key_name(key) {
            return Err(Error::new(format!("{key:?} is not a setting name")));
        }
        let value = Value::verbatim(value)?;
        Ok(self.set(key, value))
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// A whole unit file or drop-in: leading comments, then sections in order.
#[derive(Default)]
pub struct Unit {
    comments: Vec<String>,
    sections: Vec<Section>,
}

impl Unit {
    pub fn new() -> Unit {
        Unit::default()
    }

    /// A comment line at the top of the file.
    pub fn comment(&mut self, text: &str) -> &mut Unit {
        self.comments.push(text.to_string());
        self
    }

    /// The section `name`, created at the end if the unit does not have it yet.
    pub fn section(&mut self, name: &str) -> &mut Section {
        debug_assert!(syntax::is_section_name(name), "invalid section {name:?}");
        let at = match self.sections.iter().position(|s| s.name == name) {
            Some(at) => at,
            None => {
                self.sections.push(Section {
                    name: name.to_string(),
                    lines: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[at]
    }

    /// Whether no section has any line.
    pub fn is_empty(&self) -> bool {
        self.sections.iter().all(Section::is_empty)
    }

    /// The file's text: comments, then each non-empty section after a blank line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.comments {
            out.push_str(&escape::comment(c));
        }
        let mut first = true;
        for section in self.sections.iter().filter(|s| !s.is_empty()) {
            if !first {
                out.push('\n');
            }
            first = false;
            out.push('[');
            out.push_str(&section.name);
            out.push_str("]\n");
            for line in &section.lines {
                match line {
                    Line::Setting { key, value } => {
                        out.push_str(key);
                        out.push('=');
                        out.push_str(&value.0);
                        out.push('\n');
                    }
                    Line::Comment(c) => out.push_str(&escape::comment(c)),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
