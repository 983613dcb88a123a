//! Hostile descriptor directories that git cannot hold (FIFOs, sockets) or
//! that need absolute paths of this machine (symlinks aimed at a canary
//! outside the root), built in a tempdir. Each test runs the generator
//! binary with `--dry-run --root=` under a deadline: a generator that
//! blocks (opening a FIFO) is killed and the test fails instead of hanging.
//! See sdme-generator(8), "DESCRIPTOR FILES".

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Long enough for a loaded CI machine; a blocked open never finishes.
const DEADLINE: Duration = Duration::from_secs(20);

struct Run {
    exit: i32,
    stdout: String,
    stderr: String,
}

/// `sdme-generator --dry-run --root=ROOT`, killed if it outlives DEADLINE.
fn generate(root: &Path) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_sdme-generator"))
        .arg("--dry-run")
        .arg(format!("--root={}", root.display()))
        .env_remove("SYSTEMD_LOG_TARGET")
        .env_remove("SYSTEMD_SCOPE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || drop(tx.send(child.wait_with_output())));
    let output = match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            panic!(
                "sdme-generator --root={} still running after {DEADLINE:?} (blocked?)",
                root.display()
            );
        }
    };
    Run {
        exit: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn image(reference: &str) -> String {
    format!("[Image]\nImage=docker.io/library/{reference}:1\n")
}

fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
}

#[test]
fn fifos_and_sockets_are_skipped_without_blocking() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path();
    write(&root.join("etc/sdme/good.oci"), &image("good"));
    mkfifo(&root.join("etc/sdme/fifo.oci"));
    // A FIFO drop-in: its descriptor is skipped, as for any unreadable one.
    write(&root.join("etc/sdme/withfifo.oci"), &image("withfifo"));
    mkfifo(&root.join("etc/sdme/withfifo.oci.d/10-x.conf"));
    // A FIFO where the drop-in directory should be: unreadable drop-ins.
    write(&root.join("etc/sdme/fifodir.oci"), &image("fifodir"));
    mkfifo(&root.join("etc/sdme/fifodir.oci.d"));
    // A FIFO reached through a symlink is no better.
    mkfifo(&root.join("srv/pipe"));
    std::fs::create_dir_all(root.join("usr/lib/sdme")).unwrap();
    symlink("/srv/pipe", root.join("usr/lib/sdme/linked.oci")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(root.join("etc/sdme/sock.oci")).unwrap();

    let run = generate(root);
    assert_eq!(run.exit, 1, "{}", run.stderr);
    for line in [
        "sdme-generator: /etc/sdme/fifo.oci: not a regular file (a FIFO)\n",
        "sdme-generator: /etc/sdme/sock.oci: not a regular file (a socket)\n",
        "sdme-generator: /etc/sdme/withfifo.oci.d/10-x.conf: not a regular file (a FIFO)\n",
        "sdme-generator: /usr/lib/sdme/linked.oci: not a regular file (a FIFO)\n",
        "sdme-generator: /etc/sdme/fifodir.oci.d: cannot read directory: not a directory\n",
    ] {
        assert!(
            run.stderr.contains(line),
            "missing {line:?} in:\n{}",
            run.stderr
        );
    }
    assert!(run
        .stdout
        .contains("# sdme-generator: file sdme-import@good.service\n"));
    assert!(run.stdout.contains("docker.io/library/good:1"));
    assert!(!run.stdout.contains("withfifo"), "{}", run.stdout);
    assert!(!run.stdout.contains("fifodir"), "{}", run.stdout);
}

/// Where the kernel allows it (root), a device node is refused without
/// being opened; elsewhere mknod fails and there is nothing to test.
#[test]
fn a_device_node_is_not_opened() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path();
    write(&root.join("etc/sdme/good.oci"), &image("good"));
    // /dev/zero (1:5): harmless to open, but opening a device can have
    // effects (a tape rewinds, a terminal is acquired), so it must not be.
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("etc/sdme/zero.oci"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o644),
        rustix::fs::makedev(1, 5),
    );
    if made == Err(rustix::io::Errno::PERM) {
        eprintln!("skipped: mknod needs CAP_MKNOD");
        return;
    }
    made.unwrap();
    let run = generate(root);
    assert_eq!(run.exit, 1);
    assert!(
        run.stderr
            .contains("/etc/sdme/zero.oci: not a regular file (a character device)\n"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("docker.io/library/good:1"));
}

#[test]
fn an_oversized_descriptor_is_refused_and_the_rest_generated() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path();
    write(&root.join("etc/sdme/good.oci"), &image("good"));
    let huge = format!("{}{}", image("huge"), "# padding\n".repeat(110_000));
    write(&root.join("etc/sdme/huge.oci"), &huge);
    let run = generate(root);
    assert_eq!(run.exit, 1);
    assert!(
        run.stderr.contains(
            "sdme-generator: /etc/sdme/huge.oci: file is larger than 1048576 bytes (1 MiB), not read\n"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("docker.io/library/good:1"));
    assert!(!run.stdout.contains("huge"));
}

