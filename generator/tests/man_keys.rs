//! The descriptor keys the code accepts and the keys sdme.oci(5) documents
//! are the same, section by section. The code's side comes from the code
//! itself: the "known:" list of its unknown-key error, each entry of which
//! must also be accepted by the key's `match` (so list and match agree).
//! The man page's side: every `.TP`/`.TQ` tag in the `[Image]`,
//! `[Container]`, `[App]` and `[Install]` sections, which must start
//! `Key=`. `[App]`'s keys are among `[Container]`'s (the first app's).

use sdme_generator::descriptor::{
    AppSettings, ContainerSection, ImageSection, InstallSection, Origin,
};
use sdme_generator::keys::{assign_app, assign_container, assign_image, assign_install};
use sdme_generator::search::SourceFile;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const NO_SUCH_KEY: &str = "NoSuchKeyAnywhere";

fn man_page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/sdme.oci.5");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Calls the section's assign function; `Err` is the message.
fn assign(section: &str, key: &str, value: &str) -> Result<(), String> {
    let origin = Origin::default();
    match section {
        "Image" => assign_image(&mut ImageSection::default(), key, value, &origin),
        "Container" => assign_container(&mut ContainerSection::default(), key, value, &origin),
        "App" => assign_app(&mut AppSettings::default(), key, value, &origin),
        "Install" => assign_install(&mut InstallSection::default(), key, value),
        _ => unreachable!(),
    }
}

/// The names after "(known: " in a message, up to ")".
fn known_list(message: &str) -> BTreeSet<String> {
    let list = message
        .split_once("(known: ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .unwrap_or_else(|| panic!("no known list in {message:?}"))
        .0;
    list.split(", ").map(str::to_string).collect()
}

fn code_keys(section: &str) -> BTreeSet<String> {
    let error = assign(section, NO_SUCH_KEY, "x").unwrap_err();
    let keys = known_list(&error);
    for key in &keys {
        // Empty is a valid reset for every key; any other error is fine
        // too, as long as the key itself is recognized.
        if let Err(e) = assign(section, key, "") {
            assert!(
                !e.contains("unknown key"),
                "[{section}] lists {key}= as known but refuses it: {e}"
            );
        }
    }
    keys
}

/// Strips roff font escapes (`\fB`, `\fR`, `\fI`, `\fP`) and `\-`.
fn unroff(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('f') => {
                    chars.next();
                }
                Some(other) => out.push(other),
                None => {}
            },
            c => out.push(c),
        }
    }
    out
}

/// `.SH` title → the keys tagged in that section (`.TP`/`.TQ` then a
/// `.B`/`.BI`/`.BR` line whose first word is `Key=...`).
fn man_keys() -> BTreeMap<String, BTreeSet<String>> {
    let page = man_page();
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix(".SH ") {
            section = title.trim_matches('"').to_string();
            continue;
        }
        if !section.ends_with(" SECTION") || !(line == ".TP" || line == ".TQ") {
            continue;
        }
        let tag = lines.next().unwrap_or_default();
        let words = tag
            .strip_prefix(".BI ")
            .or_else(|| tag.strip_prefix(".BR "))
            .or_else(|| tag.strip_prefix(".B "))
            .unwrap_or_else(|| panic!("[{section}]: tag {tag:?} is not .B/.BI/.BR Key=..."));
        let first = unroff(words.split_whitespace().next().unwrap_or_default());
        let key: String = first
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        assert!(
            !key.is_empty() && first[key.len()..].starts_with('='),
            "{section}: tag {tag:?} does not start with Key="
        );
        sections.entry(section.clone()).or_default().insert(key);
    }
    sections
}

#[test]
fn keys_in_the_code_and_in_sdme_oci_5_are_the_same() {
    let man = man_keys();
    let mut problems = Vec::new();
    for section in ["Image", "Container", "App", "Install"] {
        let title = format!("[{section}] SECTION");
        let documented = man.get(&title).cloned().unwrap_or_default();
        assert!(
            !documented.is_empty(),
            "no keys found in .SH \"{title}\" of man/sdme.oci.5"
        );
        let accepted = code_keys(section);
        for key in accepted.difference(&documented) {
            problems.push(format!(
                "[{section}] {key}= is accepted but not in sdme.oci(5)"
            ));
        }
        for key in documented.difference(&accepted) {
            problems.push(format!(
                "[{section}] {key}= is in sdme.oci(5) but not accepted"
            ));
        }
    }
    let extra: Vec<_> = man
        .keys()
        .filter(|t| {
            ![
                "[Image] SECTION",
                "[Container] SECTION",
                "[App] SECTION",
                "[Install] SECTION",
            ]
            .contains(&t.as_str())
        })
        .collect();
    assert!(
        extra.is_empty(),
        "keys documented in unexpected sections: {extra:?}"
    );
    let container = code_keys("Container");
    for key in code_keys("App").difference(&container) {
        problems.push(format!("[App] {key}= is not a [Container] key"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The sections the parser knows (from its unknown-section error) are the
/// ones the man page has a `.SH "[Name] ..."` for.
#[test]
fn sections_in_the_code_and_in_sdme_oci_5_are_the_same() {
    let file = SourceFile {
        shown: "/etc/sdme/x.oci".to_string(),
        contents: format!("[{NO_SUCH_KEY}]\n").into_bytes(),
    };
    let errors = sdme_generator::build::build("x", &file, &[]).unwrap_err();
    let message = errors
        .iter()
        .map(|d| d.message.as_str())
        .find(|m| m.contains("unknown section"))
        .unwrap_or_else(|| panic!("no unknown-section error in {errors:?}"));
    let known = known_list(message);
    let page = man_page();
    let documented: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .flat_map(|title| {
            title
                .split('[')
                .skip(1)
                .filter_map(|s| s.split_once(']').map(|(name, _)| name.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(known, documented);
}

#[test]
fn the_parsers_find_what_they_should() {
    assert_eq!(unroff(r"Mode=auto\fR|\fBbase"), "Mode=auto|base");
    assert_eq!(
        known_list("unknown key in [Install] (known: WantedBy, RequiredBy)"),
        BTreeSet::from(["WantedBy".to_string(), "RequiredBy".to_string()])
    );
    // A .TQ alternative (Volume= twice, Command= after Entrypoint=) counts.
    let man = man_keys();
    let container = &man["[Container] SECTION"];
    assert!(container.contains("Command") && container.contains("Volume"));
}
