//! The `qtlab` binary end to end: bad input is refused with a message naming the field and a
//! non-zero exit code (never a panic); a tiny run writes the JSON record.

use std::process::Command;

fn qtlab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qtlab"))
        .args(args)
        .output()
        .expect("run qtlab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(args: &[&str], needle: &str) {
    let (code, _, err) = qtlab(args);
    assert_eq!(code, 1, "{args:?} should fail cleanly, stderr: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected `{needle}` in: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("qtlab-cli-{}-{name}", std::process::id()))
}

#[test]
fn help_lists_every_spec_key_with_its_choices() {
    let (code, out, _) = qtlab(&["help"]);
    assert_eq!(code, 0);
    for k in qtlab_core::spec::KEY_TABLE {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("--{} ", k.name)))
            .unwrap_or_else(|| panic!("no help line for --{}:\n{out}", k.name));
        assert!(line.contains(&k.allowed_text()), "{line}");
        assert!(line.contains(&format!("(default {})", k.default)), "{line}");
    }
    for name in qtlab_core::ptq::weights::WeightRange::NAMES {
        assert!(
            out.contains(&format!("|{name}")),
            "weight range {name} missing"
        );
    }
    assert!(!out.contains('{'), "an unfilled placeholder: {out}");
}

#[test]
fn impossible_specs_are_refused_naming_the_field() {
    assert_refused(&["train", "--d", "64", "--heads", "5"], "`heads`");
    assert_refused(&["train", "--attn", "clipped", "--gamma", "0.1"], "`gamma`");
    assert_refused(&["train", "--zeta", "0.5"], "`zeta`");
    assert_refused(&["train", "--attn", "gated", "--pi", "1.5"], "`pi`");
    assert_refused(&["train", "--steps", "0"], "`steps`");
    assert_refused(&["train", "--model", "bart"], "`model`");
    assert_refused(&["train", "--attn", "magic"], "`attn`");
    assert_refused(&["train", "--spec", "v=1&foo=1"], "`foo`");
    assert_refused(&["train", "--wat", "1"], "--wat");
    assert_refused(
        &["train", "--d", "4096", "--layers", "48", "--ffn", "16384"],
        "`d`",
    );
    assert_refused(&["frobnicate"], "unknown command");
}

#[test]
fn bad_data_files_are_clear_errors() {
    assert_refused(
        &["train", "--data", "/nonexistent/corpus.txt", "--steps", "1"],
        "corpus.txt",
    );
    let empty = tmp("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    assert_refused(
        &["train", "--data", empty.to_str().unwrap(), "--steps", "1"],
        "empty",
    );
    let bin = tmp("bin.txt");
    std::fs::write(&bin, [0xffu8, 0xfe, 0x00, 0x41, 0x80, 0x81].repeat(500)).unwrap();
    let (code, _, err) = qtlab(&["train", "--data", bin.to_str().unwrap(), "--steps", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("UTF-8") || err.contains("binary"), "{err}");
    let _ = std::fs::remove_file(empty);
    let _ = std::fs::remove_file(bin);
}

#[test]
fn a_tiny_run_writes_the_record() {
    let out = tmp("run.json");
    let (code, stdout, err) = qtlab(&[
        "train",
        "--model",
        "bert",
        "--attn",
        "clipped",
        "--alpha",
        "0.5",
        "--layers",
        "1",
        "--d",
        "16",
        "--heads",
        "2",
        "--ffn",
        "32",
        "--seq",
        "16",
        "--batch",
        "4",
        "--steps",
        "6",
        "--eval_every",
        "3",
        "--eval_batches",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let spec = rec["spec"].as_str().unwrap();
    assert!(
        spec.starts_with("v=1&model=bert&") && spec.contains("alpha=0.5"),
        "{spec}"
    );
    assert_eq!(rec["losses"].as_array().unwrap().len(), 6);
    let eval = &rec["eval"];
    for key in [
        "loss",
        "ppl",
        "max_inf_norm",
        "avg_kurtosis",
        "taps",
        "heads",
    ] {
        assert!(!eval[key].is_null(), "eval.{key} missing: {eval}");
    }
    assert_eq!(
        rec["evals"].as_array().unwrap().len(),
        2,
        "eval at step 3 and at the end"
    );
    assert!(stdout.contains("max_inf_norm"));
    // The canonical string reproduces the run exactly.
    let out2 = tmp("run2.json");
    let (code, _, err) = qtlab(&[
        "train",
        "--spec",
        spec,
        "--out",
        out2.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let rec2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out2).unwrap()).unwrap();
    assert_eq!(rec["losses"], rec2["losses"]);
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(out2);
}

#[test]
fn quantize_adds_a_quant_object_per_bit_width() {
    let out = tmp("quant.json");
    let (code, _, err) = qtlab(&[
        "train",
        "--model",
        "opt",
        "--layers",
        "1",
        "--d",
        "16",
        "--heads",
        "2",
        "--ffn",
        "32",
        "--seq",
        "16",
        "--batch",
        "4",
        "--steps",
        "4",
        "--eval_batches",
        "2",
        "--quantize",
        "w8a8,w4a4",
        "--calib-batches",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let q = rec["quant"].as_array().unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q[1]["settings"]["a_bits"], 4);
    for key in ["fp", "quantized", "act_sqnr", "weight_sqnr"] {
        assert!(!q[0][key].is_null(), "{key}");
    }
    assert!(q[0]["quantized"]["ppl"].as_f64().unwrap() > 1.0);
    assert_refused(&["train", "--quantize", "w8"], "w8a8");
    assert_refused(
        &[
            "train",
            "--steps",
            "2",
            "--quantize",
            "w8a8",
            "--act-range",
            "median",
        ],
        "activation range",
    );
    let _ = std::fs::remove_file(out);
}

/// Soak: 10,000 steps of the app's default preset (gated BERT, evaluation every 50 steps),
/// resident memory sampled; `qtlab soak` exits non-zero above 64 MiB growth after warm-up.
#[test]
fn soak_ten_thousand_steps_with_bounded_memory() {
    let (code, out, err) = qtlab(&["soak", "--soak-steps", "10000", "--max-growth-mib", "64"]);
    println!("{out}");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("step  10000"), "{out}");
    assert!(out.contains("peak growth"), "{out}");
}

#[test]
fn soak_reports_growth_over_its_bound() {
    // A negative bound cannot be met: proves the check fails when it should.
    let (code, out, err) = qtlab(&["soak", "--soak-steps", "40", "--max-growth-mib", "-1000"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("above the -1000 MiB bound"), "{err}");
}

#[test]
fn off_a_terminal_progress_is_a_plain_line_every_50_steps_with_rate_and_eta() {
    let spec = "model=bert&layers=1&d=16&heads=2&ffn=32&seq=16&batch=4&eval_every=0&eval_batches=1";
    let (code, _, err) = qtlab(&["train", "--spec", spec, "--steps", "120"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("step ")).collect();
    let at: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(at, ["50/120", "100/120", "120/120"], "{err}");
    for l in &lines {
        // batch 4 × seq 16 = 64 tokens a step: a positive rate, and an ETA that ends at 0 s.
        let tok: f64 = l.split_whitespace().rev().nth(3).unwrap().parse().unwrap();
        assert!(tok > 0.0 && l.contains(" tok/s  ETA "), "{l}");
        assert!(l.contains("loss ") && !l.contains('\r'), "{l}");
    }
    assert!(lines[2].ends_with("ETA 0s"), "{}", lines[2]);
}
