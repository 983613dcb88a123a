//! Container and connector names follow systemd's machine-name rules, as the
//! generator checks them (see sdme.oci(5)).

pub fn check_machine_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?} is not a valid name (1 to 64 characters)"));
    }
    let mut previous = '.';
    for c in name.chars() {
        let ok = match c {
            '.' => previous != '.' && previous != '-',
            '-' => previous != '.',
            _ => c.is_ascii_alphanumeric() || c == '_',
        };
        if !ok {
            return Err(format!(
                "{name:?} is not a valid name (letters, digits, '-', '_', '.'; \
                 no leading, trailing or doubled dot, no dash beside a dot)"
            ));
        }
        previous = c;
    }
    if previous == '.' || previous == '-' {
        return Err(format!(
            "{name:?} is not a valid name (ends in {previous:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "nginx", "my_app-2", "a.b.c"] {
            assert!(check_machine_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "-a",
            "a-",
            "a..b",
            "a/b",
            "a b",
            "../x",
            &"x".repeat(65),
        ] {
            assert!(check_machine_name(bad).is_err(), "{bad}");
        }
    }
}
