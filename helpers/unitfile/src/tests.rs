//! Every kind of value, hostile and random, read back the way systemd reads
//! it: the unit has exactly the settings written, each with exactly the
//! value it was made from.

use super::*;
use crate::syntax::Item;

/// systemd's specifier expansion where only `%%` may occur: anything else
/// after `%` would be a specifier the value smuggled in.
fn unspecify(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            assert_eq!(chars.next(), Some('%'), "lone specifier in {s:?}");
        }
        out.push(c);
    }
    out
}

/// `$$` → `$` in an exec word, refusing a variable reference.
fn undollar(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '$' {
            assert_eq!(chars.next(), Some('$'), "variable reference in {s:?}");
        }
        out.push(c);
    }
    out
}

/// The unit's assignments as systemd's parser sees them.
fn settings(text: &str) -> Vec<(String, String)> {
    let (items, errors) = syntax::parse(text.as_bytes());
    assert!(errors.is_empty(), "{errors:?} in\n{text}");
    items
        .into_iter()
        .filter_map(|i| match i {
            Item::Assignment { key, value, .. } => Some((key, value)),
            Item::Section { .. } => None,
        })
        .collect()
}

fn one(value: Value) -> String {
    let mut unit = Unit::new();
    unit.comment("hostile\ncomment %i\\");
    unit.section("Service")
        .set("Before", Value::word("a.service").unwrap())
        .set("Probe", value)
        .set("After", Value::word("b.service").unwrap());
    let text = unit.render();
    let got = settings(&text);
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["Before", "Probe", "After"], "in\n{text}");
    assert_eq!(got[2].1, "b.service");
    got[1].1.clone()
}

/// As systemd 252's `config_parse_exec()` reads a command: a lone
/// unquoted `;` separates commands; the first word is unquoted and only
/// then its exec prefixes are read, so a prefix or a `;` in the *unquoted*
/// first word would change what runs.
fn read_command(raw: &str) -> Vec<String> {
    let unspecified = unspecify(raw);
    let words = words::split(&unspecified).unwrap();
    let program = &words[0];
    assert!(
        !program.starts_with(|c| "-@:+!|".contains(c)) && program != ";",
        "exec prefix or separator in the first word of {raw:?}"
    );
    let bare_semicolon = unspecified.split([' ', '\t']).any(|w| w == ";");
    assert!(!bare_semicolon, "command separator in {raw:?}");
    words.iter().map(|w| undollar(w)).collect()
}

fn read_environment(raw: &str) -> Vec<String> {
    words::split(raw)
        .unwrap()
        .iter()
        .map(|w| unspecify(w))
        .collect()
}

/// Deterministic bytes, biased towards what unit syntax cares about.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn string(&mut self) -> String {
        const SPECIAL: &[char] = &[
            '\n', '\r', '\\', '%', '$', '"', '\'', ';', ' ', '\t', '#', '=', '[', ']', '-', '+',
            '@', ':', '!', '|', '~', '\u{85}', '\u{2028}', '\x1b', '\x7f', 'é', '{', '}',
        ];
        let len = self.next() % 24;
        (0..len)
            .map(|_| match self.next() % 3 {
                0 => SPECIAL[(self.next() as usize) % SPECIAL.len()],
                1 => char::from_u32((self.next() % 0x80) as u32).unwrap_or('x'),
                _ => char::from_u32((self.next() % 0x3000) as u32).unwrap_or('y'),
            })
            .filter(|c| *c != '\0')
            .collect()
    }
}

const HOSTILE: &[&str] = &[
    "",
    " ",
    "a b",
    "%i",
    "%%",
    "100%",
    "$HOME",
    "${X}",
    "$$",
    "\"q\"",
    "'",
    "\\",
    "x\\",
    "x\\\\",
    ";",
    "\\;",
    "#c",
    ";c",
    "line\nExecStartPre=+/bin/sh -c id",
    "cr\rUser=",
    "tail\\",
    "\x01\x7f",
    "\u{85}é\u{2028}",
    "+/bin/sh",
    "-x",
    "@x",
    "!!x",
    "[Service]",
];

