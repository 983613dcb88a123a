//! containers-registries.conf(5), version 2: where a reference is really
//! pulled from (mirrors, remapped locations), which registries are blocked or
//! insecure, and how short names resolve (search registries, aliases,
//! `short-name-mode`).
//!
//! Files are read in the order containers/image reads them: the main file,
//! then `registries.conf.d/*.conf` in lexical order, each overriding the
//! ones before: a `[[registry]]` replaces the one with the same `prefix`,
//! `unqualified-search-registries` and `short-name-mode` replace the earlier
//! value when a later file sets them, and `[aliases]` entries override one by
//! one (an empty value removes the alias).

use crate::error::{Error, ErrorKind};
use crate::reference::{self, Reference};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The system's main file.
pub const SYSTEM_FILE: &str = "/etc/containers/registries.conf";
/// The system's drop-in directory.
pub const SYSTEM_DROPIN_DIR: &str = "/etc/containers/registries.conf.d";

/// Largest configuration file read (they are a few kilobytes).
const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// How to treat a short name with several search registries and no alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortNameMode {
    /// Ambiguity is an error (sdme has no terminal to ask on).
    Enforcing,
    /// Try every search registry in order (the default).
    Permissive,
    /// Try every search registry in order.
    Disabled,
}

/// Which mirrors serve which pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFromMirror {
    All,
    DigestOnly,
    TagOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    pub pull_from_mirror: PullFromMirror,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// What a reference must start with (`*.host` for subdomains); defaults to `location`.
    pub prefix: String,
    /// Where the prefix's namespace really is; empty only for a wildcard prefix (no rewrite).
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
    /// `FILE:LINE` of the table, for messages.
    pub origin: String,
}

/// The merged configuration of every file read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistriesConf {
    /// Sorted by prefix, one entry per prefix.
    pub registries: Vec<RegistryEntry>,
    /// `unqualified-search-registries` and the `FILE:LINE` that set it.
    pub search: Option<(Vec<String>, String)>,
    /// `short-name-mode` and the `FILE:LINE` that set it.
    pub short_name_mode: Option<(ShortNameMode, String)>,
    /// Short name → fully-qualified name (no tag), with the `FILE:LINE` of each.
    pub aliases: BTreeMap<String, (String, String)>,
    /// Keys read but not understood, as `FILE:LINE: key`: for a warning.
    pub ignored: Vec<String>,
}

/// One place to pull from, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The reference as this endpoint knows it (rewritten for a mirror or location).
    pub reference: Reference,
    /// Plain http and unverified TLS allowed (`insecure = true`).
    pub insecure: bool,
    /// True for a `[[registry.mirror]]`, false for the registry's own location.
    pub mirror: bool,
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

/// The configuration of this machine, or `None` when neither the main file
/// nor any drop-in exists (references are then pulled as written).
pub fn load_system() -> Result<Option<RegistriesConf>, Error> {
    load(Path::new(SYSTEM_FILE), Some(Path::new(SYSTEM_DROPIN_DIR)))
}

/// Reads `main` (absent is fine) and the `*.conf` files of `dropin_dir`.
pub fn load(main: &Path, dropin_dir: Option<&Path>) -> Result<Option<RegistriesConf>, Error> {
    let mut files = Vec::new();
    if let Some(text) = read_file(main)? {
        files.push((main.to_path_buf(), text));
    }
    if let Some(dir) = dropin_dir {
        for path in dropins(dir)? {
            if let Some(text) = read_file(&path)? {
                files.push((path, text));
            }
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut conf = RegistriesConf::default();
    for (path, text) in &files {
        conf.merge(parse(text, &path.display().to_string())?);
    }
    Ok(Some(conf))
}

/// Reads one file that must exist (an explicitly named configuration).
pub fn load_file(path: &Path) -> Result<RegistriesConf, Error> {
    let text = read_file(path)?
        .ok_or_else(|| config_error(format!("{}: no such file", path.display())))?;
    let mut conf = RegistriesConf::default();
    conf.merge(parse(&text, &path.display().to_string())?);
    Ok(conf)
}

fn read_file(path: &Path) -> Result<Option<String>, Error> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(config_error(format!("{}: {e}", path.display()))),
    };
    let mut data = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| config_error(format!("{}: {e}", path.display())))?;
    if data.len() as u64 > MAX_FILE_SIZE {
        return Err(config_error(format!(
            "{}: larger than {MAX_FILE_SIZE} bytes",
            path.display()
        )));
    }
    String::from_utf8(data)
        .map(Some)
        .map_err(|_| config_error(format!("{}: not UTF-8", path.display())))
}

