//! Import-side golden cases (`tests/import/cases/*/`): an image
//! configuration and a tiny layer in, the whole glue out, diffed whole.
//! Each case directory holds
//!
//! - `README`: its first line `## …` says what the case proves;
//! - `config.json`: the image configuration's `config` object;
//! - `layer.txt`: the layer, one entry a line: `file PATH MODE TEXT`
//!   (`\n` in TEXT is a line break), `dir PATH MODE`, `link PATH TARGET`;
//! - `args` (optional): extra `sdme-import pull` arguments;
//! - either `expected/` (what the import wrote: `tree.txt` lists every entry
//!   of `glue/`, `appglue/`, `extraglue/` and the connector directory with type, mode and
//!   link target, `files/` holds the regular files), or `expected-error`
//!   (a line the refusal must print; nothing may be left in the store).
//!
//! `SDME_UPDATE_GOLDEN=1` rewrites the expectations; review the diff.
//! Every unit written is also read back with the unit-file reader and, when
//! `systemd-analyze` is installed (it is under `make test`), verified by it.

mod common;

use common::oci::{self, Entry};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const IMPORT: &str = env!("CARGO_BIN_EXE_sdme-import");

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/import/cases")
}

fn unescape(text: &str) -> String {
    text.replace("\\n", "\n")
}

fn parse_layer(spec: &str) -> Vec<(String, String, String, u32)> {
    spec.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut f = line.splitn(4, ' ');
            let kind = f.next().unwrap().to_string();
            let path = f
                .next()
                .unwrap_or_else(|| panic!("{line}: no path"))
                .to_string();
            match kind.as_str() {
                "file" => {
                    let mode = u32::from_str_radix(f.next().unwrap(), 8).unwrap();
                    (kind, path, unescape(f.next().unwrap_or("")), mode)
                }
                "dir" => {
                    let mode = u32::from_str_radix(f.next().unwrap(), 8).unwrap();
                    (kind, path, String::new(), mode)
                }
                "link" => (kind, path, f.next().unwrap().to_string(), 0),
                _ => panic!("{line}: unknown entry kind"),
            }
        })
        .collect()
}

/// One line per entry below `top`, sorted, and the regular files copied.
fn dump(top: &Path, prefix: &str, lines: &mut Vec<String>, files: &Path) {
    let mut entries: Vec<_> = fs::read_dir(top).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let m = fs::symlink_metadata(&path).unwrap();
        let mode = m.mode() & 0o7777;
        let owner = format!("{}:{}", m.uid(), m.gid());
        if m.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            lines.push(format!("link {rel} -> {}", target.display()));
        } else if m.is_dir() {
            lines.push(format!("dir  {rel} {mode:04o} {owner}"));
            dump(&path, &rel, lines, files);
        } else if m.is_file() {
            lines.push(format!("file {rel} {mode:04o} {owner}"));
            let copy = files.join(&rel);
            fs::create_dir_all(copy.parent().unwrap()).unwrap();
            fs::copy(&path, &copy).unwrap();
        } else {
            lines.push(format!("othr {rel} {mode:04o} {owner}"));
        }
    }
}

fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Every unit reads back without syntax errors and, with systemd-analyze
/// present, verifies (its programs live in the app's root, so only the
/// unit-file syntax and settings are judged, not the binaries' presence).
fn check_units(glue: &Path, case: &str) {
    let units = glue.join("etc/systemd/system");
    if !units.exists() {
        return;
    }
    for e in fs::read_dir(&units).unwrap() {
        let p = e.unwrap().path();
        if !p.is_file() {
            continue;
        }
        let text = fs::read(&p).unwrap();
        let (_, errors) = sdme_unitfile::syntax::parse(&text);
        assert!(errors.is_empty(), "{case}: {}: {errors:?}", p.display());
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "systemd-analyze is missing (package systemd)"
        );
        return;
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .arg("--recursive-errors=no")
        .arg(format!("--root={}", glue.display()))
        .args(
            fs::read_dir(&units)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file()),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The programs are in /oci/root and the units they need in the base:
    // only those complaints are expected; anything else (an unknown or
    // invalid setting, a parse error) fails the case.
    let expected = |l: &str| {
        (l.contains(": Command ") && l.contains(" is not executable"))
            || (l.contains("Failed to create") && l.contains("not found"))
    };
    let unexpected: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !expected(l))
        .collect();
    // systemd names each command it would run: it must be exactly the
    // program sdme wrote (an exec prefix systemd took from the first word,
    // or a separator, would show as another program).
    for line in stderr.lines() {
        let Some((unit, rest)) = line.split_once(": Command ") else {
            continue;
        };
        let Some(program) = rest.strip_suffix(" is not executable: No such file or directory")
        else {
            continue;
        };
        let text = fs::read(units.join(unit)).unwrap();
        let (items, _) = sdme_unitfile::syntax::parse(&text);
        let programs: Vec<String> = items
            .into_iter()
            .filter_map(|i| match i {
                sdme_unitfile::syntax::Item::Assignment { key, value, .. }
                    if key.starts_with("Exec") && !value.is_empty() =>
                {
                    sdme_unitfile::words::split(&value.replace("%%", "%"))
                        .ok()?
                        .into_iter()
                        .next()
                }
                _ => None,
            })
            .collect();
        assert!(
            programs.iter().any(|p| p == program),
            "{case}: {unit}: systemd would run {program:?}, sdme wrote {programs:?}"
        );
    }
    assert!(
        unexpected.is_empty(),
        "{case}: systemd-analyze verify:\n{}",
        unexpected.join("\n")
    );
}