/// A tree with a canary outside the root: `TOP/outside/…` holds descriptors
/// whose image is `canary-escaped`; if that text shows up in the output,
/// the generator read a file outside `--root`. Each escape attempt has an
/// in-root file where confined resolution lands, so a correct generator
/// also proves where it looked.
#[test]
fn symlinks_resolve_inside_the_root() {
    let top = tempfile::tempdir().unwrap();
    let top = top.path().canonicalize().unwrap();
    let root = top.join("root");
    let outside = top.join("outside");
    write(&outside.join("x.oci"), &image("canary-escaped"));
    write(
        &outside.join("dropins/10-x.conf"),
        "[Image]\nPull=canary-escaped\n",
    );
    write(&outside.join("sdme/dir.oci"), &image("canary-escaped"));

    // An absolute target names a path of the target system: ROOT/TOP/outside.
    std::fs::create_dir_all(root.join("etc/sdme")).unwrap();
    symlink(outside.join("x.oci"), root.join("etc/sdme/abs.oci")).unwrap();
    write(
        &root.join(outside.strip_prefix("/").unwrap()).join("x.oci"),
        &image("inside-abs"),
    );
    // `..` stops at the root: ROOT/outside, not TOP/outside.
    symlink(
        "../../../../../../outside/x.oci",
        root.join("etc/sdme/up.oci"),
    )
    .unwrap();
    write(&root.join("outside/x.oci"), &image("inside-up"));
    // A symlinked drop-in directory and a symlinked drop-in, both escaping.
    write(&root.join("etc/sdme/web.oci"), &image("web"));
    symlink("../../../outside/dropins", root.join("etc/sdme/web.oci.d")).unwrap();
    write(
        &root.join("outside/dropins/10-x.conf"),
        "[Image]\nPull=always\n",
    );
    write(&root.join("etc/sdme/api.oci"), &image("api"));
    std::fs::create_dir_all(root.join("etc/sdme/api.oci.d")).unwrap();
    symlink(
        outside.join("dropins/10-x.conf"),
        root.join("etc/sdme/api.oci.d/10-x.conf"),
    )
    .unwrap();
    write(
        &root
            .join(outside.strip_prefix("/").unwrap())
            .join("dropins/10-x.conf"),
        "[Image]\nPull=never\n",
    );
    // A symlinked descriptor directory: ROOT/run/sdme -> ../../outside/sdme
    // means ROOT/outside/sdme.
    std::fs::create_dir_all(root.join("run")).unwrap();
    symlink("../../outside/sdme", root.join("run/sdme")).unwrap();
    write(&root.join("outside/sdme/dir.oci"), &image("inside-dir"));
    // An absolute link whose target exists only outside: not found.
    symlink(outside.join("sdme/dir.oci"), root.join("etc/sdme/gone.oci")).unwrap();

    let run = generate(&root);
    let everything = format!("{}{}", run.stdout, run.stderr);
    assert!(
        !everything.contains("canary-escaped"),
        "read a file outside the root:\n{everything}"
    );
    for expected in [
        "docker.io/library/inside-abs:1",
        "docker.io/library/inside-up:1",
        "docker.io/library/inside-dir:1",
    ] {
        assert!(
            run.stdout.contains(expected),
            "no {expected} in:\n{}",
            run.stdout
        );
    }
    let unit = |name: &str| {
        let header = format!("# sdme-generator: file sdme-import@{name}.service\n");
        let start = run
            .stdout
            .find(&header)
            .unwrap_or_else(|| panic!("no {name} unit"));
        run.stdout[start + header.len()..]
            .split("# sdme-generator: ")
            .next()
            .unwrap()
            .to_string()
    };
    assert!(unit("web").contains("--pull=always"), "{}", unit("web"));
    assert!(unit("api").contains("--pull=never"), "{}", unit("api"));
    assert_eq!(
        run.stderr,
        "sdme-generator: /etc/sdme/gone.oci: cannot open: No such file or directory (os error 2)\n"
    );
    assert_eq!(run.exit, 1);
}

/// A link to /dev/null masks by its text, even where the root has no
/// /dev/null (and under --root, the host's would not count anyway).
#[test]
fn a_dev_null_link_masks_without_a_dev_in_the_root() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path();
    write(&root.join("usr/lib/sdme/masked.oci"), &image("masked"));
    std::fs::create_dir_all(root.join("etc/sdme")).unwrap();
    symlink("/dev/null", root.join("etc/sdme/masked.oci")).unwrap();
    write(&root.join("etc/sdme/good.oci"), &image("good"));
    assert!(!root.join("dev").exists());
    let run = generate(root);
    assert_eq!((run.exit, run.stderr.as_str()), (0, ""));
    assert!(run.stdout.contains("docker.io/library/good:1"));
    assert!(!run.stdout.contains("masked"));
}

/// `lookup` (what `sdme connector` reads) says why such a descriptor is
/// unusable: the diagnostics name its drop-in directory or drop-in.
#[test]
fn lookup_reports_the_unreadable_part() {
    use sdme_generator::lookup::{lookup, Lookup};
    let top = tempfile::tempdir().unwrap();
    let root = top.path();
    write(&root.join("etc/sdme/a.oci"), &image("a"));
    mkfifo(&root.join("etc/sdme/a.oci.d"));
    write(&root.join("etc/sdme/b.oci"), &image("b"));
    mkfifo(&root.join("usr/lib/sdme/b.oci.d/10-x.conf"));
    let messages = |name: &str| match lookup(root, name) {
        Lookup::Broken(diagnostics) => diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        _ => panic!("{name} is not reported broken"),
    };
    assert_eq!(
        messages("a"),
        ["/etc/sdme/a.oci.d: cannot read directory: not a directory"]
    );
    assert_eq!(
        messages("b"),
        ["/usr/lib/sdme/b.oci.d/10-x.conf: not a regular file (a FIFO)"]
    );
}
