use super::*;

const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

fn conf(text: &str) -> RegistriesConf {
    let mut c = RegistriesConf::default();
    c.merge(parse(text, "test.conf").unwrap());
    c
}

fn err(text: &str) -> String {
    parse(text, "test.conf").unwrap_err().to_string()
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// The endpoints for `source` as strings, `!` marking insecure ones, `m:` mirrors.
fn plan(c: &RegistriesConf, source: &str) -> Vec<String> {
    c.endpoints(&r(source))
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}{}{}",
                if e.mirror { "m:" } else { "" },
                e.reference,
                if e.insecure { "!" } else { "" }
            )
        })
        .collect()
}

#[test]
fn the_manual_page_example() {
    let c = conf(
        r#"
unqualified-search-registries = ["example.com"]

[[registry]]
prefix = "example.com/foo"
insecure = false
blocked = false
location = "internal-registry-for-example.com/bar"

[[registry.mirror]]
location = "example-mirror-0.local/mirror-for-foo"

[[registry.mirror]]
location = "example-mirror-1.local/mirrors/foo"
insecure = true

[[registry]]
location = "registry.com"

[[registry.mirror]]
location = "mirror.registry.com"
"#,
    );
    assert_eq!(
        plan(&c, "example.com/foo/image:latest"),
        [
            "m:example-mirror-0.local/mirror-for-foo/image:latest",
            "m:example-mirror-1.local/mirrors/foo/image:latest!",
            "internal-registry-for-example.com/bar/image:latest",
        ]
    );
    assert_eq!(
        plan(
            &c,
            "registry.com/a/b@"
                .to_string()
                .as_str()
                .trim_end_matches('@')
        ),
        [
            "m:mirror.registry.com/a/b:latest",
            "registry.com/a/b:latest"
        ]
    );
    // No table matches: pulled as written.
    assert_eq!(plan(&c, "other.example/x:1"), ["other.example/x:1"]);
    // A prefix matches only at a separator: example.com/foobar is not example.com/foo.
    assert_eq!(plan(&c, "example.com/foobar:1"), ["example.com/foobar:1"]);
    assert!(c.ignored.is_empty(), "{:?}", c.ignored);
}

#[test]
fn longest_prefix_wins_whatever_the_order() {
    let c = conf(
        r#"
[[registry]]
prefix = "reg.example/team/app"
location = "app-mirror.example/app"
[[registry]]
prefix = "reg.example"
location = "whole.example"
[[registry]]
prefix = "reg.example/team"
location = "team.example/t"
"#,
    );
    assert_eq!(
        plan(&c, "reg.example/team/app:1"),
        ["app-mirror.example/app:1"]
    );
    assert_eq!(
        plan(&c, "reg.example/team/app/sub:1"),
        ["app-mirror.example/app/sub:1"]
    );
    assert_eq!(
        plan(&c, "reg.example/team/other:1"),
        ["team.example/t/other:1"]
    );
    assert_eq!(plan(&c, "reg.example/x:1"), ["whole.example/x:1"]);
    // A prefix naming one tag.
    let c =
        conf("[[registry]]\nprefix = \"reg.example/app:1\"\nlocation = \"pinned.example/app:2\"\n");
    assert_eq!(plan(&c, "reg.example/app:1"), ["pinned.example/app:2"]);
    assert_eq!(plan(&c, "reg.example/app:10"), ["reg.example/app:10"]);
}

#[test]
fn pull_through_mirror_for_several_hosts() {
    let c = conf(
        r#"
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror.local/docker.io"

[[registry]]
location = "quay.io"
[[registry.mirror]]
location = "mirror.local/quay.io"
insecure = true
"#,
    );
    assert_eq!(
        plan(&c, "busybox"),
        [
            "m:mirror.local/docker.io/library/busybox:latest",
            "docker.io/library/busybox:latest"
        ]
    );
    assert_eq!(
        plan(&c, "quay.io/org/img@".trim_end_matches('@')),
        [
            "m:mirror.local/quay.io/org/img:latest!",
            "quay.io/org/img:latest"
        ]
    );
    let mirror = &c.endpoints(&r("busybox")).unwrap()[0].reference;
    assert_eq!(mirror.domain, "mirror.local");
    assert_eq!(mirror.path, "docker.io/library/busybox");
}

