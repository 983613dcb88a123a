use super::*;
use std::path::Path;

fn p(a: &[&str]) -> Result<Args, String> {
    parse(a.iter().map(OsString::from))
}

fn cmd(a: &[&str]) -> Cmd {
    p(a).unwrap().cmd
}

#[test]
fn commands_and_their_options() {
    assert_eq!(cmd(&[]), Cmd::Help);
    assert_eq!(cmd(&["ls", "--json"]), Cmd::Ls { json: true });
    assert_eq!(cmd(&["images"]), Cmd::Images { json: false });
    assert_eq!(
        cmd(&["logs", "web", "-f", "-n", "20"]),
        Cmd::Logs {
            name: "web".into(),
            follow: true,
            lines: Some("20".into()),
            app: None,
        }
    );
    assert_eq!(
        cmd(&["logs", "--lines=all", "web"]),
        Cmd::Logs {
            name: "web".into(),
            follow: false,
            lines: Some("all".into()),
            app: None,
        }
    );
    assert_eq!(
        cmd(&["logs", "web", "--app=db"]),
        Cmd::Logs {
            name: "web".into(),
            follow: false,
            lines: None,
            app: Some("db".into()),
        }
    );
    assert_eq!(ops::app_unit(Some("db")), "sdme-oci-app@db.service");
    assert_eq!(ops::app_unit(None), "sdme-oci-app.service");
    // sd_bus_path_encode(): what busctl is asked for.
    assert_eq!(
        ops::unit_bus_path("sdme-oci-app.service"),
        "/org/freedesktop/systemd1/unit/sdme_2doci_2dapp_2eservice"
    );
    assert_eq!(
        ops::unit_bus_path("sdme-oci-app@my_db.2.service"),
        "/org/freedesktop/systemd1/unit/sdme_2doci_2dapp_40my_5fdb_2e2_2eservice"
    );
    assert_eq!(
        cmd(&["install", "--replace", "a.oci", "dir"]),
        Cmd::Install {
            replace: true,
            paths: vec!["a.oci".into(), "dir".into()]
        }
    );
    assert_eq!(cmd(&["rm", "web"]), Cmd::Rm { name: "web".into() });
    assert_eq!(cmd(&["reset", "web"]), Cmd::Reset { name: "web".into() });
    assert_eq!(cmd(&["pull", "web"]), Cmd::Pull { name: "web".into() });
    assert_eq!(
        cmd(&["restart", "web"]),
        Cmd::Unit {
            verb: "restart".into(),
            name: "web".into()
        }
    );
    let a = p(&["-v", "--root=/t", "--no-reload", "status", "web"]).unwrap();
    assert!(a.verbose && !a.reload);
    assert_eq!(a.root.as_deref(), Some(Path::new("/t")));
    assert_eq!(a.cmd, Cmd::Status { name: "web".into() });
    assert!(p(&["status", "web", "-v"]).unwrap().verbose);
}

#[test]
fn exec_takes_everything_after_the_name() {
    let exec = |a: &[&str]| match cmd(a) {
        Cmd::Exec {
            name,
            mode,
            command,
            app: None,
        } => (name, mode, command),
        other => panic!("{other:?}"),
    };
    match cmd(&["exec", "--app=db", "web", "id"]) {
        Cmd::Exec { app, command, .. } => {
            assert_eq!(app.as_deref(), Some("db"));
            assert_eq!(command, ["id"]);
        }
        other => panic!("{other:?}"),
    }
    let (name, mode, command) = exec(&["exec", "-it", "web", "sh", "-c", "id -u"]);
    assert_eq!(name, "web");
    assert!(mode.interactive && mode.tty);
    assert_eq!(command, ["sh", "-c", "id -u"]);
    // Options of the command are the command's, with or without "--".
    let (_, mode, command) = exec(&["exec", "web", "--", "ls", "-l", "--", "x"]);
    assert_eq!(mode, ops::ExecMode::default());
    assert_eq!(command, ["ls", "-l", "--", "x"]);
    let (_, _, command) = exec(&["exec", "web", "env", "-i"]);
    assert_eq!(command, ["env", "-i"]);
}

