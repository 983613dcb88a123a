//! A deterministic mutation fuzzer over the golden inputs: thousands of
//! mangled descriptors and drop-ins (bit flips, inserted `[`, `=`, `\`,
//! quotes, newlines, specifiers, control bytes, invalid UTF-8, huge lines),
//! each run through the generator in-process. It asserts that nothing
//! panics, that the output is deterministic, and that every emitted file is
//! still well-formed: only `[Unit]`/`[Service]` sections, one setting per
//! line, `Exec` lines that split into words with every `%` and `$` escaped,
//! and log messages without control characters.

use sdme_generator::emit::Entry;
use sdme_generator::{generate, syntax, words};
use std::path::{Path, PathBuf};

/// xorshift64*: deterministic, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"=",
    b"\\",
    b"\"",
    b"'",
    b"\n",
    b"\\\n",
    b"\r",
    b"\0",
    b"\xff",
    b"\xc3",
    b"%",
    b"%i",
    b"$",
    b"${X}",
    b"#",
    b";",
    b" ",
    b"\t",
    b"\\x00",
    b"\\n",
    b"\\u2028",
    b"\xe2\x80\xa8",
    b"\n[Service]\nExecStartPre=/bin/evil\n",
    b"\n[Unit]\n",
    b"\n[Container]\n",
    b"\n[Image]\n",
    b"\n[Install]\nWantedBy=multi-user.target\n",
    b"Image=docker.io/library/x:1\n",
    b"Base=os\n",
    b"Connector=tool\n",
    b"Network=veth\n",
    b"Port=80\n",
    b"Environment=A=\"b c\"\n",
    b"Entrypoint=/bin/sh -c \"x\"\n",
    b"NspawnArgument=--a ';'\n",
    b"Image=os\n",
    b"Mode=connector\n",
    b"\n[App]\n",
    b"\n[Container]\nApp=side\n",
];

fn seeds() -> Vec<Vec<u8>> {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/generator/cases");
    let mut files = Vec::new();
    collect(&cases, &mut files);
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    assert!(seeds.len() > 50, "too few seed files: {}", seeds.len());
    seeds
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            if !path.ends_with("expected") {
                collect(&path, out);
            }
        } else if meta.is_file() && path.components().any(|c| c.as_os_str() == "input") {
            out.push(path);
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], mut data: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(8) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            3 if !data.is_empty() => {
                let end = (at + rng.below(40)).min(data.len());
                data.drain(at.min(end)..end);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(200)).min(other.len());
                data.splice(at..at, other[from..to].iter().copied());
            }
            5 if rng.below(200) == 0 => {
                // A huge line, sometimes beyond the 1 MiB line limit.
                let len = if rng.below(2) == 0 {
                    70_000
                } else {
                    syntax::MAX_LINE + 10
                };
                let mut line = b"Environment=A=".to_vec();
                line.resize(len, b'a');
                data.splice(at..at, line);
            }
            6 => data.splice(at..at, [rng.next() as u8]).for_each(drop),
            _ => {
                let end = (at + rng.below(30)).min(data.len());
                let copy = data[at.min(end)..end].to_vec();
                data.splice(at..at, copy);
            }
        }
    }
    data
}

/// Joins continuation lines the way systemd reads a unit file.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        pending.push_str(line.trim());
        let backslashes = pending.bytes().rev().take_while(|b| *b == b'\\').count();
        if backslashes % 2 == 1 {
            pending.pop();
            pending.push(' ');
        } else {
            lines.push(std::mem::take(&mut pending));
        }
    }
    assert!(pending.is_empty(), "file ends inside a continuation");
    lines
}

/// True if a word of the Exec line is an unquoted `;`, which systemd takes
/// as a command separator. Walks the words as systemd's parser does.
fn has_bare_semicolon(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) == Some(&b';') && bytes.get(i + 1).map_or(true, |b| b.is_ascii_whitespace())
        {
            return true;
        }
        let mut quote = None;
        while i < bytes.len() {
            match (quote, bytes[i]) {
                (_, b'\\') => i += 1,
                (None, b'"' | b'\'') => quote = Some(bytes[i]),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_ascii_whitespace() => break,
                _ => {}
            }
            i += 1;
        }
    }
    false
}

