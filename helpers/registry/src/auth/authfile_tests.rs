use super::*;

fn creds(u: &str, p: &str) -> Option<Found> {
    Some(Found::Credentials(Credentials {
        username: u.into(),
        password: p.into(),
    }))
}

fn auth(u: &str, p: &str) -> String {
    base64::encode(format!("{u}:{p}").as_bytes())
}

#[test]
fn docker_config_url_keys_and_hub_aliases() {
    let f = format!(
        r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"http://reg.example:5000/v2/":{{"auth":"{}"}}}}}}"#,
        auth("hub", "h:pw"),
        auth("r", "rpw")
    );
    assert_eq!(
        lookup_in(f.as_bytes(), "docker.io", "library/busybox", "f").unwrap(),
        creds("hub", "h:pw")
    );
    assert_eq!(
        lookup_in(f.as_bytes(), "reg.example:5000", "a/b", "f").unwrap(),
        creds("r", "rpw")
    );
    assert_eq!(
        lookup_in(f.as_bytes(), "reg.example", "a/b", "f").unwrap(),
        None
    );
}

#[test]
fn most_specific_repository_key_wins() {
    let f = format!(
        r#"{{"auths":{{"quay.io":{{"auth":"{}"}},"quay.io/team":{{"auth":"{}"}},"quay.io/team/app":{{"auth":"{}"}},"quay.io/te":{{"auth":"{}"}}}}}}"#,
        auth("host", "1"),
        auth("team", "2"),
        auth("app", "3"),
        auth("prefix-trap", "4")
    );
    let l = |p: &str| lookup_in(f.as_bytes(), "quay.io", p, "f").unwrap();
    assert_eq!(l("team/app"), creds("app", "3"));
    assert_eq!(l("team/other"), creds("team", "2"));
    assert_eq!(l("teams/x"), creds("host", "1"));
    assert_eq!(l("te/x"), creds("prefix-trap", "4"));
}

#[test]
fn helpers_precedence_and_bad_entries() {
    let f = format!(
        r#"{{"auths":{{"a.example":{{"auth":"{}"}},"b.example":{{}}}},"credHelpers":{{"a.example":"pass"}},"credsStore":"desktop"}}"#,
        auth("u", "p")
    );
    assert_eq!(
        lookup_in(f.as_bytes(), "a.example", "x", "f").unwrap(),
        Some(Found::Helper("pass".into()))
    );
    assert_eq!(
        lookup_in(f.as_bytes(), "b.example", "x", "f").unwrap(),
        Some(Found::Helper("desktop".into()))
    );
    assert_eq!(lookup_in(br#"{}"#, "b.example", "x", "f").unwrap(), None);
    let e = lookup_in(br#"{"auths":{"c":{"auth":"!!"}}}"#, "c", "x", "my.json").unwrap_err();
    assert!(e.to_string().contains("my.json: auths[c]"), "{e}");
    let e = lookup_in(
        format!(
            r#"{{"auths":{{"c":{{"auth":"{}"}}}}}}"#,
            base64::encode(b"nocolon")
        )
        .as_bytes(),
        "c",
        "x",
        "f",
    )
    .unwrap_err();
    assert!(e.to_string().contains("USER:PASSWORD"), "{e}");
    assert!(lookup_in(b"not json", "c", "x", "f").is_err());
}

#[test]
fn explicit_file_is_the_only_one_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("auth.json");
    assert_eq!(search_paths(Some(&p)), vec![p.clone()]);
    assert!(
        find("x.example", "y", Some(&p)).is_err(),
        "missing --authfile is an error"
    );
    std::fs::write(
        &p,
        format!(
            r#"{{"auths":{{"x.example":{{"auth":"{}"}}}}}}"#,
            auth("u", "p")
        ),
    )
    .unwrap();
    let c = find("x.example", "y", Some(&p)).unwrap().unwrap();
    assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
    assert_eq!(c.basic_header(), format!("Basic {}", auth("u", "p")));
    assert!(
        !format!("{c:?}").contains("\"p\""),
        "the password must not be printed"
    );
}

#[test]
fn credential_helper_gets_server_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-sdmetest");
    std::fs::write(
        &helper,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread s\ncase \"$s\" in\n  h.example:5000) echo '{\"ServerURL\":\"h\",\"Username\":\"hu\",\"Secret\":\"hs\"}';;\n  *) echo 'credentials not found in native keychain'; exit 1;;\nesac\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Run the helper lookups in a child-free way: set PATH only for this process's lookups.
    std::env::set_var("PATH", &path);
    let got = credhelper::get("sdmetest", "h.example:5000")
        .unwrap()
        .unwrap();
    assert_eq!((got.username.as_str(), got.password.as_str()), ("hu", "hs"));
    assert_eq!(credhelper::get("sdmetest", "other").unwrap(), None);
    assert!(credhelper::get("../evil", "x").is_err());
    assert!(credhelper::get("sdme-no-such-helper", "x").is_err());

    // Through an auth file: credHelpers names the helper for the registry.
    let file = dir.path().join("config.json");
    std::fs::write(&file, r#"{"credHelpers":{"h.example:5000":"sdmetest"}}"#).unwrap();
    let c = find("h.example:5000", "some/repo", Some(&file))
        .unwrap()
        .unwrap();
    assert_eq!(c.username, "hu");
    assert_eq!(
        find("other.example", "some/repo", Some(&file)).unwrap(),
        None
    );
}
