//! `sdme` as an administrator runs it on a tree (`--root`): the commands
//! that edit descriptors, their checks and exit codes.

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
    std::fs::write(
        t.path().join("etc/sdme/nginx.oci"),
        "[Image]\nImage=docker.io/library/nginx:1\nMode=connector\n[Container]\n",
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
    let (code, _, err) = sdme(t.path(), &["connector", "add", "client", "nosuch"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Connector=nosuch: no descriptor named nosuch"),
        "{err}"
    );
    assert!(!t
        .path()
        .join("etc/sdme/client.oci.d/50-connector-nosuch.conf")
        .exists());
    assert_eq!(sdme(t.path(), &["connector", "frobnicate"]).0, 2);
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn install_and_rm_are_checked_by_the_generator() {
    let t = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let root = t.path();
    write(
        &src.path().join("debian.oci"),
        "[Image]\nImage=docker.io/library/debian:12\n",
    );
    write(
        &src.path().join("web.oci"),
        "[Image]\nImage=docker.io/library/nginx:1\nBase=debian\n[Container]\n",
    );
    write(
        &src.path().join("web.oci.d/10-env.conf"),
        "[Container]\nEnvironment=A=1\n",
    );
    // web alone needs its base: refused, nothing written.
    let (code, _, err) = sdme(
        root,
        &["install", &src.path().join("web.oci").display().to_string()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/etc/sdme/web.oci:3: Base=debian: no descriptor named debian"),
        "{err}"
    );
    assert!(!root.join("etc/sdme/web.oci").exists());
    // The directory: both descriptors and the drop-in.
    let (code, out, err) = sdme(root, &["install", &src.path().display().to_string()]);
    assert_eq!(code, 0, "{err}");
    for f in ["debian.oci", "web.oci", "web.oci.d/10-env.conf"] {
        assert!(root.join("etc/sdme").join(f).is_file(), "{f}: {out}");
    }
    // A broken file is refused with the generator's file:line.
    write(
        &src.path().join("bad/bad.oci"),
        "[Image]\nImage=docker.io/x:1\nFrobnicate=1\n",
    );
    let (code, _, err) = sdme(
        root,
        &["install", &src.path().join("bad").display().to_string()],
    );
    assert_eq!(code, 1);
    assert!(err.contains("/etc/sdme/bad.oci:3:"), "{err}");
    // A changed file needs --replace.
    write(
        &src.path().join("debian.oci"),
        "[Image]\nImage=docker.io/library/debian:13\n",
    );
    let debian = src.path().join("debian.oci").display().to_string();
    let (code, _, err) = sdme(root, &["install", &debian]);
    assert_eq!(code, 1);
    assert!(err.contains("--replace"), "{err}");
    assert_eq!(sdme(root, &["install", "--replace", &debian]).0, 0);
    assert!(std::fs::read_to_string(root.join("etc/sdme/debian.oci"))
        .unwrap()
        .contains(":13"));
    // rm refuses a descriptor another one needs (web's Base=).
    let (code, _, err) = sdme(root, &["rm", "debian"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Base=debian: no descriptor named debian"),
        "{err}"
    );
    assert!(root.join("etc/sdme/debian.oci").exists());
    // rm of web takes its drop-ins too; then debian may go.
    let (code, out, err) = sdme(root, &["rm", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed /etc/sdme/web.oci"), "{out}");
    assert!(!root.join("etc/sdme/web.oci.d").exists());
    assert_eq!(sdme(root, &["rm", "debian"]).0, 0);
    // Gone: 4, as systemctl for a unit it does not know.
    assert_eq!(sdme(root, &["rm", "debian"]).0, 4);
    // A vendor descriptor is not removed.
    write(
        &root.join("usr/lib/sdme/v.oci"),
        "[Image]\nImage=docker.io/x:1\n",
    );
    let (code, _, err) = sdme(root, &["rm", "v"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/usr/lib/sdme/v.oci") && err.contains("/dev/null"),
        "{err}"
    );
}

#[test]
fn ls_json_with_root_lists_descriptors() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    write(
        &root.join("etc/sdme/debian.oci"),
        "[Image]\nImage=docker.io/library/debian:12\nMode=base\n",
    );
    write(
        &root.join("etc/sdme/web.oci"),
        "[Image]\nImage=docker.io/library/nginx:1\nBase=debian\n[Container]\n",
    );
    write(&root.join("etc/sdme/broken.oci"), "[Image]\nNope=1\n");
    write(&root.join("etc/sdme/off.oci"), "");
    let (code, out, err) = sdme(root, &["ls", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let by = |n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by("web")["kind"], "container");
    assert_eq!(by("web")["image"]["reference"], "docker.io/library/nginx:1");
    assert_eq!(by("web")["image"]["provider"], "web");
    assert_eq!(by("web")["state"], "ok");
    assert_eq!(by("debian")["kind"], "base");
    assert_eq!(by("broken")["state"], "skipped");
    assert!(by("broken")["problems"][0]
        .as_str()
        .unwrap()
        .starts_with("/etc/sdme/broken.oci:2:"));
    assert_eq!(by("off")["state"], "masked");
    let (code, out, _) = sdme(root, &["ls"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("NAME "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("web ") && l.contains("container")),
        "{out}"
    );
    // The commands about the running system refuse --root (usage).
    assert_eq!(sdme(root, &["status", "web"]).0, 2);
    assert_eq!(sdme(root, &["exec", "web", "id"]).0, 2);
}

#[test]
fn templates_install_and_their_instances_rm() {
    let t = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let root = t.path();
    write(
        &src.path().join("site@.oci"),
        "[Image]\nImage=docker.io/library/nginx:1\n[Container]\nNetwork=veth\n",
    );
    let (code, out, err) = sdme(
        root,
        &[
            "install",
            &src.path().join("site@.oci").display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(root.join("etc/sdme/site@.oci").is_file());
    // An instance is a symlink to its template, made by hand.
    std::os::unix::fs::symlink("site@.oci", root.join("etc/sdme/site@blog.oci")).unwrap();
    let (code, out, err) = sdme(root, &["rm", "site-blog"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("removed /etc/sdme/site@blog.oci"), "{out}");
    assert!(std::fs::symlink_metadata(root.join("etc/sdme/site@blog.oci")).is_err());
    assert!(root.join("etc/sdme/site@.oci").is_file());
}
