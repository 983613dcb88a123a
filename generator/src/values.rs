//! Parsers for typed descriptor values. Each returns a normalized value or
//! a message saying what is wrong; callers add file and line.

/// Volume syntax and paths are the launcher's rules (sdme-launch), so that
/// a descriptor accepts exactly what `sdme-nspawn` will.
pub use sdme_launch::{check_absolute_path, parse_volume, Volume};

pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Ok(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (yes/no)")),
    }
}

/// Picks `s` from `allowed`, or says which values are allowed.
pub fn parse_choice(s: &str, allowed: &[&'static str]) -> Result<&'static str, String> {
    allowed
        .iter()
        .find(|a| **a == s)
        .copied()
        .ok_or_else(|| format!("{s:?} is not one of {}", allowed.join(", ")))
}

/// A systemd time span in microseconds; `None` is `infinity`.
pub type Timespan = Option<u64>;

const TIME_UNITS: &[(&str, u64)] = &[
    ("usec", 1),
    ("us", 1),
    ("µs", 1),
    ("μs", 1),
    ("msec", 1_000),
    ("ms", 1_000),
    ("seconds", 1_000_000),
    ("second", 1_000_000),
    ("sec", 1_000_000),
    ("s", 1_000_000),
    ("minutes", 60_000_000),
    ("minute", 60_000_000),
    ("min", 60_000_000),
    ("months", 2_629_800_000_000),
    ("month", 2_629_800_000_000),
    ("M", 2_629_800_000_000),
    ("m", 60_000_000),
    ("hours", 3_600_000_000),
    ("hour", 3_600_000_000),
    ("hr", 3_600_000_000),
    ("h", 3_600_000_000),
    ("days", 86_400_000_000),
    ("day", 86_400_000_000),
    ("d", 86_400_000_000),
    ("weeks", 604_800_000_000),
    ("week", 604_800_000_000),
    ("w", 604_800_000_000),
    ("years", 31_557_600_000_000),
    ("year", 31_557_600_000_000),
    ("y", 31_557_600_000_000),
];

/// `parse_sec()`: `infinity`, or one or more `NUMBER[UNIT]` parts (`1h 30min`,
/// `55s500ms`, `1.5`); a bare number is seconds.
pub fn parse_timespan(s: &str) -> Result<Timespan, String> {
    let bad = || format!("{s:?} is not a time span (e.g. 30s, 5min, 1h 30min, infinity)");
    if s == "infinity" {
        return Ok(None);
    }
    let mut rest = s.trim_start();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(bad());
        }
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| c.is_whitespace() || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let factor = if unit.is_empty() {
            1_000_000
        } else {
            TIME_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, f)| *f)
                .ok_or_else(bad)?
        };
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(factor).ok_or_else(bad)?;
        let mut scale = factor;
        for digit in fraction.chars().filter_map(|c| c.to_digit(10)) {
            scale /= 10;
            part = part.checked_add(u64::from(digit) * scale).ok_or_else(bad)?;
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = after.trim_start();
    }
    Ok(Some(total))
}

/// Seconds as a plain decimal number (`30`, `0.5`), the form the launcher's
/// `--health-*=SEC` options take; a plain number is also a valid systemd span.
pub fn format_seconds(usec: u64) -> String {
    let (secs, micros) = (usec / 1_000_000, usec % 1_000_000);
    if micros == 0 {
        return secs.to_string();
    }
    let fraction = format!("{micros:06}");
    format!("{secs}.{}", fraction.trim_end_matches('0'))
}

