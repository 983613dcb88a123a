//! `sdme connector add|ls|rm` as an administrator runs it (with --root).

const SDME: &str = env!("CARGO_BIN_EXE_sdme");
use std::process::Command;

fn sdme(root: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(SDME)
        .arg(format!("--root={}", root.display()))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn add_ls_rm() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc/sdme")).unwrap();
    std::fs::write(
        t.path().join("etc/sdme/client.oci"),
        "[Image]\nImage=docker.io/library/x:1\n[Container]\n",
    )
    .unwrap();

    let (code, out, err) = sdme(t.path(), &["connector", "add", "client", "nginx"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("50-connector-nginx.conf"), "{out}");
    let dropin = t
        .path()
        .join("etc/sdme/client.oci.d/50-connector-nginx.conf");
    assert_eq!(
        std::fs::read_to_string(&dropin)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["[Container]", "Connector=nginx"]
    );
    let (code, out, _) = sdme(t.path(), &["connector", "ls", "client"]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("nginx\t{}:3\n", dropin.display()));

    let (code, out, _) = sdme(t.path(), &["connector", "rm", "client", "nginx"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("removed "), "{out}");
    assert!(!dropin.exists());
    assert_eq!(sdme(t.path(), &["connector", "ls", "client"]).1, "");

    let (code, _, err) = sdme(t.path(), &["connector", "rm", "client", "nginx"]);
    assert_eq!(code, 1);
    assert!(err.contains("has no connector nginx"), "{err}");
    let (code, _, err) = sdme(t.path(), &["connector", "add", "nosuch", "nginx"]);
    assert_eq!(code, 1);
    assert!(err.contains("no descriptor nosuch.oci"), "{err}");
    assert_eq!(sdme(t.path(), &["connector", "frobnicate"]).0, 64);
}
