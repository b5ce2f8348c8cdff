//! The one table of spec keys. Each row names a key and gives its allowed values, default,
//! paper name and meaning, and ties it to its `RunSpec` field; canonical order, `set`, `get`,
//! the single-field range checks and the README's key table are all read from it, so a key is
//! described in exactly one place.

use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::ops::RangeBounds;

use super::text::{format_f64, parse_bool, parse_f64, parse_num, parse_text};
use super::{AttnKind, DataSource, GateKind, ModelKind, RunSpec, Schedule, SpecError};

/// What values a key takes, as checked by [`RunSpec::set`] and [`RunSpec::validate`] and shown
/// in the README.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Allowed {
    /// A whole number in `lo..=hi`; `hi == u64::MAX` means as large as the field's type holds.
    Whole { lo: u64, hi: u64 },
    /// A finite real number between two bounds.
    Real { lo: Bound<f64>, hi: Bound<f64> },
    /// Like `Real`, or unset, written `none` (and read from `none` or empty).
    RealOrNone { lo: Bound<f64>, hi: Bound<f64> },
    /// `true|false|1|0`, written `true` or `false`.
    Flag,
    /// One of these spellings (an enum's `NAMES`).
    Choice(&'static [&'static str]),
    /// Text with its own grammar, described here.
    Text(&'static str),
}

/// One spec key: the single description of it that everything else is derived from.
pub struct Key {
    /// The canonical key, as in the URL, the CLI flag and the JSON record.
    pub name: &'static str,
    pub allowed: Allowed,
    /// The default value, in canonical text (what [`RunSpec::get`] gives on the default spec).
    pub default: &'static str,
    /// The paper's (or its code's) name for the quantity, or "" where it has none.
    pub paper: &'static str,
    /// One line for the README: what the key means.
    pub doc: &'static str,
    get: fn(&RunSpec) -> String,
    set: fn(&mut RunSpec, &Key, &str) -> Result<(), SpecError>,
    check: fn(&RunSpec, &Key) -> Result<(), SpecError>,
}

impl Key {
    /// The field's canonical, unencoded text.
    pub(super) fn get(&self, spec: &RunSpec) -> String {
        (self.get)(spec)
    }

    /// Parses `text` into the field; the range is not checked (see [`Key::check`]).
    pub(super) fn set(&self, spec: &mut RunSpec, text: &str) -> Result<(), SpecError> {
        (self.set)(spec, self, text)
    }

    /// The field's own range check.
    pub(super) fn check(&self, spec: &RunSpec) -> Result<(), SpecError> {
        (self.check)(spec, self)
    }

    /// The allowed values as a phrase that follows "must be" (`in (0, 1)`, `<= 0`, `1..=48`).
    pub fn allowed_text(&self) -> String {
        match self.allowed {
            Allowed::Whole { lo, hi: u64::MAX } => format!(">= {lo}"),
            Allowed::Whole { lo, hi } => format!("in {lo}..={hi}"),
            Allowed::Real { lo, hi } => real_range_text(lo, hi),
            Allowed::RealOrNone { lo, hi } => format!("{} or `none`", real_range_text(lo, hi)),
            Allowed::Flag => "one of true|false|1|0".to_owned(),
            Allowed::Choice(names) => format!("one of {}", names.join("|")),
            Allowed::Text(grammar) => grammar.to_owned(),
        }
    }
}

fn real_range_text(lo: Bound<f64>, hi: Bound<f64>) -> String {
    let f = |x: f64| format_f64(x);
    match (lo, hi) {
        (Unbounded, Unbounded) => "any finite number".to_owned(),
        (Included(a), Unbounded) => format!(">= {}", f(a)),
        (Excluded(a), Unbounded) => format!("> {}", f(a)),
        (Unbounded, Included(b)) => format!("<= {}", f(b)),
        (Unbounded, Excluded(b)) => format!("< {}", f(b)),
        (lo, hi) => {
            let (open, a) = match lo {
                Included(a) => ('[', a),
                Excluded(a) => ('(', a),
                Unbounded => unreachable!(),
            };
            let (close, b) = match hi {
                Included(b) => (']', b),
                Excluded(b) => (')', b),
                Unbounded => unreachable!(),
            };
            format!("in {open}{}, {}{close}", f(a), f(b))
        }
    }
}

/// How one field type reads, writes and range-checks its text; lets the table's rows be built by
/// one macro whatever the field's type.
trait Value: Sized {
    fn parse(key: &Key, text: &str) -> Result<Self, SpecError>;
    fn text(&self) -> String;
    fn check(&self, _key: &Key) -> Result<(), SpecError> {
        Ok(())
    }
}

