use super::*;

/// The smallest descriptor the generator accepts.
const IMAGE: &str = "[Image]\nImage=docker.io/library/x:1\n";

/// A connector the generator accepts.
fn connector(path: &str) -> (&str, String) {
    (
        path,
        "[Image]\nImage=docker.io/library/c:1\nMode=connector\n[Container]\n".into(),
    )
}

fn root_with(files: &[(&str, String)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = t.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    t
}

fn names(root: &Path, c: &str) -> Vec<String> {
    configured_connectors(root, c)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

#[test]
fn add_writes_the_dropin_and_ls_sees_it() {
    let t = root_with(&[
        ("etc/sdme/client.oci", format!("{IMAGE}[Container]\n")),
        connector("usr/lib/sdme/nginx.oci"),
    ]);
    let change = add(t.path(), "client", "nginx").unwrap();
    let path = t
        .path()
        .join("etc/sdme/client.oci.d/50-connector-nginx.conf");
    assert_eq!(change, Change::Written(path.clone()));
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("[Container]\nConnector=nginx\n"), "{text}");
    assert_eq!(names(t.path(), "client"), ["nginx"]);
    assert_eq!(
        add(t.path(), "client", "nginx").unwrap(),
        Change::AlreadyThere(path)
    );
}

#[test]
fn add_requires_a_descriptor_and_valid_names() {
    let t = root_with(&[
        ("usr/lib/sdme/client.oci", format!("{IMAGE}[Container]\n")),
        connector("etc/sdme/redis.oci"),
    ]);
    assert!(add(t.path(), "client", "redis").is_ok());
    let e = add(t.path(), "missing", "redis").unwrap_err();
    assert!(e.contains("no descriptor missing.oci"), "{e}");
    assert!(add(t.path(), "client", "../x").is_err());
    assert!(add(t.path(), "client", "client").is_err());
}

#[test]
fn rm_removes_only_what_add_wrote() {
    let t = root_with(&[
        (
            "etc/sdme/client.oci",
            format!("{IMAGE}[Container]\nConnector=redis\n"),
        ),
        connector("etc/sdme/redis.oci"),
        connector("etc/sdme/nginx.oci"),
    ]);
    add(t.path(), "client", "nginx").unwrap();
    assert_eq!(names(t.path(), "client"), ["redis", "nginx"]);
    assert!(matches!(
        remove(t.path(), "client", "nginx").unwrap(),
        Change::Removed(_)
    ));
    assert_eq!(names(t.path(), "client"), ["redis"]);
    let e = remove(t.path(), "client", "redis").unwrap_err();
    assert!(e.contains("client.oci:4"), "{e}");
    let e = remove(t.path(), "client", "nope").unwrap_err();
    assert!(e.contains("has no connector nope"), "{e}");
}

#[test]
fn ls_follows_precedence_masking_and_resets() {
    let t = root_with(&[
        (
            "etc/sdme/app.oci",
            format!("{IMAGE}[Container]\n# Connector=comment\nConnector = a\n"),
        ),
        (
            "usr/lib/sdme/app.oci",
            format!("{IMAGE}[Container]\nConnector=shadowed\n"),
        ),
        (
            "usr/lib/sdme/app.oci.d/10-x.conf",
            "[Container]\nConnector=lower\n".into(),
        ),
        (
            "etc/sdme/app.oci.d/10-x.conf",
            "[Container]\nConnector=b\n".into(),
        ),
        (
            "run/sdme/app.oci.d/20-y.conf",
            "[Container]\nConnector=\nConnector=c\n".into(),
        ),
        (
            "run/sdme/app.oci.d/30-z.conf",
            "[Container]\nConnector=d\n".into(),
        ),
        // Empty: masks the lower drop-in of the same name.
        ("etc/sdme/app.oci.d/40-w.conf", String::new()),
        (
            "usr/lib/sdme/app.oci.d/40-w.conf",
            "[Container]\nConnector=masked\n".into(),
        ),
    ]);
    assert_eq!(names(t.path(), "app"), ["c", "d"]);
}

#[test]
fn ls_reports_what_the_generator_would_reject() {
    let t = root_with(&[
        // The generator rejects Connector= outside [Container].
        (
            "etc/sdme/bad.oci",
            format!("{IMAGE}Connector=x\n[Container]\n"),
        ),
        ("etc/sdme/masked.oci", String::new()),
    ]);
    let e = configured_connectors(t.path(), "bad").unwrap_err();
    assert!(
        e.contains("would be skipped") && e.contains("/etc/sdme/bad.oci:3"),
        "{e}"
    );
    let e = configured_connectors(t.path(), "masked").unwrap_err();
    assert!(e.contains("masked"), "{e}");
    let e = configured_connectors(t.path(), "../x").unwrap_err();
    assert!(e.contains("not a valid machine name"), "{e}");
    // A broken descriptor still takes a connector; masked does not.
    assert!(add(t.path(), "bad", "nginx").is_ok());
    assert!(add(t.path(), "masked", "nginx").is_err());
}

#[test]
fn add_refuses_what_the_generator_would_drop() {
    let t = root_with(&[
        ("etc/sdme/box.oci", format!("{IMAGE}[Container]\n")),
        ("etc/sdme/plain.oci", format!("{IMAGE}[Container]\n")),
    ]);
    // The typo of issue 14: the generator would drop box entirely.
    let e = add(t.path(), "box", "nosuch").unwrap_err();
    assert!(
        e.contains("/etc/sdme/box.oci.d/50-connector-nosuch.conf:3: Connector=nosuch: no descriptor named nosuch"),
        "{e}"
    );
    assert!(e.contains("skipped: no units generated for box"), "{e}");
    // Not a connector: refused with the generator's reason.
    let e = add(t.path(), "box", "plain").unwrap_err();
    assert!(e.contains("descriptor plain is not a connector"), "{e}");
    // Nothing was written.
    assert!(!t.path().join("etc/sdme/box.oci.d").exists());
}
