//! The checks and normalizations of [`RunConfig::validate`]: one function
//! per field, each naming the field and the escaped value when it refuses.

use super::{Healthcheck, RunConfig};
use std::collections::BTreeMap;
use std::fmt;

/// Bounds on what an image may ask for (a whole configuration is already
/// capped in size by the registry client).
const MAX_WORDS: usize = 4096;
const MAX_ARGV_BYTES: usize = 256 * 1024;
const MAX_ENV: usize = 4096;
const MAX_ENV_BYTES: usize = 1024 * 1024;
const MAX_PATH: usize = 4096;
const MAX_LIST: usize = 1024;
const MAX_LABEL_BYTES: usize = 1024 * 1024;
/// Longer than any real check interval; keeps seconds far from overflow.
const MAX_DURATION_NS: u64 = 366 * 24 * 3600 * 1_000_000_000;

/// A refused configuration: which field, which value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: &'static str,
    pub value: String,
    pub why: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "image configuration refused: {} {}: {}",
            self.field, self.value, self.why
        )
    }
}

fn refuse(field: &'static str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        value: shown(value),
        why: why.into(),
    }
}

/// A value as it may appear in a message: escaped and cut short.
fn shown(value: &str) -> String {
    const LIMIT: usize = 80;
    let escaped: String = value.chars().take(LIMIT).collect::<String>();
    let more = if value.chars().count() > LIMIT {
        "…"
    } else {
        ""
    };
    format!("{:?}{more}", escaped)
}

fn no_nul(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.contains('\0') {
        return Err(refuse(field, value, "contains a NUL byte"));
    }
    Ok(())
}