#[test]
fn wildcard_prefixes_match_subdomains_only() {
    let c = conf(
        r#"
[[registry]]
prefix = "*.example.com"
insecure = true
[[registry.mirror]]
location = "mirror.local/example"
"#,
    );
    assert_eq!(
        plan(&c, "a.example.com/x:1"),
        ["m:mirror.local/example/x:1", "a.example.com/x:1!"]
    );
    assert_eq!(
        plan(&c, "b.a.example.com:5000/x:1").len(),
        1,
        "a port is not the host"
    );
    assert_eq!(plan(&c, "b.a.example.com/x:1").len(), 2);
    assert_eq!(plan(&c, "example.com/x:1"), ["example.com/x:1"]);
    assert_eq!(plan(&c, "notexample.com/x:1"), ["notexample.com/x:1"]);
    assert_eq!(
        plan(&c, "other.example/a.example.com/x:1"),
        ["other.example/a.example.com/x:1"]
    );
    for bad in [
        "*.example.com/foo",
        "*.example.com:5000",
        "example.*.com",
        "*.*.com",
    ] {
        let e = err(&format!(
            "[[registry]]\nprefix = \"{bad}\"\nlocation = \"x.example\"\n"
        ));
        assert!(
            e.starts_with("test.conf:2: registry.prefix: "),
            "{bad}: {e}"
        );
    }
}

#[test]
fn digest_and_tag_only_mirrors() {
    let text = r#"
[[registry]]
location = "reg.example"
[[registry.mirror]]
location = "by-digest.example"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "by-tag.example"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "both.example"
pull-from-mirror = "all"
"#;
    let c = conf(text);
    assert_eq!(
        plan(&c, "reg.example/a:1"),
        [
            "m:by-tag.example/a:1",
            "m:both.example/a:1",
            "reg.example/a:1"
        ]
    );
    assert_eq!(
        plan(&c, &format!("reg.example/a@{D}")),
        [
            format!("m:by-digest.example/a@{D}"),
            format!("m:both.example/a@{D}"),
            format!("reg.example/a@{D}")
        ]
    );
    // A tag and a digest: a digest pull.
    assert_eq!(plan(&c, &format!("reg.example/a:1@{D}")).len(), 3);
    assert!(plan(&c, &format!("reg.example/a:1@{D}"))[0].starts_with("m:by-digest"));

    let c = conf("[[registry]]\nlocation = \"reg.example\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.example\"\n");
    assert_eq!(plan(&c, "reg.example/a:1"), ["reg.example/a:1"]);
    assert_eq!(
        plan(&c, &format!("reg.example/a@{D}")),
        [format!("m:m.example/a@{D}"), format!("reg.example/a@{D}")]
    );
}

#[test]
fn blocked_registries_are_refused_with_where() {
    let c = conf(
        "[[registry]]\nprefix = \"evil.example\"\nlocation = \"evil.example\"\nblocked = true\n",
    );
    let e = c.endpoints(&r("evil.example/x:1")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Blocked);
    assert_eq!(
        e.to_string(),
        "evil.example/x:1: blocked by registries.conf (prefix \"evil.example\" at test.conf:2)"
    );
    assert!(c.endpoints(&r("good.example/x:1")).is_ok());
}

