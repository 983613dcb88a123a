//! HTTP for one registry repository: scheme discovery (`/v2/` ping),
//! authentication (bearer tokens, basic), redirects followed by hand so that
//! `Authorization` never leaves the registry's origin, and retries with
//! backoff on 429/5xx and transport errors.

use super::challenge::{self, Challenge};
use super::url::{encode_query, origin, resolve};
use crate::auth::{authfile, Credentials};
use crate::error::{Error, ErrorKind};
use crate::SourceOptions;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;

const MAX_REDIRECTS: usize = 10;
/// Retries of a request when the options do not say (the last source tried gets them).
pub(super) const DEFAULT_RETRIES: u32 = 4;
const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;

pub struct Client {
    agent: ureq::Agent,
    /// `https://host[:port]` or `http://…`, decided by the ping.
    base: String,
    /// Reference domain (for credential lookup) and repository path.
    domain: String,
    repository: String,
    authfile: Option<PathBuf>,
    user_agent: String,
    /// Lowered to 0 while a mirror is tried, so that the next source is the retry.
    retries: AtomicU32,
    retry_delay: Duration,
    notice: Option<Notice>,
    credentials: OnceLock<Result<Option<Credentials>, String>>,
    auth: Mutex<AuthState>,
}

#[derive(Default)]
struct AuthState {
    /// Value of the `Authorization` header for the registry origin.
    header: Option<String>,
    /// The challenge from the ping, to authenticate before the first request.
    challenge: Option<Vec<Challenge>>,
}

/// A hint that applies to one kind of failure only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// A TLS handshake got an answer that is not TLS: the server speaks plain http.
    PlainHttp,
    /// The server's certificate is not trusted.
    UntrustedCertificate,
}

impl Hint {
    fn text(self) -> &'static str {
        match self {
            Hint::PlainHttp => {
                "if it serves plain http: --tls-verify=no (TLSVerify=no), or insecure = true for it \
                 in registries.conf"
            }
            Hint::UntrustedCertificate => {
                "trust its CA with --cert-dir=DIR (CertDir=), or use --tls-verify=no"
            }
        }
    }
}

/// What a transport failure was, in words, and the hint that applies to it.
fn describe_transport(e: &ureq::Error) -> (String, Option<Hint>) {
    match e {
        ureq::Error::Io(io) => describe_io(io),
        ureq::Error::Rustls(tls) => describe_tls(tls),
        ureq::Error::HostNotFound => ("cannot resolve the host name".into(), None),
        ureq::Error::Timeout(t) => (format!("timed out ({t})"), None),
        ureq::Error::ConnectionFailed => ("cannot connect".into(), None),
        ureq::Error::Tls(why) => (format!("TLS failed: {why}"), None),
        other => (other.to_string(), None),
    }
}

fn describe_io(io: &std::io::Error) -> (String, Option<Hint>) {
    use std::io::ErrorKind as K;
    if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return describe_tls(tls);
    }
    let text = io.to_string();
    // std's getaddrinfo failure: "failed to lookup address information: DETAIL".
    if let Some(detail) = text.strip_prefix("failed to lookup address information: ") {
        return (format!("cannot resolve the host name ({detail})"), None);
    }
    let words = match io.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset by the server",
        K::ConnectionAborted => "connection aborted",
        K::TimedOut => "timed out",
        K::UnexpectedEof => "the server closed the connection",
        K::AddrNotAvailable => "address not available",
        _ => return (strip_os_error(&text), None),
    };
    (words.to_string(), None)
}

fn describe_tls(tls: &rustls::Error) -> (String, Option<Hint>) {
    match tls {
        rustls::Error::InvalidMessage(_) => (
            "TLS handshake failed: the server does not speak TLS".into(),
            Some(Hint::PlainHttp),
        ),
        rustls::Error::InvalidCertificate(why) => (
            format!("TLS certificate not trusted ({why:?})"),
            Some(Hint::UntrustedCertificate),
        ),
        other => (format!("TLS handshake failed: {other}"), None),
    }
}