fn check_whole(key: &Key, value: u64) -> Result<(), SpecError> {
    match key.allowed {
        Allowed::Whole { lo, hi } if !(lo..=hi).contains(&value) => Err(SpecError::new(
            key.name,
            format!("must be {}, got {value}", key.allowed_text()),
        )),
        _ => Ok(()),
    }
}

macro_rules! whole_value {
    ($($ty:ty),+) => {$(
        impl Value for $ty {
            fn parse(key: &Key, text: &str) -> Result<Self, SpecError> {
                parse_num(key.name, text)
            }
            fn text(&self) -> String {
                self.to_string()
            }
            fn check(&self, key: &Key) -> Result<(), SpecError> {
                // A usize or u32 always fits a u64 on the targets we build for.
                check_whole(key, u64::try_from(*self).unwrap_or(u64::MAX))
            }
        }
    )+};
}
whole_value!(usize, u32, u64);

impl Value for f64 {
    fn parse(key: &Key, text: &str) -> Result<Self, SpecError> {
        parse_f64(key.name, text)
    }
    fn text(&self) -> String {
        format_f64(*self)
    }
    fn check(&self, key: &Key) -> Result<(), SpecError> {
        // Fields built directly (or read from JSON) can hold what `parse_f64` refuses.
        if !self.is_finite() {
            return Err(SpecError::new(
                key.name,
                format!("must be a finite number, got {self}"),
            ));
        }
        let (Allowed::Real { lo, hi } | Allowed::RealOrNone { lo, hi }) = key.allowed else {
            return Ok(());
        };
        if (lo, hi).contains(self) {
            Ok(())
        } else {
            Err(SpecError::new(
                key.name,
                format!("must be {}, got {}", key.allowed_text(), format_f64(*self)),
            ))
        }
    }
}

impl Value for Option<f64> {
    fn parse(key: &Key, text: &str) -> Result<Self, SpecError> {
        match text {
            "" | "none" => Ok(None),
            _ => f64::parse(key, text).map(Some),
        }
    }
    fn text(&self) -> String {
        self.map_or_else(|| "none".to_owned(), format_f64)
    }
    fn check(&self, key: &Key) -> Result<(), SpecError> {
        self.map_or(Ok(()), |x| x.check(key))
    }
}

impl Value for bool {
    fn parse(key: &Key, text: &str) -> Result<Self, SpecError> {
        parse_bool(key.name, text)
    }
    fn text(&self) -> String {
        self.to_string()
    }
}

macro_rules! text_value {
    ($($ty:ty),+) => {$(
        impl Value for $ty {
            fn parse(key: &Key, text: &str) -> Result<Self, SpecError> {
                parse_text(key.name, text)
            }
            fn text(&self) -> String {
                self.to_string()
            }
        }
    )+};
}
text_value!(ModelKind, AttnKind, GateKind, Schedule);

impl Value for DataSource {
    fn parse(key: &Key, text: &str) -> Result<Self, SpecError> {
        parse_text(key.name, text)
    }
    fn text(&self) -> String {
        self.to_string()
    }
    /// Re-checks the text rules in case the spec was built as a struct or read from JSON.
    fn check(&self, key: &Key) -> Result<(), SpecError> {
        self.to_string()
            .parse::<DataSource>()
            .map(drop)
            .map_err(|message| SpecError::new(key.name, message))
    }
}

/// One row: `field: "key", allowed, "default", "paper name", "meaning"`.
macro_rules! row {
    ($field:ident: $name:literal, $allowed:expr, $default:literal, $paper:literal, $doc:literal) => {
        Key {
            name: $name,
            allowed: $allowed,
            default: $default,
            paper: $paper,
            doc: $doc,
            get: |spec| Value::text(&spec.$field),
            set: |spec, key, text| {
                spec.$field = Value::parse(key, text)?;
                Ok(())
            },
            check: |spec, key| Value::check(&spec.$field, key),
        }
    };
}

const fn whole(lo: u64, hi: u64) -> Allowed {
    Allowed::Whole { lo, hi }
}

const fn real(lo: Bound<f64>, hi: Bound<f64>) -> Allowed {
    Allowed::Real { lo, hi }
}

const ANY: u64 = u64::MAX;

