//! The registry source: the distribution API over [`client::Client`], from
//! the first of the sources registries.conf gives (mirrors, then the registry).

mod blob;
mod challenge;
mod client;
mod tls;
mod url;

use crate::digest::verify_bytes;
use crate::error::{Error, ErrorKind};
use crate::media::MANIFEST_ACCEPT;
use crate::reference::Reference;
use crate::registries_conf::{self, Endpoint};
use crate::resolve::{Fetched, Fetcher, MAX_DOCUMENT_SIZE};
use crate::{RegistriesConfFiles, SourceOptions};
use client::{Client, DEFAULT_RETRIES};
use std::io::Read;
use std::sync::{Arc, OnceLock};

pub use client::Notice;

pub struct Registry {
    /// The source string as given, for messages before a source is chosen.
    input: String,
    /// Each name the input may mean, with the sources to try for it, in order.
    plans: Vec<(Reference, Vec<Endpoint>)>,
    opts: SourceOptions,
    /// The source that served the root manifest; every later request goes there.
    chosen: OnceLock<Chosen>,
}

/// A source that has the image.
struct Chosen {
    /// The name the image is known by: what was asked for, fully qualified.
    logical: Reference,
    /// Where it is really pulled from: a mirror, a remapped location, or the same.
    reference: Reference,
    client: Arc<Client>,
}

/// How a source is named in messages: `mirror HOST/PATH:TAG`, a remapped location, or the name itself.
fn label(endpoint: &Endpoint) -> String {
    if endpoint.mirror {
        format!("mirror {}", endpoint.reference)
    } else {
        endpoint.reference.to_string()
    }
}

impl Registry {
    /// Plans where to pull `input` from (registries.conf: short names,
    /// mirrors in order, then the registry itself); nothing is contacted
    /// until the root manifest is asked for.
    pub fn open(input: &str, opts: &SourceOptions) -> Result<Registry, Error> {
        let conf = match &opts.registries_conf {
            RegistriesConfFiles::System => registries_conf::load_system()?,
            RegistriesConfFiles::Off => None,
            RegistriesConfFiles::File(path) => Some(registries_conf::load_file(path)?),
        };
        if let (Some(conf), Some(notice)) = (&conf, &opts.notice) {
            for key in &conf.ignored {
                notice.say(&format!("{key}: not understood, ignored"));
            }
        }
        let plans: Vec<(Reference, Vec<Endpoint>)> = match &conf {
            None => {
                let r = Reference::parse(input)?;
                let direct = Endpoint {
                    reference: r.clone(),
                    insecure: false,
                    mirror: false,
                };
                vec![(r, vec![direct])]
            }
            Some(conf) => conf
                .candidates(input)?
                .into_iter()
                .map(|logical| {
                    let endpoints = conf.endpoints(&logical)?;
                    Ok((logical, endpoints))
                })
                .collect::<Result<_, Error>>()?,
        };
        Ok(Registry {
            input: input.to_string(),
            plans,
            opts: opts.clone(),
            chosen: OnceLock::new(),
        })
    }

    /// Tries each source in order and fetches the root manifest from the
    /// first that has it. A source that fails before the last one is given
    /// up without retries: the next one is the retry.
    fn choose(&self) -> Result<(Chosen, Fetched), Error> {
        let opts = &self.opts;
        let attempts: Vec<(&Reference, &Endpoint)> = self
            .plans
            .iter()
            .flat_map(|(logical, endpoints)| endpoints.iter().map(move |e| (logical, e)))
            .collect();
        let full_retries = opts.retries.unwrap_or(DEFAULT_RETRIES);
        let mut failures: Vec<(String, Error)> = Vec::new();
        for (i, (logical, endpoint)) in attempts.iter().enumerate() {
            let last = i + 1 == attempts.len();
            let retries = if last { full_retries } else { 0 };
            match Registry::try_endpoint(logical, endpoint, opts, retries) {
                Ok((chosen, root)) => {
                    chosen.client.set_retries(full_retries);
                    if let Some(notice) = &opts.notice {
                        if chosen.reference != chosen.logical {
                            notice.say(&format!(
                                "{}: pulling from {}",
                                chosen.logical,
                                label(endpoint)
                            ));
                        }
                    }
                    return Ok((chosen, root));
                }
                Err(e) => {
                    if let (Some(notice), Some((_, next))) = (&opts.notice, attempts.get(i + 1)) {
                        notice.say(&format!(
                            "{}: {e}; trying {} next",
                            label(endpoint),
                            label(next)
                        ));
                    }
                    failures.push((label(endpoint), e));
                }
            }
        }
        Err(combine(&self.input, &self.plans, failures))
    }

    fn chosen(&self) -> Result<&Chosen, Error> {
        if let Some(c) = self.chosen.get() {
            return Ok(c);
        }
        let (chosen, _) = self.choose()?;
        Ok(self.chosen.get_or_init(|| chosen))
    }