/// `DIR/*.conf`, regular files only, in lexical order; a missing directory is empty.
fn dropins(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(config_error(format!("{}: {e}", dir.display()))),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| config_error(format!("{}: {e}", dir.display())))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "conf") && !path.is_dir() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// What one file says, before merging.
#[derive(Debug, Default)]
struct FileConf {
    registries: Vec<RegistryEntry>,
    search: Option<(Vec<String>, String)>,
    short_name_mode: Option<(ShortNameMode, String)>,
    aliases: Vec<(String, String, String)>,
    ignored: Vec<String>,
}

/// Keys containers/image knows that sdme does not use.
const KNOWN_UNUSED: &[&str] = &["credential-helpers", "additional-layer-store-auth-helper"];

/// A view of one TOML table with `FILE:LINE` for each key, for messages.
struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    text: &'a str,
    file: &'a str,
    /// The table's name in messages (`[[registry]]`, …), empty at top level.
    name: String,
}

impl<'a, 'i> Table<'a, 'i> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn at(&self, span: std::ops::Range<usize>) -> String {
        format!("{}:{}", self.file, self.line(span))
    }

    /// `FILE:LINE` of the table's first key (keys are iterated sorted, not in file order).
    fn first_line(&self) -> String {
        let start = self.table.iter().map(|(k, _)| k.span().start).min();
        self.at(start.map_or(0..0, |s| s..s))
    }

    fn key_name(&self, key: &str) -> String {
        if self.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.name)
        }
    }

    fn error(&self, span: std::ops::Range<usize>, key: &str, why: impl std::fmt::Display) -> Error {
        config_error(format!("{}: {}: {why}", self.at(span), self.key_name(key)))
    }

    fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    fn string(&self, key: &str) -> Result<Option<(String, String)>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::String(s) => Ok(Some((s.to_string(), self.at(v.span())))),
            other => Err(self.error(
                v.span(),
                key,
                format!("expected a string, got {}", other.type_str()),
            )),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool, Error> {
        let Some(v) = self.get(key) else {
            return Ok(false);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.error(
                v.span(),
                key,
                format!("expected true or false, got {}", other.type_str()),
            )),
        }
    }

    fn strings(&self, key: &str) -> Result<Option<(Vec<String>, String)>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.error(
                v.span(),
                key,
                format!(
                    "expected an array of strings, got {}",
                    v.get_ref().type_str()
                ),
            ));
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                other => {
                    return Err(self.error(
                        item.span(),
                        key,
                        format!("expected a string, got {}", other.type_str()),
                    ))
                }
            }
        }
        Ok(Some((out, self.at(v.span()))))
    }

    /// Each table of an array of tables (`[[key]]`).
    fn tables(&self, key: &str, name: &str) -> Result<Vec<Table<'a, 'i>>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.error(
                v.span(),
                key,
                format!(
                    "expected [[{}]] tables, got {}",
                    self.key_name(key),
                    v.get_ref().type_str()
                ),
            ));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::Table(t) => Ok(Table {
                    table: t,
                    text: self.text,
                    file: self.file,
                    name: name.to_string(),
                }),
                other => Err(self.error(
                    item.span(),
                    key,
                    format!("expected a table, got {}", other.type_str()),
                )),
            })
            .collect()
    }

    /// Records every key not in `known` as ignored.
    fn unknown_keys(&self, known: &[&str], ignored: &mut Vec<String>) {
        let mut unknown: Vec<_> = self
            .table
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !known.contains(&k.get_ref().as_ref()))
            .collect();
        unknown.sort_by_key(|k| k.span().start);
        for k in unknown {
            ignored.push(format!(
                "{}: {}",
                self.at(k.span()),
                self.key_name(k.get_ref())
            ));
        }
    }
}

