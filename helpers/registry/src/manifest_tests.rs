use super::*;

fn index(entries: &[(&str, &str, Option<&str>, &str)]) -> Vec<Descriptor> {
    entries
        .iter()
        .enumerate()
        .map(|(i, (os, arch, variant, ann))| Descriptor {
            media_type: media::OCI_MANIFEST.into(),
            digest: format!("sha256:{i:064}"),
            size: 1,
            platform: Some(DescriptorPlatform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: variant.map(Into::into),
            }),
            annotations: (!ann.is_empty())
                .then(|| HashMap::from([(ann.to_string(), "attestation-manifest".into())])),
        })
        .collect()
}

fn pick(entries: &[Descriptor], want: &str) -> Result<usize, Error> {
    let d = select_platform(entries, &Platform::parse(want).unwrap(), "test")?;
    Ok(entries.iter().position(|e| e.digest == d.digest).unwrap())
}

#[test]
fn exact_and_normalized_matches() {
    let e = index(&[
        ("linux", "amd64", None, ""),
        ("linux", "arm64", Some("v8"), ""),
        ("linux", "arm", Some("v6"), ""),
        ("linux", "arm", Some("v7"), ""),
        ("windows", "amd64", None, ""),
    ]);
    assert_eq!(pick(&e, "linux/amd64").unwrap(), 0);
    assert_eq!(pick(&e, "linux/x86_64").unwrap(), 0);
    assert_eq!(pick(&e, "linux/arm64").unwrap(), 1);
    assert_eq!(pick(&e, "linux/aarch64").unwrap(), 1);
    assert_eq!(pick(&e, "linux/arm64/v8").unwrap(), 1);
    assert_eq!(pick(&e, "linux/arm").unwrap(), 3, "arm means arm/v7");
    assert_eq!(pick(&e, "linux/arm/v6").unwrap(), 2);
    assert_eq!(pick(&e, "windows/amd64").unwrap(), 4);
    let err = pick(&e, "linux/s390x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("linux/arm/v7"), "{err}");
}

#[test]
fn attestations_are_skipped() {
    let e = index(&[
        ("unknown", "unknown", None, "vnd.docker.reference.type"),
        ("linux", "amd64", None, "vnd.docker.reference.type"),
        ("linux", "amd64", None, ""),
    ]);
    assert_eq!(pick(&e, "linux/amd64").unwrap(), 2);
    let only_attestation = index(&[("unknown", "unknown", None, "")]);
    assert!(pick(&only_attestation, "linux/amd64").is_err());
}

#[test]
fn variant_fallback_only_when_no_variant_asked() {
    let e = index(&[("linux", "amd64", Some("v3"), "")]);
    assert_eq!(pick(&e, "linux/amd64").unwrap(), 0);
    assert!(pick(&e, "linux/amd64/v2").is_err());
}

#[test]
fn single_entry_without_platform() {
    let mut e = index(&[("linux", "amd64", None, "")]);
    e[0].platform = None;
    assert_eq!(pick(&e, "linux/arm64").unwrap(), 0);
}

#[test]
fn parse_kinds() {
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":2},
        "layers":[]}"#;
    assert!(matches!(parse(m, None, "m").unwrap(), Parsed::Image { .. }));
    let i = br#"{"schemaVersion":2,"manifests":[]}"#;
    assert!(matches!(
        parse(i, Some(media::OCI_INDEX), "i").unwrap(),
        Parsed::Index(_)
    ));
    let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
    let e = parse(s1, None, "ref").unwrap_err();
    assert!(e.to_string().contains("schema 1"), "{e}");
    let e = parse(
        b"{}",
        Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
        "r",
    )
    .unwrap_err();
    assert!(e.to_string().contains("schema 1"));
    assert!(parse(b"not json", None, "x").is_err());
    // A manifest body that claims to be an index is refused.
    let liar = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
        "config":{"mediaType":"a","digest":"sha256:aa","size":2},"layers":[]}"#;
    assert!(parse(liar, None, "x").is_err());
}