#[test]
fn usage_errors() {
    for bad in [
        &["frobnicate"][..],
        &["ls", "x"],
        &["status"],
        &["status", "a", "b"],
        &["exec", "web"],
        &["logs", "web", "-n", "x"],
        &["logs", "web", "--app=../x"],
        &["status", "web", "--app=db"],
        &["install"],
        &["images", "--follow"],
        &["ls", "--replace"],
        &["connector", "add", "x"],
        &["--bogus", "ls"],
    ] {
        assert!(p(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn systemctl_show_blocks() {
    let text = "Id=systemd-nspawn@web.service\nLoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nInvocationID=ab\n\nId=sdme-import@web.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nResult=success\nInvocationID=\n";
    let units = sys::args(&["systemd-nspawn@web.service", "sdme-import@web.service"]);
    let s = sys::parse_show(text, &units);
    assert_eq!(s.len(), 2);
    assert!(s[0].is_active() && s[0].exists());
    assert_eq!(s[0].invocation, "ab");
    assert!(!s[1].is_active() && !s[1].exists());
    assert_eq!(s[1].unit, "sdme-import@web.service");
}

#[test]
fn commands_are_shown_as_a_shell_would_read_them() {
    assert_eq!(
        sys::command_line(
            "systemd-run",
            &sys::args(&["--machine=web", "sh", "-c", "echo 'hi' $X"])
        ),
        r#"systemd-run --machine=web sh -c 'echo '\''hi'\'' $X'"#
    );
    assert_eq!(sys::shell_quote(""), "''");
}

/// `busctl --json=short get-property` of the app unit, as systemd 252
/// prints it (one object per property, in the order asked).
const BUSCTL: &str = r#"{"type":"s","data":"/oci/root"}
{"type":"b","data":true}
{"type":"s","data":"101"}
{"type":"s","data":"102"}
{"type":"as","data":["5","6"]}
{"type":"s","data":"!/srv/app"}
{"type":"as","data":["PATH=/usr/bin:/bin","HOME=/home/app","GREETING=hello world"]}
{"type":"a(sb)","data":[["/oci/env",true],["/run/sdme/environment",true]]}
{"type":"a(ssbt)","data":[["/etc/resolv.conf","/etc/resolv.conf",true,16384]]}
{"type":"a(ssbt)","data":[["/run/sdme-oci-run","/run",false,16384]]}
"#;

#[test]
fn exec_gets_the_app_units_context() {
    let (props, env) = ops::app_properties(BUSCTL).unwrap();
    assert_eq!(
        props,
        [
            "RootDirectory=/oci/root",
            "MountAPIVFS=yes",
            "User=101",
            "Group=102",
            "SupplementaryGroups=5 6",
            "WorkingDirectory=-/srv/app",
            "EnvironmentFile=-/oci/env",
            "EnvironmentFile=-/run/sdme/environment",
            "BindReadOnlyPaths=-/etc/resolv.conf:/etc/resolv.conf:rbind",
            "BindPaths=/run/sdme-oci-run:/run:rbind",
        ]
    );
    // Environment goes verbatim through --setenv (no quoting layer).
    assert_eq!(env[2], "GREETING=hello world");
    let a = ops::exec_args(
        "web",
        ops::ExecMode::default(),
        &props,
        &env,
        &sys::args(&["id", "-u"]),
    );
    assert_eq!(
        &a[..6],
        [
            "--machine=web",
            "--quiet",
            "--collect",
            "--wait",
            "--service-type=exec",
            "--pipe"
        ]
    );
    assert!(a.contains(&"--property=User=101".to_string()));
    assert!(a.contains(&"--setenv=GREETING=hello world".to_string()));
    assert_eq!(&a[a.len() - 3..], ["--", "id", "-u"]);
    let tty = ops::ExecMode {
        interactive: true,
        tty: true,
    };
    assert!(
        ops::exec_args("web", tty, &[], &[], &sys::args(&["sh"])).contains(&"--pty".to_string())
    );
    // A path systemd-run would split is refused, not mangled.
    let odd = BUSCTL.replace("[\"/oci/env\",true]", "[\"/oci/e v\",true]");
    assert!(ops::app_properties(&odd).unwrap_err().contains("/oci/e v"));
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const LAYER_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const LAYER_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A store with image `web` in two generations (the second current) that
/// share layer A, the second adding B; container web last started from
/// the first.
fn store_fixture(dir: &Path) -> sdme_store::Store {
    let store = sdme_store::Store::new(dir);
    let record = |layers: &[&str]| {
        let raw = br#"{"config":{"Cmd":["nginx"]},"rootfs":{"type":"layers"}}"#;
        sdme_store::record::ImageRecord {
            name: "web".into(),
            source: "docker.io/library/nginx:1".into(),
            reference: "docker.io/library/nginx:1".into(),
            manifest_digest: DIGEST.into(),
            mode: "auto".into(),
            kind: sdme_store::Kind::App,
            base: None,
            layers: layers.iter().map(|l| l.to_string()).collect(),
            systemd_layer: false,
            app_glue: true,
            extra_glue: false,
            app: None,
            glue_version: sdme_store::record::GLUE_VERSION,
            config: sdme_store::runconfig::RunConfig::from_image_config(raw).unwrap(),
            image_config: serde_json::from_slice(raw).unwrap(),
        }
    };
    for (g, layers) in [
        ("web.0123456789ab.0", &[LAYER_A][..]),
        ("web.0123456789ab.1", &[LAYER_A, LAYER_B]),
    ] {
        let d = store.generation_dir(g);
        std::fs::create_dir_all(&d).unwrap();
        record(layers).save(&d.join("image.json")).unwrap();
    }
    for l in [LAYER_A, LAYER_B] {
        write(
            &store.layer_dir(l).unwrap().join("file"),
            &"x".repeat(10000),
        );
    }
    std::os::unix::fs::symlink("web.0123456789ab.1", store.images_dir().join("web")).unwrap();
    write(
        &store.containers_dir().join("web/generations"),
        "web.0123456789ab.0\n",
    );
    store
}

#[test]
fn images_own_and_shared() {
    let t = tempfile::tempdir().unwrap();
    let store = store_fixture(t.path());
    let gens = catalog::generations(&store).unwrap();
    assert_eq!(gens.len(), 2);
    let (old, new) = (&gens[0], &gens[1]);
    assert_eq!(old.generation, "web.0123456789ab.0");
    assert!(!old.current && new.current);
    assert_eq!(old.containers, ["web"]);
    assert!(new.containers.is_empty());
    let a = sdme_store::gc::disk_usage(&store.layer_dir(LAYER_A).unwrap());
    let b = sdme_store::gc::disk_usage(&store.layer_dir(LAYER_B).unwrap());
    assert_eq!((old.shared, new.shared), (a, a));
    let dir_new = sdme_store::gc::disk_usage(&store.generation_dir(&new.generation));
    assert_eq!(new.own, dir_new + b);
    let j = catalog::generation_json(new);
    for key in [
        "image",
        "generation",
        "current",
        "kind",
        "reference",
        "manifest_digest",
        "layers",
        "own_bytes",
        "shared_bytes",
        "containers",
    ] {
        assert!(j.get(key).is_some(), "{key}: {j}");
    }
    assert_eq!(j["manifest_digest"], DIGEST);
    let table = catalog::images_table(&gens);
    let row: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["web", "web.0123456789ab.1", "yes"], "{table}");
}

#[test]
fn ls_json_shape() {
    let t = tempfile::tempdir().unwrap();
    let store = store_fixture(&t.path().join("store"));
    let root = t.path().join("root");
    write(
        &root.join("etc/sdme/web.oci"),
        "[Image]\nImage=docker.io/library/nginx:1\n[Container]\n",
    );
    write(&root.join("etc/sdme/web2.oci"), "[Container]\nImage=web\n");
    write(
        &root.join("etc/sdme/db.oci"),
        "[Image]\nImage=docker.io/library/mariadb:11\n[App]\nUser=mysql\n",
    );
    write(
        &root.join("etc/sdme/web3.oci"),
        "[Container]\nImage=web\nApp=db\n",
    );
    let entries = catalog::entries(&root);
    assert_eq!(entries["web3"].apps(), ["db"]);
    assert_eq!(
        catalog::entry_json(&entries["web3"], &catalog::Facts::default())["apps"],
        serde_json::json!(["db"])
    );
    let (generation, record, error) = catalog::image_of(&store, entries["web2"].provider());
    assert_eq!(error, None);
    let facts = catalog::Facts {
        container: Some(sys::UnitState {
            unit: "systemd-nspawn@web2.service".into(),
            load: "loaded".into(),
            active: "active".into(),
            sub: "running".into(),
            ..Default::default()
        }),
        generation,
        record,
        health: Some("healthy".into()),
        ..Default::default()
    };
    let j = catalog::entry_json(&entries["web2"], &facts);
    assert_eq!(j["name"], "web2");
    assert_eq!(j["kind"], "container");
    assert_eq!(j["state"], "ok");
    assert_eq!(j["file"], "/etc/sdme/web2.oci");
    assert_eq!(j["image"]["reference"], serde_json::Value::Null);
    assert_eq!(j["image"]["provider"], "web");
    assert_eq!(j["image"]["generation"], "web.0123456789ab.1");
    assert_eq!(j["image"]["manifest_digest"], DIGEST);
    assert_eq!(j["image"]["kind"], "app");
    assert_eq!(j["units"]["container"]["sub"], "running");
    assert_eq!(j["units"]["import"], serde_json::Value::Null);
    assert_eq!(j["health"], "healthy");
    assert_eq!(j["apps"], serde_json::json!([]));
    let rows = vec![(&entries["web2"], facts)];
    let table = catalog::table(&rows);
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.split_whitespace().collect::<Vec<_>>()[..7]
            == [
                "web2",
                "container",
                "running",
                "-",
                "healthy",
                "web.0123456789ab.1",
                "0123456789ab"
            ],
        "{table}"
    );
}

#[test]
fn health_is_read_inside_the_given_root_only() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    assert_eq!(catalog::read_health(&r), None);
    write(&r.join("run/sdme-oci-health/status"), "healthy\n");
    assert_eq!(catalog::read_health(&r).as_deref(), Some("healthy"));
    // A link pointing out of the root resolves inside it.
    write(&t.path().join("outside"), "starting\n");
    std::fs::remove_file(r.join("run/sdme-oci-health/status")).unwrap();
    std::os::unix::fs::symlink(
        t.path().join("outside"),
        r.join("run/sdme-oci-health/status"),
    )
    .unwrap();
    assert_eq!(catalog::read_health(&r), None);
    std::fs::remove_file(r.join("run/sdme-oci-health/status")).unwrap();
    write(&r.join("run/sdme-oci-health/status"), "rm -rf /\n");
    assert_eq!(catalog::read_health(&r).as_deref(), Some("unknown"));
}

#[test]
fn the_shadow_check_sees_what_the_generator_sees() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    write(
        &root.join("usr/lib/sdme/base.oci"),
        "[Image]\nImage=docker.io/library/debian:12\n",
    );
    write(
        &root.join("etc/sdme/web.oci"),
        "[Image]\nImage=docker.io/x:1\nBase=base\n[Container]\n",
    );
    // A masked base in /etc (symlink to /dev/null) hides the vendor one.
    std::os::unix::fs::symlink("/dev/null", root.join("etc/sdme/base.oci")).unwrap();
    let e = shadow::check(root, &[]).err();
    assert_eq!(e, None, "no edit, nothing new");
    let unmask = shadow::Edit::Remove {
        path: "etc/sdme/base.oci".into(),
    };
    assert_eq!(shadow::check(root, &[unmask]), Ok(()));
    // A descriptor reached through a symlink is read through it.
    std::fs::remove_file(root.join("etc/sdme/base.oci")).unwrap();
    write(
        &root.join("srv/desc/base.oci"),
        "[Image]\nImage=docker.io/library/debian:13\n",
    );
    std::os::unix::fs::symlink("/srv/desc/base.oci", root.join("etc/sdme/base.oci")).unwrap();
    let drop_base = shadow::Edit::Remove {
        path: "usr/lib/sdme/base.oci".into(),
    };
    assert_eq!(shadow::check(root, &[drop_base]), Ok(()));
    let drop_link = shadow::Edit::Remove {
        path: "etc/sdme/base.oci".into(),
    };
    assert_eq!(
        shadow::check(root, std::slice::from_ref(&drop_link)),
        Ok(()),
        "the vendor one takes over"
    );
    let both = [
        drop_link,
        shadow::Edit::Remove {
            path: "usr/lib/sdme/base.oci".into(),
        },
    ];
    let e = shadow::check(root, &both).unwrap_err();
    assert!(
        e.contains("/etc/sdme/web.oci:3: Base=base: no descriptor named base"),
        "{e}"
    );
    // Only descriptors are copied: a secret beside them stays where it is.
    write(&root.join("etc/sdme/db.env"), "PASSWORD=x\n");
    let shadow = shadow::TempDir::new("test").unwrap();
    shadow::copy_search_path(root, shadow.path()).unwrap();
    assert!(shadow.path().join("etc/sdme/web.oci").is_file());
    assert!(!shadow.path().join("etc/sdme/db.env").exists());
    // The real tree was not touched.
    assert!(root.join("usr/lib/sdme/base.oci").exists());
    assert!(std::fs::symlink_metadata(root.join("etc/sdme/base.oci")).is_ok());
}

#[test]
fn new_diagnostics_count_repeats() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shadow::new_diagnostics(&s(&["a", "b"]), &s(&["b", "a", "a"])),
        ["a"]
    );
    assert!(shadow::new_diagnostics(&s(&["a"]), &s(&[])).is_empty());
}
