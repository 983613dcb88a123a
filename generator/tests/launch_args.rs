//! What the generator writes for the launcher, the launcher reads: the
//! `ExecStart=` of every container drop-in among the golden cases' expected
//! trees parses with `sdme_launch::parse` (what `sdme-nspawn` runs), and
//! writing the result again gives the same arguments (so no option was
//! dropped or moved, an `--app=` group's options included).

use sdme_generator::{syntax, words};
use std::path::{Path, PathBuf};

fn dropins(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            dropins(&path, out);
        } else if path.ends_with("50-sdme.conf")
            && path
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n.to_string_lossy().starts_with("systemd-nspawn@"))
        {
            out.push(path);
        }
    }
}

/// The last `ExecStart=` of the file, split as systemd splits it.
fn exec_start(text: &str) -> Vec<String> {
    let (items, errors) = syntax::parse(text.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let value = items
        .into_iter()
        .rev()
        .find_map(|item| match item {
            syntax::Item::Assignment { key, value, .. } if key == "ExecStart" => Some(value),
            _ => None,
        })
        .expect("no ExecStart=");
    let unescaped = value.replace("%%", "%").replace("$$", "$");
    words::split(&unescaped).unwrap()
}

#[test]
fn every_drop_in_command_line_reads_back_the_same() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/generator/cases");
    let mut files = Vec::new();
    dropins(&cases, &mut files);
    files.retain(|f| f.components().any(|c| c.as_os_str() == "expected"));
    files.sort();
    assert!(files.len() > 30, "only {} drop-ins", files.len());
    let mut apps = 0;
    for file in &files {
        let argv = exec_start(&std::fs::read_to_string(file).unwrap());
        assert_eq!(
            argv[0],
            "/usr/libexec/sdme/sdme-nspawn",
            "{}",
            file.display()
        );
        let args: Vec<std::ffi::OsString> = argv[1..].iter().map(Into::into).collect();
        let launch = sdme_launch::parse(args)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .expect("not --help");
        assert_eq!(launch.to_args(), argv[1..], "{}", file.display());
        apps += launch.apps.len();
    }
    assert!(apps >= 3, "only {apps} --app= groups among the cases");
}
