//! Local sources: OCI layouts (`oci:`), tars of them (`oci-archive:`) and
//! `docker save` archives (`docker-archive:`).

mod docker_archive;
mod files;
mod oci_layout;

use crate::error::Error;
use crate::layer_stream::Limits;
use crate::resolve::Resolver;
use crate::{ImageSource, Platform};
use std::path::Path;

/// Splits `PATH[:SUFFIX]` at the first ':' (paths with ':' are not supported, as in skopeo).
fn split_path(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((p, s)) if !s.is_empty() => (p, Some(s)),
        Some((p, _)) => (p, None),
        None => (spec, None),
    }
}

pub fn open_oci_dir(
    spec: &str,
    platform: Platform,
    limits: Limits,
) -> Result<Box<dyn ImageSource>, Error> {
    let (dir, tag) = split_path(spec);
    let files = files::DirFiles::new(Path::new(dir))?;
    let fetcher = oci_layout::OciLayout::open(Box::new(files), tag, format!("oci:{spec}"))?;
    Ok(Box::new(Resolver {
        fetcher,
        platform,
        limits,
    }))
}

pub fn open_oci_archive(
    spec: &str,
    platform: Platform,
    limits: Limits,
) -> Result<Box<dyn ImageSource>, Error> {
    let (file, tag) = split_path(spec);
    let files = files::TarFiles::index(Path::new(file), &limits)?;
    let fetcher = oci_layout::OciLayout::open(Box::new(files), tag, format!("oci-archive:{spec}"))?;
    Ok(Box::new(Resolver {
        fetcher,
        platform,
        limits,
    }))
}

pub fn open_docker_archive(
    spec: &str,
    platform: Platform,
    limits: Limits,
) -> Result<Box<dyn ImageSource>, Error> {
    let (file, name) = split_path(spec);
    let files = files::TarFiles::index(Path::new(file), &limits)?;
    let fetcher = docker_archive::DockerArchive::open(
        Box::new(files),
        name,
        format!("docker-archive:{spec}"),
    )?;
    Ok(Box::new(Resolver {
        fetcher,
        platform,
        limits,
    }))
}