fn run_case(case: &Path, update: bool) -> Result<(), String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let readme = fs::read_to_string(case.join("README")).unwrap_or_default();
    if !readme.starts_with("## ") || readme.lines().next().unwrap().split_whitespace().count() < 4 {
        return Err(format!(
            "{name}: README must start with `## what this case proves`"
        ));
    }
    let t = tempfile::tempdir().unwrap();
    let entries = parse_layer(&fs::read_to_string(case.join("layer.txt")).unwrap());
    let tar_entries: Vec<Entry> = entries
        .iter()
        .map(|(kind, path, text, mode)| match kind.as_str() {
            "file" => Entry::File(path, text.as_bytes(), *mode),
            "dir" => Entry::Dir(path, *mode),
            _ => Entry::Symlink(path, text),
        })
        .collect();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(case.join("config.json")).unwrap())
            .map_err(|e| format!("{name}: config.json: {e}"))?;
    let source = oci::layout(&t.path().join("layout"), &oci::layer(&tar_entries), config);
    let store = t.path().join("store");
    let args = fs::read_to_string(case.join("args")).unwrap_or_default();
    let out = Command::new(IMPORT)
        .args(["pull", "--name=app", "--pull=missing"])
        .arg(format!("--store={}", store.display()))
        .args(args.split_whitespace())
        .arg(&source)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();

    let expected_error = case.join("expected-error");
    if expected_error.exists() || (update && !out.status.success()) {
        if update {
            let last = stderr.lines().last().unwrap_or("").to_string();
            let last = last.replace(&t.path().display().to_string(), "TMP");
            fs::write(&expected_error, format!("{last}\n")).unwrap();
            let _ = fs::remove_dir_all(case.join("expected"));
            return Ok(());
        }
        let want = fs::read_to_string(&expected_error).unwrap();
        let got = stderr.replace(&t.path().display().to_string(), "TMP");
        if out.status.success() || !got.contains(want.trim_end()) {
            return Err(format!("{name}: expected the refusal\n{want}\ngot:\n{got}"));
        }
        for dir in ["images", "layers/sha256", "connectors"] {
            let left: Vec<_> = fs::read_dir(store.join(dir))
                .map(|d| d.map(|e| e.unwrap().file_name()).collect())
                .unwrap_or_default();
            if !left.is_empty() {
                return Err(format!(
                    "{name}: a refused image left {dir}/{left:?} in the store"
                ));
            }
        }
        return Ok(());
    }
    if !out.status.success() {
        return Err(format!("{name}: import failed:\n{stderr}"));
    }
    let generation = store.join("images/app");
    let actual = t.path().join("actual");
    let files = actual.join("files");
    fs::create_dir_all(&files).unwrap();
    let mut lines = Vec::new();
    for part in ["glue", "appglue", "extraglue"] {
        let dir = generation.join(part);
        if dir.exists() {
            lines.push(format!("dir  {part}"));
            dump(&dir, part, &mut lines, &files);
        }
    }
    let connector = store.join("connectors/app");
    if connector.exists() {
        lines.push("dir  connector".to_string());
        dump(&connector, "connector", &mut lines, &files);
    }
    check_units(&generation.join("glue"), &name);
    check_units(&generation.join("extraglue"), &name);
    let tree = lines.join("\n") + "\n";
    let expected = case.join("expected");
    if update {
        let _ = fs::remove_dir_all(&expected);
        let _ = fs::remove_file(&expected_error);
        fs::create_dir_all(&expected).unwrap();
        fs::write(expected.join("tree.txt"), &tree).unwrap();
        for (rel, data) in read_tree(&files) {
            let p = expected.join("files").join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }
        return Ok(());
    }
    let want_tree = fs::read_to_string(expected.join("tree.txt"))
        .map_err(|e| format!("{name}: expected/tree.txt: {e}"))?;
    if want_tree != tree {
        return Err(format!(
            "{name}: tree differs\n--- expected\n{want_tree}\n--- actual\n{tree}"
        ));
    }
    let want_files = read_tree(&expected.join("files"));
    let got_files = read_tree(&files);
    for ((wp, wd), (gp, gd)) in want_files.iter().zip(&got_files) {
        if wp != gp || wd != gd {
            return Err(format!(
                "{name}: {gp} differs\n--- expected ({wp})\n{}\n--- actual\n{}",
                String::from_utf8_lossy(wd),
                String::from_utf8_lossy(gd)
            ));
        }
    }
    if want_files.len() != got_files.len() {
        return Err(format!("{name}: a different number of files"));
    }
    Ok(())
}

#[test]
fn import_golden_cases() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the import golden cases need root (layers are unpacked in overlayfs format); run `make test` as root"
    );
    let update = std::env::var_os("SDME_UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "no import golden cases found");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| run_case(c, update).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
