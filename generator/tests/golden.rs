//! Golden tests: every directory in `tests/generator/cases/` holds an
//! `input/` root (etc/sdme, run/sdme, usr/lib/sdme), the `expected/`
//! output tree and a `README` whose first line (`## ...`) says what the
//! case proves; optional `expected-stderr` and `expected-exit` (default:
//! empty and 0). The generator runs with `--root=input` into a fresh
//! directory and the whole tree is compared: files, contents, symlink
//! targets, nothing missing, nothing extra. `SDME_UPDATE_GOLDEN=1`
//! rewrites the expectations from the actual output (review the diff!).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, PartialEq, Eq)]
enum Node {
    File(String),
    Symlink(String),
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/generator/cases")
}

fn read_tree(dir: &Path) -> BTreeMap<String, Node> {
    let mut tree = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut tree);
    }
    tree
}

fn walk(top: &Path, dir: &Path, tree: &mut BTreeMap<String, Node>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path
            .strip_prefix(top)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            tree.insert(
                relative,
                Node::Symlink(target.to_str().unwrap().to_string()),
            );
        } else if meta.is_dir() {
            walk(top, &path, tree);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            tree.insert(relative, Node::File(String::from_utf8(bytes).unwrap()));
        }
    }
}

fn write_tree(dir: &Path, tree: &BTreeMap<String, Node>) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    for (relative, node) in tree {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match node {
            Node::File(contents) => std::fs::write(&path, contents).unwrap(),
            Node::Symlink(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
        }
    }
}

/// Parses the `--dry-run` format back into a tree.
fn parse_dry_run(text: &str) -> BTreeMap<String, Node> {
    let mut tree = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let flush = |current: &mut Option<(String, String)>, tree: &mut BTreeMap<String, Node>| {
        if let Some((path, mut contents)) = current.take() {
            // Entries are separated by one empty line.
            if contents.ends_with("\n\n") {
                contents.pop();
            }
            tree.insert(path, Node::File(contents));
        }
    };
    for line in text.split_inclusive('\n') {
        if let Some(path) = line.strip_prefix("# sdme-generator: file ") {
            flush(&mut current, &mut tree);
            current = Some((path.trim_end().to_string(), String::new()));
        } else if let Some(rest) = line.strip_prefix("# sdme-generator: symlink ") {
            flush(&mut current, &mut tree);
            let (path, target) = rest.trim_end().split_once(" -> ").unwrap();
            tree.insert(path.to_string(), Node::Symlink(target.to_string()));
        } else if let Some((_, contents)) = current.as_mut() {
            contents.push_str(line);
        } else {
            assert_eq!(line, "\n", "stray line in dry-run output");
        }
    }
    flush(&mut current, &mut tree);
    tree
}