/// `No route to host (os error 113)` → `No route to host`: the number says nothing more.
fn strip_os_error(text: &str) -> String {
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text.to_string(),
    }
}

fn transport_error(url: &str, e: &ureq::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{url}: {}", describe_transport(e).0))
}

fn retryable_transport(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => true,
        // A server that does not speak TLS, or a certificate refused, will not change by retrying.
        ureq::Error::Io(io) => describe_io(io).1.is_none(),
        _ => false,
    }
}

/// Receives one line for a person: retries, and sources given up on.
#[derive(Clone)]
pub struct Notice(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notice(..)")
    }
}

impl Notice {
    pub fn say(&self, line: &str) {
        (self.0)(line)
    }
}

/// Whether the registry's basic credentials may be sent to the bearer token
/// service `realm` named by the challenge of the registry at `registry_base`.
///
/// Another host is allowed: token services usually live elsewhere (Docker Hub:
/// registry-1.docker.io sends clients to auth.docker.io), and the registry,
/// reached over https, is the one naming it. A weaker transport is not: when
/// the registry is https, a plain-http realm would put the password on the
/// wire in clear (a downgrade any on-path attacker could also inject), so it
/// is refused with an error rather than quietly retried anonymously, which
/// would end in a confusing 401 or a pull the user believes authenticated.
/// A plain-http registry (`--tls-verify=no`) sends its credentials in clear
/// anyway, so its realm may be http too.
pub(crate) fn credentials_may_go_to_realm(registry_base: &str, realm: &str) -> Result<(), String> {
    let Some((realm_scheme, _, _)) = origin(realm) else {
        return Err(format!(
            "bearer realm {realm:?} is not an http or https URL"
        ));
    };
    let registry_https = origin(registry_base).is_some_and(|(scheme, _, _)| scheme == "https");
    if registry_https && realm_scheme != "https" {
        return Err(format!(
            "refusing to send the credentials for registry {registry_base} to the plain-http \
             token realm {realm} (an https registry's token service must be https too)"
        ));
    }
    Ok(())
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries; it falls back to backoff).
fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A request that got no usable answer: a transport failure (described in
/// words, with the hint that applies and how often it was retried) or any other error.
enum Failure {
    Transport {
        url: String,
        what: String,
        hint: Option<Hint>,
        retried: u32,
    },
    Other(Error),
}

fn retried_note(retried: u32) -> String {
    match retried {
        0 => String::new(),
        1 => " (after 1 retry)".into(),
        n => format!(" (after {n} retries)"),
    }
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Transport {
                url,
                what,
                hint,
                retried,
            } => Error::new(
                ErrorKind::Io,
                format!(
                    "{url}: {what}{}{}",
                    retried_note(retried),
                    hint.map(|h| format!(" ({})", h.text())).unwrap_or_default()
                ),
            ),
            Failure::Other(e) => e,
        }
    }
}

