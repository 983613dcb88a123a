//! `sdme-nspawn` as systemd runs it: its command line and its refusals,
//! before it touches the store. (The launcher against a real store is
//! tested by sdme-import's store tests, which import images first; this
//! test also makes `cargo test --workspace` build the binary for them.)

use std::process::Command;

const NSPAWN: &str = env!("CARGO_BIN_EXE_sdme-nspawn");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(NSPAWN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_prints_the_usage() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("usage: sdme-nspawn --machine=NAME --image=IMAGE"),
        "{out}"
    );
}

#[test]
fn bad_command_lines_are_refused_with_the_usage() {
    for args in [
        &["--image=x"][..],
        &["--machine=a", "--image=x", "--volume=rel:/x"],
        &["--machine=a", "--image=x", "--restart=sometimes"],
        &["--machine=a", "--image=x", "--no-such-option"],
        &["--machine=a", "--image=x", "--connector-allow-uid=0"],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("usage: sdme-nspawn"), "{args:?}: {err}");
    }
}

#[test]
fn names_that_could_be_paths_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let store = format!("--store={}", t.path().display());
    for name in ["../etc", ".hidden", "a/b"] {
        let machine = format!("--machine={name}");
        let (code, _, err) = run(&[&machine, "--image=x", "--dry-run", &store]);
        assert_ne!(code, 0, "{name}");
        assert!(err.contains("invalid image name"), "{name}: {err}");
    }
}
