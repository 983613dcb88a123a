//! Docker credential helpers: `docker-credential-NAME get`, the server on
//! stdin, JSON on stdout. The secret never appears on a command line.

use super::Credentials;
use crate::error::{Error, ErrorKind};
use serde::Deserialize;
use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Asks helper `name` for `server`'s credentials; `Ok(None)` if it has none.
pub fn get(name: &str, server: &str) -> Result<Option<Credentials>, Error> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            format!("invalid credential helper name {name:?}"),
        ));
    }
    let program = format!("docker-credential-{name}");
    let fail = |why: String| {
        Error::new(
            ErrorKind::Unauthorized,
            format!("{program} get ({server}): {why}"),
        )
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits early closes the pipe; its exit status says why.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!(
            "{} {}",
            out.status,
            format!("{stdout} {stderr}").trim()
        )));
    }
    let reply: Reply =
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("bad reply: {e}")))?;
    // "<token>" marks an identity (refresh) token, which only Docker's own OAuth flow can use.
    if reply.username.is_empty() || reply.username == "<token>" {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: reply.username,
        password: reply.secret,
    }))
}