impl Client {
    /// Connects to the registry `api_host` for `repository`, choosing https (or, with
    /// `tls_verify` off, http when https fails) and remembering its auth challenge.
    /// `retries` bounds the retries of this ping (see [`Client::set_retries`]).
    pub fn connect(
        api_host: &str,
        domain: &str,
        repository: &str,
        tls_verify: bool,
        opts: &SourceOptions,
        retries: u32,
    ) -> Result<Client, Error> {
        let tls = super::tls::config(tls_verify, opts.cert_dir.as_deref(), domain)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .tls_config(tls)
            .proxy(ureq::Proxy::try_from_env())
            .timeout_connect(Some(
                opts.timeout_connect.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            ))
            .timeout_per_read(Some(opts.timeout_read.unwrap_or(DEFAULT_READ_TIMEOUT)))
            // Blobs are already compressed; transparent decoding would break Range resumes.
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .input_buffer_size(256 * 1024)
            .build()
            .into();
        let mut client = Client {
            agent,
            base: String::new(),
            domain: domain.to_string(),
            repository: repository.to_string(),
            authfile: opts.authfile.clone(),
            user_agent: opts
                .user_agent
                .clone()
                .unwrap_or_else(|| format!("sdme/{}", env!("CARGO_PKG_VERSION"))),
            retries: AtomicU32::new(retries),
            retry_delay: opts.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
            notice: opts.notice.clone(),
            credentials: OnceLock::new(),
            auth: Mutex::new(AuthState::default()),
        };
        let schemes: &[&str] = if tls_verify {
            &["https"]
        } else {
            &["https", "http"]
        };
        let mut last = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let url = format!("{scheme}://{api_host}/v2/");
            let fallback_left = i + 1 < schemes.len();
            match client.execute(&url, &[], false, !fallback_left) {
                Ok(resp) => {
                    client.base = format!("{scheme}://{api_host}");
                    if resp.status().as_u16() == 401 {
                        let values: Vec<String> = resp
                            .headers()
                            .get_all("www-authenticate")
                            .iter()
                            .filter_map(|v| v.to_str().ok().map(str::to_string))
                            .collect();
                        client.lock_auth().challenge =
                            Some(challenge::parse(values.iter().map(String::as_str)));
                    }
                    return Ok(client);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(Failure::Transport {
                what,
                hint,
                retried,
                ..
            }) => Error::new(
                ErrorKind::Io,
                format!(
                    "cannot reach registry {api_host}: {what}{}{}",
                    retried_note(retried),
                    // The hints are about TLS; without verification http was tried too.
                    hint.filter(|_| tls_verify)
                        .map(|h| format!(" ({})", h.text()))
                        .unwrap_or_default()
                ),
            ),
            Some(Failure::Other(e)) => e,
            None => Error::new(ErrorKind::Io, format!("cannot reach registry {api_host}")),
        })
    }

    /// Sets how often later requests are retried (after a mirror was chosen with none).
    pub fn set_retries(&self, retries: u32) {
        self.retries.store(retries, Ordering::Relaxed);
    }

    /// `host[:port]` of the registry, for messages.
    pub fn host(&self) -> &str {
        self.base.split_once("://").map_or(&self.base, |(_, h)| h)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn credentials(&self) -> Result<Option<Credentials>, Error> {
        self.credentials
            .get_or_init(|| {
                authfile::find(&self.domain, &self.repository, self.authfile.as_deref())
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|m| Error::new(ErrorKind::Unauthorized, m))
    }

    /// GET `path` (relative to the registry base) with auth, retries and redirects.
    pub fn get(&self, path: &str, headers: &[(&str, String)]) -> Result<Response<Body>, Error> {
        let url = format!("{}{path}", self.base);
        let pending = self.lock_auth().challenge.take();
        if let Some(ch) = pending {
            self.authenticate(&ch, &url)?;
        }
        let mut reauthenticated = false;
        loop {
            let resp = self
                .execute(&url, headers, true, true)
                .map_err(Failure::into_error)?;
            if resp.status().as_u16() != 401 {
                return Ok(resp);
            }
            let values: Vec<String> = resp
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            if reauthenticated || values.is_empty() {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!("not authorized (HTTP 401){}", self.credentials_hint()),
                ));
            }
            // First 401, or a token that expired during a long pull: (re)authenticate once.
            self.authenticate(&challenge::parse(values.iter().map(String::as_str)), &url)?;
            reauthenticated = true;
        }
    }

    fn credentials_hint(&self) -> String {
        match self.credentials() {
            Ok(Some(_)) => format!(": the credentials for {} were refused", self.domain),
            _ => format!(
                ": no credentials for {} were found (see --authfile, AuthFile=)",
                self.domain
            ),
        }
    }