#[test]
fn short_names() {
    let search = "unqualified-search-registries = [\"quay.io\", \"docker.io\"]\n";
    let names = |c: &RegistriesConf, s: &str| -> Vec<String> {
        c.candidates(s)
            .unwrap()
            .iter()
            .map(Reference::to_string)
            .collect()
    };
    // No search registries: Docker Hub, as with no configuration at all.
    let c = conf("");
    assert_eq!(names(&c, "busybox"), ["docker.io/library/busybox:latest"]);
    let c = conf("unqualified-search-registries = []\n");
    assert_eq!(names(&c, "busybox"), ["docker.io/library/busybox:latest"]);
    // Permissive (the default) and disabled: every search registry, in order.
    for mode in [
        "",
        "short-name-mode = \"permissive\"\n",
        "short-name-mode = \"disabled\"\n",
    ] {
        let c = conf(&format!("{search}{mode}"));
        assert_eq!(
            names(&c, "busybox:1"),
            ["quay.io/busybox:1", "docker.io/library/busybox:1"],
            "{mode}"
        );
    }
    // Qualified names are never searched.
    let c = conf(&format!("{search}short-name-mode = \"enforcing\"\n"));
    assert_eq!(names(&c, "reg.example/a"), ["reg.example/a:latest"]);
    assert_eq!(names(&c, "localhost/a:1"), ["localhost/a:1"]);
    // Enforcing, two candidates, no terminal: an error naming both.
    let e = c.candidates("busybox").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidReference);
    assert_eq!(
        e.to_string(),
        "short name \"busybox\" is ambiguous: it may be quay.io/busybox:latest or \
         docker.io/library/busybox:latest (unqualified-search-registries at test.conf:1); \
         short-name-mode = \"enforcing\" (test.conf:2) needs one: write the full name, or add \
         an alias in [aliases]"
    );
    // Enforcing with one search registry is not ambiguous.
    let c =
        conf("unqualified-search-registries = [\"quay.io\"]\nshort-name-mode = \"enforcing\"\n");
    assert_eq!(names(&c, "busybox"), ["quay.io/busybox:latest"]);
    // Aliases win over the search, and keep the tag or digest.
    let c = conf(&format!(
        "{search}short-name-mode = \"enforcing\"\n[aliases]\n\"busybox\" = \"docker.io/library/busybox\"\n\"team/app\" = \"reg.example/team/app\"\n"
    ));
    assert_eq!(names(&c, "busybox:1"), ["docker.io/library/busybox:1"]);
    assert_eq!(
        names(&c, &format!("busybox@{D}")),
        [format!("docker.io/library/busybox@{D}")]
    );
    assert_eq!(names(&c, "team/app"), ["reg.example/team/app:latest"]);
    // A malformed short name is refused before any lookup.
    assert_eq!(
        c.candidates("Busy box").unwrap_err().kind(),
        ErrorKind::InvalidReference
    );
}

#[test]
fn drop_ins_override_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("registries.conf");
    let d = dir.path().join("registries.conf.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(
        &main,
        "unqualified-search-registries = [\"one.example\"]\nshort-name-mode = \"enforcing\"\n\
         [[registry]]\nlocation = \"reg.example\"\n[[registry.mirror]]\nlocation = \"old-mirror.example\"\n\
         [[registry]]\nlocation = \"kept.example\"\ninsecure = true\n\
         [aliases]\n\"gone\" = \"reg.example/gone\"\n\"kept\" = \"reg.example/kept\"\n",
    )
    .unwrap();
    // 10 sorts before 20; a later file replaces the same prefix and the search list.
    std::fs::write(
        d.join("20-late.conf"),
        "unqualified-search-registries = [\"two.example\", \"three.example\"]\n\
         [[registry]]\nlocation = \"reg.example\"\n[[registry.mirror]]\nlocation = \"new-mirror.example\"\n\
         [aliases]\n\"gone\" = \"\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("10-early.conf"),
        "[[registry]]\nlocation = \"reg.example\"\nblocked = true\n\
         [aliases]\n\"kept\" = \"reg.example/kept-from-10\"\n",
    )
    .unwrap();
    // Not *.conf, or not a file: not read.
    std::fs::write(d.join("30-ignored.conf.rpmsave"), "not toml [[[").unwrap();
    std::fs::create_dir(d.join("40-dir.conf")).unwrap();
    let c = load(&main, Some(&d)).unwrap().unwrap();
    assert_eq!(
        plan(&c, "reg.example/a:1"),
        ["m:new-mirror.example/a:1", "reg.example/a:1"]
    );
    assert_eq!(plan(&c, "kept.example/a:1"), ["kept.example/a:1!"]);
    let (search, at) = c.search.clone().unwrap();
    assert_eq!(search, ["two.example", "three.example"]);
    assert!(at.ends_with("20-late.conf:1"), "{at}");
    // Still enforcing from the main file, so now ambiguous.
    assert!(c.candidates("x").is_err());
    assert!(!c.aliases.contains_key("gone"));
    assert_eq!(c.aliases["kept"].0, "reg.example/kept-from-10");

    // Only drop-ins, no main file: still a configuration.
    std::fs::remove_file(&main).unwrap();
    assert!(load(&main, Some(&d)).unwrap().is_some());
    // Nothing at all: no configuration.
    assert!(
        load(&dir.path().join("none"), Some(&dir.path().join("none.d")))
            .unwrap()
            .is_none()
    );
    // A broken drop-in names itself.
    std::fs::write(d.join("50-bad.conf"), "[[registry]]\nlocation = 5\n").unwrap();
    let e = load(&main, Some(&d)).unwrap_err().to_string();
    assert!(
        e.contains("50-bad.conf:2: registry.location: expected a string, got integer"),
        "{e}"
    );
}

