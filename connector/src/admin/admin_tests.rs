use super::*;

fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
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
    let t = root_with(&[("etc/sdme/client.oci", "[Container]\n")]);
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
    let t = root_with(&[("usr/lib/sdme/client.oci", "[Container]\n")]);
    assert!(add(t.path(), "client", "redis").is_ok());
    let e = add(t.path(), "missing", "redis").unwrap_err();
    assert!(e.contains("no descriptor missing.oci"), "{e}");
    assert!(add(t.path(), "client", "../x").is_err());
    assert!(add(t.path(), "client", "client").is_err());
}

#[test]
fn rm_removes_only_what_add_wrote() {
    let t = root_with(&[("etc/sdme/client.oci", "[Container]\nConnector=redis\n")]);
    add(t.path(), "client", "nginx").unwrap();
    assert_eq!(names(t.path(), "client"), ["redis", "nginx"]);
    assert!(matches!(
        remove(t.path(), "client", "nginx").unwrap(),
        Change::Removed(_)
    ));
    assert_eq!(names(t.path(), "client"), ["redis"]);
    let e = remove(t.path(), "client", "redis").unwrap_err();
    assert!(e.contains("client.oci:2"), "{e}");
    let e = remove(t.path(), "client", "nope").unwrap_err();
    assert!(e.contains("has no connector nope"), "{e}");
}

#[test]
fn ls_follows_precedence_sections_and_resets() {
    let t = root_with(&[
        (
            "etc/sdme/c.oci",
            "[Image]\nConnector=notthis\n[Container]\n# Connector=comment\nConnector = a\n",
        ),
        ("usr/lib/sdme/c.oci", "[Container]\nConnector=shadowed\n"),
        (
            "usr/lib/sdme/c.oci.d/10-x.conf",
            "[Container]\nConnector=lower\n",
        ),
        ("etc/sdme/c.oci.d/10-x.conf", "[Container]\nConnector=b\n"),
        (
            "run/sdme/c.oci.d/20-y.conf",
            "[Container]\nConnector=\nConnector=c\n",
        ),
        ("run/sdme/c.oci.d/30-z.conf", "[Container]\nConnector=d\n"),
    ]);
    assert_eq!(names(t.path(), "c"), ["c", "d"]);
}