/// Every key, in canonical order (`v` first). `alpha` is emitted only when set.
pub const KEY_TABLE: &[Key] = &[
    row!(version: "v", whole(1, 1), "1", "",
        "spec format version; only 1 exists"),
    row!(model: "model", Allowed::Choice(ModelKind::NAMES), "bert", "",
        "`bert` (post-LN masked LM), `opt` (pre-LN causal LM), `vit` (pre-LN, synthetic images)"),
    row!(layers: "layers", whole(1, 48), "2", "L",
        "number of transformer blocks"),
    row!(d_model: "d", whole(8, 4096), "64", "d_model",
        "hidden size"),
    row!(heads: "heads", whole(1, 4096), "4", "H",
        "attention heads; must divide `d`, with `d / heads >= 4`"),
    row!(d_ff: "ffn", whole(1, 16384), "256", "d_ff (`intermediate_size`)",
        "FFN inner size"),
    row!(seq_len: "seq", whole(4, 2048), "32", "T",
        "tokens per sequence for bert/opt, incl. CLS/SEP or BOS (vit uses (img/patch)² + 1)"),
    row!(batch: "batch", whole(1, 4096), "16", "",
        "sequences (or images) per training batch"),
    row!(image: "img", whole(4, 512), "32", "",
        "ViT image side in pixels"),
    row!(patch: "patch", whole(1, 512), "4", "",
        "ViT patch side in pixels; must divide `img`"),
    row!(classes: "classes", whole(2, 16), "4", "",
        "ViT classes"),
    row!(patch_ln: "patch_ln", Allowed::Flag, "true", "",
        "ViT LayerNorm right after the patch embedding, as the paper's ViT has"),
    row!(attn: "attn", Allowed::Choice(AttnKind::NAMES), "vanilla", "",
        "attention: `vanilla`, `clipped` (Eq. 4), `gated` (Eq. 5–7), `softmax1` (off-by-one), \
         `sink` (learnable per-head sink logit)"),
    row!(gamma: "gamma", real(Unbounded, Included(0.0)), "-0.015", "γ (Eq. 4)",
        "clipped softmax's lower stretch; `alpha` overrides it"),
    row!(zeta: "zeta", real(Included(1.0), Unbounded), "1", "ζ (Eq. 4; `eta` in the code)",
        "clipped softmax's upper stretch"),
    row!(alpha: "alpha", Allowed::RealOrNone { lo: Excluded(0.0), hi: Unbounded }, "none", "α (`--alpha`)",
        "when set, γ = −α/T and ζ = 1, so the clip threshold scales with T"),
    row!(gamma_warmup: "gamma_warmup", whole(0, 10_000_000), "0", "",
        "steps over which γ ramps from 0 (ζ from 1), so α ≥ 1 does not clip a fresh model's \
         uniform attention to zero (not in the paper)"),
    row!(gate: "gate", Allowed::Choice(GateKind::NAMES), "linear", "G(x) (Eq. 5)",
        "gated attention's gate: one scalar per head (`uph`), per head and sequence (`cph`), \
         per token from a linear map (`linear`, the paper's default) or an MLP (`mlp`), or one \
         map from the whole hidden vector (`allheads`)"),
    row!(pi_init: "pi", real(Excluded(0.0), Excluded(1.0)), "0.25", "π_init (`attn_gate_init`)",
        "the gate's initial open probability: its bias starts at logit π_init"),
    row!(steps: "steps", whole(1, 10_000_000), "300", "",
        "optimiser (AdamW) steps"),
    row!(lr: "lr", real(Excluded(0.0), Included(10.0)), "1e-3", "",
        "peak learning rate, reached after warm-up"),
    row!(warmup: "warmup", whole(0, ANY), "30", "",
        "linear warm-up steps (more than `steps` only warns)"),
    row!(sched: "sched", Allowed::Choice(Schedule::NAMES), "linear", "",
        "after warm-up: linear decay to 0 (`linear`, the paper's) or a constant rate (`const`)"),
    row!(weight_decay: "wd", real(Included(0.0), Included(1.0)), "0.01", "",
        "AdamW decoupled weight decay (never on biases or LayerNorm β)"),
    row!(ln_wd: "ln_wd", Allowed::Flag, "false", "`--wd_LN_gamma`",
        "also decay LayerNorm γ, as the paper's OPT scripts do (its Table 6)"),
    row!(beta1: "b1", real(Included(0.0), Excluded(1.0)), "0.9", "β₁",
        "Adam's first-moment decay"),
    row!(beta2: "b2", real(Included(0.0), Excluded(1.0)), "0.999", "β₂",
        "Adam's second-moment decay"),
    row!(eps: "eps", real(Excluded(0.0), Included(1.0)), "1e-8", "ε",
        "Adam's denominator epsilon"),
    row!(clip: "clip", real(Included(0.0), Unbounded), "1", "",
        "global gradient-norm clip; 0 disables it"),
    row!(dropout: "dropout", real(Included(0.0), Excluded(1.0)), "0",
        "`hidden_dropout_prob`, `attention_probs_dropout_prob`",
        "training dropout on embeddings, attention and FFN outputs, and BERT's attention \
         probabilities (the paper: 0.1); masks from the run seed"),
    row!(init_std: "init_std", real(Excluded(0.0), Included(1.0)), "0.02", "`initializer_range`",
        "σ of the N(0, σ) init of embeddings, FFN and heads (Q/K/V/out keep PyTorch's default)"),
    row!(mask_prob: "mask", real(Excluded(0.0), Excluded(1.0)), "0.15", "",
        "BERT masking probability (80/10/10)"),
    row!(seed: "seed", whole(0, ANY), "0", "",
        "the one run seed, split into data / init / mask / order / dropout streams"),
    row!(data: "data", Allowed::Text("`synthetic`, `tinyshakespeare`, `file:<name>`, `bb` or `bb:<source>`"),
        "synthetic", "",
        "`synthetic`: a built-in English-like corpus; `tinyshakespeare`: built in (1.1 MB); \
         `file:<name>`: a UTF-8 text file, char-level; `bb`, `bb:<source>`: Bigram-Backcopy \
         (Guo et al. 2024) from tinyshakespeare or `<source>`, its character bigrams except \
         that after one of its `bb_k` most frequent characters the next copies the one before \
         it, one independent segment per sequence. vit takes only `synthetic`"),
    row!(bb_k: "bb_k", whole(1, 16), "3", "k (Guo et al.)",
        "Bigram-Backcopy trigger characters"),
    row!(bos: "bos", Allowed::Flag, "true", "",
        "OPT: every row starts with the fixed [BOS] token; `false` starts rows mid-text, as the \
         paper's OPT pipeline does (no ready-made sink token)"),
    row!(eval_every: "eval_every", whole(0, ANY), "50", "",
        "evaluate every N steps; 0 only at the end"),
    row!(eval_batches: "eval_batches", whole(1, 10_000), "8", "",
        "fixed held-out batches per evaluation"),
];

