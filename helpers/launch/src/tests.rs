use super::*;

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

fn round_trip(l: &Launch) {
    let back = parse(l.to_args().into_iter().map(OsString::from).collect())
        .unwrap()
        .unwrap();
    assert_eq!(&back, l, "{:?}", l.to_args());
}

#[test]
fn every_setting_survives_writing_and_reading() {
    let full = Launch {
        machine: "web".into(),
        image: "nginx".into(),
        env: vec![
            ("A".into(), "1".into()),
            ("B".into(), "x y=z\n$HOME %i".into()),
            ("EMPTY".into(), String::new()),
        ],
        env_files: vec!["/etc/sdme/web.env".into()],
        volumes: vec![
            Volume::Bind {
                host: "/srv".into(),
                container: "/usr/share/nginx/html".into(),
                read_only: true,
            },
            Volume::Bind {
                host: "/a b".into(),
                container: "/c".into(),
                read_only: false,
            },
            Volume::Anonymous {
                container: "/data".into(),
            },
        ],
        entrypoint: Some(vec!["--".into(), "-x".into(), "a b".into()]),
        cmd: Some(vec![]),
        user: Some("101:101".into()),
        workdir: Some("/srv/app".into()),
        restart: Some("on-failure"),
        health: Health {
            cmd: Some("curl -f http://localhost/ || exit 1".into()),
            interval: Some("90".into()),
            timeout: Some("1.5".into()),
            start_period: Some("0".into()),
            retries: Some(3),
            on_failure: Some("stop"),
        },
        connector: ConnectorAccess {
            allow_uids: vec![1000, 1001],
            allow_gids: vec![27],
            environment_files: true,
        },
        private_users: PrivateUsers::Range {
            base: 0x20000,
            size: 0x20000,
        },
        lifecycle: Lifecycle {
            notify: Notify::Healthy,
            stop_signal: Some("SIGINT".into()),
            stop_timeout: Some(300),
            reload_signal: None,
            reload_cmd: Some(vec!["nginx".into(), "-s".into(), "reload".into()]),
            oneshot: true,
        },
        credentials: vec![
            Credential {
                id: "db.password".into(),
                path: "/etc/sdme/creds/db pw".into(),
                encrypted: false,
            },
            Credential {
                id: "tls@key+1".into(),
                path: "/etc/credstore.encrypted/tls".into(),
                encrypted: true,
            },
        ],
        secrets: vec![Secret {
            id: "db.password".into(),
            var: "DB_PASSWORD".into(),
        }],
        zone: Some("app.zone-1".into()),
        netns_of: Some("db".into()),
        apps: vec![
            Launch {
                image: "redis".into(),
                ..Default::default()
            },
            Launch {
                image: "db".into(),
                env: vec![("MARIADB_USER".into(), "app x".into())],
                env_files: vec!["/etc/sdme/db.env".into()],
                volumes: vec![Volume::Anonymous {
                    container: "/var/lib/mysql".into(),
                }],
                entrypoint: Some(vec![]),
                cmd: Some(vec!["mariadbd".into(), "--port=3307".into()]),
                user: Some("mysql".into()),
                workdir: Some("/".into()),
                restart: Some("always"),
                health: Health {
                    cmd: Some("healthcheck.sh --connect".into()),
                    interval: Some("2".into()),
                    retries: Some(5),
                    ..Default::default()
                },
                lifecycle: Lifecycle {
                    stop_signal: Some("SIGQUIT".into()),
                    stop_timeout: Some(40),
                    ..Default::default()
                },
                ..Default::default()
            },
        ],
        store: Some("/tmp/store".into()),
        runtime_dir: Some("/tmp/run".into()),
        dry_run: true,
        nspawn_args: vec![
            "--quiet".into(),
            "--machine=web".into(),
            "--".into(),
            "--not-ours".into(),
        ],
    };
    round_trip(&full);
    round_trip(&Launch {
        machine: "m".into(),
        image: "i".into(),
        ..Default::default()
    });
    // An entrypoint of one empty word and no entrypoint differ.
    let mut l = full.clone();
    l.entrypoint = None;
    l.cmd = Some(vec!["sh".into()]);
    round_trip(&l);
    l.private_users = PrivateUsers::No;
    round_trip(&l);
    l.private_users = PrivateUsers::UnlessPrivilegedPorts;
    round_trip(&l);
}

