//! The key table against the struct, the canonical text and the README.

use std::path::PathBuf;

use super::*;

const README_BEGIN: &str = "<!-- spec keys: generated from core/src/spec/keys.rs -->\n";
const README_END: &str = "<!-- end of spec keys -->\n";

#[test]
fn default_spec_matches_the_table_key_by_key() {
    let spec = RunSpec::default();
    for row in KEY_TABLE {
        assert_eq!(
            spec.get(row.name).as_deref(),
            Some(row.default),
            "{}",
            row.name
        );
        // Each default parses back to itself and passes its own check.
        let mut copy = spec.clone();
        copy.set(row.name, row.default).unwrap();
        assert_eq!(copy, spec, "{}", row.name);
    }
}

#[test]
fn keys_are_unique_and_serde_names_follow_the_table() {
    let mut names: Vec<&str> = KEYS.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), KEYS.len());
    // The JSON record uses the same names, in the same order (alpha set so it is present).
    let spec = RunSpec {
        alpha: Some(0.5),
        ..RunSpec::default()
    };
    let json = serde_json::to_value(&spec).unwrap();
    let fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_keys = KEYS.to_vec();
    sorted_keys.sort_unstable();
    let mut sorted_fields = fields.clone();
    sorted_fields.sort_unstable();
    assert_eq!(sorted_fields, sorted_keys);
}

#[test]
fn range_checks_follow_the_table_bounds() {
    for row in KEY_TABLE {
        let bad = match row.allowed {
            Allowed::Whole { lo, hi } => {
                let mut bad = Vec::new();
                if hi < u64::MAX {
                    bad.push((hi + 1).to_string());
                }
                if lo > 0 {
                    bad.push((lo - 1).to_string());
                }
                bad
            }
            Allowed::Real { lo, hi } | Allowed::RealOrNone { lo, hi } => {
                let mut bad = Vec::new();
                match lo {
                    std::ops::Bound::Included(a) => bad.push(format_f64(a - 0.5)),
                    std::ops::Bound::Excluded(a) => bad.push(format_f64(a)),
                    std::ops::Bound::Unbounded => {}
                }
                match hi {
                    std::ops::Bound::Included(b) => bad.push(format_f64(b + 0.5)),
                    std::ops::Bound::Excluded(b) => bad.push(format_f64(b)),
                    std::ops::Bound::Unbounded => {}
                }
                bad
            }
            Allowed::Choice(_) | Allowed::Flag => vec!["nonsense".to_owned()],
            Allowed::Text(_) => continue,
        };
        for value in bad {
            let mut spec = RunSpec::default();
            let e = spec.set(row.name, &value).unwrap_err();
            assert_eq!(e.field, row.name, "{}={value}", row.name);
            assert!(e.message.contains(&value), "{}={value}: {e}", row.name);
        }
    }
}

#[test]
fn enum_choices_come_from_the_one_list_per_kind() {
    assert_eq!(
        key("model").unwrap().allowed,
        Allowed::Choice(ModelKind::NAMES)
    );
    assert_eq!(
        key("attn").unwrap().allowed,
        Allowed::Choice(AttnKind::NAMES)
    );
    assert_eq!(
        key("gate").unwrap().allowed,
        Allowed::Choice(GateKind::NAMES)
    );
    assert_eq!(
        key("sched").unwrap().allowed,
        Allowed::Choice(Schedule::NAMES)
    );
    for (variant, name) in GateKind::ALL.iter().zip(GateKind::NAMES) {
        assert_eq!(variant.as_str(), *name);
    }
    let e = RunSpec::parse("attn=nope").unwrap_err();
    assert!(e.message.contains(&AttnKind::NAMES.join("|")), "{e}");
}

#[test]
fn table_text_fits_a_markdown_cell() {
    for row in KEY_TABLE {
        for text in [row.doc, row.paper, row.default] {
            assert!(
                !text.contains('|') && !text.contains('\n'),
                "{}: {text}",
                row.name
            );
        }
        assert!(!row.doc.is_empty(), "{} has no doc", row.name);
    }
}

/// README.md's key table is generated from the table; run with `QTLAB_WRITE_README=1` to
/// rewrite it after changing a key.
#[test]
fn readme_key_table_matches_the_table() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(README_BEGIN)
        .expect("README.md lacks the spec-keys begin marker")
        + README_BEGIN.len();
    let end = start
        + readme[start..]
            .find(README_END)
            .expect("README.md lacks the spec-keys end marker");
    let expected = readme_key_table();
    if readme[start..end] == expected {
        return;
    }
    if std::env::var_os("QTLAB_WRITE_README").is_some() {
        let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "README.md's key table differs from core/src/spec/keys.rs; rerun this test with \
         QTLAB_WRITE_README=1 to regenerate it. Expected:\n{expected}"
    );
}
