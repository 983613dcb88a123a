//! Name rules: descriptor (machine) names, unit names, network interfaces.

/// A descriptor name must be a valid machine name, because it becomes the
/// container's machine name and a unit instance: systemd's hostname rules
/// (letters, digits, `-`, `_`, `.`; no leading, trailing or doubled dot;
/// no dash next to a dot; no leading or trailing dash), 1 to 64 characters.
pub fn check_machine_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "{name:?} is not a valid machine name (1 to 64 characters)"
        ));
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
                "{name:?} is not a valid machine name (letters, digits, '-', '_', '.'; \
                 no leading, trailing or doubled dot, no dash beside a dot)"
            ));
        }
        previous = c;
    }
    if previous == '.' || previous == '-' {
        return Err(format!(
            "{name:?} is not a valid machine name (ends in {previous:?})"
        ));
    }
    Ok(())
}

const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// `unit_name_is_valid()`: `PREFIX[@INSTANCE].SUFFIX` with systemd's
/// character set; templates (`foo@.service`) are not accepted, since a
/// dependency needs a concrete unit.
pub fn check_unit_name(name: &str) -> Result<(), String> {
    let bad = || format!("{name:?} is not a valid unit name");
    if name.len() > 255 {
        return Err(bad());
    }
    let (stem, suffix) = name.rsplit_once('.').ok_or_else(bad)?;
    if !UNIT_SUFFIXES.contains(&suffix) || stem.is_empty() {
        return Err(bad());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\".contains(c);
    match stem.split_once('@') {
        None if stem.chars().all(allowed) => Ok(()),
        Some((prefix, instance))
            if !prefix.is_empty()
                && !instance.is_empty()
                && prefix.chars().all(allowed)
                && instance.chars().all(allowed) =>
        {
            Ok(())
        }
        _ => Err(bad()),
    }
}

/// A Linux network interface name (for `--network-bridge=`).
pub fn check_interface_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !"/:%$\"'\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid network interface name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names() {
        for good in ["a", "nginx", "my_app-2", "a.b.c", &"x".repeat(64)] {
            assert!(check_machine_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "-a",
            "a-",
            "a..b",
            "a.-b",
            "a-.b",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(check_machine_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unit_names() {
        for good in ["multi-user.target", "foo@bar.service", "a\\x2db.mount"] {
            assert!(check_unit_name(good).is_ok(), "{good}");
        }
        for bad in [
            "foo",
            "foo.bogus",
            "foo@.service",
            "@a.service",
            "a b.target",
            ".service",
        ] {
            assert!(check_unit_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interfaces() {
        assert!(check_interface_name("br0").is_ok());
        assert!(check_interface_name("a-very-long-name0").is_err());
        assert!(check_interface_name("a/b").is_err());
    }
}