/// Trims trailing slashes and refuses URL schemes, as containers/image does.
fn clean_location(value: &str, at: &str, key: &str) -> Result<String, Error> {
    let trimmed = value.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(config_error(format!(
            "{at}: {key}: {value:?}: a location has no URL scheme (use insecure = true for plain http)"
        )));
    }
    Ok(trimmed.to_string())
}

fn check_prefix(prefix: &str, at: &str, key: &str) -> Result<(), Error> {
    if let Some(host) = prefix.strip_prefix("*.") {
        if host.contains(['/', ':', '*']) || !reference::valid_domain(host) {
            return Err(config_error(format!(
                "{at}: {key}: {prefix:?}: a wildcard prefix is *.HOST and nothing more"
            )));
        }
        return Ok(());
    }
    reference::check_qualified_prefix(prefix)
        .map_err(|why| config_error(format!("{at}: {key}: {why}")))
}

fn parse_registry(t: &Table, ignored: &mut Vec<String>) -> Result<RegistryEntry, Error> {
    let origin = t.first_line();
    t.unknown_keys(
        &[
            "prefix",
            "location",
            "insecure",
            "blocked",
            "mirror-by-digest-only",
            "mirror",
        ],
        ignored,
    );
    if let Some(v) = t.get("pull-from-mirror") {
        return Err(t.error(
            v.span(),
            "pull-from-mirror",
            "belongs in a [[registry.mirror]] table",
        ));
    }
    let location = match t.string("location")? {
        Some((l, at)) => clean_location(&l, &at, "registry.location")?,
        None => String::new(),
    };
    let prefix = match t.string("prefix")? {
        Some((p, at)) => {
            let p = clean_location(&p, &at, "registry.prefix")?;
            check_prefix(&p, &at, "registry.prefix")?;
            if location.is_empty() && !p.starts_with("*.") {
                return Err(config_error(format!(
                    "{at}: registry.location: missing (only a wildcard prefix *.HOST may go without one)"
                )));
            }
            p
        }
        None if location.is_empty() => {
            return Err(config_error(format!(
                "{origin}: registry: neither prefix nor location is set"
            )))
        }
        None => location.clone(),
    };
    if !location.is_empty() {
        let at = t.string("location")?.map_or(origin.clone(), |(_, at)| at);
        reference::check_qualified_prefix(&location)
            .map_err(|why| config_error(format!("{at}: registry.location: {why}")))?;
    }
    let mirror_by_digest_only = t.boolean("mirror-by-digest-only")?;
    let mut mirrors = Vec::new();
    for m in t.tables("mirror", "registry.mirror")? {
        m.unknown_keys(&["location", "insecure", "pull-from-mirror"], ignored);
        let m_origin = m.first_line();
        let (raw, at) = m.string("location")?.ok_or_else(|| {
            config_error(format!("{m_origin}: registry.mirror.location: missing"))
        })?;
        let location = clean_location(&raw, &at, "registry.mirror.location")?;
        reference::check_qualified_prefix(&location)
            .map_err(|why| config_error(format!("{at}: registry.mirror.location: {why}")))?;
        let pull_from_mirror = match m.string("pull-from-mirror")? {
            None => PullFromMirror::All,
            Some((v, at)) => {
                if mirror_by_digest_only {
                    return Err(config_error(format!(
                        "{at}: registry.mirror.pull-from-mirror: not allowed with the registry's \
                         mirror-by-digest-only = true (say one or the other)"
                    )));
                }
                match v.as_str() {
                    "" | "all" => PullFromMirror::All,
                    "digest-only" => PullFromMirror::DigestOnly,
                    "tag-only" => PullFromMirror::TagOnly,
                    other => {
                        return Err(config_error(format!(
                            "{at}: registry.mirror.pull-from-mirror: {other:?}: expected all, \
                             digest-only or tag-only"
                        )))
                    }
                }
            }
        };
        mirrors.push(Mirror {
            location,
            insecure: m.boolean("insecure")?,
            pull_from_mirror,
        });
    }
    Ok(RegistryEntry {
        prefix,
        location,
        insecure: t.boolean("insecure")?,
        blocked: t.boolean("blocked")?,
        mirror_by_digest_only,
        mirrors,
        origin,
    })
}