const KEY_COUNT: usize = KEY_TABLE.len();

const fn key_names() -> [&'static str; KEY_COUNT] {
    let mut names = [""; KEY_COUNT];
    let mut i = 0;
    while i < KEY_COUNT {
        names[i] = KEY_TABLE[i].name;
        i += 1;
    }
    names
}

const KEY_NAMES: [&str; KEY_COUNT] = key_names();

/// Canonical keys, in canonical order (`v` first): the names of [`KEY_TABLE`].
pub const KEYS: &[&str] = &KEY_NAMES;

/// The row of `name`, if it is a key.
pub fn key(name: &str) -> Option<&'static Key> {
    KEY_TABLE.iter().find(|k| k.name == name)
}

/// The README's key table, in Markdown, generated from [`KEY_TABLE`].
pub fn readme_key_table() -> String {
    let mut out = String::from(
        "| key | default | allowed | meaning | paper's name |\n|---|---|---|---|---|\n",
    );
    for key in KEY_TABLE {
        let quoted = matches!(
            key.allowed,
            Allowed::Choice(_) | Allowed::Text(_) | Allowed::RealOrNone { .. }
        ) && key.default.parse::<f64>().is_err();
        let default = if quoted {
            format!("`{}`", key.default)
        } else {
            key.default.to_owned()
        };
        let allowed = match key.allowed {
            Allowed::Whole { lo: 0, hi: ANY } => "whole number".to_owned(),
            Allowed::Flag => "`true`, `false`".to_owned(),
            Allowed::Choice(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                names.join(", ")
            }
            Allowed::Text(grammar) => grammar.to_owned(),
            Allowed::Whole { lo, hi } if lo == hi => lo.to_string(),
            _ => {
                let text = key.allowed_text();
                text.strip_prefix("in ").unwrap_or(&text).to_owned()
            }
        };
        let paper = if key.paper.is_empty() {
            "–"
        } else {
            key.paper
        };
        out.push_str(&format!(
            "| `{}` | {default} | {allowed} | {} | {paper} |\n",
            key.name, key.doc
        ));
    }
    out
}
