//! `sdme-import unpack`: an image source flattened into a plain rootfs
//! directory (as `umoci unpack` does, without the bundle around it).
//!
//! The tree is built in a hidden directory beside DEST and renamed into place
//! only when every layer is applied and verified, so DEST is either absent
//! (or the empty directory it was) or complete.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{self, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sdme_extract::{Options, Whiteouts};
use sdme_registry::{ImageSource, Platform, SourceOptions};

// Declared here rather than in main.rs: the pipeline is this command's own.
#[path = "unpack_pipeline.rs"]
mod unpack_pipeline;

const USAGE: &str =
    "usage: sdme-import unpack [--tls-verify=BOOL] [--cert-dir=DIR] [--authfile=FILE]
                          [--registries-conf=yes|no|FILE] [--retries=N]
                          [--platform=OS/ARCH[/VARIANT]] [--jobs=N] [--verbose] SOURCE DEST";

/// Layers fetched ahead of the one being applied, by default.
const DEFAULT_JOBS: usize = 4;

struct Args {
    source: String,
    dest: PathBuf,
    opts: SourceOptions,
    jobs: usize,
    verbose: bool,
}

pub fn main(args: Vec<OsString>) -> Result<(), String> {
    let args = parse_args(args)?;
    raise_fd_limit();
    let t0 = Instant::now();
    // DEST first: refusing it costs nothing, the source may cost a download.
    let dest = Dest::check(&args.dest)?;
    // The source's errors name it already.
    let source =
        sdme_registry::open_source(&args.source, &args.opts).map_err(|e| format!("unpack: {e}"))?;
    let image = source.resolve().map_err(|e| format!("unpack: {e}"))?;
    let staging = dest.make_staging()?;
    let opts = Options {
        whiteouts: Whiteouts::Apply,
        preserve_ownership: rustix::process::geteuid().is_root(),
    };
    let result = unpack_pipeline::apply_layers(
        source.as_ref() as &dyn ImageSource,
        &image.layers,
        staging.fd.as_fd(),
        dest.parent_fd.as_fd(),
        &opts,
        args.jobs,
    );
    let stats = match result {
        Ok(stats) => stats,
        Err(e) => {
            staging.discard(&dest);
            return Err(format!("unpack: {}: {e}", args.source));
        }
    };
    if let Err(e) = dest.commit(&staging) {
        staging.discard(&dest);
        return Err(e);
    }
    if args.verbose {
        eprintln!(
            "unpacked {} ({}, {} layers, {} entries, {} bytes) into {} in {:.2} s",
            image.reference,
            image.manifest_digest,
            image.layers.len(),
            stats.entries,
            stats.bytes,
            args.dest.display(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn parse_args(args: Vec<OsString>) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut opts = SourceOptions::new();
    opts.notice = Some(sdme_import::cli::stderr_notice());
    let mut jobs = DEFAULT_JOBS;
    let mut verbose = false;
    let mut positional: Vec<OsString> = Vec::new();
    let bad = |e: lexopt::Error| format!("unpack: {e}\n{USAGE}");
    while let Some(arg) = parser.next().map_err(bad)? {
        match arg {
            Long("tls-verify") => {
                let v = parser.value().map_err(bad)?;
                sdme_import::cli::set_tls_verify(&mut opts, &utf8(&v, "--tls-verify")?)
                    .map_err(|e| format!("unpack: {e}"))?
            }
            Long("registries-conf") => {
                let v = parser.value().map_err(bad)?;
                sdme_import::cli::set_registries_conf(&mut opts, &utf8(&v, "--registries-conf")?)
                    .map_err(|e| format!("unpack: {e}"))?
            }
            Long("retries") => {
                let v = parser.value().map_err(bad)?;
                sdme_import::cli::set_retries(&mut opts, &utf8(&v, "--retries")?)
                    .map_err(|e| format!("unpack: {e}"))?
            }
            Long("cert-dir") => opts.cert_dir = Some(parser.value().map_err(bad)?.into()),
            Long("authfile") => opts.authfile = Some(parser.value().map_err(bad)?.into()),
            Long("platform") => {
                let v = parser.value().map_err(bad)?;
                let s = v.to_str().ok_or("unpack: --platform is not UTF-8")?;
                opts.platform =
                    Some(Platform::parse(s).map_err(|e| format!("unpack: --platform={s}: {e}"))?);
            }
            Long("jobs") => {
                let v: usize = parser.value().map_err(bad)?.parse().map_err(bad)?;
                if v == 0 {
                    return Err("unpack: --jobs must be at least 1".into());
                }
                jobs = v;
            }
            Long("verbose") | Short('v') => verbose = true,
            Long("help") | Short('h') => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Value(v) => positional.push(v),
            other => return Err(bad(other.unexpected())),
        }
    }
    let [source, dest]: [OsString; 2] = positional
        .try_into()
        .map_err(|_| format!("unpack: expected SOURCE and DEST\n{USAGE}"))?;
    let source = source
        .into_string()
        .map_err(|s| format!("unpack: source {s:?} is not UTF-8"))?;
    Ok(Args {
        source,
        dest: dest.into(),
        opts,
        jobs,
        verbose,
    })
}

fn utf8(v: &OsStr, name: &str) -> Result<String, String> {
    v.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("unpack: {name}: not UTF-8: {v:?}"))
}

/// Deep trees are removed and walked with few fds, but opaque-directory
/// handling recurses with one fd per level: use the hard limit.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

/// DEST: its parent directory (held open) and its name there.
#[derive(Debug)]
struct Dest {
    path: PathBuf,
    parent_fd: OwnedFd,
    name: OsString,
}

/// The hidden, private (0700) directory beside DEST, named `name`, and the
/// tree being built inside it (`fd`, its `rootfs`). The tree gets the image's
/// modes as layers are applied (a root of 1777 is common); the private
/// parent keeps every other user out of it until it is renamed into place.
struct Staging {
    name: OsString,
    wrapper_fd: OwnedFd,
    fd: OwnedFd,
}

const STAGING_ROOT: &str = "rootfs";

impl Dest {
    /// DEST must not exist, or be an empty directory (replaced atomically).
    fn check(path: &Path) -> Result<Dest, String> {
        let name = path
            .file_name()
            .filter(|n| *n != OsStr::new("..") && *n != OsStr::new("."))
            .ok_or_else(|| {
                format!(
                    "unpack: {}: DEST must name a directory to create",
                    path.display()
                )
            })?
            .to_owned();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let parent_fd = fs::open(
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            format!(
                "unpack: {}: cannot open the parent directory: {e}",
                parent.display()
            )
        })?;
        let dest = Dest {
            path: path.to_path_buf(),
            parent_fd,
            name,
        };
        match fs::statat(
            &dest.parent_fd,
            dest.name.as_os_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Err(Errno::NOENT) => Ok(dest),
            Err(e) => Err(format!("unpack: {}: {e}", path.display())),
            Ok(st) if fs::FileType::from_raw_mode(st.st_mode) != fs::FileType::Directory => Err(
                format!("unpack: {}: exists and is not a directory", path.display()),
            ),
            Ok(_) if !dest.is_empty_dir()? => Err(format!(
                "unpack: {}: exists and is not empty; refusing to overwrite it",
                path.display()
            )),
            Ok(_) => Ok(dest),
        }
    }

    fn is_empty_dir(&self) -> Result<bool, String> {
        let fd = fs::openat(
            &self.parent_fd,
            self.name.as_os_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("unpack: {}: {e}", self.path.display()))?;
        let dir =
            fs::Dir::read_from(&fd).map_err(|e| format!("unpack: {}: {e}", self.path.display()))?;
        for entry in dir {
            let entry = entry.map_err(|e| format!("unpack: {}: {e}", self.path.display()))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Prefix of the staging directories of this DEST: `.NAME.tmp-`.
    fn staging_prefix(&self) -> Vec<u8> {
        let mut p = b".".to_vec();
        p.extend_from_slice(self.name.as_bytes());
        p.extend_from_slice(b".tmp-");
        p
    }

    /// Removes staging directories left by unpacks of this DEST that were
    /// killed (their PID is gone), so an interrupted run costs no space.
    fn remove_stale_staging(&self) {
        let prefix = self.staging_prefix();
        let Ok(fd) = fs::openat(
            &self.parent_fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let Ok(dir) = fs::Dir::read_from(&fd) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_bytes();
            let Some(rest) = name.strip_prefix(prefix.as_slice()) else {
                continue;
            };
            let pid = rest
                .split(|&b| b == b'-')
                .next()
                .and_then(|p| std::str::from_utf8(p).ok()?.parse::<u32>().ok());
            let Some(pid) = pid else { continue };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let _ = sdme_extract::remove_all(self.parent_fd.as_fd(), OsStr::from_bytes(name));
        }
    }

    fn make_staging(&self) -> Result<Staging, String> {
        self.remove_stale_staging();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut name = OsString::from(".");
        name.push(&self.name);
        name.push(format!(".tmp-{}-{nanos:08x}", std::process::id()));
        fs::mkdirat(
            &self.parent_fd,
            name.as_os_str(),
            Mode::from_raw_mode(0o700),
        )
        .map_err(|e| {
            format!(
                "unpack: cannot create {:?} beside {}: {e}",
                name,
                self.path.display()
            )
        })?;
        let open = |dir: BorrowedFd<'_>, name: &OsStr| {
            fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let wrapper_fd = open(self.parent_fd.as_fd(), &name)
            .map_err(|e| format!("unpack: cannot open {name:?}: {e}"))?;
        // mkdirat applies the umask: the wrapper must be 0700 whatever it is.
        let prepared = fs::fchmod(&wrapper_fd, Mode::from_raw_mode(0o700))
            .and_then(|()| fs::mkdirat(&wrapper_fd, STAGING_ROOT, Mode::from_raw_mode(0o700)))
            .and_then(|()| open(wrapper_fd.as_fd(), OsStr::new(STAGING_ROOT)));
        let fd = match prepared {
            Ok(fd) => fd,
            Err(e) => {
                let _ = sdme_extract::remove_all(self.parent_fd.as_fd(), &name);
                return Err(format!("unpack: preparing {name:?}: {e}"));
            }
        };
        let staging = Staging {
            name,
            wrapper_fd,
            fd,
        };
        // The rootfs is 0755 unless the image's own `./` entry says otherwise
        // (applied by the extraction, after this default).
        if let Err(e) = fs::fchmod(&staging.fd, Mode::from_raw_mode(0o755)) {
            staging.discard(self);
            return Err(format!("unpack: chmod {:?}: {e}", staging.name));
        }
        Ok(staging)
    }

    fn commit(&self, staging: &Staging) -> Result<(), String> {
        // rename(2) replaces an empty directory atomically; the emptied
        // private wrapper is removed after.
        let moved = fs::renameat(
            &staging.wrapper_fd,
            STAGING_ROOT,
            &self.parent_fd,
            self.name.as_os_str(),
        );
        if moved.is_ok() {
            let _ = fs::unlinkat(
                &self.parent_fd,
                staging.name.as_os_str(),
                AtFlags::REMOVEDIR,
            );
        }
        moved.map_err(|e| {
            format!(
                "unpack: cannot move the unpacked tree to {}: {e}",
                self.path.display()
            )
        })
    }
}

impl Staging {
    fn discard(&self, dest: &Dest) {
        if let Err(e) = sdme_extract::remove_all(dest.parent_fd.as_fd(), &self.name) {
            eprintln!(
                "sdme-import: unpack: cannot remove the partial tree {:?}: {e}",
                Path::new(OsStr::from_bytes(self.name.as_bytes()))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(OsString::from).collect())
    }

    #[test]
    fn options_and_operands() {
        let a = args(&[
            "--tls-verify=false",
            "--jobs=2",
            "--platform=linux/arm64/v8",
            "oci:x:y",
            "/d",
        ])
        .unwrap();
        assert!(!a.opts.tls_verify);
        assert_eq!(a.jobs, 2);
        assert_eq!(a.source, "oci:x:y");
        assert_eq!(a.dest, PathBuf::from("/d"));
        assert_eq!(a.opts.platform.unwrap().architecture, "arm64");
        assert!(
            args(&["src", "/d"]).unwrap().opts.tls_verify,
            "TLS is verified by default"
        );
        for bad in [
            &["src"][..],
            &["a", "b", "c"],
            &["--jobs=0", "a", "b"],
            &["--tls-verify=maybe", "a", "b"],
            &["--bogus", "a", "b"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dest_must_be_absent_or_an_empty_directory() {
        let d = tempfile::tempdir().unwrap();
        assert!(Dest::check(&d.path().join("new")).is_ok());
        std::fs::create_dir(d.path().join("empty")).unwrap();
        assert!(Dest::check(&d.path().join("empty")).is_ok());
        std::fs::create_dir(d.path().join("full")).unwrap();
        std::fs::write(d.path().join("full/x"), b"x").unwrap();
        assert!(Dest::check(&d.path().join("full"))
            .unwrap_err()
            .contains("not empty"));
        std::fs::write(d.path().join("file"), b"x").unwrap();
        assert!(Dest::check(&d.path().join("file"))
            .unwrap_err()
            .contains("not a directory"));
        assert!(Dest::check(&d.path().join("no/parent")).is_err());
        assert!(Dest::check(Path::new("/")).is_err());
    }

    #[test]
    fn staging_is_hidden_beside_dest_and_committed_by_rename() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dest")).unwrap();
        let dest = Dest::check(&d.path().join("dest")).unwrap();
        let s = dest.make_staging().unwrap();
        assert!(s.name.to_string_lossy().starts_with(".dest.tmp-"));
        // Whatever modes the image gives its root while layers extract,
        // the tree is inside a directory only root may enter.
        use std::os::unix::fs::PermissionsExt;
        let wrapper = d
            .path()
            .join(Path::new(OsStr::from_bytes(s.name.as_bytes())));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        fs::fchmod(&s.fd, Mode::from_raw_mode(0o1777)).unwrap();
        assert_eq!(mode(&wrapper), 0o700);
        assert_eq!(mode(&wrapper.join(STAGING_ROOT)), 0o1777);
        fs::mkdirat(&s.fd, "inside", Mode::from_raw_mode(0o755)).unwrap();
        dest.commit(&s).unwrap();
        assert!(d.path().join("dest/inside").is_dir());
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["dest"]);
        // A staging directory of a dead process is removed by the next run;
        // one of a live process is not.
        std::fs::create_dir(d.path().join(".dest.tmp-999999999-0")).unwrap();
        std::fs::create_dir(d.path().join(".dest.tmp-999999999-0/sub")).unwrap();
        std::fs::create_dir(d.path().join(".dest.tmp-1-0")).unwrap();
        let dest3 = Dest::check(&d.path().join("dest3")).unwrap();
        std::fs::create_dir(d.path().join(".dest3.tmp-999999999-0")).unwrap();
        let s3 = dest3.make_staging().unwrap();
        s3.discard(&dest3);
        assert!(!d.path().join(".dest3.tmp-999999999-0").exists());
        assert!(
            d.path().join(".dest.tmp-999999999-0").exists(),
            "another DEST's: untouched"
        );
        std::fs::remove_dir_all(d.path().join(".dest.tmp-999999999-0")).unwrap();
        std::fs::remove_dir(d.path().join(".dest.tmp-1-0")).unwrap();
        // A discarded staging directory leaves nothing.
        let dest2 = Dest::check(&d.path().join("other")).unwrap();
        let s2 = dest2.make_staging().unwrap();
        fs::mkdirat(&s2.fd, "x", Mode::from_raw_mode(0o755)).unwrap();
        s2.discard(&dest2);
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["dest"]);
    }
}