    fn authenticate(&self, challenges: &[Challenge], url: &str) -> Result<(), Error> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(bearer, url)?;
            self.lock_auth().header = Some(format!("Bearer {token}"));
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let Some(creds) = self.credentials()? else {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "registry {} requires a user name and password, and no credentials for {} \
                         were found (see --authfile, AuthFile=)",
                        self.host(),
                        self.domain
                    ),
                ));
            };
            self.lock_auth().header = Some(creds.basic_header());
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Unauthorized,
            format!(
                "{url}: unsupported authentication scheme(s): {}",
                challenges
                    .iter()
                    .map(|c| c.scheme.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    /// The bearer token flow: GET realm?service=…&scope=repository:NAME:pull,
    /// anonymously or with basic credentials; the reply has `token` or `access_token`.
    fn fetch_token(&self, bearer: &Challenge, url: &str) -> Result<String, Error> {
        let realm = bearer.param("realm").ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("{url}: bearer challenge without realm"),
            )
        })?;
        let mut query = Vec::new();
        if let Some(service) = bearer.param("service") {
            query.push(format!("service={}", encode_query(service)));
        }
        let scope = bearer
            .param("scope")
            .map(str::to_string)
            .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        query.push(format!("scope={}", encode_query(&scope)));
        let sep = if realm.contains('?') { '&' } else { '?' };
        let token_url = format!("{realm}{sep}{}", query.join("&"));
        let creds = self.credentials()?;
        if creds.is_some() {
            credentials_may_go_to_realm(&self.base, realm)
                .map_err(|why| Error::new(ErrorKind::Unauthorized, format!("{url}: {why}")))?;
        } else if origin(realm).is_none() {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                format!("{url}: bearer realm {realm:?} is not an http or https URL"),
            ));
        }
        let auth = creds.as_ref().map(Credentials::basic_header);
        let resp = self
            .execute_with_auth(&token_url, &[], auth.as_deref(), true)
            .map_err(Failure::into_error)?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let data = body
            .with_config()
            .limit(MAX_TOKEN_RESPONSE)
            .read_to_vec()
            .map_err(|e| transport_error(&token_url, &e))?;
        if status != 200 {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "token server {realm} refused a token (HTTP {status}): {}{}",
                    String::from_utf8_lossy(&data)
                        .chars()
                        .take(200)
                        .collect::<String>(),
                    if creds.is_some() {
                        format!(" (the credentials for {} were sent)", self.domain)
                    } else {
                        format!(
                            " (no credentials for {} were found; see --authfile, AuthFile=)",
                            self.domain
                        )
                    },
                ),
            ));
        }
        #[derive(serde::Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
        }
        let reply: TokenReply = serde_json::from_slice(&data).map_err(|e| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("token server {realm}: bad reply: {e}"),
            )
        })?;
        reply
            .token
            .filter(|t| !t.is_empty())
            .or(reply.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthorized,
                    format!("token server {realm}: reply has no token"),
                )
            })
    }

    /// One logical request to the registry: the registry's Authorization (if
    /// `with_auth`), retries, redirects.
    fn execute(
        &self,
        url: &str,
        headers: &[(&str, String)],
        with_auth: bool,
        retry_transport: bool,
    ) -> Result<Response<Body>, Failure> {
        let auth = if with_auth {
            self.lock_auth().header.clone()
        } else {
            None
        };
        let registry_origin = if self.base.is_empty() {
            origin(url)
        } else {
            origin(&self.base)
        };
        self.execute_inner(
            url,
            headers,
            auth.as_deref(),
            registry_origin,
            retry_transport,
        )
    }

    /// Like [`execute`], with explicit credentials bound to `url`'s own origin (token server).
    fn execute_with_auth(
        &self,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        retry_transport: bool,
    ) -> Result<Response<Body>, Failure> {
        self.execute_inner(url, headers, auth, origin(url), retry_transport)
    }

    fn execute_inner(
        &self,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        auth_origin: Option<(String, String, u16)>,
        retry_transport: bool,
    ) -> Result<Response<Body>, Failure> {
        let retries = self.retries.load(Ordering::Relaxed);
        let mut attempt = 0;
        loop {
            let delay = self
                .retry_delay
                .saturating_mul(1 << attempt.min(16))
                .min(MAX_RETRY_DELAY);
            match self.follow_redirects(url, headers, auth, auth_origin.as_ref()) {
                Err(Transport::Failed { url: at, e }) => {
                    let (what, hint) = describe_transport(&e);
                    if retry_transport && attempt < retries && retryable_transport(&e) {
                        self.say_retrying(&at, &what, delay, attempt + 1, retries);
                        std::thread::sleep(delay);
                        attempt += 1;
                        continue;
                    }
                    return Err(Failure::Transport {
                        url: at,
                        what,
                        hint,
                        retried: attempt,
                    });
                }
                Err(Transport::Refused(e)) => return Err(Failure::Other(e)),
                Ok(resp) if retryable_status(resp.status().as_u16()) && attempt < retries => {
                    let wait = retry_after(&resp).unwrap_or(delay).min(MAX_RETRY_DELAY);
                    let what = format!("HTTP {}", resp.status().as_u16());
                    self.say_retrying(url, &what, wait, attempt + 1, retries);
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    fn say_retrying(&self, url: &str, what: &str, wait: Duration, n: u32, of: u32) {
        if let Some(notice) = &self.notice {
            notice.say(&format!(
                "{url}: {what}; retrying in {:.1} s (retry {n} of {of})",
                wait.as_secs_f64()
            ));
        }
    }

    /// Follows redirects by hand: `Authorization` goes only to `auth_origin`.
    fn follow_redirects(
        &self,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        auth_origin: Option<&(String, String, u16)>,
    ) -> Result<Response<Body>, Transport> {
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self
                .agent
                .get(&current)
                .header("User-Agent", &self.user_agent);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(a) = auth {
                if auth_origin.is_some() && origin(&current).as_ref() == auth_origin {
                    req = req.header("Authorization", a);
                }
            }
            let resp = match req.call() {
                Ok(resp) => resp,
                Err(e) => return Err(Transport::Failed { url: current, e }),
            };
            let status = resp.status().as_u16();
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let next = header(&resp, "location")
                .and_then(|l| resolve(&current, &l))
                .ok_or_else(|| {
                    Transport::Refused(Error::new(
                        ErrorKind::Io,
                        format!("{current}: HTTP {status} without a usable Location"),
                    ))
                })?;
            current = next;
        }
        Err(Transport::Refused(Error::new(
            ErrorKind::Io,
            format!("{url}: more than {MAX_REDIRECTS} redirects"),
        )))
    }
}

/// How one attempt of [`Client::follow_redirects`] failed.
enum Transport {
    /// The transport failed at `url` (possibly a redirect target): maybe worth a retry.
    Failed { url: String, e: ureq::Error },
    /// The answer cannot be used; retrying would not help.
    Refused(Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn dns_failures_read_as_such_and_get_no_tls_hint() {
        // The io::Error std's resolver gives for a name that does not resolve
        // (built here: a test never sends a DNS query off this machine).
        let io = std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        );
        let (what, hint) = describe_transport(&ureq::Error::Io(io));
        assert_eq!(
            what,
            "cannot resolve the host name (Name or service not known)"
        );
        assert_eq!(hint, None);
        let (what, hint) = describe_transport(&ureq::Error::HostNotFound);
        assert_eq!(what, "cannot resolve the host name");
        assert_eq!(hint, None);
        // The whole message, as connect() builds it for Docker Hub.
        let f = Failure::Transport {
            url: "https://registry-1.docker.io/v2/".into(),
            what: "cannot resolve the host name (Name or service not known)".into(),
            hint: None,
            retried: 4,
        };
        assert_eq!(
            f.into_error().to_string(),
            "https://registry-1.docker.io/v2/: cannot resolve the host name (Name or service \
             not known) (after 4 retries)"
        );
        let os = std::io::Error::from_raw_os_error(113);
        assert_eq!(
            describe_transport(&ureq::Error::Io(os)).0,
            "No route to host"
        );
    }

    #[test]
    fn which_realms_may_receive_credentials() {
        let ok = |base, realm| credentials_may_go_to_realm(base, realm).is_ok();
        // Docker Hub: the token service is another https host.
        assert!(ok(
            "https://registry-1.docker.io",
            "https://auth.docker.io/token"
        ));
        assert!(ok("https://reg.example:5000", "https://reg.example/token"));
        // Downgrade to plain http: refused, same host or another.
        assert!(!ok("https://reg.example", "http://reg.example/token"));
        assert!(!ok("https://reg.example", "http://auth.example/token"));
        assert!(!ok("https://reg.example", "HTTP://auth.example/token"));
        // Not a URL we would fetch at all.
        assert!(!ok("https://reg.example", "ftp://auth.example/token"));
        assert!(!ok("https://reg.example", "/token"));
        assert!(!ok("http://reg.example", "file:///etc/passwd"));
        // A plain-http registry (--tls-verify=no) already sends them in clear.
        assert!(ok("http://127.0.0.1:5000", "http://127.0.0.1:5000/token"));
        assert!(ok("http://127.0.0.1:5000", "https://auth.example/token"));
        let e = credentials_may_go_to_realm("https://reg.example", "http://evil.example/t")
            .unwrap_err();
        assert!(
            e.contains("https://reg.example") && e.contains("http://evil.example/t"),
            "{e}"
        );
    }

    /// A client for `base` that has credentials, without a ping.
    fn client_with_credentials(base: &str) -> Client {
        let creds = Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        Client {
            agent: ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                // A regression that contacts the realm fails here instead of hanging.
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into(),
            base: base.to_string(),
            domain: "reg.example".into(),
            repository: "test/img".into(),
            authfile: None,
            user_agent: "test".into(),
            retries: AtomicU32::new(0),
            retry_delay: Duration::from_millis(1),
            notice: None,
            credentials: OnceLock::from(Ok(Some(creds))),
            auth: Mutex::new(AuthState::default()),
        }
    }

    fn bearer(realm: &str) -> Vec<Challenge> {
        challenge::parse([format!(r#"Bearer realm="{realm}",service="svc""#).as_str()])
    }

    #[test]
    fn https_registry_never_sends_credentials_to_an_http_realm() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let url = "https://reg.example/v2/test/img/manifests/latest";

        let https = client_with_credentials("https://reg.example");
        let e = https.authenticate(&bearer(&realm), url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(
            e.to_string().contains("https://reg.example") && e.to_string().contains(&realm),
            "{e}"
        );
        // authenticate() is synchronous: had it connected, the connection
        // would be waiting in the listen queue now.
        listener.set_nonblocking(true).unwrap();
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the http realm was contacted: {other:?}"),
        }
        listener.set_nonblocking(false).unwrap();

        // Control: a plain-http registry does send them there, so the check
        // above would have seen a connection.
        let http = client_with_credentials("http://reg.example");
        let realm2 = realm.clone();
        let t = std::thread::spawn(move || http.authenticate(&bearer(&realm2), url).map(|_| http));
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut authorization = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    authorization = Some(v.trim().to_string());
                }
            }
        }
        let body = r#"{"token":"t"}"#;
        write!(
            &stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let http = t.join().unwrap().unwrap();
        assert_eq!(
            authorization.as_deref(),
            Some(
                Credentials {
                    username: "alice".into(),
                    password: "s3cret".into()
                }
                .basic_header()
                .as_str()
            )
        );
        assert_eq!(http.lock_auth().header.as_deref(), Some("Bearer t"));
    }
}
