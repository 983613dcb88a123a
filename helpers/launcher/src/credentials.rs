//! The container's systemd credentials (`Credential=`,
//! `EncryptedCredential=`) and the secrets taken from them (`Secret=`).
//!
//! A plain credential is passed as `--load-credential=ID:PATH`: nspawn
//! reads the host file itself when it starts. An encrypted one is
//! decrypted here, on the host, by `systemd-creds decrypt` (the host key
//! in /var/lib/systemd/credential.secret or the TPM never enter the
//! container), into a memfd: nspawn gets `--load-credential=ID:/proc/self/fd/N`
//! and reads it while parsing its command line, before it closes the fds
//! it does not pass on. The plaintext is never on a file system, an
//! argument or in the journal. Inside, nspawn hands both kinds to the
//! container's systemd as system credentials; the app service loads them
//! with `LoadCredential=ID` (dropin.rs).

use sdme_launch::{Credential, Secret, CREDENTIAL_SIZE_MAX};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

/// nspawn's arguments for the credentials, the fds they name (kept open,
/// without close-on-exec, until systemd-nspawn is executed) and the
/// environment assignments of the secrets.
#[derive(Debug, Default)]
pub struct Loaded {
    pub args: Vec<OsString>,
    pub fds: Vec<OwnedFd>,
    pub env: Vec<(String, String)>,
}

/// `systemd-creds`, or `$SDME_SYSTEMD_CREDS` (tests).
fn systemd_creds() -> OsString {
    std::env::var_os("SDME_SYSTEMD_CREDS").unwrap_or_else(|| "systemd-creds".into())
}

pub fn load(credentials: &[Credential], secrets: &[Secret]) -> Result<Loaded, String> {
    let mut out = Loaded::default();
    for c in credentials {
        let wanted_as_env: Vec<&Secret> = secrets.iter().filter(|s| s.id == c.id).collect();
        let contents = if c.encrypted {
            let plain = decrypt(c)?;
            let fd = memfd(&c.id, &plain)?;
            out.args.push(
                format!(
                    "--load-credential={}:/proc/self/fd/{}",
                    c.id,
                    fd.as_raw_fd()
                )
                .into(),
            );
            out.fds.push(fd);
            Some(plain)
        } else {
            check_file(c)?;
            out.args
                .push(format!("--load-credential={}:{}", c.id, c.path).into());
            match wanted_as_env.is_empty() {
                true => None,
                false => Some(read_plain(c)?),
            }
        };
        if let Some(bytes) = contents {
            for s in wanted_as_env {
                let text = String::from_utf8(bytes.clone()).map_err(|_| {
                    format!(
                        "Secret={}:{}: credential {} is not UTF-8 text",
                        s.id, s.var, s.id
                    )
                })?;
                if text.contains('\0') {
                    return Err(format!(
                        "Secret={}:{}: credential {} contains a NUL byte, which an environment \
                         variable cannot hold",
                        s.id, s.var, s.id
                    ));
                }
                out.env.push((s.var.clone(), text));
            }
        }
    }
    if let Some(s) = secrets
        .iter()
        .find(|s| !credentials.iter().any(|c| c.id == s.id))
    {
        return Err(format!(
            "--secret={}:{}: no --credential or --encrypted-credential {}",
            s.id, s.var, s.id
        ));
    }
    Ok(out)
}

fn what(c: &Credential) -> String {
    let key = match c.encrypted {
        true => "EncryptedCredential",
        false => "Credential",
    };
    format!("{key}={}:{}", c.id, c.path)
}

/// A regular file of at most systemd's size; a warning when any user
/// can read it (the administrator's file, not sdme's).
fn check_file(c: &Credential) -> Result<(), String> {
    let m = std::fs::metadata(&c.path).map_err(|e| format!("{}: {e}", what(c)))?;
    if !m.is_file() {
        return Err(format!("{}: not a regular file", what(c)));
    }
    if m.len() > CREDENTIAL_SIZE_MAX {
        return Err(format!(
            "{}: larger than {CREDENTIAL_SIZE_MAX} bytes (systemd's limit)",
            what(c)
        ));
    }
    if m.mode() & 0o004 != 0 {
        eprintln!(
            "sdme-nspawn: warning: {}: the file is readable by every user (chmod o-r)",
            what(c)
        );
    }
    Ok(())
}