fn check_exec(value: &str, file: &str) {
    assert!(
        value.is_empty() || value.starts_with("/usr/"),
        "{file}: unexpected program in {value:?}"
    );
    // `%` only as `%%`; `$` only in pairs.
    let unspecified = value.replace("%%", "");
    assert!(
        !unspecified.contains('%'),
        "{file}: unescaped % in {value:?}"
    );
    for run in value.split(|c| c != '$').filter(|r| !r.is_empty()) {
        assert!(run.len() % 2 == 0, "{file}: unescaped $ in {value:?}");
    }
    let words = words::split(&value.replace("%%", "%"))
        .unwrap_or_else(|e| panic!("{file}: {e}: {value:?}"));
    assert!(!has_bare_semicolon(value), "{file}: bare ; in {value:?}");
    if let Some(first) = words.first() {
        assert!(first.starts_with("/usr/"));
    }
}

fn check_file(path: &str, text: &str) {
    assert!(
        path.starts_with("sdme-import@") && path.ends_with(".service") && !path.contains('/')
            || path.starts_with("sdme-connector@")
                && path.ends_with(".socket")
                && !path.contains('/')
            || path.starts_with("sdme-port@")
                && (path.ends_with(".socket") || path.ends_with(".service"))
                && !path.contains('/')
            || path.starts_with("systemd-nspawn@") && path.ends_with(".service.d/50-sdme.conf")
            || path == "sdme-auto-update.service.d/50-sdme.conf",
        "unexpected output file {path:?}"
    );
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{path}: control character"
    );
    assert!(text.ends_with('\n'));
    let mut sections = Vec::new();
    for line in logical_lines(text) {
        if line.is_empty() || line.starts_with("# ") {
            continue;
        }
        if line.starts_with('[') {
            let expected = match path.ends_with(".socket") {
                true => "[Socket]",
                false => "[Service]",
            };
            assert!(
                line == "[Unit]" || line == expected,
                "{path}: unexpected section {line:?}"
            );
            sections.push(line);
            continue;
        }
        assert!(
            !line.starts_with(['#', ';']),
            "{path}: line parses as a comment: {line:?}"
        );
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{path}: not a setting: {line:?}"));
        assert!(syntax::is_key_name(key), "{path}: bad key {key:?}");
        assert!(!sections.is_empty(), "{path}: setting before any section");
        if key == "ExecStart" {
            check_exec(value, path);
        }
        if key == "ListenStream" {
            // The socket path comes from the descriptor's (checked) name;
            // a port's address from a parsed IP address and port number.
            let is_address =
                path.starts_with("sdme-port@") && value.parse::<std::net::SocketAddr>().is_ok();
            assert!(
                is_address
                    || (value.starts_with("/var/lib/sdme/connectors/")
                        || value.starts_with("/run/sdme-connectors/"))
                        && !value.contains(['%', '$', ' ']),
                "{path}: unexpected socket {value:?}"
            );
        }
    }
    // The auto-update drop-in only replaces the service's command.
    let first = match path.starts_with("sdme-auto-update.") {
        true => "[Service]",
        false => "[Unit]",
    };
    assert!(
        sections.first().is_some_and(|s| s == first),
        "{path}: must start with {first}"
    );
}

fn check_link(path: &str, target: &str) {
    let (dir, unit) = path.split_once('/').unwrap();
    assert!(
        dir.ends_with(".wants") || dir.ends_with(".requires"),
        "{path}"
    );
    assert!(
        unit.starts_with("sdme-import@")
            || unit.starts_with("systemd-nspawn@")
            || dir == "sockets.target.wants" && unit.starts_with("sdme-connector@"),
        "{path}"
    );
    assert!(
        target.starts_with('/') || target == format!("../{unit}"),
        "{path} -> {target}"
    );
}

