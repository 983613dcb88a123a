//! `sdme-import pull`: decides whether anything must be done, fetches the
//! missing layers, builds the image generation aside and switches to it.

use crate::classify::{decide, Kind, Mode};
use crate::fetch::fetch_layers;
use crate::glue;
use crate::install::{has_systemd, install_systemd};
use crate::notify::{human_bytes, Progress};
use sdme_registry::{open_source, SourceOptions};
use sdme_store::merged::MergedView;
use sdme_store::record::{ImageRecord, GLUE_VERSION};
use sdme_store::remove_tree;
use sdme_store::runconfig::RunConfig;
use sdme_store::{check_name, sync_tree, Store, TMP_PREFIX};
use std::path::Path;
use std::time::Instant;

/// `--pull=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Contact the source only when the image is not imported.
    Missing,
    /// Always resolve; re-import when the manifest changed.
    Always,
    /// Never contact the source; fail when the image is not imported.
    Never,
    /// Resolve and re-import when the manifest changed (same as `always`
    /// for a store of content-addressed layers: nothing is re-fetched).
    Newer,
}

impl PullPolicy {
    pub fn parse(s: &str) -> Result<PullPolicy, String> {
        Ok(match s {
            "missing" => PullPolicy::Missing,
            "always" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            "newer" => PullPolicy::Newer,
            _ => {
                return Err(format!(
                    "invalid --pull={s:?}: expected missing, always, never or newer"
                ))
            }
        })
    }
}

pub struct PullRequest {
    pub name: String,
    pub base: Option<String>,
    pub mode: Mode,
    /// `--mode=` as given, recorded to notice a changed request.
    pub mode_text: String,
    pub policy: PullPolicy,
    pub source: String,
    pub source_options: SourceOptions,
    pub store: Store,
}

/// What a pull did, for the caller's final message and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    UpToDate(String),
    Switched(String),
    Built(String),
}

/// What to do before contacting the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The current generation serves the request.
    Done(String),
    /// The layers are there but the glue must be regenerated (mode or base changed).
    Reglue(String),
    /// Resolve the source (and compare manifests).
    Resolve,
    /// `--pull=never` and nothing to use.
    Fail(String),
}

/// The idempotency decision, from what the store holds.
pub fn plan(
    policy: PullPolicy,
    current: Option<(&str, &ImageRecord)>,
    mode: &str,
    base: Option<&str>,
    name: &str,
) -> Plan {
    match (policy, current) {
        (PullPolicy::Missing | PullPolicy::Never, Some((generation, record))) => {
            if record.same_request(mode, base) {
                Plan::Done(generation.to_string())
            } else {
                Plan::Reglue(generation.to_string())
            }
        }
        (PullPolicy::Never, None) => Plan::Fail(format!(
            "image {name} is not imported and --pull=never forbids fetching it"
        )),
        _ => Plan::Resolve,
    }
}

