//! The crate reads bottom-up: every module uses only modules listed above it in `lib.rs`'s
//! module map. This reads the sources, so a new `use crate::…` that points upward (and would
//! start a cycle) fails here with the offending file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The module map's order: the lines `//! - [`name`]: …` of lib.rs.
fn layer_order(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .filter_map(|l| l.split_once("`]").map(|(name, _)| name.to_string()))
        .collect()
}

/// Source text without line comments and without the trailing `#[cfg(test)] mod tests`, which
/// may reach anywhere.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Top-level crate modules a source file names: `crate::m…` and `use crate::{m::…, n, …}`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Names at brace depth 0 inside the group.
            let (mut depth, mut start) = (0i32, 0usize);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident_at(group[start..].trim_start()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident_at(group[start..].trim_start()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident_at(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = layer_order(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(
        order.len() >= 10,
        "module map not found in lib.rs: {order:?}"
    );
    let rank = |m: &str| order.iter().position(|o| o == m);

    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        // Unit-test files (`mod tests;`) may reach anywhere, like inline test modules.
        if top == "lib" || file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(own) = rank(&top) else {
            wrong.push(format!(
                "src/{}: module `{top}` is missing from lib.rs's map",
                rel.display()
            ));
            continue;
        };
        for m in uses(&code_of(&std::fs::read_to_string(file).unwrap())) {
            match rank(&m) {
                Some(r) if r > own => wrong.push(format!(
                    "src/{}: `{top}` uses `{m}`, which the map lists above it",
                    rel.display()
                )),
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_scanner_sees_plain_grouped_and_nested_uses() {
    let code = "use crate::a::X;\nuse crate::{b::Y, c, d::{e, f}};\nlet z = crate::g::h();";
    let got: Vec<_> = uses(code).into_iter().collect();
    assert_eq!(got, ["a", "b", "c", "d", "g"]);
    assert!(uses(&code_of("// crate::hidden\nfn f() {}")).is_empty());
}