#[test]
fn options_after_app_are_that_apps() {
    let l = parse(args(&[
        "--machine=web",
        "--image=nginx",
        "--env=A=1",
        "--app=db",
        "--env=B=2",
        "--stop-signal=QUIT",
        "--app=cache",
        "--user=999",
        "--",
        "--quiet",
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(l.env, [("A".to_string(), "1".to_string())]);
    assert_eq!(l.apps.len(), 2);
    assert_eq!(l.apps[0].image, "db");
    assert_eq!(l.apps[0].env, [("B".to_string(), "2".to_string())]);
    assert_eq!(l.apps[0].lifecycle.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(l.apps[1].user.as_deref(), Some("999"));
    assert_eq!(l.nspawn_args, ["--quiet"]);
    // Container options cannot be an app's.
    for late in [
        "--zone=z",
        "--notify=no",
        "--secret=a:B",
        "--oneshot",
        "--machine=x",
    ] {
        let e = parse(args(&["--machine=web", "--image=nginx", "--app=db", late])).unwrap_err();
        assert!(e.contains("only app options"), "{late}: {e}");
    }
    for (dup, what) in [
        (vec!["--app=db", "--app=db"], "already"),
        (vec!["--app=nginx"], "own image"),
        (vec!["--app=../x"], "machine name"),
    ] {
        let mut a = vec!["--machine=web", "--image=nginx"];
        a.extend(dup);
        let e = parse(args(&a)).unwrap_err();
        assert!(e.contains(what), "{e}");
    }
}

#[test]
fn private_users_values() {
    assert_eq!(PrivateUsers::parse("yes").unwrap(), PrivateUsers::Auto);
    assert_eq!(PrivateUsers::parse("no").unwrap(), PrivateUsers::No);
    assert_eq!(
        PrivateUsers::parse("1048576").unwrap(),
        PrivateUsers::Range {
            base: 1048576,
            size: 65536
        }
    );
    assert_eq!(
        PrivateUsers::parse("1048576:131072").unwrap().to_spec(),
        "1048576:131072"
    );
    for bad in [
        "",
        "maybe",
        "65535",
        "100000",
        "65536:1",
        "65536:",
        ":65536",
        "4294901760",
        "-65536",
        "65536:65536:1",
    ] {
        assert!(PrivateUsers::parse(bad).is_err(), "{bad:?}");
    }
    // "0" reads as "no" (systemd's booleans), never as base 0.
    assert_eq!(PrivateUsers::parse("0").unwrap(), PrivateUsers::No);
}

#[test]
fn parses_the_generator_command_line() {
    let o = parse(args(&[
        "--machine=web",
        "--image=nginx",
        "--env=A=1",
        "--env=B=x y",
        "--volume=/srv:/usr/share/nginx/html:ro",
        "--volume=/data",
        "--entrypoint=",
        "--cmd=nginx",
        "--cmd=-g",
        "--restart=on-failure",
        "--health-cmd=curl -f http://localhost/",
        "--health-interval=5",
        "--",
        "--quiet",
        "--boot",
        "--machine=web",
        "--port=8080:80",
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(
        o.env,
        vec![("A".into(), "1".into()), ("B".into(), "x y".into())]
    );
    assert_eq!(
        o.volumes[0],
        Volume::Bind {
            host: "/srv".into(),
            container: "/usr/share/nginx/html".into(),
            read_only: true
        }
    );
    assert_eq!(
        o.volumes[1],
        Volume::Anonymous {
            container: "/data".into()
        }
    );
    assert_eq!(o.entrypoint, Some(vec![]));
    assert_eq!(o.cmd, Some(vec!["nginx".to_string(), "-g".into()]));
    assert_eq!(o.health.interval.as_deref(), Some("5"));
    let o2 = parse(args(&[
        "--machine=a",
        "--image=x",
        "--health-timeout=1.5",
        "--health-start-period=2s",
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(o2.health.timeout.as_deref(), Some("1.5"));
    assert_eq!(o2.health.start_period.as_deref(), Some("2"));
    assert!(parse(args(&["--machine=a", "--image=x", "--health-interval=-1"])).is_err());
    assert!(parse(args(&["--machine=a", "--image=x", "--health-interval=1e3"])).is_err());
    assert_eq!(
        o.nspawn_args,
        ["--quiet", "--boot", "--machine=web", "--port=8080:80"]
    );
}

#[test]
fn rejects_bad_values() {
    let bad = |extra: &str| parse(args(&["--machine=a", "--image=x", extra])).is_err();
    assert!(parse(args(&["--image=x"])).is_err());
    for extra in [
        "--volume=rel:/x",
        "--volume=/a/../b",
        "--volume=/a:/b:rx",
        "--volume=/a//b",
        "--env=NOVALUE",
        "--env=1A=x",
        "--env=A=\u{1b}",
        "--env-file=relative",
        "--workdir=/a/./b",
        "--restart=sometimes",
        "--health-on-failure=explode",
        "--health-retries=-1",
        "--health-timeout=.5",
        "--connector-allow-uid=0",
        "--connector-allow-uid=65534",
        "--connector-allow-gid=root",
        "--connector-allow-uid=+5",
    ] {
        assert!(bad(extra), "{extra}");
    }
    assert_eq!(restart_policy("unless-stopped").unwrap(), "always");
    assert_eq!(
        parse(args(&[
            "--machine=a",
            "--image=x",
            "--restart=unless-stopped"
        ]))
        .unwrap()
        .unwrap()
        .restart,
        Some("always")
    );
}

#[test]
fn volumes_and_environment() {
    assert_eq!(
        parse_volume("/srv/www:/usr/share/nginx/html:ro").unwrap(),
        Volume::Bind {
            host: "/srv/www".into(),
            container: "/usr/share/nginx/html".into(),
            read_only: true,
        }
    );
    assert!(parse_volume("/a:/b:/c:ro").is_err());
    assert!(check_absolute_path("/").is_ok());
    assert!(check_absolute_path("/a/").is_err());
    assert_eq!(
        parse_env_assignment("A=b=c").unwrap(),
        ("A".into(), "b=c".into())
    );
    assert!(parse_env_assignment("A=x\ny\tz").is_ok());
}

#[test]
fn lifecycle_values_are_checked() {
    for ok in [
        "SIGHUP",
        "HUP",
        "SIGRTMIN",
        "SIGRTMIN+3",
        "RTMAX-2",
        "SIGWINCH",
    ] {
        assert!(signal_name(ok).unwrap().starts_with("SIG"), "{ok}");
    }
    for bad in [
        "",
        "SIG",
        "SIGKILL",
        "STOP",
        "SIGRTMIN+31",
        "SIGRTMIN+",
        "9",
        "HUP\n",
        "SIGHUP;x",
    ] {
        assert!(signal_name(bad).is_err(), "{bad:?}");
    }
    let base = ["--machine=m", "--image=i"];
    for bad in [
        "--stop-timeout=0",
        "--stop-timeout=1.5",
        "--stop-timeout=86401",
        "--notify=ready",
        "--reload-cmd=",
        "--stop-signal=KILL",
    ] {
        let mut a = base.to_vec();
        a.push(bad);
        assert!(parse(args(&a)).is_err(), "{bad}");
    }
    let a = [
        "--machine=m",
        "--image=i",
        "--reload-signal=HUP",
        "--reload-cmd=x",
    ];
    assert!(parse(args(&a)).unwrap_err().contains("exclude"));
    let mut l = Launch {
        machine: "m".into(),
        image: "i".into(),
        ..Default::default()
    };
    l.lifecycle.reload_signal = Some("SIGUSR1".into());
    l.lifecycle.notify = Notify::No;
    round_trip(&l);
}

/// The options `sdme-nspawn` takes (its usage line, which `parse` must
/// accept) and those sdme-nspawn(8) documents in OPTIONS are the same.
#[test]
fn options_in_usage_and_in_the_man_page_are_the_same() {
    use std::collections::BTreeSet;
    let names = |text: &str| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("--") {
            rest = &rest[i + 2..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
        out
    };
    let usage = names(USAGE);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../man/sdme-nspawn.8");
    let man = std::fs::read_to_string(&path).unwrap();
    let section = man
        .split(".SH OPTIONS")
        .nth(1)
        .and_then(|s| s.split("\n.SH ").next())
        .unwrap();
    // The tags: the line after each .TP.
    let lines: Vec<&str> = section.lines().collect();
    let mut documented = BTreeSet::new();
    for w in lines.windows(2) {
        if w[0] == ".TP" {
            documented.extend(names(&w[1].replace("\\-", "-")));
        }
    }
    assert_eq!(usage, documented, "USAGE vs sdme-nspawn(8) OPTIONS");
    for name in &usage {
        let arg = match name.as_str() {
            "dry-run" | "oneshot" | "connector-environment-files" | "help" => format!("--{name}"),
            _ => format!("--{name}=x"),
        };
        let err = parse(args(&["--machine=m", "--image=i", &arg]))
            .err()
            .unwrap_or_default();
        assert!(!err.contains("unexpected"), "--{name}: {err}");
    }
}

#[test]
fn credential_names_and_paths() {
    for good in ["a", "db.password", "tls@key+1", "A_B-c", &"x".repeat(255)] {
        assert!(check_credential_id(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        ".",
        "..",
        "-x",
        "a/b",
        "a:b",
        "a b",
        "a%i",
        "a$b",
        "é",
        "a\nb",
        &"x".repeat(256),
    ] {
        assert!(check_credential_id(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_credential("k:/etc/k", true),
        Ok(Credential {
            id: "k".into(),
            path: "/etc/k".into(),
            encrypted: true
        })
    );
    for bad in [
        "k",
        "k:",
        "k:etc/k",
        "k:/etc/../k",
        ":/etc/k",
        "k:/a\nb",
        "k:./x",
    ] {
        assert!(parse_credential(bad, false).is_err(), "{bad:?}");
    }
    assert!(parse_credential("k:relative", false)
        .unwrap_err()
        .contains("not an absolute path"));
    assert!(parse_secret("k:VAR").is_ok());
    for bad in ["k", "k:", "k:1VAR", "k:A-B", "a/b:VAR"] {
        assert!(parse_secret(bad).is_err(), "{bad:?}");
    }
    // A path with ':' in it stays one path (only the first ':' splits).
    assert_eq!(parse_credential("k:/a:b", false).unwrap().path, "/a:b");
}

#[test]
fn zone_and_network_namespace_names() {
    assert!(check_zone_name("web").is_ok());
    assert!(check_zone_name("a23456789012").is_ok());
    assert!(
        check_zone_name("a234567890123").is_err(),
        "vz- + 13 bytes is too long"
    );
    for bad in ["", "-a", ".a", "a b", "a/b", "a:b", "ä"] {
        assert!(check_zone_name(bad).is_err(), "{bad:?}");
        assert!(
            parse(args(&[
                "--machine=a",
                "--image=x",
                &format!("--zone={bad}")
            ]))
            .is_err(),
            "{bad:?}"
        );
    }
    for bad in ["", "-a", "a..b", "a/b", "a b"] {
        assert!(
            parse(args(&[
                "--machine=a",
                "--image=x",
                &format!("--network-namespace-of={bad}")
            ]))
            .is_err(),
            "{bad:?}"
        );
    }
    let l = parse(args(&[
        "--machine=a",
        "--image=x",
        "--network-namespace-of=db",
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(l.netns_of.as_deref(), Some("db"));
}