/// A time span for a unit file, in the largest exact units (`1h30min`).
pub fn format_timespan(span: Timespan) -> String {
    let Some(mut usec) = span else {
        return "infinity".to_string();
    };
    if usec == 0 {
        return "0".to_string();
    }
    let units = [
        ("d", 86_400_000_000u64),
        ("h", 3_600_000_000),
        ("min", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
        ("us", 1),
    ];
    let mut out = String::new();
    for (name, size) in units {
        if usec >= size {
            out.push_str(&format!("{}{name}", usec / size));
            usec %= size;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub protocol: &'static str,
    /// The host address to listen on (`Port=IP:HOST:CONTAINER`); `None`:
    /// every address (nspawn's forward) and 127.0.0.1 (a proxy).
    pub address: Option<std::net::IpAddr>,
    pub host: u16,
    pub container: u16,
}

impl Port {
    /// `ListenStream=` of the proxy: `IP:HOST`, `[IPv6]:HOST`.
    pub fn listen(&self) -> String {
        match self.address {
            None => format!("127.0.0.1:{}", self.host),
            Some(std::net::IpAddr::V4(a)) => format!("{a}:{}", self.host),
            Some(std::net::IpAddr::V6(a)) => format!("[{a}]:{}", self.host),
        }
    }
}

/// `[IP:]HOST[:CONTAINER][/tcp|/udp]` (IPv6 addresses in brackets), or
/// nspawn's own `[tcp|udp:]HOST[:CONTAINER]`.
pub fn parse_port(s: &str) -> Result<Port, String> {
    let bad = |why: &str| {
        format!(
            "{s:?} is not a port mapping ([IP:]HOST[:CONTAINER][/tcp|/udp] or \
             [tcp|udp:]HOST[:CONTAINER]): {why}"
        )
    };
    let (rest, suffix) = match s.rsplit_once('/') {
        Some((rest, proto)) => (
            rest,
            Some(parse_choice(proto, &["tcp", "udp"]).map_err(|e| bad(&e))?),
        ),
        None => (s, None),
    };
    let (address, rest) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6
            .split_once("]:")
            .ok_or_else(|| bad("an IPv6 address is written [ADDRESS]:HOST"))?;
        let addr: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| bad(&format!("{addr:?} is not an IPv6 address")))?;
        (Some(std::net::IpAddr::V6(addr)), after)
    } else {
        match rest.split_once(':') {
            Some((first, after)) if first.contains('.') => {
                let addr: std::net::Ipv4Addr = first
                    .parse()
                    .map_err(|_| bad(&format!("{first:?} is not an IPv4 address")))?;
                (Some(std::net::IpAddr::V4(addr)), after)
            }
            _ => (None, rest),
        }
    };
    let mut parts: Vec<&str> = rest.split(':').collect();
    let prefix = match parts.first() {
        Some(first) if address.is_none() && first.chars().any(|c| !c.is_ascii_digit()) => {
            let p = parse_choice(first, &["tcp", "udp"]).map_err(|e| bad(&e))?;
            parts.remove(0);
            Some(p)
        }
        _ => None,
    };
    let protocol = match (prefix, suffix) {
        (Some(_), Some(_)) => return Err(bad("the protocol is given twice")),
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => "tcp",
    };
    if address.is_some() && protocol != "tcp" {
        return Err(bad(
            "a host address needs tcp (systemd-socket-proxyd forwards streams only)",
        ));
    }
    let number = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(bad(&format!("{p:?} is not a port number 1..65535"))),
    };
    let (host, container) = match parts.as_slice() {
        [host] => (number(host)?, number(host)?),
        [host, container] => (number(host)?, number(container)?),
        _ => return Err(bad("wrong number of ':'")),
    };
    Ok(Port {
        protocol,
        address,
        host,
        container,
    })
}

/// `OS/ARCH[/VARIANT]`, lowercase OCI platform names.
pub fn check_platform(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' || c == '.'
                })
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a platform (OS/ARCH[/VARIANT], e.g. linux/arm64/v8)"
        ))
    }
}

/// `USER[:GROUP]`, each a user/group name or a number.
pub fn check_user(s: &str) -> Result<(), String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 256
            && !n.starts_with('-')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    };
    let ok = match s.split_once(':') {
        Some((user, group)) => name_ok(user) && name_ok(group),
        None => name_ok(s),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not USER[:GROUP] (names or numbers)"))
    }
}

/// `NAME=VALUE` for an environment variable (the launcher's rule).
pub fn check_env_assignment(s: &str) -> Result<(), String> {
    sdme_launch::parse_env_assignment(s).map(|_| ())
}

/// A decimal number with an optional fraction, and its digits after the point.
fn decimal(s: &str) -> Option<(u64, u32)> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    if s.ends_with('.') || fraction.len() > 6 {
        return None;
    }
    let digits: u64 = format!("{whole}{fraction}").parse().ok()?;
    Some((digits, fraction.len() as u32))
}

/// A percentage `N%` with up to two decimals; `max` bounds it (None: unbounded).
fn check_percent(s: &str, max: Option<u64>) -> bool {
    let Some(number) = s.strip_suffix('%') else {
        return false;
    };
    match decimal(number) {
        Some((digits, places)) if places <= 2 => {
            let hundredths = digits * 10u64.pow(2 - places);
            hundredths > 0 && max.map_or(true, |m| hundredths <= m * 100)
        }
        _ => false,
    }
}

/// `MemoryMax=`: bytes with an optional K/M/G/T/P/E suffix (base 1024), a
/// percentage of physical memory, or `infinity`.
pub fn check_memory(s: &str) -> Result<(), String> {
    let number = s.strip_suffix(['K', 'M', 'G', 'T', 'P', 'E']).unwrap_or(s);
    if s == "infinity" || check_percent(s, Some(100)) || decimal(number).is_some() {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a memory size (e.g. 512M, 2G, 50%, infinity)"
        ))
    }
}

/// `CPUQuota=`: a percentage greater than zero (may exceed 100%).
pub fn check_cpu_quota(s: &str) -> Result<(), String> {
    if check_percent(s, None) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a CPU quota (e.g. 50%, 200%)"))
    }
}