/// Writes a fresh file: truncating an existing one on ext4 forces a flush
/// on close (auto_da_alloc), which made this test wait on the disk.
fn replace(path: &Path, contents: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, contents).unwrap();
}

#[test]
fn mutated_descriptors_never_break_the_output() {
    let seeds = seeds();
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/sdme");
    std::fs::create_dir_all(etc.join("fuzz.oci.d")).unwrap();
    // Fixed neighbours, so mutated references can resolve.
    std::fs::write(
        etc.join("os.oci"),
        "[Image]\nImage=docker.io/library/debian:12\n",
    )
    .unwrap();
    // Runs the mutated descriptor as another app whenever it is an
    // application image without [Container], so its mutated [App] reaches
    // the emitter.
    std::fs::write(
        etc.join("host.oci"),
        "[Image]\nImage=docker.io/library/nginx:1\n[Container]\nApp=fuzz\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("side.oci"),
        "[Image]\nImage=docker.io/library/redis:7\n[App]\nVolume=/srv/side:/data\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("tool.oci"),
        "[Image]\nImage=t\nMode=connector\n[Container]\n",
    )
    .unwrap();

    let iterations = std::env::var("SDME_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let mut rng = Rng(0x05d3_e0c1_u64 * 2_654_435_761);
    let mut generated_files = 0usize;
    for i in 0..iterations {
        let main_seed = seeds[rng.below(seeds.len())].clone();
        let main = mutate(&mut rng, &seeds, main_seed);
        let dropin_seed = seeds[rng.below(seeds.len())].clone();
        // Half the time an empty drop-in: a mutated one on top of a
        // mutated main file almost never leaves a valid descriptor, and
        // only a valid one reaches the emitter (host.oci's --app=fuzz).
        let dropin = match rng.below(2) {
            0 => Vec::new(),
            _ => mutate(&mut rng, &seeds, dropin_seed),
        };
        replace(&etc.join("fuzz.oci"), &main);
        replace(&etc.join("fuzz.oci.d/10-fuzz.conf"), &dropin);

        let generation = generate(root.path());
        for diagnostic in &generation.diagnostics {
            let message = diagnostic.to_string();
            assert!(
                !message.chars().any(char::is_control),
                "iteration {i}: control character in {message:?}"
            );
        }
        for (path, entry) in &generation.tree {
            match entry {
                Entry::File(text) => {
                    generated_files += 1;
                    check_file(path, text);
                }
                Entry::Symlink(target) => check_link(path, target),
            }
        }
        if i % 100 == 0 {
            let again = generate(root.path());
            assert_eq!(
                again.tree, generation.tree,
                "iteration {i}: output not deterministic"
            );
            assert_eq!(again.diagnostics, generation.diagnostics);
        }
    }
    // The fuzzer must reach the emitter, not only the error paths.
    assert!(
        generated_files > iterations / 2,
        "only {generated_files} files generated"
    );
}

const SPECIAL: &[u8] = b"[]=\\\"' \n#;%$";

#[test]
fn parsers_survive_random_bytes() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => SPECIAL[rng.below(SPECIAL.len())],
                _ => rng.next() as u8,
            })
            .collect();
        let _ = syntax::parse(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(split) = words::split(&text) {
            // Whatever splits must survive escaping and splitting again.
            for word in split {
                let mut unit = sdme_unitfile::Unit::new();
                let command = sdme_unitfile::Value::command(&["/bin/x", word.as_str()]).unwrap();
                unit.section("Service").set("ExecStart", command);
                let text = unit.render();
                let escaped = text
                    .strip_prefix("[Service]\nExecStart=/bin/x ")
                    .and_then(|t| t.strip_suffix('\n'))
                    .unwrap();
                let back = words::split(&escaped.replace("%%", "%")).unwrap();
                assert_eq!(back.len(), 1);
                assert_eq!(back[0].replace("$$", "$"), word);
            }
        }
    }
}
