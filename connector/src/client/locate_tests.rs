use super::*;
use std::os::unix::fs::symlink;

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap().join("connectors/nginx");
    std::fs::create_dir_all(&dir).unwrap();
    symlink(
        "/usr/libexec/sdme-connector-client",
        dir.join("docker-entrypoint.sh"),
    )
    .unwrap();
    (tmp, dir)
}

fn env<'a>(path: Option<&'a OsStr>, root: Option<&'a OsStr>, cwd: Option<&'a Path>) -> Lookup<'a> {
    Lookup {
        path_var: path,
        connector_dir: root,
        cwd,
    }
}

#[test]
fn absolute_symlink_path_names_the_connector() {
    let (_t, dir) = setup();
    let argv0 = dir.join("docker-entrypoint.sh");
    let t = from_argv0(argv0.as_os_str(), &env(None, None, None)).unwrap();
    assert_eq!(t.name, "nginx");
    assert_eq!(t.socket, dir.join("nginx.sock"));
}

#[test]
fn relative_invocation_resolves_the_directory_name() {
    let (_t, dir) = setup();
    let t = from_argv0(
        OsStr::new("./docker-entrypoint.sh"),
        &env(None, None, Some(&dir)),
    )
    .unwrap();
    assert_eq!(t.name, "nginx");
    assert_eq!(t.socket, dir.join("nginx.sock"));
    let parent = dir.parent().unwrap();
    let t = from_argv0(
        OsStr::new("nginx/docker-entrypoint.sh"),
        &env(None, None, Some(parent)),
    )
    .unwrap();
    assert_eq!(t.socket, dir.join("nginx.sock"));
}

#[test]
fn bare_name_is_found_through_path_first() {
    let (_t, dir) = setup();
    let path = std::env::join_paths(["/nonexistent", dir.to_str().unwrap()]).unwrap();
    let t = from_argv0(
        OsStr::new("docker-entrypoint.sh"),
        &env(Some(&path), None, None),
    )
    .unwrap();
    assert_eq!(t.socket, dir.join("nginx.sock"));
}

#[test]
fn bare_name_falls_back_to_sdme_connector_dir() {
    let (_t, dir) = setup();
    let path = OsString::from("/nonexistent");
    let t = from_argv0(
        OsStr::new("docker-entrypoint.sh"),
        &env(Some(&path), Some(dir.as_os_str()), None),
    )
    .unwrap();
    assert_eq!(t.name, "nginx");
    assert_eq!(t.socket, dir.join("nginx.sock"));
}

#[test]
fn unknown_bare_name_without_sdme_connector_dir_is_an_error() {
    let path = OsString::from("/nonexistent");
    let e = from_argv0(
        OsStr::new("docker-entrypoint.sh"),
        &env(Some(&path), None, None),
    )
    .unwrap_err();
    assert!(e.contains("cannot tell which connector"), "{e}");
    assert!(e.contains("SDME_CONNECTOR_DIR"), "{e}");
}

#[test]
fn default_connector_is_sdme_connector_dir() {
    let d = OsString::from("/connectors/redis");
    assert_eq!(
        default_connector(&env(None, Some(&d), None))
            .unwrap()
            .socket,
        PathBuf::from("/connectors/redis/redis.sock")
    );
    assert!(default_connector(&env(None, None, None)).is_err());
}

#[test]
fn by_name_uses_slash_connectors_and_refuses_paths() {
    let t = by_name("redis").unwrap();
    assert_eq!(t.socket, PathBuf::from("/connectors/redis/redis.sock"));
    for bad in ["", "a/b", "..", "."] {
        assert!(by_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn explicit_dir_and_name() {
    let t = Target::in_dir(Path::new("/x/y"), Some("z")).unwrap();
    assert_eq!(
        t,
        Target {
            name: "z".into(),
            socket: "/x/y/z.sock".into()
        }
    );
    assert_eq!(Target::in_dir(Path::new("/x/y"), None).unwrap().name, "y");
}

#[test]
fn non_utf8_arguments_are_refused() {
    use std::os::unix::ffi::OsStringExt;
    assert_eq!(utf8_args(vec!["a".into()]).unwrap(), vec!["a"]);
    let e = utf8_args(vec!["a".into(), OsString::from_vec(vec![0xff])]).unwrap_err();
    assert!(e.contains("argument 2"), "{e}");
}