fn no_control(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(refuse(
            field,
            value,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

/// Docker's lexical cleaning of an absolute path (`filepath.Clean`): `.`
/// and empty components dropped, `..` removes the previous component and
/// never climbs above `/`.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A path inside the image: no NUL or control characters, bounded, made
/// absolute and cleaned.
fn image_path(field: &'static str, path: &str) -> Result<String, ConfigError> {
    no_control(field, path)?;
    if path.len() > MAX_PATH {
        return Err(refuse(field, path, "longer than PATH_MAX"));
    }
    if !path.starts_with('/') {
        return Err(refuse(field, path, "is not an absolute path"));
    }
    // systemd-nspawn's --bind= drops a backslash and keeps what follows, so
    // `\..` would become `..` there.
    if path.contains('\\') {
        return Err(refuse(field, path, "contains a backslash"));
    }
    Ok(clean_path(path))
}

fn argv(
    field: &'static str,
    words: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(words) = words else {
        return Ok(None);
    };
    if words.len() > MAX_WORDS {
        return Err(refuse(field, "", format!("more than {MAX_WORDS} words")));
    }
    let total: usize = words.iter().map(String::len).sum();
    if total > MAX_ARGV_BYTES {
        return Err(refuse(
            field,
            "",
            format!("longer than {MAX_ARGV_BYTES} bytes"),
        ));
    }
    for w in &words {
        no_nul(field, w)?;
    }
    Ok(Some(words))
}

/// `NAME=VALUE` entries: a NUL refuses the image; an entry without `=` or
/// with a name systemd would not accept is dropped with a warning, as
/// systemd itself would ignore it in an environment file.
fn env(entries: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if entries.len() > MAX_ENV {
        return Err(refuse("Env", "", format!("more than {MAX_ENV} entries")));
    }
    let total: usize = entries.iter().map(String::len).sum();
    if total > MAX_ENV_BYTES {
        return Err(refuse(
            "Env",
            "",
            format!("longer than {MAX_ENV_BYTES} bytes"),
        ));
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        no_nul("Env", &entry)?;
        match entry.split_once('=') {
            Some((name, _)) if sdme_unitfile::envfile::is_valid_name(name) => out.push(entry),
            _ => eprintln!(
                "warning: ignoring image environment entry {}: not NAME=VALUE with a valid name",
                shown(&entry)
            ),
        }
    }
    Ok(out)
}

/// A uid or gid systemd accepts: not `(uid_t) -1` and not the 16-bit
/// `-1` (`uid_is_valid()`).
pub fn valid_id(id: u32) -> bool {
    id != u32::MAX && id != u32::from(u16::MAX)
}

/// `USER[:GROUP]`: names are looked up in the image's own passwd and
/// group files (never reaching a unit); numbers must be ids systemd takes.
fn user(spec: String) -> Result<String, ConfigError> {
    no_control("User", &spec)?;
    if spec.len() > 512 {
        return Err(refuse("User", &spec, "too long"));
    }
    let parts: Vec<&str> = spec.splitn(2, ':').collect();
    for part in &parts {
        if part.contains(['/', ':']) {
            return Err(refuse("User", &spec, "is not USER[:GROUP]"));
        }
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            match part.parse::<u32>() {
                Ok(id) if valid_id(id) => {}
                _ => {
                    return Err(refuse(
                        "User",
                        &spec,
                        format!("{part} is not a valid uid/gid"),
                    ))
                }
            }
        }
    }
    Ok(spec)
}

fn workdir(dir: String) -> Result<String, ConfigError> {
    // An empty or relative WorkingDir means the root (Docker refuses
    // relative ones when a container is created; images rarely carry them).
    if !dir.starts_with('/') {
        no_control("WorkingDir", &dir)?;
        return Ok(String::new());
    }
    image_path("WorkingDir", &dir)
}

fn volumes(list: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if list.len() > MAX_LIST {
        return Err(refuse(
            "Volumes",
            "",
            format!("more than {MAX_LIST} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for v in list {
        let clean = image_path("Volumes", &v)?;
        if clean == "/" {
            return Err(refuse("Volumes", &v, "a volume cannot be the root"));
        }
        if !out.contains(&clean) {
            out.push(clean);
        }
    }
    Ok(out)
}

/// `PORT[/PROTO]` or `FIRST-LAST/PROTO`, normalized to `PORT/proto`.
fn ports(list: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if list.len() > MAX_LIST {
        return Err(refuse(
            "ExposedPorts",
            "",
            format!("more than {MAX_LIST} entries"),
        ));
    }
    let number = |s: &str| match s.parse::<u16>() {
        Ok(n) if n > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Some(n),
        _ => None,
    };
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for p in list {
        let (range, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
        let proto = proto.to_ascii_lowercase();
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(refuse(
                "ExposedPorts",
                &p,
                "protocol is not tcp, udp or sctp",
            ));
        }
        let ok = match range.split_once('-') {
            Some((a, b)) => matches!((number(a), number(b)), (Some(a), Some(b)) if a <= b),
            None => number(range).is_some(),
        };
        if !ok {
            return Err(refuse(
                "ExposedPorts",
                &p,
                "is not a port number 1..65535 or range",
            ));
        }
        let normalized = format!("{range}/{proto}");
        if !out.contains(&normalized) {
            out.push(normalized);
        }
    }
    Ok(out)
}

/// The signals systemd knows by name (`signal_from_string()`), without `SIG`.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS", "IOT",
];
/// Linux's real-time signal range (glibc reserves 32 and 33).
const SIGRTMIN: u32 = 34;
const SIGRTMAX: u32 = 64;

/// `StopSignal` as a `KillSignal=` value: `SIGQUIT`, `quit`, `3`,
/// `SIGRTMIN+3`; empty when unset; anything else refuses the image.
fn stop_signal(sig: String) -> Result<String, ConfigError> {
    let s = sig.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let bad = || refuse("StopSignal", &sig, "is not a signal systemd knows");
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u32>() {
            Ok(n) if (1..=SIGRTMAX).contains(&n) => Ok(n.to_string()),
            _ => Err(bad()),
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let known = SIGNALS.contains(&name) || rt_signal(name).is_some();
    if known {
        Ok(format!("SIG{name}"))
    } else {
        Err(bad())
    }
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` within Linux's real-time range.
fn rt_signal(name: &str) -> Option<u32> {
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        SIGRTMIN.checked_add(rt_offset(rest, '+')?)?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        SIGRTMAX.checked_sub(rt_offset(rest, '-')?)?
    } else {
        return None;
    };
    (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
}

fn rt_offset(rest: &str, sign: char) -> Option<u32> {
    if rest.is_empty() {
        return Some(0);
    }
    let digits = rest.strip_prefix(sign)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn healthcheck(hc: Option<Healthcheck>) -> Result<Option<Healthcheck>, ConfigError> {
    let Some(mut hc) = hc else {
        return Ok(None);
    };
    hc.test = argv("Healthcheck.Test", Some(hc.test))?.unwrap_or_default();
    if let Some(kind) = hc.test.first() {
        if !matches!(kind.as_str(), "NONE" | "CMD" | "CMD-SHELL") {
            return Err(refuse(
                "Healthcheck.Test",
                kind,
                "is not NONE, CMD or CMD-SHELL",
            ));
        }
    }
    for (field, ns) in [
        ("Healthcheck.Interval", hc.interval),
        ("Healthcheck.Timeout", hc.timeout),
        ("Healthcheck.StartPeriod", hc.start_period),
    ] {
        if ns > MAX_DURATION_NS {
            return Err(refuse(field, &ns.to_string(), "longer than a year"));
        }
    }
    if hc.retries > 1_000_000 {
        return Err(refuse(
            "Healthcheck.Retries",
            &hc.retries.to_string(),
            "too many retries",
        ));
    }
    Ok(Some(hc))
}

fn labels(labels: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ConfigError> {
    let total: usize = labels.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_LABEL_BYTES {
        return Err(refuse(
            "Labels",
            "",
            format!("longer than {MAX_LABEL_BYTES} bytes"),
        ));
    }
    for (k, v) in &labels {
        no_control("Labels", k)?;
        no_nul("Labels", v)?;
    }
    Ok(labels)
}

impl RunConfig {
    /// Checks and normalizes every field (see the module's header); the
    /// result is what the rest of sdme uses.
    pub fn validate(self) -> Result<RunConfig, ConfigError> {
        Ok(RunConfig {
            user: user(self.user)?,
            exposed_ports: ports(self.exposed_ports)?,
            env: env(self.env)?,
            entrypoint: argv("Entrypoint", self.entrypoint)?,
            cmd: argv("Cmd", self.cmd)?,
            volumes: volumes(self.volumes)?,
            working_dir: workdir(self.working_dir)?,
            stop_signal: stop_signal(self.stop_signal)?,
            healthcheck: healthcheck(self.healthcheck)?,
            labels: labels(self.labels)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Result<RunConfig, String> {
        RunConfig::from_image_config(format!("{{\"config\":{json}}}").as_bytes())
    }

    fn refused(json: &str, field: &str) {
        let e = config(json).unwrap_err();
        assert!(
            e.contains(&format!("refused: {field} ")),
            "{json}: expected {field} refused, got {e}"
        );
    }

    #[test]
    fn paths_are_cleaned_against_the_root() {
        let c = config(r#"{"WorkingDir":"/../../../../x/./y//z/..","Volumes":{"/a/../../b":{},"/b/":{},"/c":{}}}"#)
            .unwrap();
        assert_eq!(c.working_dir, "/x/y");
        assert_eq!(c.volumes, ["/b", "/c"]);
        assert_eq!(
            config(r#"{"WorkingDir":"rel/dir"}"#).unwrap().working_dir,
            ""
        );
        assert_eq!(clean_path("/.."), "/");
        assert_eq!(clean_path("//a//b/"), "/a/b");
    }

    #[test]
    fn control_characters_in_paths_and_identities_are_refused() {
        for bad in ["\\n", "\\r", "\\u0000", "\\u001b", "\\u007f", "\\u0085"] {
            refused(
                &format!(r#"{{"WorkingDir":"/srv{bad}ExecStartPre=+/bin/sh"}}"#),
                "WorkingDir",
            );
            refused(&format!(r#"{{"Volumes":{{"/v{bad}":{{}}}}}}"#), "Volumes");
            refused(&format!(r#"{{"User":"app{bad}"}}"#), "User");
            refused(&format!(r#"{{"Labels":{{"k{bad}":"v"}}}}"#), "Labels");
        }
    }

    #[test]
    fn backslashes_in_paths_are_refused() {
        // systemd-nspawn's --bind= would read `\..` as `..`.
        refused(r#"{"Volumes":{"/\\../\\../etc":{}}}"#, "Volumes");
        refused(r#"{"WorkingDir":"/a\\b"}"#, "WorkingDir");
    }

    #[test]
    fn nul_bytes_are_refused_everywhere_else() {
        refused(r#"{"Entrypoint":["/bin/x\u0000y"]}"#, "Entrypoint");
        refused(r#"{"Cmd":["a","b\u0000"]}"#, "Cmd");
        refused(r#"{"Env":["A=x\u0000"]}"#, "Env");
        refused(
            r#"{"Healthcheck":{"Test":["CMD","x\u0000"]}}"#,
            "Healthcheck.Test",
        );
        refused(r#"{"Labels":{"k":"v\u0000"}}"#, "Labels");
        // Line breaks in a command or a value are data, escaped by the unit writer.
        let c = config(r#"{"Cmd":["sh","-c","a\nb"],"Env":["A=x\ny"]}"#).unwrap();
        assert_eq!(c.cmd()[2], "a\nb");
        assert_eq!(c.env, ["A=x\ny"]);
    }

    #[test]
    fn ids_systemd_refuses_are_refused() {
        for bad in [
            "4294967295",
            "65535",
            "1:4294967295",
            "99999999999",
            "a/b",
            "a:b:c",
        ] {
            refused(&format!(r#"{{"User":"{bad}"}}"#), "User");
        }
        for good in [
            "",
            "0",
            "101:101",
            "nginx",
            "nginx:www-data",
            "65534",
            "1000:",
        ] {
            assert_eq!(
                config(&format!(r#"{{"User":"{good}"}}"#)).unwrap().user,
                good
            );
        }
        assert!(valid_id(0) && valid_id(65534) && !valid_id(65535) && !valid_id(u32::MAX));
    }

    #[test]
    fn stop_signals_are_systemd_names_or_refused() {
        let sig = |s: &str| config(&format!(r#"{{"StopSignal":"{s}"}}"#)).map(|c| c.stop_signal);
        assert_eq!(sig("SIGQUIT").unwrap(), "SIGQUIT");
        assert_eq!(sig("quit").unwrap(), "SIGQUIT");
        assert_eq!(sig("15").unwrap(), "15");
        assert_eq!(sig("SIGRTMIN+3").unwrap(), "SIGRTMIN+3");
        assert_eq!(sig("RTMAX-2").unwrap(), "SIGRTMAX-2");
        assert_eq!(sig("").unwrap(), "");
        for bad in [
            "bad sig\\n",
            "SIGFOO",
            "0",
            "65",
            "SIGRTMIN+31",
            "SIGRTMIN-1",
            "RTMAX+1",
            "SIG",
            "%i",
        ] {
            assert!(sig(bad).unwrap_err().contains("StopSignal"), "{bad}");
        }
    }

    #[test]
    fn ports_are_normalized_or_refused() {
        let c =
            config(r#"{"ExposedPorts":{"80/tcp":{},"53/UDP":{},"8000-8010/tcp":{},"9000":{}}}"#)
                .unwrap();
        assert_eq!(
            c.exposed_ports,
            ["53/udp", "80/tcp", "8000-8010/tcp", "9000/tcp"]
        );
        for bad in [
            "0/tcp",
            "65536/tcp",
            "80/icmp",
            "x/tcp",
            "80\\n/tcp",
            "9-8/tcp",
            "/tcp",
            "+80/tcp",
        ] {
            refused(
                &format!(r#"{{"ExposedPorts":{{"{bad}":{{}}}}}}"#),
                "ExposedPorts",
            );
        }
    }

    #[test]
    fn environment_entries_systemd_would_ignore_are_dropped() {
        let c = config(r#"{"Env":["PATH=/bin","lower.dot=x","NOEQUALS","1BAD=x","A=b=c","_u=1"]}"#)
            .unwrap();
        assert_eq!(c.env, ["PATH=/bin", "A=b=c", "_u=1"]);
    }

    #[test]
    fn healthchecks_and_sizes_are_bounded() {
        refused(
            r#"{"Healthcheck":{"Test":["SHELL","x"]}}"#,
            "Healthcheck.Test",
        );
        refused(
            r#"{"Healthcheck":{"Test":["CMD","x"],"Interval":18446744073709551615}}"#,
            "Healthcheck.Interval",
        );
        refused(
            r#"{"Healthcheck":{"Test":["CMD","x"],"Retries":4000000000}}"#,
            "Healthcheck.Retries",
        );
        let many: Vec<String> = (0..5000).map(|i| format!("\"{i}\"")).collect();
        refused(&format!(r#"{{"Cmd":[{}]}}"#, many.join(",")), "Cmd");
        let huge = "x".repeat(300 * 1024);
        refused(&format!(r#"{{"Entrypoint":["{huge}"]}}"#), "Entrypoint");
        let long = format!("/{}", "d".repeat(5000));
        refused(&format!(r#"{{"WorkingDir":"{long}"}}"#), "WorkingDir");
    }

    #[test]
    fn messages_escape_and_shorten_the_value() {
        let e = config(r#"{"WorkingDir":"/a\nb"}"#).unwrap_err();
        assert!(e.contains(r#""/a\nb""#) && !e.contains('\n'), "{e}");
        let e = config(&format!(r#"{{"WorkingDir":"/{}\u0001"}}"#, "d".repeat(200))).unwrap_err();
        assert!(e.contains('…') && e.len() < 300, "{e}");
    }
}
