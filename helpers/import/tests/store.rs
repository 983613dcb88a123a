//! Integration tests of `sdme-import pull`, `gc` and `sdme-nspawn --dry-run`
//! against local OCI layouts built with umoci in temporary directories.
//! They need root (ownership, whiteouts) and umoci; a missing prerequisite
//! fails the test instead of skipping it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const IMPORT: &str = env!("CARGO_BIN_EXE_sdme-import");
/// The launcher, built by its own package into the same directory (the
/// workspace's test run, `make test`, builds every binary first).
fn nspawn() -> std::path::PathBuf {
    Path::new(IMPORT).with_file_name("sdme-nspawn")
}

/// These tests need root (ownership, whiteouts), umoci and busybox-static;
/// `make test` (as root) installs the packages. A missing prerequisite fails
/// the test: a skipped test must never read as a pass.
fn require_prerequisites() {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push("root");
    }
    if Command::new("umoci").arg("--version").output().is_err() {
        missing.push("umoci");
    }
    if !Path::new("/bin/busybox").exists() {
        missing.push("/bin/busybox (busybox-static)");
    }
    if !nspawn().exists() {
        missing.push("sdme-nspawn (cargo test --workspace builds it)");
    }
    assert!(
        missing.is_empty(),
        "prerequisites missing: {} (run `make test` as root)",
        missing.join(", ")
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A layer tarball from a directory prepared by `fill`.
fn layer_tar(work: &Path, name: &str, fill: impl FnOnce(&Path)) -> PathBuf {
    let dir = work.join(format!("{name}.d"));
    fs::create_dir_all(&dir).unwrap();
    fill(&dir);
    let tar = work.join(format!("{name}.tar"));
    run(Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "--mtime=@0", "-C"])
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

fn write(root: &Path, rel: &str, body: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// `umoci` image `layout:tag` from layer tarballs and config arguments.
fn image(layout: &Path, tag: &str, layers: &[&Path], config: &[&str]) -> String {
    if !layout.exists() {
        run(Command::new("umoci").args(["init", "--layout"]).arg(layout));
    }
    let img = format!("{}:{tag}", layout.display());
    run(Command::new("umoci").args(["new", "--image", &img]));
    for l in layers {
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--image", &img])
            .arg(l));
    }
    if !config.is_empty() {
        run(Command::new("umoci")
            .args(["config", "--image", &img])
            .args(config));
    }
    format!("oci:{img}")
}

struct Fixture {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    store: PathBuf,
    base: String,
    app1: String,
    app2: String,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    let os = layer_tar(&work, "os", |d| {
        write(d, "etc/os-release", "ID=debian\n", 0o644);
        write(d, "usr/lib/systemd/systemd", "not really systemd\n", 0o755);
        write(d, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644);
        write(
            d,
            "etc/machine-id",
            "0123456789abcdef0123456789abcdef\n",
            0o444,
        );
    });
    // Shared by both apps: a busybox userland with an app user.
    let shared = layer_tar(&work, "shared", |d| {
        fs::create_dir_all(d.join("bin")).unwrap();
        fs::copy("/bin/busybox", d.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", d.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("busybox", d.join("bin/httpd")).unwrap();
        write(
            d,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:web:/www:/bin/sh\n",
            0o644,
        );
        write(d, "etc/group", "root:x:0:\nweb:x:1001:\n", 0o644);
    });
    let one = layer_tar(&work, "one", |d| {
        write(d, "www/index.html", "one\n", 0o644);
        write(d, "data/seed", "seed\n", 0o640);
    });
    let two = layer_tar(&work, "two", |d| write(d, "www/index.html", "two\n", 0o644));
    let layout = work.join("layout");
    let base = image(&layout, "base", &[&os], &["--config.cmd=/bin/sh"]);
    let app_config = [
        "--config.entrypoint=httpd",
        "--config.cmd=-f",
        "--config.cmd=-h",
        "--config.cmd=/www",
        "--config.user=web",
        "--config.exposedports=8080/tcp",
        "--config.env=PATH=/bin",
        "--config.env=MSG=100% $real \"quoted\"",
        "--config.workingdir=/www",
        "--config.stopsignal=SIGQUIT",
        "--config.volume=/www",
        "--config.volume=/var/cache/app/",
    ];
    let app1 = image(&layout, "app1", &[&shared, &one], &app_config);
    let app2 = image(&layout, "app2", &[&shared, &two], &app_config);
    Fixture {
        work: work.clone(),
        store: work.join("store"),
        base,
        app1,
        app2,
        _tmp: tmp,
    }
}

fn pull(store: &Path, name: &str, extra: &[&str], source: &str) -> std::process::Output {
    Command::new(IMPORT)
        .arg("pull")
        .arg(format!("--name={name}"))
        .args(extra)
        .arg(format!("--store={}", store.display()))
        .arg(source)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap()
}

fn pull_ok(store: &Path, name: &str, extra: &[&str], source: &str) {
    let out = pull(store, name, extra, source);
    assert!(
        out.status.success(),
        "pull {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn record(store: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&fs::read(store.join("images").join(name).join("image.json")).unwrap())
        .unwrap()
}

fn layer_count(store: &Path) -> usize {
    fs::read_dir(store.join("layers/sha256"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

#[test]
fn pull_builds_the_store_shares_layers_and_is_idempotent() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    pull_ok(s, "base", &["--mode=auto", "--pull=missing"], &f.base);
    pull_ok(
        s,
        "app1",
        &["--base=base", "--mode=auto", "--pull=missing"],
        &f.app1,
    );
    pull_ok(
        s,
        "app2",
        &["--base=base", "--mode=auto", "--pull=missing"],
        &f.app2,
    );

    // Structure: symlinks to NAME.HEX12.N generations with a record that
    // holds the full manifest digest.
    let link = fs::read_link(s.join("images/app1")).unwrap();
    let link = link.to_str().unwrap();
    let r1 = record(s, "app1");
    let digest = r1["manifest_digest"].as_str().unwrap();
    assert_eq!(digest.len(), "sha256:".len() + 64, "{digest}");
    assert_eq!(link, format!("app1.{}.1", &digest[7..19]));
    assert_eq!(r1["kind"], "app");
    assert_eq!(r1["base"], "base");
    assert_eq!(record(s, "base")["kind"], "base");
    assert_eq!(record(s, "base")["systemd_layer"], false);
    assert_eq!(r1["app"]["user"], "1000:1001");
    assert_eq!(r1["app"]["argv"][0], "/bin/httpd");
    // Four distinct layers: os, shared (once for both apps), one, two.
    assert_eq!(layer_count(s), 4);
    let r2 = record(s, "app2");
    assert_eq!(r1["layers"][0], r2["layers"][0]);
    assert_ne!(r1["layers"][1], r2["layers"][1]);

    // Glue of the base: an empty machine-id over the image's.
    assert_eq!(
        fs::read(s.join("images/base/glue/etc/machine-id"))
            .unwrap()
            .len(),
        0
    );
    // Glue of the app: the seed's layout.
    let glue = s.join("images/app1/glue");
    assert!(glue.join("oci/root").is_dir());
    assert_eq!(
        fs::read_to_string(glue.join("oci/ports")).unwrap(),
        "8080/tcp\n"
    );
    assert!(fs::read_to_string(glue.join("oci/env"))
        .unwrap()
        .contains("MSG=\"100% \\$real \\\"quoted\\\"\"\n"));
    let unit = fs::read_to_string(glue.join("etc/systemd/system/sdme-oci-app.service")).unwrap();
    assert!(unit.contains("ExecStart=/bin/httpd -f -h /www\n"), "{unit}");
    assert!(unit.contains("User=1000\nGroup=1001\n") && unit.contains("WorkingDirectory=/www\n"));
    assert!(s.join("images/app1/appglue/tmp").is_dir());

    // Re-import of an unchanged image: nothing to do, no registry, fast.
    let before = fs::metadata(s.join("images/app1/image.json"))
        .unwrap()
        .modified()
        .unwrap();
    let t0 = Instant::now();
    pull_ok(
        s,
        "app1",
        &["--base=base", "--mode=auto", "--pull=missing"],
        &f.app1,
    );
    let missing_time = t0.elapsed();
    let t0 = Instant::now();
    pull_ok(
        s,
        "app1",
        &["--base=base", "--mode=auto", "--pull=always"],
        &f.app1,
    );
    let always_time = t0.elapsed();
    println!("re-import of an unchanged image: --pull=missing {missing_time:?}, --pull=always {always_time:?}");
    assert_eq!(
        fs::metadata(s.join("images/app1/image.json"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    assert!(missing_time.as_millis() < 500, "{missing_time:?}");
    // --pull=missing never opens the source: a vanished source is fine.
    pull_ok(
        s,
        "app1",
        &["--base=base", "--mode=auto", "--pull=missing"],
        "oci:/nonexistent:tag",
    );
    assert!(!pull(
        s,
        "app1",
        &["--base=base", "--pull=always"],
        "oci:/nonexistent:tag"
    )
    .status
    .success());
    let out = pull(s, "nothere", &["--pull=never"], &f.app1);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pull=never"));
}

#[test]
fn a_changed_image_switches_atomically_and_gc_frees_the_old_one() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    pull_ok(s, "app", &["--base=base", "--pull=missing"], &f.app1);
    let old = fs::read_link(s.join("images/app")).unwrap();
    // The same tag now points at app2's manifest.
    let layout = f
        .app1
        .trim_start_matches("oci:")
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let app2_tag = format!("{layout}:app2");
    run(Command::new("umoci").args(["tag", "--image", &app2_tag, "app1"]));
    pull_ok(s, "app", &["--base=base", "--pull=missing"], &f.app1);
    assert_eq!(
        fs::read_link(s.join("images/app")).unwrap(),
        old,
        "--pull=missing must not look for updates"
    );
    pull_ok(s, "app", &["--base=base", "--pull=newer"], &f.app1);
    let new = fs::read_link(s.join("images/app")).unwrap();
    assert_ne!(new, old);
    assert!(
        s.join("images").join(&old).join("image.json").is_file(),
        "the old generation stays until gc"
    );
    assert_eq!(layer_count(s), 4);

    let out = run(Command::new(IMPORT)
        .arg("gc")
        .arg(format!("--store={}", s.display())));
    println!("{out}");
    assert!(
        out.contains(&format!("removed images/{}", old.display())),
        "{out}"
    );
    assert!(out.contains("freed "));
    assert!(!s.join("images").join(&old).exists());
    assert_eq!(
        layer_count(s),
        3,
        "the layer only the old generation used is gone"
    );
    assert!(s.join("images/app/image.json").is_file());
}

#[test]
fn mode_and_connector_and_reglue_without_the_source() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    pull_ok(
        s,
        "tool",
        &["--base=base", "--mode=connector", "--pull=missing"],
        &f.app1,
    );
    assert_eq!(record(s, "tool")["kind"], "connector");
    assert!(s.join("images/tool/glue/oci/proxy-mode").is_file());
    let link = fs::read_link(s.join("connectors/tool/httpd")).unwrap();
    assert_eq!(link, Path::new("/usr/libexec/sdme-connector-client"));
    // A connector's callers run commands: they get Environment= values, and
    // EnvironmentFile= values (secrets) only when the descriptor says so.
    let secret = f.work.join("tool.env");
    fs::write(&secret, "TOKEN=abc\n").unwrap();
    for (extra, expected) in [
        (None, "A=\"1\"\n"),
        (
            Some("--connector-environment-files"),
            "TOKEN=\"abc\"\nA=\"1\"\n",
        ),
    ] {
        let runtime = f.work.join("run-tool");
        run(Command::new(nspawn())
            .args(["--machine=tool", "--image=tool", "--dry-run", "--env=A=1"])
            .arg("--private-users=no")
            .arg(format!("--env-file={}", secret.display()))
            .args(extra)
            .arg(format!("--store={}", s.display()))
            .arg(format!("--runtime-dir={}", runtime.display())));
        assert_eq!(
            fs::read_to_string(runtime.join("environment")).unwrap(),
            expected
        );
    }
    // A connector never runs in a user namespace (the launcher's default).
    let out = Command::new(nspawn())
        .args(["--machine=tool", "--image=tool", "--dry-run"])
        .arg(format!("--store={}", s.display()))
        .arg(format!(
            "--runtime-dir={}",
            f.work.join("run-tool").display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("image tool is a connector: connectors run without a user namespace"));
    // A changed --mode regenerates the glue from the store, without the source.
    pull_ok(
        s,
        "tool",
        &["--base=base", "--mode=app", "--pull=missing"],
        "oci:/nonexistent:x",
    );
    assert_eq!(record(s, "tool")["kind"], "app");
    assert!(!s.join("images/tool/glue/oci/proxy-mode").exists());
    // An app forced to base: its layers are the root; no systemd → install
    // fails clearly for an unknown distribution.
    let out = pull(s, "weird", &["--mode=base", "--pull=missing"], &f.app1);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported distribution"), "{err}");
    assert!(
        !s.join("images/weird").exists(),
        "a failed import leaves nothing behind"
    );
}

#[test]
fn launcher_assembles_overlays_lowest_first_with_binds() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    let runtime = f.work.join("run");
    let out = Command::new(nspawn())
        .args(["--machine=web", "--image=app1", "--dry-run"])
        .arg(format!("--store={}", s.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("image app1 is not imported; run systemctl start sdme-import@app1"));
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    pull_ok(s, "app1", &["--base=base", "--pull=missing"], &f.app1);
    let envfile = f.work.join("secret.env");
    fs::write(&envfile, "TOKEN=abc\n").unwrap();
    let line = run(Command::new(nspawn())
        .args([
            "--machine=web",
            "--image=app1",
            "--dry-run",
            "--env=A=1",
            "--volume=/srv/www:/www:ro",
            "--volume=/data",
            "--user=root",
            "--private-users=no",
        ])
        .arg(format!("--env-file={}", envfile.display()))
        .arg(format!("--store={}", s.display()))
        .arg(format!("--runtime-dir={}", runtime.display()))
        .args(["--", "--boot", "--machine=web"]));
    let rb = record(s, "base");
    let ra = record(s, "app1");
    let hex = |v: &serde_json::Value| {
        v.as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let layers = s.join("layers/sha256");
    let base_gen = fs::read_link(s.join("images/base")).unwrap();
    let app_gen = fs::read_link(s.join("images/app1")).unwrap();
    let root = format!(
        "--overlay={}:{}:{}:{}:/",
        layers.join(hex(&rb["layers"][0])).display(),
        s.join("images").join(&base_gen).join("glue").display(),
        s.join("images").join(&app_gen).join("glue").display(),
        s.join("containers/web/root").display()
    );
    assert!(line.contains(&root), "{line}\nexpected {root}");
    let app = format!(
        "--overlay={}:{}:{}:{}:/oci/root",
        layers.join(hex(&ra["layers"][0])).display(),
        layers.join(hex(&ra["layers"][1])).display(),
        s.join("images").join(&app_gen).join("appglue").display(),
        s.join("containers/web/app").display()
    );
    assert!(line.contains(&app), "{line}\nexpected {app}");
    assert!(line.contains("--bind-ro=/srv/www:/oci/root/www"));
    assert!(line.contains(&format!(
        "--bind={}:/oci/root/data",
        s.join("volumes/web/data").display()
    )));
    // A new volume starts as a copy of the image's content at its path.
    assert_eq!(
        fs::read_to_string(s.join("volumes/web/data/seed")).unwrap(),
        "seed\n"
    );
    // Declared volumes: /www is covered by the container's bind, the other
    // one gets a persistent directory of its own.
    assert!(line.contains(&format!(
        "--bind={}:/oci/root/var/cache/app",
        s.join("volumes/web/var-cache-app").display()
    )));
    assert!(s.join("volumes/web/var-cache-app").is_dir());
    assert!(!s.join("volumes/web/www").exists());
    assert_eq!(line.matches("/oci/root/www").count(), 1, "{line}");
    // Binds are ordered by path: /data, /var/cache/app, /www.
    let data = line.find(":/oci/root/data").unwrap();
    let cache = line.find(":/oci/root/var/cache/app").unwrap();
    let www = line.find(":/oci/root/www").unwrap();
    assert!(data < cache && cache < www, "{line}");
    assert!(line.contains("--bind-ro=") && line.contains(":/run/sdme/environment"));
    assert!(line.trim_end().ends_with("--boot --machine=web"));
    let env = runtime.join("environment");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::read_to_string(&env).unwrap(),
        "TOKEN=\"abc\"\nA=\"1\"\n"
    );
    let dropin =
        fs::read_to_string(runtime.join("units/sdme-oci-app.service.d/50-launcher.conf")).unwrap();
    assert!(dropin.contains("User=\nGroup=\n"), "{dropin}");
    assert!(line.contains(&format!(
        "{}:/run/systemd/system/sdme-oci-app.service.d",
        runtime.join("units/sdme-oci-app.service.d").display()
    )));
    let gens = fs::read_to_string(s.join("containers/web/generations")).unwrap();
    assert!(gens.contains(base_gen.to_str().unwrap()) && gens.contains(app_gen.to_str().unwrap()));
    assert!(!line.contains("--private-users"), "{line}");

    // The default: a user namespace. The same layers, each seen through an
    // idmapped mount under the runtime directory, the container's range
    // handed to nspawn, volumes idmapped, the secrets readable by the
    // container's root (the range's first id).
    let line = run(Command::new(nspawn())
        .args(["--machine=web", "--image=app1", "--dry-run", "--env=A=1"])
        .args(["--volume=/srv/www:/www:ro", "--volume=/data"])
        .arg(format!("--store={}", s.display()))
        .arg(format!("--runtime-dir={}", runtime.display())));
    // A dry run records no range; it shows the one a start would get.
    assert!(!s.join("containers/web/userns").exists());
    let base: u32 = line
        .split_once("--private-users=")
        .and_then(|(_, rest)| rest.split_once(":65536 "))
        .map(|(b, _)| b.parse().unwrap())
        .unwrap_or_else(|| panic!("no --private-users=BASE:65536 in {line}"));
    assert!(base >= 0x80000 && base % 65536 == 0, "{base}");
    assert!(
        line.contains(&format!(
            "--private-users={base}:65536 --private-users-ownership=off"
        )),
        "{line}"
    );
    let mapped = |i: usize| {
        runtime
            .join("idmapped")
            .join(i.to_string())
            .display()
            .to_string()
    };
    let idmapped: Vec<&str> = line
        .lines()
        .filter(|l| l.starts_with("# idmapped "))
        .collect();
    assert_eq!(
        idmapped.len(),
        6,
        "3 root lowers, 2 app layers, appglue: {line}"
    );
    assert!(
        idmapped[0].starts_with(&format!(
            "# idmapped {}:{} for ids {base}:65536",
            layers.join(hex(&rb["layers"][0])).display(),
            mapped(0)
        )),
        "{line}"
    );
    let root = format!(
        "--overlay={}:{}:{}:{}:/",
        mapped(0),
        mapped(1),
        mapped(2),
        s.join("containers/web/root").display()
    );
    assert!(line.contains(&root), "{line}\nexpected {root}");
    assert!(
        line.contains(&format!("--directory={}", mapped(0))),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "--overlay={}:{}:{}:{}:/oci/root",
            mapped(3),
            mapped(4),
            mapped(5),
            s.join("containers/web/app").display()
        )),
        "{line}"
    );
    assert!(
        line.contains("--bind-ro=/srv/www:/oci/root/www:idmap"),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "--bind={}:/oci/root/data:idmap",
            s.join("volumes/web/data").display()
        )),
        "{line}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(&env).unwrap().uid(),
        base,
        "the environment file"
    );
    // A dry run changes no owners; the layers themselves never change.
    assert_eq!(
        fs::metadata(s.join("containers/web/root")).unwrap().uid(),
        0
    );
    assert!(
        !s.join("containers/web/owner").exists()
            || fs::read_to_string(s.join("containers/web/owner")).unwrap() == "0 65536\n"
    );

    // The app's upper layer is the container's: a symlink its root planted
    // there between two starts must not send the launcher's mkdir of the
    // working directory onto the host.
    let canary = f.work.join("canary");
    fs::create_dir(&canary).unwrap();
    fs::set_permissions(&canary, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&canary, s.join("containers/web/app/srv")).unwrap();
    // Resolved inside the upper layer, the link leads nowhere: a clear error.
    let out = Command::new(nspawn())
        .args([
            "--machine=web",
            "--image=app1",
            "--dry-run",
            "--workdir=/srv/work",
        ])
        .arg(format!("--store={}", s.display()))
        .arg(format!("--runtime-dir={}", runtime.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("working directory /srv/work in"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_dir(&canary).unwrap().count(),
        0,
        "mkdir went through the symlink"
    );
    assert_eq!(
        fs::metadata(&canary).unwrap().permissions().mode() & 0o7777,
        0o700
    );
}

/// `--app=`: another application image in the container, in a root of
/// its own with its own writable layer, volumes, environment, accounts and
/// drop-ins, its units' glue over the container's root, its generation
/// recorded with the container's.
#[test]
fn launcher_runs_other_apps_in_roots_of_their_own() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    let runtime = f.work.join("run");
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    pull_ok(s, "app1", &["--base=base", "--pull=missing"], &f.app1);
    pull_ok(s, "app2", &["--base=base", "--pull=missing"], &f.app2);
    let launch = |extra: &[&str]| {
        Command::new(nspawn())
            .args([
                "--machine=web",
                "--image=app1",
                "--dry-run",
                "--private-users=no",
            ])
            .arg(format!("--store={}", s.display()))
            .arg(format!("--runtime-dir={}", runtime.display()))
            .args(extra)
            .output()
            .unwrap()
    };
    let token = f.work.join("token");
    fs::write(&token, "t0k3n").unwrap();
    let credential = format!("--credential=tok:{}", token.display());
    let out = launch(&[
        "--env=A=1",
        &credential,
        "--app=app2",
        "--env=B=2 two",
        "--volume=/data",
        "--user=1000",
        "--workdir=/srv/new",
        "--restart=always",
        "--health-cmd=wget -q -O- http://localhost:8080/",
        "--stop-signal=SIGINT",
    ]);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gen = |name: &str| {
        s.join("images")
            .join(fs::read_link(s.join("images").join(name)).unwrap())
    };
    let (app1_gen, app2_gen) = (gen("app1"), gen("app2"));
    // The container's root: base, the first app's glue, then app2's extraglue.
    let root_tail = format!(
        "{}:{}:{}:/ ",
        app1_gen.join("glue").display(),
        app2_gen.join("extraglue").display(),
        s.join("containers/web/root").display()
    );
    assert!(line.contains(&root_tail), "{line}\nexpected …{root_tail}");
    let ra = record(s, "app2");
    let layers = s.join("layers/sha256");
    let hex = |v: &serde_json::Value| {
        v.as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let app2_root = format!(
        "--overlay={}:{}:{}:{}:/oci/apps/app2/root",
        layers.join(hex(&ra["layers"][0])).display(),
        layers.join(hex(&ra["layers"][1])).display(),
        app2_gen.join("appglue").display(),
        s.join("containers/web/apps/app2").display()
    );
    assert!(line.contains(&app2_root), "{line}\nexpected {app2_root}");
    // Its volumes, its image's declared ones included, beside the first
    // app's in a directory of its own; the first app's stay where they were.
    for (dir, path) in [
        ("data", "/data"),
        ("var-cache-app", "/var/cache/app"),
        ("www", "/www"),
    ] {
        let bind = format!(
            "--bind={}:/oci/apps/app2/root{path}",
            s.join("volumes/web@app2").join(dir).display()
        );
        assert!(line.contains(&bind), "{line}\nexpected {bind}");
    }
    assert!(line.contains(&format!(
        "--bind={}:/oci/root/www",
        s.join("volumes/web/www").display()
    )));
    // Its environment: its own file, not the first app's variables.
    let env = runtime.join("apps/app2/environment");
    assert_eq!(fs::read_to_string(&env).unwrap(), "B=\"2 two\"\n");
    assert!(line.contains(&format!(
        "--bind-ro={}:/run/sdme/apps/app2/environment",
        env.display()
    )));
    assert_eq!(
        fs::read_to_string(runtime.join("environment")).unwrap(),
        "A=\"1\"\n"
    );
    // Its settings are drop-ins of its own units.
    let dropin = |unit: &str| {
        fs::read_to_string(runtime.join(format!("units/{unit}.d/50-launcher.conf")))
            .unwrap_or_else(|e| panic!("{unit}: {e}"))
    };
    let app = dropin("sdme-oci-app@app2.service");
    for l in [
        "User=1000\n",
        "Restart=always\n",
        "KillSignal=SIGINT\n",
        "WorkingDirectory=/srv/new\n",
        "LoadCredential=tok\n",
    ] {
        assert!(app.contains(l), "{l} in {app}");
    }
    assert!(dropin("sdme-oci-health-check@app2.service")
        .contains("ExecStart=/bin/sh -c \"wget -q -O- http://localhost:8080/\"\n"));
    let first = dropin("sdme-oci-app.service");
    assert!(
        first.contains("LoadCredential=tok\n")
            && !first.contains("Restart=")
            && !first.contains("User="),
        "the first app gets none of app2's settings: {first}"
    );
    assert!(line.contains(&format!(
        "{}:/run/systemd/system/sdme-oci-app@app2.service.d",
        runtime.join("units/sdme-oci-app@app2.service.d").display()
    )));
    // Its accounts, for systemd 252's User= lookup.
    let passwd = fs::read_to_string(runtime.join("apps/app2/passwd")).unwrap();
    assert!(passwd.starts_with("web:x:1000:1001:"), "{passwd}");
    assert!(line.contains(":/run/sdme/apps/app2/passwd"));
    // Its working directory, made in its writable layer.
    assert!(s.join("containers/web/apps/app2/srv/new").is_dir());
    let gens = fs::read_to_string(s.join("containers/web/generations")).unwrap();
    let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
    assert!(gens.lines().any(|g| g == name(&app2_gen)), "{gens}");
    assert!(gens.lines().any(|g| g == name(&app1_gen)), "{gens}");

    // Only application images; only app options after --app=.
    for (args, want) in [
        (&["--app=base"][..], "not an application image"),
        (&["--app=nosuch"], "not imported"),
        (&["--app=app2", "--zone=z"], "only app options"),
    ] {
        let out = launch(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_deleted_layer_is_fetched_again_and_stale_temporaries_go() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    let layer = fs::read_dir(s.join("layers/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::remove_dir_all(&layer).unwrap();
    let stale = s.join("layers/sha256/.tmp.dead.999999999.0");
    fs::create_dir_all(&stale).unwrap();
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    assert!(layer.is_dir(), "the missing layer was fetched again");
    assert!(!stale.exists(), "the stale temporary was removed");
}

#[test]
fn concurrent_imports_share_a_layer_safely() {
    require_prerequisites();
    let f = fixture();
    let s = f.store.clone();
    pull_ok(&s, "base", &["--pull=missing"], &f.base);
    // Both apps fetch the shared layer at the same time; one rename wins, the
    // other import drops its copy and uses the winner's.
    let (a1, a2) = (f.app1.clone(), f.app2.clone());
    let (s1, s2) = (s.clone(), s.clone());
    let t1 = std::thread::spawn(move || pull(&s1, "one", &["--base=base", "--pull=missing"], &a1));
    let t2 = std::thread::spawn(move || pull(&s2, "two", &["--base=base", "--pull=missing"], &a2));
    for out in [t1.join().unwrap(), t2.join().unwrap()] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(layer_count(&s), 4);
    assert_eq!(
        record(&s, "one")["layers"][0],
        record(&s, "two")["layers"][0]
    );
    let leftovers: Vec<_> = fs::read_dir(s.join("layers/sha256"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .collect();
    assert!(leftovers.is_empty(), "no temporaries left: {leftovers:?}");
}

fn link(store: &Path, name: &str) -> String {
    fs::read_link(store.join("images").join(name))
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

fn gc(store: &Path) -> std::process::Output {
    Command::new(IMPORT)
        .arg("gc")
        .arg(format!("--store={}", store.display()))
        .output()
        .unwrap()
}

/// Every entry of a tree with its contents, for "nothing was rewritten".
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let body = if m.is_file() {
            fs::read(&p).unwrap()
        } else if m.file_type().is_symlink() {
            fs::read_link(&p)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            Vec::new()
        };
        out.push((p.strip_prefix(root).unwrap().to_path_buf(), body));
        if m.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// Starts container `machine` "for real" (the launcher execs `SDME_NSPAWN`,
/// here a script that records its open descriptors and exits).
fn start(store: &Path, work: &Path, machine: &str, image: &str) -> String {
    let fake = work.join("fake-nspawn");
    let fds = work.join(format!("{machine}.fds"));
    fs::write(
        &fake,
        format!("#!/bin/sh\nls -l /proc/$$/fd >{}\n", fds.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    run(Command::new(nspawn())
        .arg(format!("--machine={machine}"))
        .arg(format!("--image={image}"))
        .arg(format!("--store={}", store.display()))
        .arg(format!("--runtime-dir={}", work.join("run").display()))
        .env("SDME_NSPAWN", &fake));
    fs::read_to_string(&fds).unwrap()
}

fn generations_file(store: &Path, machine: &str) -> Vec<String> {
    fs::read_to_string(store.join("containers").join(machine).join("generations"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_reglue_never_touches_a_generation_in_use_and_gc_keeps_it() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    pull_ok(s, "app", &["--base=base", "--pull=missing"], &f.app1);
    let old = link(s, "app");
    let old_dir = s.join("images").join(&old);
    let before = snapshot(&old_dir);
    let fds = start(s, &f.work, "web", "app");
    assert!(
        !fds.contains(".lock"),
        "systemd-nspawn inherited the store lock:\n{fds}"
    );
    assert_eq!(generations_file(s, "web"), [link(s, "base"), old.clone()]);

    // A changed Mode= re-glues from the store: a new generation, a new name.
    pull_ok(
        s,
        "app",
        &["--base=base", "--mode=app", "--pull=missing"],
        "oci:/nonexistent:x",
    );
    let new = link(s, "app");
    assert_ne!(new, old);
    let prefix = old.rsplit_once('.').unwrap().0;
    assert_eq!(new, format!("{prefix}.2"), "same manifest, next build");
    assert_eq!(record(s, "app")["mode"], "app");
    assert_eq!(
        record(s, "app")["manifest_digest"],
        serde_json::from_slice::<serde_json::Value>(&fs::read(old_dir.join("image.json")).unwrap())
            .unwrap()["manifest_digest"]
    );
    assert_eq!(
        snapshot(&old_dir),
        before,
        "the generation the container uses was not rewritten"
    );
    // The same again (a second import of one name, a glue bump): yet another name.
    pull_ok(
        s,
        "app",
        &["--base=base", "--mode=connector", "--pull=missing"],
        "oci:/nonexistent:x",
    );
    let third = link(s, "app");
    assert_eq!(third, format!("{prefix}.3"));
    // Back to a request built before: that generation is used as it is.
    pull_ok(
        s,
        "app",
        &["--base=base", "--mode=app", "--pull=missing"],
        "oci:/nonexistent:x",
    );
    assert_eq!(link(s, "app"), new);

    // gc while the container runs: its generation and layers stay.
    let layers = layer_count(s);
    let out = gc(s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("removed images/{third}")),
        "{stdout}"
    );
    assert!(!stdout.contains(&format!("images/{old}\n")), "{stdout}");
    assert_eq!(snapshot(&old_dir), before);
    assert_eq!(layer_count(s), layers);
    let r_old: serde_json::Value =
        serde_json::from_slice(&fs::read(old_dir.join("image.json")).unwrap()).unwrap();
    for d in r_old["layers"].as_array().unwrap() {
        let hex = d.as_str().unwrap().trim_start_matches("sha256:");
        assert!(s.join("layers/sha256").join(hex).is_dir());
    }

    // Restarted, the container uses the new generation; then gc frees the old.
    start(s, &f.work, "web", "app");
    assert_eq!(generations_file(s, "web"), [link(s, "base"), new.clone()]);
    let out = gc(s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("removed images/{old}\n")),
        "{stdout}"
    );
    assert!(!old_dir.exists());
    assert!(s.join("images/app/image.json").is_file());
}

#[test]
fn the_launcher_records_its_generations_under_the_store_lock() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    // gc's side of the lock, held by the test.
    let lock = fs::OpenOptions::new()
        .append(true)
        .open(s.join(".lock"))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let mut child = Command::new(nspawn())
        .args(["--machine=box", "--image=base", "--dry-run"])
        .arg(format!("--store={}", s.display()))
        .arg(format!("--runtime-dir={}", f.work.join("run").display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The launcher is blocked on the lock: /proc/locks lists its request
    // as waiting ("->") on the lock file's inode.
    use std::os::unix::fs::MetadataExt;
    let ino = fs::metadata(s.join(".lock")).unwrap().ino();
    let waiting = format!(" {} ", child.id());
    let t0 = Instant::now();
    loop {
        let locks = fs::read_to_string("/proc/locks").unwrap();
        if locks.lines().any(|l| {
            l.contains("->")
                && l.contains("FLOCK")
                && l.contains(&waiting)
                && l.contains(&format!(":{ino} "))
        }) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the launcher finished ({status}) without waiting for gc's lock");
        }
        assert!(
            t0.elapsed().as_secs() < 20,
            "the launcher never waited for the lock:\n{locks}"
        );
        std::thread::yield_now();
    }
    assert!(
        !s.join("containers/box/generations").exists(),
        "generations recorded while gc held the store"
    );
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(generations_file(s, "box"), [link(s, "base")]);
}

#[test]
fn gc_removes_no_layer_while_a_record_is_unreadable() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    pull_ok(s, "app", &["--base=base", "--pull=missing"], &f.app1);
    let old = link(s, "app");
    let layout = f
        .app1
        .trim_start_matches("oci:")
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    run(Command::new("umoci").args(["tag", "--image", &format!("{layout}:app2"), "app1"]));
    pull_ok(s, "app", &["--base=base", "--pull=newer"], &f.app1);
    assert_ne!(link(s, "app"), old);
    assert_eq!(layer_count(s), 4, "one layer only the old generation uses");
    // Some other generation's record is damaged.
    let broken = s.join("images").join(link(s, "base")).join("image.json");
    fs::write(&broken, "{\"name\": \"base\", trunc").unwrap();
    let out = gc(s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(!out.status.success(), "gc must not report success");
    assert!(
        stdout.contains(&format!("removed images/{old}\n")),
        "an unused generation with a good record still goes: {stdout}"
    );
    assert!(!stdout.contains("layers/"), "{stdout}");
    assert_eq!(layer_count(s), 4, "no layer was removed");
    assert!(
        stderr.contains(&format!("{}: invalid image record", broken.display()))
            && stderr.contains("every layer"),
        "{stderr}"
    );
    assert!(broken.is_file());
    // Repaired (here: the image re-imported), gc frees the layer.
    fs::remove_file(s.join("images/base")).unwrap();
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    let out = gc(s);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the damaged generation is still there"
    );
    assert!(stderr.contains("invalid image record"), "{stderr}");
    fs::remove_dir_all(broken.parent().unwrap()).unwrap();
    let out = gc(s);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layer_count(s), 3);
}

#[test]
fn generations_are_matched_by_the_full_manifest_digest() {
    require_prerequisites();
    let f = fixture();
    let s = &f.store;
    pull_ok(s, "base", &["--pull=missing"], &f.base);
    pull_ok(s, "app", &["--base=base", "--pull=missing"], &f.app1);
    let first = link(s, "app");
    let digest = record(s, "app")["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string();
    // Make the generation hold another manifest with the same first 12 hex
    // digits (what the directory's name shows).
    let path = s.join("images").join(&first).join("image.json");
    let mut r = record(s, "app");
    let last = if digest.ends_with('0') { "1" } else { "0" };
    let other = format!("{}{last}", &digest[..digest.len() - 1]);
    r["manifest_digest"] = serde_json::Value::String(other.clone());
    fs::write(&path, serde_json::to_vec(&r).unwrap()).unwrap();
    pull_ok(s, "app", &["--base=base", "--pull=always"], &f.app1);
    let second = link(s, "app");
    assert_ne!(second, first, "a 12-digit prefix is not the manifest");
    assert_eq!(record(s, "app")["manifest_digest"], digest.as_str());
    assert_eq!(
        second,
        format!("{}.2", first.rsplit_once('.').unwrap().0),
        "{second}"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&fs::read(&path).unwrap()).unwrap()
            ["manifest_digest"],
        other.as_str(),
        "the other generation was left alone"
    );
    pull_ok(s, "app", &["--base=base", "--pull=always"], &f.app1);
    assert_eq!(link(s, "app"), second, "now up to date");

    // An old store's name (NAME.HEX12) stays valid and is never reused.
    let legacy = first.rsplit_once('.').unwrap().0.to_string();
    fs::remove_dir_all(s.join("images").join(&first)).unwrap();
    fs::rename(
        s.join("images").join(&second),
        s.join("images").join(&legacy),
    )
    .unwrap();
    fs::remove_file(s.join("images/app")).unwrap();
    std::os::unix::fs::symlink(&legacy, s.join("images/app")).unwrap();
    pull_ok(s, "app", &["--base=base", "--pull=always"], &f.app1);
    assert_eq!(
        link(s, "app"),
        legacy,
        "the old-style generation is up to date"
    );
    let line = run(Command::new(nspawn())
        .args([
            "--machine=old",
            "--image=app",
            "--dry-run",
            "--private-users=no",
        ])
        .arg(format!("--store={}", s.display()))
        .arg(format!("--runtime-dir={}", f.work.join("run").display())));
    assert!(line.contains(&format!("images/{legacy}/glue:")), "{line}");
    pull_ok(
        s,
        "app",
        &["--base=base", "--mode=app", "--pull=missing"],
        "oci:/nonexistent:x",
    );
    assert_eq!(link(s, "app"), format!("{legacy}.1"));
    assert!(s.join("images").join(&legacy).join("image.json").is_file());
}
