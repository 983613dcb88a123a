//! The systemd unit-file syntax (`config_parse()` in systemd): `[Section]`
//! headers, `Key=Value` assignments, whole-line `#`/`;` comments, and a
//! trailing backslash continuing a line (the backslash becomes a space;
//! comment lines inside a continuation are skipped).

/// systemd's `LONG_LINE_MAX`: longer logical lines are an error.
pub const MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Section {
        name: String,
        line: usize,
    },
    Assignment {
        key: String,
        value: String,
        line: usize,
    },
}

/// One problem, at a 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole file. Every bad line is reported; good lines are still
/// returned so later checks can report more, but a file with any error is
/// never used.
pub fn parse(bytes: &[u8]) -> (Vec<Item>, Vec<SyntaxError>) {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut items = Vec::new();
    let mut errors = Vec::new();
    // The logical line being continued, and the line it started on.
    let mut pending: Option<(String, usize)> = None;

    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = match check_line(raw) {
            Ok(text) => text,
            Err(message) => {
                errors.push(SyntaxError {
                    line: number,
                    message,
                });
                pending = None;
                continue;
            }
        };
        // As systemd: a comment line inside a continuation is skipped, and
        // the continuation is decided on the raw line (a backslash followed
        // by white space does not continue it), joining raw lines.
        if pending.is_some()
            && text
                .trim_start_matches(is_whitespace)
                .starts_with(['#', ';'])
        {
            continue;
        }
        let (mut logical, start) = match pending.take() {
            Some((mut so_far, start)) => {
                so_far.push_str(text);
                (so_far, start)
            }
            None => (text.to_string(), number),
        };
        if logical.len() > MAX_LINE {
            errors.push(SyntaxError {
                line: start,
                message: "line too long".into(),
            });
            continue;
        }
        if ends_in_escape(&logical) {
            logical.pop();
            logical.push(' ');
            pending = Some((logical, start));
            continue;
        }
        parse_logical(&logical, start, &mut items, &mut errors);
    }
    if let Some((logical, start)) = pending {
        parse_logical(&logical, start, &mut items, &mut errors);
    }
    (items, errors)
}

fn check_line(raw: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "line is not valid UTF-8".to_string())?;
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!("control character U+{:04X} in line", c as u32));
    }
    Ok(text)
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// True if the line ends in an odd number of backslashes (`\\` at the end
/// is an escaped backslash, not a continuation).
fn ends_in_escape(line: &str) -> bool {
    line.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

fn parse_logical(line: &str, number: usize, items: &mut Vec<Item>, errors: &mut Vec<SyntaxError>) {
    let line = line.trim_matches(is_whitespace);
    if line.is_empty() || line.starts_with(['#', ';']) {
        return;
    }
    let mut fail = |message: String| {
        errors.push(SyntaxError {
            line: number,
            message,
        })
    };
    if let Some(rest) = line.strip_prefix('[') {
        match rest.strip_suffix(']') {
            Some(name) if is_section_name(name) => items.push(Item::Section {
                name: name.to_string(),
                line: number,
            }),
            _ => fail(format!("invalid section header {line:?}")),
        }
        return;
    }
    let Some((key, value)) = line.split_once('=') else {
        fail(format!("missing '=' in {:?}", shorten(line)));
        return;
    };
    let key = key.trim_matches(is_whitespace);
    if !is_key_name(key) {
        fail(format!("invalid key name {:?}", shorten(key)));
        return;
    }
    let value = value.trim_matches(is_whitespace);
    items.push(Item::Assignment {
        key: key.to_string(),
        value: value.to_string(),
        line: number,
    });
}

pub fn is_section_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Key names as systemd writes them; anything else cannot be a key of
/// ours, and refusing it keeps pass-through keys harmless.
pub fn is_key_name(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Keeps error messages readable when a line is huge.
pub fn shorten(s: &str) -> String {
    const LIMIT: usize = 60;
    match s.char_indices().nth(LIMIT) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<Item> {
        let (items, errors) = parse(text.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        items
    }

    fn assign(key: &str, value: &str, line: usize) -> Item {
        Item::Assignment {
            key: key.into(),
            value: value.into(),
            line,
        }
    }

    #[test]
    fn sections_keys_comments() {
        let got = items("# c\n; c\n\n[Image]\n  Image = a b  \r\nX=\n");
        assert_eq!(
            got,
            [
                Item::Section {
                    name: "Image".into(),
                    line: 4
                },
                assign("Image", "a b", 5),
                assign("X", "", 6)
            ]
        );
    }

    #[test]
    fn continuation_joins_with_space_and_skips_comments() {
        let got = items("[A]\nK=one \\\n# skipped\n  two\\\nthree\nL=x\\\\\n");
        assert_eq!(got[1], assign("K", "one    two three", 2));
        assert_eq!(got[2], assign("L", "x\\\\", 6));
    }

    #[test]
    fn backslash_then_space_does_not_continue() {
        let got = items("[A]\nK=a\\ \nL=b\n");
        assert_eq!(got[1], assign("K", "a\\", 2));
        assert_eq!(got[2], assign("L", "b", 3));
    }

    #[test]
    fn continuation_at_end_of_file() {
        let got = items("[A]\nK=v\\");
        assert_eq!(got[1], assign("K", "v", 2));
    }

    #[test]
    fn errors_name_lines() {
        let (_, errors) = parse(b"[A\nnoequals\n=v\n[B]\nK=\xff\nJ=\x01\n");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 5, 6]);
    }

    #[test]
    fn bom_is_ignored() {
        assert_eq!(
            items("\u{feff}[A]\n")[0],
            Item::Section {
                name: "A".into(),
                line: 1
            }
        );
    }
}