/// `TasksMax=`: a count, a percentage, or `infinity`.
pub fn check_tasks(s: &str) -> Result<(), String> {
    let count = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit())
        && s.parse::<u64>().is_ok_and(|n| n > 0);
    if s == "infinity" || count || check_percent(s, Some(100)) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a task limit (e.g. 512, 10%, infinity)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("30"), Ok(Some(30_000_000)));
        assert_eq!(parse_timespan("1h 30min"), Ok(Some(5_400_000_000)));
        assert_eq!(parse_timespan("55s500ms"), Ok(Some(55_500_000)));
        assert_eq!(parse_timespan("1.5s"), Ok(Some(1_500_000)));
        assert_eq!(parse_timespan("2 m"), Ok(Some(120_000_000)));
        assert_eq!(parse_timespan("1M"), Ok(Some(2_629_800_000_000)));
        assert_eq!(parse_timespan("infinity"), Ok(None));
        for bad in [
            "",
            "x",
            "5 parsecs",
            "1..2s",
            "-1s",
            ".",
            "99999999999999999999",
        ] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn span_formats() {
        assert_eq!(format_seconds(30_000_000), "30");
        assert_eq!(format_seconds(1_500_000), "1.5");
        assert_eq!(format_timespan(Some(5_400_000_000)), "1h30min");
        assert_eq!(format_timespan(Some(1_500)), "1ms500us");
        assert_eq!(format_timespan(None), "infinity");
    }

    #[test]
    fn paths() {
        assert!(check_absolute_path("/").is_ok());
        assert!(check_absolute_path("/a/b c").is_ok());
        for bad in ["a", "/a/", "/a//b", "/a/../b", "/./a", "/a\nb", ""] {
            assert!(check_absolute_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_port("8080:80"),
            Ok(Port {
                protocol: "tcp",
                address: None,
                host: 8080,
                container: 80
            })
        );
        assert_eq!(
            parse_port("udp:53:53"),
            Ok(Port {
                protocol: "udp",
                address: None,
                host: 53,
                container: 53
            })
        );
        assert_eq!(
            parse_port("443"),
            Ok(Port {
                protocol: "tcp",
                address: None,
                host: 443,
                container: 443
            })
        );
        let at = |a: &str, h, c| Port {
            protocol: "tcp",
            address: Some(a.parse().unwrap()),
            host: h,
            container: c,
        };
        assert_eq!(
            parse_port("127.0.0.1:8080:80"),
            Ok(at("127.0.0.1", 8080, 80))
        );
        assert_eq!(
            parse_port("10.0.0.1:8080:80/tcp"),
            Ok(at("10.0.0.1", 8080, 80))
        );
        assert_eq!(parse_port("[::1]:8443:443"), Ok(at("::1", 8443, 443)));
        assert_eq!(parse_port("[fe80::1]:99"), Ok(at("fe80::1", 99, 99)));
        assert_eq!(at("::1", 1, 2).listen(), "[::1]:1");
        assert_eq!(
            parse_port("8080:80/tcp").unwrap().listen(),
            "127.0.0.1:8080"
        );
        assert_eq!(parse_port("53:53/udp").unwrap().protocol, "udp");
        for bad in [
            "0:1",
            "65536:1",
            "sctp:1:2",
            "1:2:3",
            "tcp:",
            "+1:2",
            "",
            "tcp:1:2/tcp",
            "1.2.3.4:53:53/udp",
            "1.2.3:1:2",
            "::1:80:80",
            "[::1:80:80",
            "[nope]:1:2",
            "1:2/sctp",
            "1.2.3.4:tcp:1:2",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("/data"),
            Ok(Volume::Anonymous {
                container: "/data".into()
            })
        );
        assert_eq!(
            parse_volume("/srv:/data:ro"),
            Ok(Volume::Bind {
                host: "/srv".into(),
                container: "/data".into(),
                read_only: true
            })
        );
        for bad in ["data", "/a:/b:rx", "/a:b", "/a:/b:ro:x"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        for good in ["512M", "1.5G", "1024", "50%", "infinity"] {
            assert!(check_memory(good).is_ok(), "{good}");
        }
        for bad in ["512MB", "-1", "150%", "lots", "M"] {
            assert!(check_memory(bad).is_err(), "{bad}");
        }
        assert!(check_cpu_quota("250%").is_ok());
        assert!(check_cpu_quota("0%").is_err());
        assert!(check_cpu_quota("50").is_err());
        assert!(check_tasks("100").is_ok());
        assert!(check_tasks("0").is_err());
        assert!(check_tasks("10%").is_ok());
    }

    #[test]
    fn misc() {
        assert!(check_platform("linux/arm64/v8").is_ok());
        assert!(check_platform("linux").is_err());
        assert!(check_user("100:101").is_ok());
        assert!(check_user("-x").is_err());
        assert!(check_env_assignment("A_1=x y").is_ok());
        assert!(check_env_assignment("1A=x").is_err());
        assert!(check_env_assignment("A").is_err());
        assert_eq!(parse_bool("Yes"), Ok(true));
    }
}