fn read_plain(c: &Credential) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(&c.path)
        .and_then(|f| f.take(CREDENTIAL_SIZE_MAX + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", what(c)))?;
    if bytes.len() as u64 > CREDENTIAL_SIZE_MAX {
        return Err(format!(
            "{}: larger than {CREDENTIAL_SIZE_MAX} bytes",
            what(c)
        ));
    }
    Ok(bytes)
}

/// `systemd-creds decrypt --name=ID PATH -`: the name embedded at
/// encryption must match, so a file encrypted for another credential is
/// refused. Its messages go to the journal (stderr); the plaintext only
/// into this process.
fn decrypt(c: &Credential) -> Result<Vec<u8>, String> {
    check_file(c)?;
    let mut child = Command::new(systemd_creds())
        .arg("decrypt")
        .arg(format!("--name={}", c.id))
        .arg(&c.path)
        .arg("-")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // It would report to the unit's notification socket, which only
        // takes the launcher's (nspawn's) messages.
        .env_remove("NOTIFY_SOCKET")
        .spawn()
        .map_err(|e| format!("{}: running systemd-creds: {e}", what(c)))?;
    let mut plain = Vec::new();
    let read = child
        .stdout
        .take()
        .map(|out| out.take(CREDENTIAL_SIZE_MAX + 1).read_to_end(&mut plain));
    let status = child
        .wait()
        .map_err(|e| format!("{}: systemd-creds: {e}", what(c)))?;
    if !status.success() {
        return Err(format!(
            "{}: systemd-creds decrypt failed ({status}; its message is above)",
            what(c)
        ));
    }
    match read {
        Some(Ok(_)) if plain.len() as u64 <= CREDENTIAL_SIZE_MAX => Ok(plain),
        Some(Ok(_)) => Err(format!(
            "{}: decrypted to more than {CREDENTIAL_SIZE_MAX} bytes",
            what(c)
        )),
        Some(Err(e)) => Err(format!("{}: reading systemd-creds: {e}", what(c))),
        None => Err(format!("{}: systemd-creds gave no output", what(c))),
    }
}

/// An anonymous memory file holding `bytes`, close-on-exec until the
/// launcher's last step ([`inherit`], just before systemd-nspawn is
/// executed and opens `/proc/self/fd/N`): nothing the launcher runs before
/// (systemd-creds for the next credential, machinectl, the user
/// namespace's holder) gets it.
fn memfd(id: &str, bytes: &[u8]) -> Result<OwnedFd, String> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        format!("sdme-credential-{id}"),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| format!("credential {id}: memfd_create: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)
        .map_err(|e| format!("credential {id}: writing the memfd: {e}"))?;
    let fd = OwnedFd::from(file);
    // Nothing may change it after this (nor grow it).
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )
    .map_err(|e| format!("credential {id}: sealing the memfd: {e}"))?;
    Ok(fd)
}

/// Lets the credentials' memfds survive the exec of systemd-nspawn.
pub fn inherit(fds: &[OwnedFd]) -> Result<(), String> {
    for fd in fds {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())
            .map_err(|e| format!("credential descriptor: fcntl: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cred(id: &str, path: &std::path::Path, encrypted: bool) -> Credential {
        Credential {
            id: id.into(),
            path: path.to_str().unwrap().into(),
            encrypted,
        }
    }

    #[test]
    fn plain_credentials_are_passed_by_path_and_secrets_read() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("pw");
        std::fs::write(&f, "s3cret $x \"q\"\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = Secret {
            id: "db".into(),
            var: "DB_PASSWORD".into(),
        };
        let l = load(&[cred("db", &f, false)], &[secret]).unwrap();
        assert_eq!(
            l.args,
            [OsString::from(format!(
                "--load-credential=db:{}",
                f.display()
            ))]
        );
        assert!(l.fds.is_empty());
        assert_eq!(
            l.env,
            [("DB_PASSWORD".to_string(), "s3cret $x \"q\"\n".to_string())]
        );
        // No secret wanted: the file is not read by the launcher.
        let l = load(&[cred("db", &f, false)], &[]).unwrap();
        assert!(l.env.is_empty());
    }

    #[test]
    fn problems_name_the_setting_and_never_the_contents() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("missing");
        let e = load(&[cred("a", &missing, false)], &[]).unwrap_err();
        assert!(e.starts_with("Credential=a:"), "{e}");
        let e = load(&[cred("a", t.path(), false)], &[]).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let big = t.path().join("big");
        std::fs::write(&big, vec![b'x'; CREDENTIAL_SIZE_MAX as usize + 1]).unwrap();
        assert!(load(&[cred("a", &big, false)], &[])
            .unwrap_err()
            .contains("larger than"));
        let bin = t.path().join("bin");
        std::fs::write(&bin, b"top\0secret").unwrap();
        let s = Secret {
            id: "a".into(),
            var: "V".into(),
        };
        let e = load(&[cred("a", &bin, false)], std::slice::from_ref(&s)).unwrap_err();
        assert!(e.contains("NUL") && !e.contains("secret\""), "{e}");
        let e = load(&[], &[s]).unwrap_err();
        assert!(e.contains("no --credential"), "{e}");
    }

    /// A stand-in for systemd-creds: prints the file's contents reversed
    /// for `--name=ok`, fails otherwise.
    #[test]
    fn encrypted_credentials_go_through_a_sealed_memfd() {
        let t = tempfile::tempdir().unwrap();
        let fake = t.path().join("systemd-creds");
        std::fs::write(
            &fake,
            "#!/bin/sh\n[ \"$1\" = decrypt ] && [ \"$2\" = --name=ok ] && [ \"$4\" = - ] || \
             { echo refused >&2; exit 1; }\nrev < \"$3\" | tr -d '\\n'\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = t.path().join("enc");
        std::fs::write(&f, "terces").unwrap();
        std::env::set_var("SDME_SYSTEMD_CREDS", &fake);
        let s = Secret {
            id: "ok".into(),
            var: "TOKEN".into(),
        };
        let l = load(&[cred("ok", &f, true)], &[s]).unwrap();
        assert_eq!(l.env, [("TOKEN".to_string(), "secret".to_string())]);
        let n = l.fds[0].as_raw_fd();
        assert_eq!(
            l.args,
            [OsString::from(format!(
                "--load-credential=ok:/proc/self/fd/{n}"
            ))]
        );
        // What nspawn will read; close-on-exec until the last step, then
        // inherited across that exec only.
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{n}")).unwrap(),
            b"secret"
        );
        let flags = rustix::io::fcntl_getfd(&l.fds[0]).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        inherit(&l.fds).unwrap();
        let flags = rustix::io::fcntl_getfd(&l.fds[0]).unwrap();
        assert!(!flags.contains(rustix::io::FdFlags::CLOEXEC));
        assert!(std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{n}"))
            .and_then(|mut w| w.write_all(b"x"))
            .is_err());
        let e = load(&[cred("other", &f, true)], &[]).unwrap_err();
        assert!(e.contains("systemd-creds decrypt failed"), "{e}");
        std::env::remove_var("SDME_SYSTEMD_CREDS");
    }
}
