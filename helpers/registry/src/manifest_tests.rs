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
    assert!(matches!(parse(m, &[], "m").unwrap(), Parsed::Image { .. }));
    let i = br#"{"schemaVersion":2,"manifests":[]}"#;
    assert!(matches!(
        parse(i, &[("Content-Type", media::OCI_INDEX)], "i").unwrap(),
        Parsed::Index(_)
    ));
    let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
    let e = parse(s1, &[], "ref").unwrap_err();
    assert!(e.to_string().contains("schema 1"), "{e}");
    let e = parse(
        b"{}",
        &[(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        )],
        "r",
    )
    .unwrap_err();
    assert!(e.to_string().contains("schema 1"));
    assert!(parse(b"not json", &[], "x").is_err());
    // A manifest body that claims to be an index is refused.
    let liar = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
        "config":{"mediaType":"a","digest":"sha256:aa","size":2},"layers":[]}"#;
    assert!(parse(liar, &[], "x").is_err());
}

const OCI_M: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_I: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_M: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn doc(media_type: Option<&str>, manifests: bool, config: bool, layers: bool) -> Vec<u8> {
    let mut v = serde_json::json!({"schemaVersion": 2});
    let d = serde_json::json!({"mediaType": OCI_M, "digest": format!("sha256:{}", "a".repeat(64)), "size": 2});
    if let Some(m) = media_type {
        v["mediaType"] = m.into();
    }
    if manifests {
        v["manifests"] = serde_json::json!([d]);
    }
    if config {
        v["config"] = d.clone();
    }
    if layers {
        v["layers"] = serde_json::json!([d]);
    }
    serde_json::to_vec(&v).unwrap()
}

fn kind(raw: &[u8], claims: &[(&str, &str)]) -> Result<&'static str, ErrorKind> {
    match parse(raw, claims, "doc") {
        Ok(Parsed::Index(_)) => Ok("index"),
        Ok(Parsed::Image { .. }) => Ok("image"),
        Err(e) => Err(e.kind()),
    }
}

#[test]
fn documents_that_are_both_index_and_manifest_are_refused() {
    let ct = |m| [("Content-Type", m)];
    for mt in [None, Some(OCI_M), Some(OCI_I)] {
        for claims in [
            &[][..],
            &ct(OCI_M)[..],
            &ct(OCI_I)[..],
            &ct("application/json")[..],
        ] {
            for (config, layers) in [(true, true), (true, false), (false, true)] {
                let raw = doc(mt, true, config, layers);
                assert_eq!(
                    kind(&raw, claims),
                    Err(ErrorKind::Integrity),
                    "{}",
                    String::from_utf8_lossy(&raw)
                );
            }
        }
    }
    let e = parse(&doc(None, true, true, true), &[], "idx").unwrap_err();
    assert!(e.to_string().contains("both \"manifests\""), "{e}");
}

#[test]
fn media_type_must_agree_with_every_claim() {
    let image = doc(Some(OCI_M), false, true, true);
    let index = doc(Some(OCI_I), true, false, false);
    let bare_image = doc(None, false, true, true);
    let bare_index = doc(None, true, false, false);
    let ct = |m| ("Content-Type", m);
    let entry = |m| ("the index entry", m);
    assert_eq!(kind(&image, &[ct(OCI_M), entry(OCI_M)]), Ok("image"));
    assert_eq!(kind(&index, &[ct(OCI_I)]), Ok("index"));
    // Claims that say nothing about manifests are ignored.
    assert_eq!(kind(&image, &[ct("application/octet-stream")]), Ok("image"));
    assert_eq!(kind(&bare_image, &[]), Ok("image"));
    assert_eq!(kind(&bare_index, &[]), Ok("index"));
    // The document says one thing, the transport or the index another.
    assert_eq!(kind(&image, &[ct(OCI_I)]), Err(ErrorKind::Integrity));
    assert_eq!(kind(&image, &[ct(DOCKER_M)]), Err(ErrorKind::Integrity));
    assert_eq!(kind(&index, &[entry(OCI_M)]), Err(ErrorKind::Integrity));
    assert_eq!(
        kind(&bare_image, &[ct(OCI_M), entry(DOCKER_M)]),
        Err(ErrorKind::Integrity)
    );
    // Without a mediaType of its own, the claims decide, and the shape must fit.
    assert_eq!(kind(&bare_image, &[ct(OCI_I)]), Err(ErrorKind::Unsupported));
    assert_eq!(
        kind(&bare_index, &[entry(OCI_M)]),
        Err(ErrorKind::Unsupported)
    );
    assert_eq!(kind(&bare_image, &[ct(DOCKER_M)]), Ok("image"));
    // Half a manifest, or a mediaType we do not read.
    assert!(kind(&doc(Some(OCI_M), false, true, false), &[]).is_err());
    assert!(kind(&doc(Some(OCI_M), false, false, true), &[]).is_err());
    assert_eq!(
        kind(
            &doc(Some("application/vnd.example+json"), false, true, true),
            &[]
        ),
        Err(ErrorKind::Unsupported)
    );
    let e = parse(&image, &[ct(OCI_I)], "m").unwrap_err();
    assert!(
        e.to_string().contains(OCI_M)
            && e.to_string().contains(OCI_I)
            && e.to_string().contains("Content-Type"),
        "{e}"
    );
}