pub fn pull(req: &PullRequest) -> Result<Outcome, String> {
    check_name(&req.name)?;
    if let Some(b) = &req.base {
        check_name(b)?;
        if b == &req.name {
            return Err(format!("image {} cannot be its own base", req.name));
        }
    }
    let started = Instant::now();
    let store = &req.store;
    let current_gen = store.current_generation(&req.name);
    // A generation counts only if its layers are still there (a few stats).
    let current = match &current_gen {
        Some(g) => store
            .record(g)?
            .filter(|r| layers_present(store, r))
            .map(|r| (g.clone(), r)),
        None => None,
    };
    let quiet = Progress::from_env().quiet();
    match plan(
        req.policy,
        current.as_ref().map(|(g, r)| (g.as_str(), r)),
        &req.mode_text,
        req.base.as_deref(),
        &req.name,
    ) {
        Plan::Done(g) => {
            quiet.status(&format!("Up to date ({g})"));
            return Ok(Outcome::UpToDate(g));
        }
        Plan::Fail(e) => return Err(e),
        Plan::Reglue(g) => {
            let _lock = store.lock(false)?;
            let progress = Progress::from_env();
            let (_, old) = current.ok_or("internal: reglue without a record")?;
            // A generation built earlier for this very request (say, the
            // mode changed back) is used as it is.
            if let Some(existing) = matching_generation(req, &old.manifest_digest)? {
                store.switch(&req.name, &existing)?;
                progress.status(&format!("Switched to {existing}"));
                return Ok(Outcome::Switched(existing));
            }
            progress.status(&format!(
                "Rebuilding {g} as a new generation: mode, base or glue version changed"
            ));
            let config_raw = serde_json::to_vec(&old.image_config).map_err(|e| e.to_string())?;
            let image = ImageInput {
                source: &old.source,
                reference: &old.reference,
                manifest_digest: &old.manifest_digest,
                config_raw: &config_raw,
                diff_ids: &old.layers,
            };
            let generation = build(req, &image, &progress)?;
            return finish(req, generation, started, &progress);
        }
        Plan::Resolve => {}
    }
    let _lock = store.lock(false)?;
    remove_stale_temporaries(store);
    let progress = Progress::from_env();
    progress.status(&format!("Resolving {}", req.source));
    // The source's errors name it already (normalized, with the mirror if one served).
    let source = open_source(&req.source, &req.source_options).map_err(|e| e.to_string())?;
    let resolved = source.resolve().map_err(|e| e.to_string())?;
    // The configuration is checked before anything is fetched, so a refused
    // image leaves the store as it was.
    RunConfig::from_image_config(&resolved.config_raw).map_err(|e| {
        format!(
            "image {} ({}, {}): {e}",
            req.name, req.source, resolved.manifest_digest
        )
    })?;
    // Which generation holds this manifest is decided by the full digest in
    // the records, never by the 12 digits in a directory's name.
    if let Some((g, record)) = &current {
        if record.is_manifest(&resolved.manifest_digest)
            && record.same_request(&req.mode_text, req.base.as_deref())
        {
            progress.status(&format!("Up to date ({g}, {})", resolved.manifest_digest));
            return Ok(Outcome::UpToDate(g.clone()));
        }
    }
    if let Some(existing) = matching_generation(req, &resolved.manifest_digest)? {
        store.switch(&req.name, &existing)?;
        progress.status(&format!("Switched to {existing}"));
        return Ok(Outcome::Switched(existing));
    }
    let size: u64 = resolved.layers.iter().map(|l| l.size).sum();
    progress.log(&format!(
        "{}: manifest {}, {} layers ({})",
        resolved.reference,
        resolved.manifest_digest,
        resolved.layers.len(),
        human_bytes(size)
    ));
    let stats = fetch_layers(store, source.as_ref(), &resolved.layers, &progress)?;
    progress.log(&format!(
        "layers: {} fetched ({} of content), {} already present",
        stats.fetched,
        human_bytes(stats.bytes),
        stats.present
    ));
    let diff_ids: Vec<String> = resolved.layers.iter().map(|l| l.diff_id.clone()).collect();
    let image = ImageInput {
        source: &req.source,
        reference: &resolved.reference,
        manifest_digest: &resolved.manifest_digest,
        config_raw: &resolved.config_raw,
        diff_ids: &diff_ids,
    };
    let generation = build(req, &image, &progress)?;
    finish(req, generation, started, &progress)
}

/// The newest complete generation of the image that holds manifest
/// `digest` (full digest, from its record) for this request, with its layers.
fn matching_generation(req: &PullRequest, digest: &str) -> Result<Option<String>, String> {
    Ok(req
        .store
        .generations_for(&req.name, digest)?
        .into_iter()
        .find(|(_, r)| {
            r.same_request(&req.mode_text, req.base.as_deref()) && layers_present(&req.store, r)
        })
        .map(|(g, _)| g))
}

/// What a generation is built from: a freshly resolved image, or the record
/// of an imported one whose mode or base changed.
struct ImageInput<'a> {
    source: &'a str,
    reference: &'a str,
    manifest_digest: &'a str,
    config_raw: &'a [u8],
    diff_ids: &'a [String],
}