/// True while `SDME_UPDATE_GOLDEN=1` rewrites the expectations; tests that
/// read them concurrently then skip their comparison.
fn updating() -> bool {
    std::env::var_os("SDME_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

fn generator(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdme-generator"));
    command
        .args(args)
        .env_remove("SYSTEMD_LOG_TARGET")
        .env_remove("SYSTEMD_SCOPE");
    command
}

fn describe_difference(
    expected: &BTreeMap<String, Node>,
    actual: &BTreeMap<String, Node>,
) -> String {
    let mut out = String::new();
    for (path, node) in expected {
        match actual.get(path) {
            None => out.push_str(&format!("  missing: {path}\n")),
            Some(other) if other != node => out.push_str(&format!(
                "  differs: {path}\n--- expected\n{node:?}\n+++ actual\n{other:?}\n"
            )),
            _ => {}
        }
    }
    for path in actual.keys().filter(|p| !expected.contains_key(*p)) {
        out.push_str(&format!("  extra: {path}\n"));
    }
    out
}

#[test]
fn golden_cases() {
    let update = updating();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "only {} golden cases", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        let out = tempfile::tempdir().unwrap();
        let root = format!("--root={}", case.join("input").display());
        let run = generator(&[&root, out.path().to_str().unwrap()])
            .output()
            .unwrap();
        let actual = read_tree(out.path());
        let stderr = String::from_utf8(run.stderr).unwrap();
        let exit = run.status.code().unwrap();

        let dry = generator(&["--dry-run", &root]).output().unwrap();
        assert_eq!(
            dry.status.code(),
            Some(exit),
            "{name}: --dry-run exit status"
        );
        let dry_tree = parse_dry_run(&String::from_utf8(dry.stdout).unwrap());
        if dry_tree != actual {
            failures.push(format!(
                "{name}: --dry-run differs from the written tree:\n{}",
                describe_difference(&actual, &dry_tree)
            ));
        }

        let stderr_file = case.join("expected-stderr");
        let exit_file = case.join("expected-exit");
        if update {
            write_tree(&case.join("expected"), &actual);
            match stderr.is_empty() {
                true => drop(std::fs::remove_file(&stderr_file)),
                false => std::fs::write(&stderr_file, &stderr).unwrap(),
            }
            match exit {
                0 => drop(std::fs::remove_file(&exit_file)),
                _ => std::fs::write(&exit_file, format!("{exit}\n")).unwrap(),
            }
            continue;
        }

        let expected = read_tree(&case.join("expected"));
        if expected != actual {
            failures.push(format!(
                "{name}: output tree differs:\n{}",
                describe_difference(&expected, &actual)
            ));
        }
        let expected_stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
        if expected_stderr != stderr {
            failures.push(format!(
                "{name}: stderr differs:\n--- expected\n{expected_stderr}+++ actual\n{stderr}"
            ));
        }
        let expected_exit: i32 = std::fs::read_to_string(&exit_file)
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0);
        if expected_exit != exit {
            failures.push(format!(
                "{name}: exit status {exit}, expected {expected_exit}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Each case's `README` starts with a `## ` line saying what the case
/// proves (tests/generator/README.md), so a failing case explains itself
/// and a redundant one is visible.
#[test]
fn every_case_says_what_it_proves() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(cases_dir()).unwrap() {
        let case = entry.unwrap().path();
        if !case.is_dir() {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let readme = std::fs::read_to_string(case.join("README")).unwrap_or_default();
        let first = readme.lines().next().unwrap_or("");
        // A sentence, not a placeholder: "## " and at least three words.
        let ok = first
            .strip_prefix("## ")
            .is_some_and(|what| what.split_whitespace().count() >= 3);
        if !ok {
            missing.push(format!("  {name}: first line of README is {first:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "golden cases without a \"## what it proves\" line in README:\n{}",
        missing.join("\n")
    );
}

#[test]
fn writing_twice_into_the_same_directory_works() {
    if updating() {
        return;
    }
    let case = cases_dir().join("app-on-base");
    let out = tempfile::tempdir().unwrap();
    let root = format!("--root={}", case.join("input").display());
    for _ in 0..2 {
        let run = generator(&[&root, out.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(run.status.success());
    }
    assert_eq!(read_tree(out.path()), read_tree(&case.join("expected")));
}

#[test]
fn command_line_errors() {
    let no_dir = generator(&[]).output().unwrap();
    assert_eq!(no_dir.status.code(), Some(2));
    let two_dirs = generator(&["/tmp/a", "/tmp/b"]).output().unwrap();
    assert_eq!(two_dirs.status.code(), Some(2));
    let unknown = generator(&["--frobnicate"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    let version = generator(&["--version"]).output().unwrap();
    assert!(String::from_utf8(version.stdout)
        .unwrap()
        .starts_with("sdme-generator "));
    let help = generator(&["--help"]).output().unwrap();
    assert!(String::from_utf8(help.stdout)
        .unwrap()
        .contains("--dry-run"));
}

#[test]
fn three_directories_write_only_the_first() {
    let case = cases_dir().join("app-on-base");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let root = format!("--root={}", case.join("input").display());
    let paths: Vec<&str> = dirs.iter().map(|d| d.path().to_str().unwrap()).collect();
    // SYSTEMD_LOG_TARGET=console keeps errors off the kernel log in tests.
    let run = generator(&[&root, paths[0], paths[1], paths[2]])
        .env("SYSTEMD_LOG_TARGET", "console")
        .output()
        .unwrap();
    assert!(run.status.success());
    assert!(!read_tree(dirs[0].path()).is_empty());
    assert!(read_tree(dirs[1].path()).is_empty());
    assert!(read_tree(dirs[2].path()).is_empty());
}

#[test]
fn a_missing_output_directory_is_created() {
    if updating() {
        return;
    }
    let case = cases_dir().join("app-on-base");
    let top = tempfile::tempdir().unwrap();
    let out = top.path().join("not/yet");
    let root = format!("--root={}", case.join("input").display());
    let run = generator(&[&root, out.to_str().unwrap()]).output().unwrap();
    assert!(run.status.success());
    assert_eq!(read_tree(&out), read_tree(&case.join("expected")));
}

/// Where errors go (sdme-generator(8), LOGGING): stderr by hand and with
/// --dry-run; the kernel log when run as a generator (three directories or
/// $SYSTEMD_SCOPE), unless SYSTEMD_LOG_TARGET=console says otherwise.
#[test]
fn errors_go_to_the_kernel_log_only_under_systemd() {
    let case = cases_dir().join("base-missing");
    let root = format!("--root={}", case.join("input").display());
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&str> = dirs.iter().map(|d| d.path().to_str().unwrap()).collect();

    let by_hand = generator(&[&root, paths[0]]).output().unwrap();
    assert_eq!(by_hand.status.code(), Some(1));
    assert!(String::from_utf8(by_hand.stderr)
        .unwrap()
        .contains("no descriptor named nowhere"));

    let dry = generator(&["--dry-run", &root])
        .env("SYSTEMD_SCOPE", "system")
        .output()
        .unwrap();
    assert!(String::from_utf8(dry.stderr)
        .unwrap()
        .contains("no descriptor named nowhere"));

    let console = generator(&[&root, paths[0], paths[1], paths[2]])
        .env("SYSTEMD_LOG_TARGET", "console")
        .output()
        .unwrap();
    assert!(String::from_utf8(console.stderr)
        .unwrap()
        .contains("no descriptor named nowhere"));

    // Only where /dev/kmsg (or, failing that, /dev/console) is writable
    // (root) can the generator log there; elsewhere it falls back to
    // stderr, which is checked too.
    let writable = |p: &str| std::fs::OpenOptions::new().write(true).open(p).is_ok();
    let system_log = writable("/dev/kmsg") || writable("/dev/console");
    let mut kmsg = open_kmsg_at_end();
    let as_generator = generator(&[&root, paths[0], paths[1], paths[2]])
        .output()
        .unwrap();
    assert_eq!(as_generator.status.code(), Some(1));
    let stderr = String::from_utf8(as_generator.stderr).unwrap();
    assert_eq!(stderr.is_empty(), system_log, "stderr: {stderr:?}");

    // Where the kernel log can be read back, the record is there, at error
    // priority, in the `<3>sdme-generator[PID]: message` format.
    if let (Some(kmsg), true) = (kmsg.as_mut(), writable("/dev/kmsg")) {
        let marker = as_generator_pid_marker();
        let records = read_new_records(kmsg);
        let ours = records.iter().find(|r| {
            r.contains("sdme-generator[") && r.contains("Base=nowhere: no descriptor named nowhere")
        });
        let record = ours.unwrap_or_else(|| panic!("no kernel log record among {records:?}"));
        // /dev/kmsg records read back as "PRIO,SEQ,TIME,FLAGS;TEXT" where
        // PRIO is facility * 8 + level (the kernel adds LOG_USER); level 3
        // is LOG_ERR.
        let prio: u32 = record.split(',').next().unwrap().parse().unwrap();
        assert_eq!(prio & 7, 3, "priority of {record:?}");
        assert!(record.contains(marker), "{record:?}");
    }
}

/// `/dev/kmsg` opened for reading, positioned after the last record, or
/// `None` where it cannot be read (not root).
fn open_kmsg_at_end() -> Option<std::fs::File> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o4000) // O_NONBLOCK: reading past the last record returns EAGAIN
        .open("/dev/kmsg")
        .ok()?;
    file.seek(SeekFrom::End(0)).ok()?;
    Some(file)
}

/// The end of the `sdme-generator[PID]` tag followed by the message.
fn as_generator_pid_marker() -> &'static str {
    "]: /etc/sdme/app.oci:3: "
}

fn read_new_records(kmsg: &mut std::fs::File) -> Vec<String> {
    use std::io::Read;
    let mut records = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => records.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            // EPIPE: a record was overwritten while reading; keep going.
            Err(e) if e.raw_os_error() == Some(32) => continue,
            Err(_) => break,
        }
    }
    records
}