#[test]
fn commands_read_back_exactly() {
    let mut noise = Noise(1);
    let mut cases: Vec<Vec<String>> = HOSTILE
        .iter()
        .map(|h| vec!["/bin/x".to_string(), h.to_string()])
        .collect();
    cases.extend(HOSTILE.iter().map(|h| vec![format!("/{h}"), "a".into()]));
    for _ in 0..3000 {
        let n = 1 + noise.next() % 5;
        let mut argv: Vec<String> = (0..n).map(|_| noise.string()).collect();
        argv[0].insert(0, '/');
        cases.push(argv);
    }
    for argv in cases {
        assert_eq!(read_command(&one(Value::command(&argv).unwrap())), argv);
        // One prefix, then the same words.
        let privileged = one(Value::privileged_command(&argv).unwrap());
        assert_eq!(
            privileged.strip_prefix('+').map(read_command),
            Some(argv.clone())
        );
        assert_eq!(
            read_command(&one(Value::command_lines(&argv).unwrap())),
            argv
        );
    }
    assert!(Value::command::<&str>(&[]).is_err());
    assert!(Value::command(&[""]).is_err());
    assert!(Value::command(&["/bin/x", "a\0b"]).is_err());
    // No quoting protects the first word: systemd unquotes it, then reads
    // prefixes and the separator. Anything but an absolute path is refused.
    for program in [
        "+/bin/sh",
        "-/bin/sh",
        "@/bin/sh",
        ":/bin/sh",
        "!/bin/sh",
        "|x",
        ";",
        "sh",
        "\"+/bin/sh\"",
    ] {
        assert!(Value::command(&[program, "a"]).is_err(), "{program}");
        assert!(
            Value::privileged_command(&[program, "a"]).is_err(),
            "{program}"
        );
        assert!(Value::command_lines(&[program, "a"]).is_err(), "{program}");
    }
}

#[test]
fn environment_reads_back_exactly() {
    let mut noise = Noise(2);
    let mut values: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    values.extend((0..3000).map(|_| noise.string()));
    for value in values {
        let raw = one(Value::environment(&[("A", value.as_str()), ("B_2", "x")]).unwrap());
        assert_eq!(
            read_environment(&raw),
            [format!("A={value}"), "B_2=x".to_string()]
        );
    }
    for bad in ["", "1A", "A B", "A=B", "a.b", "é", "A\n"] {
        assert!(Value::environment(&[(bad, "v")]).is_err(), "{bad:?}");
    }
    assert!(Value::environment(&[("A", "x\0")]).is_err());
}