/// Makes a freshly built generation the image's current one.
fn finish(
    req: &PullRequest,
    generation: String,
    started: Instant,
    progress: &Progress,
) -> Result<Outcome, String> {
    req.store.switch(&req.name, &generation)?;
    progress.status(&format!(
        "Done: {} in {:.2} s",
        generation,
        started.elapsed().as_secs_f64()
    ));
    Ok(Outcome::Built(generation))
}

fn layers_present(store: &Store, record: &ImageRecord) -> bool {
    record
        .layers
        .iter()
        .all(|d| store.layer_dir(d).map(|p| p.is_dir()).unwrap_or(false))
}

/// Leftovers of interrupted imports (their process is gone): removed so a
/// re-run does not accumulate them; `gc` does the same.
fn remove_stale_temporaries(store: &Store) {
    for dir in [store.images_dir(), store.layers_dir()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) && sdme_store::gc::tmp_is_stale(&name) {
                let _ = remove_tree(&e.path());
            }
        }
    }
}

/// Builds a new generation in a temporary directory, makes it durable and
/// moves it to a name of its own (`Store::install_generation`): never onto
/// an existing generation, which a running container may have as a lower
/// layer. Returns the new generation's name.
fn build(req: &PullRequest, image: &ImageInput, progress: &Progress) -> Result<String, String> {
    let store = &req.store;
    let images = store.images_dir();
    std::fs::create_dir_all(&images).map_err(|e| format!("{}: {e}", images.display()))?;
    let prefix = Store::generation_prefix(&req.name, image.manifest_digest)?;
    let tmp = images.join(format!("{TMP_PREFIX}{prefix}.{}", std::process::id()));
    remove_tree(&tmp)?;
    std::fs::create_dir(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let installed = build_in(req, &tmp, image, progress)
        .and_then(|_| store.install_generation(&tmp, &req.name, image.manifest_digest));
    if installed.is_err() {
        let _ = remove_tree(&tmp);
    }
    installed
}

fn build_in(
    req: &PullRequest,
    dir: &Path,
    image: &ImageInput,
    progress: &Progress,
) -> Result<ImageRecord, String> {
    let ImageInput {
        source,
        reference,
        manifest_digest,
        config_raw,
        diff_ids,
    } = *image;
    let store = &req.store;
    let config = RunConfig::from_image_config(config_raw)?;
    let image_config: serde_json::Value =
        serde_json::from_slice(config_raw).map_err(|e| format!("image configuration: {e}"))?;
    let kind = decide(req.mode, &config);
    let layers = diff_ids
        .iter()
        .map(|d| store.layer_dir(d))
        .collect::<Result<Vec<_>, _>>()?;
    let view = MergedView::new(layers.clone());
    let mut record = ImageRecord {
        name: req.name.clone(),
        source: source.to_string(),
        reference: reference.to_string(),
        manifest_digest: manifest_digest.to_string(),
        mode: req.mode_text.clone(),
        kind,
        base: req.base.clone(),
        layers: diff_ids.to_vec(),
        systemd_layer: false,
        app_glue: false,
        extra_glue: false,
        app: None,
        glue_version: GLUE_VERSION,
        config: config.clone(),
        image_config,
    };
    progress.status(&format!("Laying out {} image {}", kind.as_str(), req.name));
    match kind {
        Kind::Base => {
            let mut root = layers.clone();
            if !has_systemd(&view) {
                install_systemd(
                    &req.name,
                    &layers,
                    &view,
                    &dir.join("systemd"),
                    &dir.join("scratch"),
                    progress,
                )?;
                remove_tree(&dir.join("scratch"))?;
                record.systemd_layer = true;
                root.push(dir.join("systemd"));
            }
            glue::write_base_glue(&dir.join("glue"), &MergedView::new(root))?;
        }
        Kind::App | Kind::Connector => {
            let base_view = match &req.base {
                Some(b) => Some(MergedView::new(
                    store
                        .root_lowers(b)
                        .map_err(|e| format!("base of {}: {e}", req.name))?
                        .0,
                )),
                None => {
                    progress.log(&format!(
                        "warning: {} is an application image without Base=; it can be imported but not run",
                        req.name
                    ));
                    None
                }
            };
            let mut spec = glue::app_spec(&req.name, kind, &config, &view)?;
            spec.bind_ro = glue::write_app_root_glue(&dir.join("appglue"), &view, &spec)?;
            record.app_glue = true;
            let accounts = glue::account_lines(&view, &spec.credentials)?;
            record.app = Some(glue::write_app_glue(
                &dir.join("glue"),
                &spec,
                &config,
                &accounts,
                base_view.as_ref(),
            )?);
            if kind == Kind::Connector {
                glue::write_connector_dir(&store.connectors_dir().join(&req.name), &spec.argv[0])?;
            } else {
                // The same app as another app of a container (App=NAME).
                let mut extra = spec.clone();
                extra.slot = crate::units::Slot::Other(req.name.clone());
                glue::write_plan(
                    &dir.join(sdme_store::EXTRA_GLUE),
                    &glue::plan_app_glue(&extra, &config, &accounts)?,
                    base_view.as_ref(),
                )?;
                record.extra_glue = true;
            }
        }
    }
    // Everything the record declares complete is on disk before it is.
    sync_tree(dir)?;
    record.save(&dir.join("image.json"))?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Kind;

    fn record(mode: &str, base: Option<&str>) -> ImageRecord {
        ImageRecord {
            name: "n".into(),
            source: "oci:/x".into(),
            reference: "oci:/x".into(),
            manifest_digest: format!("sha256:{}", "0".repeat(64)),
            mode: mode.into(),
            kind: Kind::App,
            base: base.map(String::from),
            layers: vec![],
            systemd_layer: false,
            app_glue: true,
            extra_glue: false,
            app: None,
            glue_version: GLUE_VERSION,
            config: RunConfig::default(),
            image_config: serde_json::Value::Null,
        }
    }

    #[test]
    fn missing_and_never_do_not_contact_the_source_when_imported() {
        let r = record("auto", Some("debian"));
        let cur = Some(("n.000000000000", &r));
        assert_eq!(
            plan(PullPolicy::Missing, cur, "auto", Some("debian"), "n"),
            Plan::Done("n.000000000000".into())
        );
        assert_eq!(
            plan(PullPolicy::Never, cur, "auto", Some("debian"), "n"),
            Plan::Done("n.000000000000".into())
        );
        assert_eq!(
            plan(PullPolicy::Missing, cur, "app", Some("debian"), "n"),
            Plan::Reglue("n.000000000000".into())
        );
        assert_eq!(
            plan(PullPolicy::Missing, cur, "auto", Some("ubuntu"), "n"),
            Plan::Reglue("n.000000000000".into())
        );
    }

    #[test]
    fn always_and_newer_resolve_and_never_fails_when_absent() {
        let r = record("auto", None);
        let cur = Some(("n.000000000000", &r));
        assert_eq!(
            plan(PullPolicy::Always, cur, "auto", None, "n"),
            Plan::Resolve
        );
        assert_eq!(
            plan(PullPolicy::Newer, cur, "auto", None, "n"),
            Plan::Resolve
        );
        assert_eq!(
            plan(PullPolicy::Missing, None, "auto", None, "n"),
            Plan::Resolve
        );
        assert!(
            matches!(plan(PullPolicy::Never, None, "auto", None, "n"), Plan::Fail(e) if e.contains("--pull=never"))
        );
    }

    #[test]
    fn old_glue_versions_are_rebuilt() {
        let mut r = record("auto", None);
        r.glue_version = GLUE_VERSION - 1;
        assert_eq!(
            plan(PullPolicy::Missing, Some(("g", &r)), "auto", None, "n"),
            Plan::Reglue("g".into())
        );
    }
}