#[test]
fn hostile_and_invalid_files_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        ("[[registry]\n", "test.conf:1: not valid TOML"),
        ("a = \"unterminated\n", "test.conf:1: not valid TOML"),
        ("\n\nx = 1\nx = 2\n", "test.conf:4: not valid TOML"),
        ("unqualified-search-registries = \"docker.io\"\n", "test.conf:1: unqualified-search-registries: expected an array of strings, got string"),
        ("unqualified-search-registries = [1]\n", "test.conf:1: unqualified-search-registries: expected a string, got integer"),
        ("unqualified-search-registries = [\"docker.io/library\"]\n", "test.conf:1: unqualified-search-registries: \"docker.io/library\" is not a HOST[:PORT]"),
        ("unqualified-search-registries = [\"https://quay.io\"]\n", "test.conf:1: unqualified-search-registries: \"https://quay.io\": a location has no URL scheme"),
        ("short-name-mode = \"strict\"\n", "test.conf:1: short-name-mode: \"strict\": expected enforcing, permissive or disabled"),
        ("short-name-mode = true\n", "test.conf:1: short-name-mode: expected a string, got boolean"),
        ("registry = 1\n", "test.conf:1: registry: expected [[registry]] tables, got integer"),
        ("[[registry]]\ninsecure = true\n", "test.conf:2: registry: neither prefix nor location is set"),
        ("[[registry]]\nprefix = \"reg.example\"\n", "test.conf:2: registry.location: missing"),
        ("[[registry]]\nlocation = \"https://reg.example\"\n", "test.conf:2: registry.location: \"https://reg.example\": a location has no URL scheme"),
        ("[[registry]]\nlocation = \"library\"\n", "test.conf:2: registry.location: \"library\" does not start with a registry host"),
        ("[[registry]]\nlocation = \"reg.example/UPPER\"\n", "test.conf:2: registry.location: invalid reference"),
        ("[[registry]]\nlocation = \"reg..example\"\n", "test.conf:2: registry.location:"),
        ("[[registry]]\nlocation = \"reg.example\"\ninsecure = \"yes\"\n", "test.conf:3: registry.insecure: expected true or false, got string"),
        ("[[registry]]\nlocation = \"reg.example\"\nblocked = 1\n", "test.conf:3: registry.blocked: expected true or false, got integer"),
        ("[[registry]]\nlocation = \"reg.example\"\npull-from-mirror = \"all\"\n", "test.conf:3: registry.pull-from-mirror: belongs in a [[registry.mirror]] table"),
        ("[[registry]]\nlocation = \"reg.example\"\n[[registry.mirror]]\ninsecure = true\n", "test.conf:4: registry.mirror.location: missing"),
        ("[[registry]]\nlocation = \"reg.example\"\n[[registry.mirror]]\nlocation = \"m.example\"\npull-from-mirror = \"sometimes\"\n", "test.conf:5: registry.mirror.pull-from-mirror: \"sometimes\": expected all, digest-only or tag-only"),
        ("[[registry]]\nlocation = \"reg.example\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.example\"\npull-from-mirror = \"tag-only\"\n", "test.conf:6: registry.mirror.pull-from-mirror: not allowed with the registry's mirror-by-digest-only"),
        ("[[registry]]\nlocation = \"reg.example\"\n[[registry]]\nprefix = \"reg.example/x\"\nlocation = \"reg.example\"\ninsecure = true\n", "test.conf:4: registry \"reg.example\" is defined again (first at test.conf:2) with a different insecure setting"),
        ("[registries.search]\nregistries = [\"docker.io\"]\n", "test.conf:1: registries: this is the version 1 format"),
        ("[aliases]\n\"docker.io/busybox\" = \"docker.io/library/busybox\"\n", "test.conf:2: aliases.\"docker.io/busybox\": the name must be a short name"),
        ("[aliases]\n\"busybox:1\" = \"docker.io/library/busybox\"\n", "test.conf:2: aliases.\"busybox:1\": the name must be a short name"),
        ("[aliases]\n\"busybox\" = \"busybox\"\n", "test.conf:2: aliases.\"busybox\": \"busybox\": the value must be a fully-qualified name"),
        ("[aliases]\n\"busybox\" = \"docker.io/library/busybox:1\"\n", "test.conf:2: aliases.\"busybox\": \"docker.io/library/busybox:1\": the value must be"),
        ("[aliases]\n\"busybox\" = 3\n", "test.conf:2: aliases.busybox: expected a string, got integer"),
        ("aliases = 3\n", "test.conf:1: aliases: expected a table"),
    ];
    for (text, want) in cases {
        let e = parse(text, "test.conf").map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{text:?}");
        assert!(
            e.to_string().starts_with(want),
            "{text:?}:\n got: {e}\nwant: {want}…"
        );
    }
    // Unknown keys are kept for a warning, not fatal (later versions add keys).
    let c = conf("future-key = 1\n[[registry]]\nlocation = \"reg.example\"\nmirrors = []\ncredential-helpers = []\n");
    assert_eq!(
        c.ignored,
        [
            "test.conf:1: future-key",
            "test.conf:4: registry.mirrors",
            "test.conf:5: registry.credential-helpers"
        ]
    );
    let c = conf("credential-helpers = [\"x\"]\n");
    assert_eq!(
        c.ignored,
        ["test.conf:1: credential-helpers (not used by sdme)"]
    );
}

