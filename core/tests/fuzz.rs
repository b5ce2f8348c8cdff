//! Hostile links: 120,000 generated URL fragments through the strict spec parser and the app's
//! lenient URL reader. Neither may panic; the strict one gives a valid spec or an error naming a
//! field; the lenient one always gives a valid spec and names every key it dropped.

use qtlab_core::rng::Rng;
use qtlab_core::spec::{KEYS, RunSpec};
use qtlab_core::url::{APP_KEYS, AppState};

const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "4",
    "7",
    "8",
    "16",
    "64",
    "0.5",
    "-0.015",
    "1e-3",
    "1e309",
    "-0",
    "NaN",
    "inf",
    "-inf",
    "",
    "true",
    "false",
    "bert",
    "opt",
    "vit",
    "vanilla",
    "clipped",
    "gated",
    "softmax1",
    "sink",
    "linear",
    "mlp",
    "cph",
    "uph",
    "allheads",
    "none",
    "synthetic",
    "file:a.txt",
    "file:",
    "w8a8,w4a8",
    "w1a1",
    "w8a8,w8a6,w8a4",
    "running_minmax",
    "percentile:99.99",
    "percentile:200",
    "mse",
    "minmax",
    "cpu",
    "auto",
    "vanilla,gated",
    "18446744073709551616",
    "99999999999",
    "%",
    "%zz",
    "%41",
    "%00",
    "%ff%fe",
    "<script>",
    "'\"&",
    "\u{0}",
    "😀",
    "ä",
    "1,2,3",
    " 4",
    "4 ",
];

fn gen_fragment(rng: &mut Rng) -> String {
    let mut out = String::new();
    if rng.below(4) == 0 {
        out.push('#');
    }
    let n = rng.below(12);
    for i in 0..n {
        if i > 0 || rng.below(8) == 0 {
            out.push('&');
        }
        match rng.below(10) {
            // Random bytes, as a hand-edited or truncated link might carry.
            0 => {
                for _ in 0..rng.below(16) {
                    let c = char::from_u32(rng.below(0x800) as u32).unwrap_or('?');
                    out.push(c);
                }
            }
            // A key without a value, or a bare `=`.
            1 => {
                out.push_str(KEYS[rng.below(KEYS.len())]);
                if rng.below(2) == 0 {
                    out.push('=');
                }
            }
            // An app key.
            2 => {
                out.push_str(APP_KEYS[rng.below(APP_KEYS.len())]);
                out.push('=');
                out.push_str(VALUES[rng.below(VALUES.len())]);
            }
            // A random number for a real key.
            3 => {
                out.push_str(KEYS[rng.below(KEYS.len())]);
                out.push('=');
                let x = rng.uniform(-1e6, 1e6);
                let digits = rng.below(6);
                out.push_str(&format!("{x:.digits$}"));
            }
            // A known key with a value from the list.
            _ => {
                out.push_str(KEYS[rng.below(KEYS.len())]);
                out.push('=');
                out.push_str(VALUES[rng.below(VALUES.len())]);
            }
        }
    }
    out
}

#[test]
fn hostile_links_never_panic_and_always_explain() {
    let mut rng = Rng::new(0x5eed);
    let (mut strict_ok, mut lenient_clean) = (0usize, 0usize);
    for _ in 0..120_000 {
        let text = gen_fragment(&mut rng);
        match RunSpec::parse(&text) {
            Ok(spec) => {
                strict_ok += 1;
                assert!(spec.validate().is_ok(), "{text}");
                let again = RunSpec::parse(&spec.to_canonical()).expect("canonical re-parses");
                assert_eq!(again, spec, "{text}");
            }
            Err(e) => assert!(
                !e.field.is_empty() && !e.message.is_empty(),
                "{text}: {e:?}"
            ),
        }
        let (state, errors) = AppState::from_url(&text);
        assert!(state.spec.validate_for_browser().is_ok(), "{text}");
        for e in &errors {
            assert!(
                !e.field.is_empty() && !e.message.is_empty(),
                "{text}: {e:?}"
            );
        }
        if errors.is_empty() {
            lenient_clean += 1;
            // A link read without complaint survives the app's own write-back unchanged.
            let (back, errs) = AppState::from_url(&state.to_url());
            assert!(errs.is_empty(), "{text}");
            assert_eq!(back, state, "{text}");
        }
    }
    // The generator must reach both outcomes, or the test proves little.
    assert!(strict_ok > 1000, "only {strict_ok} valid specs generated");
    assert!(
        lenient_clean > 1000,
        "only {lenient_clean} clean links generated"
    );
}