/// Parses one file's text; `file` names it in messages.
fn parse(text: &str, file: &str) -> Result<FileConf, Error> {
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| {
                text.as_bytes()[..s.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            })
            .unwrap_or(1);
        config_error(format!("{file}:{line}: not valid TOML: {}", e.message()))
    })?;
    let top = Table {
        table: doc.get_ref(),
        text,
        file,
        name: String::new(),
    };
    let mut out = FileConf::default();
    if let Some(v) = top.get("registries") {
        return Err(top.error(
            v.span(),
            "registries",
            "this is the version 1 format ([registries.search] …), which sdme does not read; \
             write unqualified-search-registries and [[registry]] tables (version 2)",
        ));
    }
    let mut known = vec![
        "unqualified-search-registries",
        "short-name-mode",
        "registry",
        "aliases",
    ];
    known.extend_from_slice(KNOWN_UNUSED);
    top.unknown_keys(&known, &mut out.ignored);
    for key in KNOWN_UNUSED {
        if let Some(v) = top.get(key) {
            out.ignored
                .push(format!("{}: {key} (not used by sdme)", top.at(v.span())));
        }
    }
    if let Some((list, at)) = top.strings("unqualified-search-registries")? {
        let mut cleaned = Vec::new();
        for r in list {
            let r = clean_location(&r, &at, "unqualified-search-registries")?;
            if r.contains('/') || !reference::valid_domain(&r) {
                return Err(config_error(format!(
                    "{at}: unqualified-search-registries: {r:?} is not a HOST[:PORT]"
                )));
            }
            cleaned.push(r);
        }
        out.search = Some((cleaned, at));
    }
    if let Some((mode, at)) = top.string("short-name-mode")? {
        let mode = match mode.as_str() {
            "enforcing" => Some(ShortNameMode::Enforcing),
            "permissive" => Some(ShortNameMode::Permissive),
            "disabled" => Some(ShortNameMode::Disabled),
            // Empty means "not set", as in containers/image.
            "" => None,
            other => {
                return Err(config_error(format!(
                    "{at}: short-name-mode: {other:?}: expected enforcing, permissive or disabled"
                )))
            }
        };
        out.short_name_mode = mode.map(|m| (m, at));
    }
    for t in top.tables("registry", "registry")? {
        out.registries.push(parse_registry(&t, &mut out.ignored)?);
    }
    check_conflicts(&out.registries)?;
    if let Some(v) = top.get("aliases") {
        let DeValue::Table(aliases) = v.get_ref() else {
            return Err(top.error(v.span(), "aliases", "expected a table"));
        };
        let t = Table {
            table: aliases,
            text,
            file,
            name: "aliases".into(),
        };
        for (k, _) in aliases.iter() {
            let name: &str = k.get_ref();
            let (value, at) = t.string(name)?.unwrap_or_default();
            check_alias(name, &value, &at)?;
            out.aliases.push((name.to_string(), value, at));
        }
    }
    Ok(out)
}

/// An alias maps a short name without tag or digest to a qualified name without tag or digest.
fn check_alias(name: &str, value: &str, at: &str) -> Result<(), Error> {
    let bad = |why: String| config_error(format!("{at}: aliases.{name:?}: {why}"));
    if !reference::is_short_name(name) || name.contains([':', '@']) {
        return Err(bad(
            "the name must be a short name, without registry, tag or digest".into(),
        ));
    }
    Reference::parse(name).map_err(|e| bad(e.message().to_string()))?;
    if value.is_empty() {
        return Ok(());
    }
    let last = value.rsplit('/').next().unwrap_or(value);
    if reference::is_short_name(value) || last.contains(':') || value.contains('@') {
        return Err(bad(format!(
            "{value:?}: the value must be a fully-qualified name without tag or digest"
        )));
    }
    Reference::parse(value).map_err(|e| bad(e.message().to_string()))?;
    Ok(())
}

