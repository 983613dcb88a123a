//! systemd's word splitting, as `extract_first_word()` does it with
//! `EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE`: the rules `ExecStart=` and
//! `Environment=` use, so list values in a descriptor read exactly like the
//! same values in a unit file.

/// Splits `input` into words. Whitespace separates words; single and double
/// quotes group (and may start mid-word: `a"b c"d` is one word `ab cd`);
/// backslash escapes are C escapes, both inside and outside quotes.
pub fn split(input: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_separator(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        loop {
            let Some(c) = chars.next() else {
                if let Some(q) = quote {
                    return Err(format!("unterminated {q}-quoted word"));
                }
                break;
            };
            match (quote, c) {
                (_, '\0') => return Err("NUL character in value".to_string()),
                (_, '\\') => {
                    let escaped = unescape_one(&mut chars)?;
                    word.push(escaped);
                }
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, _) if is_separator(c) => break,
                _ => word.push(c),
            }
        }
        words.push(word);
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Decodes one C escape after a backslash (`cunescape_one()`), refusing
/// unknown escapes and NUL, as systemd does without the RELAX flag.
fn unescape_one(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    let Some(c) = chars.next() else {
        return Err("trailing backslash".to_string());
    };
    let decoded = match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        's' => ' ',
        '\\' | '"' | '\'' => c,
        // An escaped separator, as in `ExecStart=`.
        ' ' | '\t' => c,
        'x' => code_point(chars, 2, 16)?,
        'u' => code_point(chars, 4, 16)?,
        'U' => code_point(chars, 8, 16)?,
        '0'..='7' => {
            let rest = code_point(chars, 2, 8)?;
            let value = (c as u32 - '0' as u32) * 64 + rest as u32;
            char::from_u32(value).ok_or_else(|| format!("invalid octal escape \\{c}"))?
        }
        _ => return Err(format!("unknown escape sequence \\{c}")),
    };
    if decoded == '\0' {
        return Err("escape sequence decodes to NUL".to_string());
    }
    Ok(decoded)
}

fn code_point(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    digits: usize,
    radix: u32,
) -> Result<char, String> {
    let mut value: u32 = 0;
    for _ in 0..digits {
        let digit = chars
            .next()
            .and_then(|c| c.to_digit(radix))
            .ok_or_else(|| format!("escape needs {digits} base-{radix} digits"))?;
        value = value * radix + digit;
    }
    char::from_u32(value).ok_or_else(|| format!("escape names no character (U+{value:X})"))
}

#[cfg(test)]
mod tests {
    use super::split;

    fn ok(s: &str) -> Vec<String> {
        split(s).unwrap()
    }

    #[test]
    fn plain_words() {
        assert_eq!(ok("  a b\tc  "), ["a", "b", "c"]);
        assert!(ok("   ").is_empty());
    }

    #[test]
    fn quotes_group_and_join() {
        assert_eq!(ok(r#""a b" 'c d'"#), ["a b", "c d"]);
        assert_eq!(ok(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(ok(r#""it's""#), ["it's"]);
        assert_eq!(ok(r#""""#), [""]);
    }

    #[test]
    fn escapes() {
        assert_eq!(ok(r#"a\ b"#), ["a b"]);
        assert_eq!(ok(r#""x\"y" \x41\101\u00e9 \n"#), ["x\"y", "AAé", "\n"]);
        assert_eq!(ok(r"'\\'"), ["\\"]);
    }

    #[test]
    fn errors() {
        assert!(split("\"abc").is_err());
        assert!(split("abc\\").is_err());
        assert!(split("\\q").is_err());
        assert!(split("\\x0").is_err());
        assert!(split("\\x00").is_err());
        assert!(split("\\UFFFFFFFF").is_err());
    }
}
