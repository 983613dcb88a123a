//! `oci:`, `oci-archive:` and `docker-archive:` sources, built in a temp dir.

mod common;

use common::image::{self, read_all, Blob, Comp, TestImage};
use sdme_registry::{open_source, ErrorKind, Platform, SourceOptions};
use std::io::ErrorKind as IoKind;
use std::path::Path;

fn write_blob(layout: &Path, b: &Blob) {
    let (alg, hex) = b.digest.split_once(':').unwrap();
    std::fs::create_dir_all(layout.join("blobs").join(alg)).unwrap();
    std::fs::write(layout.join("blobs").join(alg).join(hex), &b.data).unwrap();
}

fn write_image_blobs(layout: &Path, img: &TestImage) {
    write_blob(layout, &img.manifest);
    write_blob(layout, &img.config);
    for l in &img.layers {
        write_blob(layout, &l.blob);
    }
}

/// A layout with `tags` (tag → manifest/index blob, media type).
fn write_layout(layout: &Path, tags: &[(&str, &Blob, &str)]) {
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let manifests: Vec<_> = tags
        .iter()
        .map(|(tag, b, mt)| {
            write_blob(layout, b);
            serde_json::json!({"mediaType": mt, "digest": b.digest, "size": b.data.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag}})
        })
        .collect();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap(),
    )
    .unwrap();
}

fn check(source: &str, opts: &SourceOptions, img: &TestImage) {
    let src = open_source(source, opts).unwrap();
    assert_eq!(src.describe(), source);
    let r = src.resolve().unwrap();
    assert_eq!(r.manifest_digest, img.manifest.digest);
    assert_eq!(r.layers.len(), img.layers.len());
    for (got, want) in r.layers.iter().zip(&img.layers) {
        assert_eq!(got.diff_id, want.diff_id);
        assert_eq!(
            read_all(&mut *src.open_layer(got).unwrap()).unwrap(),
            want.tar
        );
    }
}

fn two_images() -> (TestImage, TestImage) {
    let a = image::image(
        vec![
            image::layer(&[("a", b"1")], Comp::Gzip),
            image::layer(&[("b", b"2")], Comp::Zstd),
            image::layer(&[("c", b"3")], Comp::None),
        ],
        "amd64",
        false,
    );
    let b = image::image(
        vec![image::layer(&[("arm", b"x")], Comp::Gzip)],
        "arm64",
        true,
    );
    (a, b)
}

#[test]
fn oci_dir_by_tag_and_through_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_images();
    let idx = image::index(&[(&a, "linux/amd64"), (&b, "linux/arm64")]);
    let layout = dir.path().join("layout");
    write_layout(
        &layout,
        &[
            (
                "a",
                &a.manifest,
                "application/vnd.oci.image.manifest.v1+json",
            ),
            ("multi", &idx, "application/vnd.oci.image.index.v1+json"),
        ],
    );
    write_image_blobs(&layout, &a);
    write_image_blobs(&layout, &b);
    let l = layout.display();
    let mut opts = SourceOptions::new();
    opts.platform = Some(Platform::parse("linux/amd64").unwrap());
    check(&format!("oci:{l}:a"), &opts, &a);
    check(&format!("oci:{l}:multi"), &opts, &a);
    opts.platform = Some(Platform::parse("linux/arm64/v8").unwrap());
    check(&format!("oci:{l}:multi"), &opts, &b);

    let e = open_source(&format!("oci:{l}:nope"), &opts).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = open_source(&format!("oci:{l}"), &opts).err().unwrap();
    assert!(e.to_string().contains("name one of: a, multi"), "{e}");
    let e = open_source(&format!("oci:{}/missing:a", dir.path().display()), &opts)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn oci_dir_tampered_blobs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_images();
    let layout = dir.path().join("l");
    write_layout(
        &layout,
        &[(
            "a",
            &a.manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )],
    );
    write_image_blobs(&layout, &a);
    let source = format!("oci:{}:a", layout.display());
    let blob_path = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };

    // A layer whose bytes changed after the fact.
    let mut data = a.layers[2].blob.data.clone();
    data[600] ^= 1;
    std::fs::write(blob_path(&a.layers[2].blob.digest), &data).unwrap();
    let src = open_source(&source, &SourceOptions::new()).unwrap();
    let r = src.resolve().unwrap();
    let e = read_all(&mut *src.open_layer(&r.layers[2]).unwrap()).unwrap_err();
    assert_eq!(e.kind(), IoKind::InvalidData);

    // A config that changed.
    std::fs::write(blob_path(&a.config.digest), b"{}").unwrap();
    let e = open_source(&source, &SourceOptions::new())
        .unwrap()
        .resolve()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");

    // A manifest that changed.
    std::fs::write(blob_path(&a.manifest.digest), b"{\"schemaVersion\":2}").unwrap();
    let e = open_source(&source, &SourceOptions::new())
        .err()
        .unwrap_or_else(|| {
            open_source(&source, &SourceOptions::new())
                .unwrap()
                .resolve()
                .unwrap_err()
        });
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
}

fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

#[test]
fn oci_archive_is_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_images();
    let layout = dir.path().join("l");
    write_layout(
        &layout,
        &[(
            "v1",
            &a.manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )],
    );
    write_image_blobs(&layout, &a);
    let archive = dir.path().join("img.tar");
    tar_dir(&layout, &archive);
    check(
        &format!("oci-archive:{}:v1", archive.display()),
        &SourceOptions::new(),
        &a,
    );
    check(
        &format!("oci-archive:{}", archive.display()),
        &SourceOptions::new(),
        &a,
    );

    // Compressed archives are decompressed to an unnamed temporary file.
    for (comp, ext) in [(Comp::Gzip, "gz"), (Comp::Zstd, "zst")] {
        let c = dir.path().join(format!("img.tar.{ext}"));
        std::fs::write(&c, image::compress(&std::fs::read(&archive).unwrap(), comp)).unwrap();
        check(
            &format!("oci-archive:{}:v1", c.display()),
            &SourceOptions::new(),
            &a,
        );
    }
    // ... bounded as layers are: a small compressed archive that expands
    // past the size limit is refused while it decompresses, naming it.
    let mut padded = std::fs::read(&archive).unwrap();
    padded.resize(padded.len() + (8 << 20), 0);
    let bomb = dir.path().join("bomb.tar.zst");
    std::fs::write(&bomb, image::compress(&padded, Comp::Zstd)).unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let mut small = SourceOptions::new();
    small.max_layer_size = Some(4 << 20);
    let e = open_source(&format!("oci-archive:{}", bomb.display()), &small)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(
        e.to_string().contains("bomb.tar.zst") && e.to_string().contains("limit of 4194304 bytes"),
        "{e}"
    );
    // The default limits let it through (zeros after the tar's end).
    check(
        &format!("oci-archive:{}:v1", bomb.display()),
        &SourceOptions::new(),
        &a,
    );
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 5000]).unwrap();
    let e = open_source(
        &format!("oci-archive:{}", junk.display()),
        &SourceOptions::new(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("junk.tar"), "{e}");
}

#[test]
fn docker_archive_legacy_and_blob_layout() {
    let dir = tempfile::tempdir().unwrap();
    let plain = image::layer(&[("etc/os-release", b"ID=test\n")], Comp::None);
    let gz = image::layer(&[("usr/bin/x", b"binary")], Comp::Gzip);
    // Layers: a legacy uncompressed layer.tar, the same one again through a
    // symlink (as docker save writes duplicates), and a blobs/sha256 gzip one.
    let root = dir.path().join("save");
    std::fs::create_dir_all(root.join("l1")).unwrap();
    std::fs::create_dir_all(root.join("l2")).unwrap();
    std::fs::write(root.join("l1/layer.tar"), &plain.tar).unwrap();
    std::os::unix::fs::symlink("../l1/layer.tar", root.join("l2/layer.tar")).unwrap();
    let (_, hex) = gz.blob.digest.split_once(':').unwrap();
    std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    std::fs::write(root.join("blobs/sha256").join(hex), &gz.blob.data).unwrap();
    let diff_ids = [&plain.diff_id, &plain.diff_id, &gz.diff_id];
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let config_name = format!(
        "{}.json",
        image::sha256(&config).trim_start_matches("sha256:")
    );
    std::fs::write(root.join(&config_name), &config).unwrap();
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_vec(
            &serde_json::json!([{"Config": config_name, "RepoTags": ["example/app:1"],
            "Layers": ["l1/layer.tar", "l2/layer.tar", format!("blobs/sha256/{hex}")]}]),
        )
        .unwrap(),
    )
    .unwrap();
    let archive = dir.path().join("save.tar");
    tar_dir(&root, &archive);

    for source in [
        format!("docker-archive:{}", archive.display()),
        format!("docker-archive:{}:example/app:1", archive.display()),
    ] {
        let src = open_source(&source, &SourceOptions::new()).unwrap();
        let r = src.resolve().unwrap();
        assert_eq!(r.config_raw, config);
        assert_eq!(r.layers.len(), 3);
        assert_eq!(
            r.layers[0].digest, plain.diff_id,
            "legacy layers: digest is the diff_id"
        );
        assert_eq!(r.layers[2].digest, gz.blob.digest);
        let want = [&plain.tar, &plain.tar, &gz.tar];
        for (l, w) in r.layers.iter().zip(want) {
            assert_eq!(&read_all(&mut *src.open_layer(l).unwrap()).unwrap(), w);
        }
        // The synthesized manifest is stable, so its digest identifies the image.
        assert_eq!(
            r.manifest_digest,
            open_source(&source, &SourceOptions::new())
                .unwrap()
                .resolve()
                .unwrap()
                .manifest_digest
        );
    }
    let e = open_source(
        &format!("docker-archive:{}:other:1", archive.display()),
        &SourceOptions::new(),
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}