/// The same location (or wildcard prefix) listed twice must agree on `insecure` and `blocked`.
fn check_conflicts(registries: &[RegistryEntry]) -> Result<(), Error> {
    for (i, a) in registries.iter().enumerate() {
        let key_a = if a.location.is_empty() {
            &a.prefix
        } else {
            &a.location
        };
        for b in &registries[..i] {
            let key_b = if b.location.is_empty() {
                &b.prefix
            } else {
                &b.location
            };
            if key_a != key_b {
                continue;
            }
            for (setting, differs) in [
                ("insecure", a.insecure != b.insecure),
                ("blocked", a.blocked != b.blocked),
            ] {
                if differs {
                    return Err(config_error(format!(
                        "{}: registry {key_a:?} is defined again (first at {}) with a different {setting} setting",
                        a.origin, b.origin
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Does `reference` (its full string) start with `prefix`, followed by a
/// separator? Returns the length of the matched part, as containers/image's
/// refMatchingPrefix does, less its documented quirk ("DON'T RELY ON" it): a
/// prefix that is only a host does not match the same host with a port
/// (`reg.example` is not `reg.example:5000`), since the rewrite would be nonsense.
fn matching_prefix_len(reference: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        // `*.example.com`: any subdomains, within the host part only.
        let index = reference.find(domain)?;
        if reference[..index].contains('/') {
            return None;
        }
        let end = index + domain.len();
        return (reference.as_bytes().get(end) == Some(&b'/')).then_some(end);
    }
    let rest = reference.strip_prefix(prefix)?;
    let separators: &[u8] = if prefix.contains('/') { b":/@" } else { b"/" };
    match rest.as_bytes().first() {
        None => Some(prefix.len()),
        Some(c) if separators.contains(c) => Some(prefix.len()),
        _ => None,
    }
}

impl RegistriesConf {
    /// Merges a later file into this one (see the module's comment).
    fn merge(&mut self, file: FileConf) {
        let mut by_prefix: BTreeMap<String, RegistryEntry> = std::mem::take(&mut self.registries)
            .into_iter()
            .map(|r| (r.prefix.clone(), r))
            .collect();
        for r in file.registries {
            by_prefix.insert(r.prefix.clone(), r);
        }
        self.registries = by_prefix.into_values().collect();
        if file.search.is_some() {
            self.search = file.search;
        }
        if file.short_name_mode.is_some() {
            self.short_name_mode = file.short_name_mode;
        }
        for (name, value, at) in file.aliases {
            if value.is_empty() {
                self.aliases.remove(&name);
            } else {
                self.aliases.insert(name, (value, at));
            }
        }
        self.ignored.extend(file.ignored);
    }

    /// The `[[registry]]` whose prefix is the longest that `reference` starts with.
    pub fn registry_for(&self, reference: &Reference) -> Option<&RegistryEntry> {
        let s = reference.to_string();
        self.registries
            .iter()
            .filter(|r| matching_prefix_len(&s, &r.prefix).is_some())
            .max_by_key(|r| r.prefix.len())
    }

    /// The fully-qualified references a source string may mean, in the order
    /// to try them: itself if it names a registry; else its alias; else one
    /// per search registry (docker.io when none is configured, as without
    /// any configuration).
    pub fn candidates(&self, source: &str) -> Result<Vec<Reference>, Error> {
        if !reference::is_short_name(source) {
            return Ok(vec![Reference::parse(source)?]);
        }
        // Validates the short name itself before any lookup.
        Reference::parse(source)?;
        let (name, suffix) = split_name(source);
        if let Some((value, at)) = self.aliases.get(name) {
            return Reference::parse(&format!("{value}{suffix}"))
                .map(|r| vec![r])
                .map_err(|e| e.context(format!("alias {name:?} ({at})")));
        }
        let Some((search, search_at)) = self.search.as_ref().filter(|(s, _)| !s.is_empty()) else {
            return Ok(vec![Reference::parse(source)?]);
        };
        let candidates = search
            .iter()
            .map(|r| Reference::parse(&format!("{r}/{source}")))
            .collect::<Result<Vec<_>, _>>()?;
        if candidates.len() > 1 {
            if let Some((ShortNameMode::Enforcing, mode_at)) = &self.short_name_mode {
                let list: Vec<String> = candidates.iter().map(Reference::to_string).collect();
                return Err(Error::new(
                    ErrorKind::InvalidReference,
                    format!(
                        "short name {source:?} is ambiguous: it may be {} (unqualified-search-registries at \
                         {search_at}); short-name-mode = \"enforcing\" ({mode_at}) needs one: write the \
                         full name, or add an alias in [aliases]",
                        list.join(" or ")
                    ),
                ));
            }
        }
        Ok(candidates)
    }

    /// Where to pull one fully-qualified reference from: the mirrors that
    /// apply to it, in order, then the registry's location.
    pub fn endpoints(&self, logical: &Reference) -> Result<Vec<Endpoint>, Error> {
        let Some(entry) = self.registry_for(logical) else {
            return Ok(vec![Endpoint {
                reference: logical.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if entry.blocked {
            return Err(Error::new(
                ErrorKind::Blocked,
                format!(
                    "{logical}: blocked by registries.conf (prefix {:?} at {})",
                    entry.prefix, entry.origin
                ),
            ));
        }
        let by_digest = logical.digest.is_some();
        let mut out = Vec::new();
        for m in &entry.mirrors {
            let used = if entry.mirror_by_digest_only {
                by_digest
            } else {
                match m.pull_from_mirror {
                    PullFromMirror::All => true,
                    PullFromMirror::DigestOnly => by_digest,
                    PullFromMirror::TagOnly => !by_digest,
                }
            };
            if used {
                out.push(Endpoint {
                    reference: rewrite(logical, &entry.prefix, &m.location, &entry.origin)?,
                    insecure: m.insecure,
                    mirror: true,
                });
            }
        }
        out.push(Endpoint {
            reference: rewrite(logical, &entry.prefix, &entry.location, &entry.origin)?,
            insecure: entry.insecure,
            mirror: false,
        });
        Ok(out)
    }
}

/// `busybox:1` → (`busybox`, `:1`); `a/b@sha256:…` → (`a/b`, `@sha256:…`).
fn split_name(source: &str) -> (&str, &str) {
    let (rest, _) = source.split_once('@').unwrap_or((source, ""));
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let end = rest[last_slash..]
        .find(':')
        .map_or(rest.len(), |i| last_slash + i);
    let end = end.min(source.find('@').unwrap_or(source.len()));
    (&source[..end], &source[end..])
}

/// Replaces the matched `prefix` of `logical` with `location` (no rewrite for an empty location).
fn rewrite(
    logical: &Reference,
    prefix: &str,
    location: &str,
    origin: &str,
) -> Result<Reference, Error> {
    if location.is_empty() {
        return Ok(logical.clone());
    }
    let s = logical.to_string();
    let Some(len) = matching_prefix_len(&s, prefix) else {
        return Ok(logical.clone());
    };
    let rewritten = format!("{location}{}", &s[len..]);
    let parsed = Reference::parse(&rewritten).map_err(|e| {
        config_error(format!(
            "{logical}: rewritten by registries.conf ({origin}) to {rewritten:?}, which is not a reference: {}",
            e.message()
        ))
    })?;
    // Rewritten names must be canonical: `foo/x` would silently become docker.io/foo/x.
    if parsed.to_string() != rewritten {
        return Err(config_error(format!(
            "{logical}: rewritten by registries.conf ({origin}) to {rewritten:?}, which is not a fully-qualified name"
        )));
    }
    Ok(parsed)
}

#[cfg(test)]
#[path = "registries_conf_tests.rs"]
mod tests;