#[test]
fn files_that_cannot_be_read_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.conf");
    std::fs::write(&p, [0xff, 0xfe, b'\n']).unwrap();
    let e = load(&p, None).unwrap_err().to_string();
    assert_eq!(e, format!("{}: not UTF-8", p.display()));
    std::fs::write(&p, vec![b'#'; (MAX_FILE_SIZE + 1) as usize]).unwrap();
    assert!(load(&p, None)
        .unwrap_err()
        .to_string()
        .contains("larger than"));
    let e = load_file(&dir.path().join("missing.conf"))
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("missing.conf: no such file"), "{e}");
}

#[test]
fn rewrites_that_are_not_canonical_are_refused() {
    // A location is checked at load time; a rewrite can still leave the name
    // non-canonical (index.docker.io is written as docker.io).
    let c = conf("[[registry]]\nprefix = \"reg.example\"\nlocation = \"index.docker.io\"\n");
    let e = c
        .endpoints(&r("reg.example/a/b:1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a fully-qualified name"), "{e}");
}

#[test]
fn prefix_matching_rules() {
    let m = matching_prefix_len;
    assert_eq!(m("docker.io/library/busybox:latest", "docker.io"), Some(9));
    assert_eq!(
        m(
            "docker.io/library/busybox:latest",
            "docker.io/library/busybox"
        ),
        Some(25)
    );
    assert_eq!(
        m("docker.io/library/busybox:latest", "docker.io/library/busy"),
        None
    );
    assert_eq!(
        m(
            "docker.io/library/busybox:latest",
            "docker.io/library/busybox:latest"
        ),
        Some(32)
    );
    // containers/image matches these (a quirk it says not to rely on); sdme does not.
    assert_eq!(m("reg.example:5000/a:1", "reg.example"), None);
    assert_eq!(m("a.example.com:5000/x:1", "*.example.com"), None);
    assert_eq!(m("reg.example:5000/a:1", "reg.example:5000"), Some(16));
    assert_eq!(m("a.example.com/x:1", "*.example.com"), Some(13));
    assert_eq!(m("example.com/x:1", "*.example.com"), None);
}