#[test]
fn paths_read_back_exactly_or_are_refused() {
    for path in [
        "/",
        "/srv/100%",
        "/a b/c",
        "/%i/%%",
        "/x$y",
        "/it's",
        "/q\"",
    ] {
        assert_eq!(unspecify(&one(Value::path(path).unwrap())), path);
        assert_eq!(
            unspecify(&one(Value::optional_path(path).unwrap())),
            format!("-{path}")
        );
    }
    for bad in [
        "",
        "relative",
        "/a\nExecStart=/bin/sh",
        "/a\r",
        "/a\\",
        "/a ",
        "/\x1b",
    ] {
        assert!(Value::path(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        one(Value::bind_path("/etc/hosts", true).unwrap()),
        "-/etc/hosts"
    );
    for bad in ["/a b", "/a:b", "/a\"", "/a\\b"] {
        assert!(Value::bind_path(bad, false).is_err(), "{bad:?}");
        assert!(Value::bind(bad, "/run", false).is_err(), "{bad:?}");
        assert!(Value::bind("/run/x", bad, true).is_err(), "{bad:?}");
    }
    assert_eq!(
        one(Value::bind("/run/sdme-oci-run@db", "/run", false).unwrap()),
        "/run/sdme-oci-run@db:/run"
    );
    assert_eq!(one(Value::bind("/a%b", "/c", true).unwrap()), "-/a%%b:/c");
}

#[test]
fn text_never_leaves_its_line() {
    let mut noise = Noise(3);
    let mut values: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    values.extend((0..3000).map(|_| noise.string()));
    for value in values {
        let raw = one(Value::text(&value));
        let read = unspecify(&raw);
        if !value.chars().any(char::is_control) {
            assert_eq!(read, value.trim_matches([' ', '\t']), "{value:?}");
        }
    }
}

#[test]
fn words_and_verbatim_are_checked() {
    assert_eq!(
        one(Value::word("sdme-import@x.service").unwrap()),
        "sdme-import@x.service"
    );
    assert_eq!(one(Value::words(&["4", "27"]).unwrap()), "4 27");
    for bad in ["", "a b", "-x", "%i", "a\n", "a\\", "$X", "a;b", "é"] {
        assert!(Value::word(bad).is_err(), "{bad:?}");
        assert!(Value::words(&["ok", bad]).is_err(), "{bad:?}");
    }
    assert_eq!(one(Value::quantity("50%").unwrap()), "50%");
    assert_eq!(one(Value::relative_path("a/b.c").unwrap()), "a/b.c");
    for bad in ["", "/a", "a/", "a//b", "a/../b", "./a", "a b", "%i/x"] {
        assert!(Value::relative_path(bad).is_err(), "{bad:?}");
    }
    for bad in ["", "5 0", "1\n", "-1", "$X"] {
        assert!(Value::quantity(bad).is_err(), "{bad:?}");
    }
    assert_eq!(one(Value::verbatim("Foo %i bar").unwrap()), "Foo %i bar");
    assert_eq!(one(Value::verbatim("x\\\\").unwrap()), "x\\\\");
    for bad in ["a\nB=c", "a\\", "x\r", "\x01", "x\\ ", "x\\\t"] {
        assert!(Value::verbatim(bad).is_err(), "{bad:?}");
    }
    let mut unit = Unit::new();
    let s = unit.section("Unit");
    assert!(s.pass_through("Bad Key", "x").is_err());
    assert!(s.pass_through("Key\n[Service]", "x").is_err());
    s.pass_through("After", "x.service").unwrap();
    assert_eq!(unit.render(), "[Unit]\nAfter=x.service\n");
}

#[test]
fn layout_sections_and_resets() {
    let mut unit = Unit::new();
    unit.comment("Generated by a test");
    unit.section("Unit")
        .set("Description", Value::text("50% of x"));
    unit.section("Service")
        .set("ExecStart", Value::reset())
        .set(
            "ExecStart",
            Value::command_lines(&["/bin/x", "a", "b c"]).unwrap(),
        );
    unit.section("Install");
    unit.section("Unit")
        .set("After", Value::word("y.target").unwrap());
    assert_eq!(
        unit.render(),
        "# Generated by a test\n[Unit]\nDescription=50%% of x\nAfter=y.target\n\n\
         [Service]\nExecStart=\nExecStart=/bin/x a \\\n        \"b c\"\n"
    );
    assert!(Unit::new().is_empty());
}

#[test]
fn environment_files_read_back_exactly() {
    let mut noise = Noise(4);
    let mut values: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    values.extend((0..2000).map(|_| noise.string()));
    for value in values {
        let text = envfile::render(&[("V", value.as_str()), ("W", "1")]).unwrap();
        assert_eq!(
            envfile::read(&text).unwrap(),
            [("V".to_string(), value.clone()), ("W".into(), "1".into())]
        );
    }
    assert!(envfile::render(&[("1X", "v")]).is_err());
    assert!(envfile::render(&[("X", "a\0")]).is_err());
    assert_eq!(
        envfile::render(&[("Q", "say \"hi\" $USER `x` \\n"), ("ML", "a\nb")]).unwrap(),
        "Q=\"say \\\"hi\\\" \\$USER \\`x\\` \\\\n\"\nML=\"a\nb\"\n"
    );
}

/// `envfile::read` against the cases systemd's own test-env-file.c checks,
/// and the rules around them (quotes, escapes, comments, later wins).
#[test]
fn environment_files_are_read_as_systemd_reads_them() {
    let pairs = |text: &str| -> Vec<(String, String)> { envfile::read(text).unwrap() };
    let p = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // Backslash-newline joins lines; a line without `=` is dropped; a
    // trailing escaped blank is kept; a backslash at the end of the file
    // is dropped.
    assert_eq!(
        pairs("a=a\nb=b\\\nc\nd=d\\\ne\\\nf\ng=g\\ \nh=h\ni=i\\"),
        p(&[
            ("a", "a"),
            ("b", "bc"),
            ("d", "def"),
            ("g", "g "),
            ("h", "h"),
            ("i", "i")
        ])
    );
    assert_eq!(pairs("a=a\\\n"), p(&[("a", "a")]));
    // Comments, blank lines, quoted values with blanks inside.
    assert_eq!(
        pairs("# Generated\n\nHW=\"coretemp f71882fg\"\n\n; old style\nM0=coretemp\nM1=f71882fg"),
        p(&[
            ("HW", "coretemp f71882fg"),
            ("M0", "coretemp"),
            ("M1", "f71882fg")
        ])
    );
    // A comment ending in a backslash no longer continues (systemd >= 254).
    assert_eq!(pairs("#A=1 \\\n#B\nnormal=line"), p(&[("normal", "line")]));
    assert_eq!(pairs("a=\nb="), p(&[("a", ""), ("b", "")]));
    // Blanks around key and unquoted value go; quotes concatenate; single
    // quotes are literal; double quotes unescape only \\ \" ` $.
    assert_eq!(
        pairs("  K  =  v w  \nQ='a\\b $x'\"c\\$d\\n\"e\nML=\"1\n2\"\n"),
        p(&[("K", "v w"), ("Q", "a\\b $xc$d\\ne"), ("ML", "1\n2")])
    );
    // Later assignments replace earlier ones, in place.
    assert_eq!(pairs("A=1\nB=2\nA=3\n"), p(&[("A", "3"), ("B", "2")]));
    // A quote left open runs to the end of this file only.
    assert_eq!(pairs("A=\"open\nB=2\n"), p(&[("A", "open\nB=2\n")]));
    // Names systemd would drop are errors naming the line.
    let e = envfile::read("A=1\nexport B=2\n").unwrap_err().to_string();
    assert!(e.starts_with("line 2: ") && e.contains("export B"), "{e}");
    assert!(envfile::read("1X=1").is_err());
    assert!(envfile::read("X=a\0b").is_err());
}