    fn try_endpoint(
        logical: &Reference,
        endpoint: &Endpoint,
        opts: &SourceOptions,
        retries: u32,
    ) -> Result<(Chosen, Fetched), Error> {
        let reference = &endpoint.reference;
        // registries.conf may relax verification for its insecure sources, unless it was pinned on.
        let relaxed = endpoint.insecure && !opts.tls_verify_pinned;
        let tls_verify = opts.tls_verify && !relaxed;
        let client = Client::connect(
            reference.api_host(),
            &reference.domain,
            &reference.path,
            tls_verify,
            opts,
            retries,
        )?;
        let chosen = Chosen {
            logical: logical.clone(),
            reference: reference.clone(),
            client: Arc::new(client),
        };
        let mut root = chosen.fetch_manifest(reference.manifest_reference())?;
        root.expected_digest = reference.digest.clone();
        // Checked here as well as in the resolver: a mirror with wrong bytes falls back to the next source.
        if let Some(expected) = &root.expected_digest {
            verify_bytes(expected, &root.raw, &format!("manifest {expected}"))?;
        }
        Ok((chosen, root))
    }
}

impl Chosen {
    /// A manifest by tag or digest; errors say what failed without naming the image (callers do).
    fn fetch_manifest(&self, reference: &str) -> Result<Fetched, Error> {
        let path = format!("/v2/{}/manifests/{reference}", self.reference.path);
        let resp = self
            .client
            .get(&path, &[("Accept", MANIFEST_ACCEPT.to_string())])?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.into_body();
        let raw = body
            .with_config()
            .limit(MAX_DOCUMENT_SIZE)
            .read_to_vec()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("manifest {reference}: reading the answer: {e}"),
                )
            })?;
        match status {
            200 => {}
            404 => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "not found: registry {} has no manifest {reference:?} (HTTP 404)",
                        self.client.host()
                    ),
                ))
            }
            s => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "manifest {reference:?}: HTTP {s} from registry {}: {}",
                        self.client.host(),
                        String::from_utf8_lossy(&raw)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ),
                ))
            }
        }
        let expected_digest = if reference.contains(':') {
            Some(reference.to_string())
        } else {
            // By tag: the registry's digest header, when it is a sha256, must match the bytes.
            if let Some(d) = header_digest.filter(|d| d.starts_with("sha256:")) {
                verify_bytes(
                    &d,
                    &raw,
                    &format!("manifest {reference:?} (its Docker-Content-Digest)"),
                )?;
            }
            None
        };
        Ok(Fetched {
            raw,
            media_type: content_type,
            expected_digest,
        })
    }
}

/// One error for a pull that no source could serve: the single failure as it
/// is, or every source's failure in the order they were tried.
fn combine(
    input: &str,
    plans: &[(Reference, Vec<Endpoint>)],
    failures: Vec<(String, Error)>,
) -> Error {
    let single_name = match plans {
        [(logical, _)] => logical.to_string(),
        _ => input.to_string(),
    };
    match <[(String, Error); 1]>::try_from(failures) {
        Ok([(label, e)]) => {
            if label == single_name {
                e.context(single_name)
            } else {
                e.context(format!("{single_name}: {label}"))
            }
        }
        Err(failures) => {
            let kind = failures
                .last()
                .map_or(ErrorKind::NotFound, |(_, e)| e.kind());
            let list: Vec<String> = failures
                .iter()
                .map(|(label, e)| format!("{label}: {e}"))
                .collect();
            Error::new(
                kind,
                format!(
                    "{single_name}: no source could serve it: {}",
                    list.join("; ")
                ),
            )
        }
    }
}

impl Fetcher for Registry {
    fn describe(&self) -> String {
        match (self.chosen.get(), self.plans.as_slice()) {
            (Some(c), _) => c.logical.to_string(),
            (None, [(logical, _)]) => logical.to_string(),
            (None, _) => self.input.clone(),
        }
    }

    fn root_manifest(&self) -> Result<Fetched, Error> {
        if let Some(c) = self.chosen.get() {
            let mut f = c
                .fetch_manifest(c.reference.manifest_reference())
                .map_err(|e| e.context(&c.logical))?;
            f.expected_digest = c.reference.digest.clone();
            return Ok(f);
        }
        let (chosen, root) = self.choose()?;
        let _ = self.chosen.set(chosen);
        Ok(root)
    }

    fn manifest(&self, digest: &str) -> Result<Fetched, Error> {
        let c = self.chosen()?;
        // It becomes a URL path segment: `sha256:../../x` must never be sent.
        crate::reference::validate_digest(digest)
            .map_err(|why| Error::new(ErrorKind::Integrity, format!("{}: {why}", c.logical)))?;
        c.fetch_manifest(digest).map_err(|e| e.context(&c.logical))
    }

    fn blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>, Error> {
        let c = self.chosen()?;
        crate::reference::validate_digest(digest)
            .map_err(|why| Error::new(ErrorKind::Integrity, format!("{}: {why}", c.logical)))?;
        let reader = blob::BlobReader::open(c.client.clone(), digest, size)
            .map_err(|e| e.context(&c.logical))?;
        Ok(Box::new(reader))
    }
}
