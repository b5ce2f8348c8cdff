//! `RunSpec`: the one description of a training run.
//!
//! The browser URL, the CLI flags and the JSON record are all views of the same struct, and
//! the struct has exactly one canonical text form, `v=1&model=bert&layers=2&...`. Because a
//! run is reproduced from its URL alone, that text must round-trip bit-exactly (floats
//! included) and every key must be spelled the same way in all three views: the CLI flag
//! `--heads 8` is `set("heads", "8")`, the URL carries `heads=8`, and the JSON record has
//! `"heads": 8`.
//!
//! Percent-encoding: values are emitted unencoded when they only use `[A-Za-z0-9._~:/-]` and
//! every other byte is written as `%XX`. A `+` is a literal plus sign, not a space (this is
//! not `application/x-www-form-urlencoded`); browser code should build values with
//! `encodeURIComponent`, whose output this parser accepts.
//!
//! Validation is split in two: [`RunSpec::set`] checks the syntax and the range of the one
//! value it sets, and [`RunSpec::validate`] re-checks every range and then the constraints
//! that involve several fields, because a CLI sets flags one at a time in arbitrary order.
//! Deserializing from JSON does not validate; call [`RunSpec::validate`] afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Refuse models whose estimated parameter count ([`RunSpec::param_count_estimate`]) exceeds
/// this: the project trains tiny models, and a typo such as `d=40960` should fail fast
/// instead of exhausting memory.
pub const MAX_PARAMS: usize = 50_000_000;

/// Refuse runs where `batch * seq_tokens() * d_model` exceeds this, a proxy for the size of
/// one activation tensor (256 MB of f32).
pub const MAX_ACTIVATIONS: usize = 64_000_000;

/// The longest ViT token sequence accepted, `(img/patch)^2 + 1`; the same bound as `seq`.
pub const MAX_VIT_TOKENS: usize = 2048;

/// Canonical keys, in canonical order (`v` first). `alpha` is emitted only when set.
pub const KEYS: &[&str] = &[
    "v",
    "model",
    "layers",
    "d",
    "heads",
    "ffn",
    "seq",
    "batch",
    "img",
    "patch",
    "classes",
    "patch_ln",
    "attn",
    "gamma",
    "zeta",
    "alpha",
    "gamma_warmup",
    "gate",
    "pi",
    "steps",
    "lr",
    "warmup",
    "sched",
    "wd",
    "ln_wd",
    "b1",
    "b2",
    "eps",
    "clip",
    "dropout",
    "init_std",
    "mask",
    "seed",
    "data",
    "bb_k",
    "bos",
    "eval_every",
    "eval_batches",
];

/// Vocabulary size assumed for text models in [`RunSpec::param_count_estimate`] (byte-level).
const TEXT_VOCAB_ESTIMATE: usize = 256;

/// The clipped-softmax warning fires when uniform attention is within this factor of the
/// clip threshold: `T * p_min >= 0.9`. Exactly at the threshold almost nothing survives the
/// clip, and the small random deviations from uniform at initialisation then zero out about
/// half of the entries, so "barely above" is as bad as "below" in practice.
const CLIP_WARN_MARGIN: f64 = 0.9;

/// Error messages echo at most this many characters of user input.
const MAX_ECHO_CHARS: usize = 64;

/// Longest accepted `data=file:<name>` name, in characters.
const MAX_FILE_NAME_CHARS: usize = 1024;

// ---------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------

/// Which family of model to train. Text: `bert|opt|vit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ModelKind {
    /// Bidirectional encoder trained with masked-language modelling.
    Bert,
    /// Causal decoder trained with next-token prediction.
    Opt,
    /// Vision transformer classifying built-in synthetic images.
    Vit,
}

/// Which attention normalisation to use. Text: `vanilla|clipped|gated|softmax1|sink`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum AttnKind {
    /// Plain softmax attention.
    Vanilla,
    /// Clipped softmax, `clip((ζ − γ)·softmax(x) + γ, 0, 1)` (the paper's Eq. 4).
    Clipped,
    /// Gated attention, `sigmoid(G(x)) ⊙ softmax(QKᵀ/√d)V` (the paper's Eq. 5).
    Gated,
    /// "Softmax + 1": an implicit extra zero logit in the denominator, so a head can put
    /// (almost) no weight anywhere.
    Softmax1,
    /// An extra always-present key slot (attention sink) a head can attend to instead of
    /// the real tokens.
    Sink,
}

/// The gating function `G` of gated attention. Text: `uph|cph|linear|mlp|allheads`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum GateKind {
    /// One learned scalar per head, independent of the input (`unconditional_per_head` in
    /// the paper's code).
    UnconditionalPerHead,
    /// One gate per head and sequence, computed from the sequence (`conditional_per_head`).
    ConditionalPerHead,
    /// One gate per head and token from a linear map of that head's slice of the input
    /// (`conditional_per_token`, the paper's default "Linear" gate).
    Linear,
    /// Like `Linear` but through a small MLP with `d_head / 4` hidden units.
    Mlp,
    /// One linear map from the whole hidden vector to all `H` gates ("All-heads-linear").
    AllHeads,
}

/// The learning-rate schedule after the linear warm-up. Text: `linear|const`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Schedule {
    /// Linear decay to 0 at the last step (HF `get_linear_schedule_with_warmup`, the paper's).
    Linear,
    /// Constant after warm-up, as Gu et al. 2025 and Guo et al. 2024 train: the integrated
    /// learning rate is about twice the linear schedule's, and sinks grow with it.
    Const,
}

/// Where training text comes from. Text: `synthetic`, `tinyshakespeare`, `file:<name>`, or
/// `bb` / `bb:<one of those>` for Bigram-Backcopy sequences built from that text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DataSource {
    /// The built-in synthetic generator (the only source `model=vit` accepts).
    Synthetic,
    /// The built-in tinyshakespeare text (Karpathy's char-rnn corpus, 1.1 MB, public domain),
    /// the corpus of docs/results.md: native builds embed it, the browser app fetches it.
    Shakespeare,
    /// A named text file; the name is opaque here and resolved by the caller.
    File(String),
    /// Bigram-Backcopy sequences (Guo et al. 2024, arXiv 2410.13835) generated from the bigram
    /// table of the inner source (never itself `bb`): text `bb` (tinyshakespeare) or
    /// `bb:<source>`. See [`crate::data::bigram_backcopy`].
    BigramBackcopy(Box<DataSource>),
}

/// Implements `Display`, `FromStr` (with a `String` error) and the `String` conversions that
/// serde uses, from one table of canonical spellings, so the three cannot drift apart.
macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in canonical order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The canonical text of this variant.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "expected one of {}, got `{}`",
                        [$($text),+].join("|"),
                        echo(s)
                    )),
                }
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.as_str().to_owned()
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                value.parse()
            }
        }
    };
}

text_enum!(ModelKind { Bert => "bert", Opt => "opt", Vit => "vit" });
text_enum!(Schedule { Linear => "linear", Const => "const" });
text_enum!(AttnKind {
    Vanilla => "vanilla",
    Clipped => "clipped",
    Gated => "gated",
    Softmax1 => "softmax1",
    Sink => "sink",
});
text_enum!(GateKind {
    UnconditionalPerHead => "uph",
    ConditionalPerHead => "cph",
    Linear => "linear",
    Mlp => "mlp",
    AllHeads => "allheads",
});

impl fmt::Display for DataSource {
    /// The unencoded text (`file:my data.txt`); [`RunSpec::to_canonical`] percent-encodes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Synthetic => f.write_str("synthetic"),
            DataSource::Shakespeare => f.write_str("tinyshakespeare"),
            DataSource::File(name) => write!(f, "file:{name}"),
            DataSource::BigramBackcopy(inner) if **inner == DataSource::Shakespeare => {
                f.write_str("bb")
            }
            DataSource::BigramBackcopy(inner) => write!(f, "bb:{inner}"),
        }
    }
}

impl FromStr for DataSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "synthetic" {
            return Ok(DataSource::Synthetic);
        }
        if s == "tinyshakespeare" {
            return Ok(DataSource::Shakespeare);
        }
        if s == "bb" {
            return Ok(DataSource::BigramBackcopy(Box::new(
                DataSource::Shakespeare,
            )));
        }
        if let Some(inner) = s.strip_prefix("bb:") {
            if inner == "bb" || inner.starts_with("bb:") {
                return Err("`bb:` takes a text source (synthetic, tinyshakespeare or \
                            file:<name>), not another `bb`"
                    .to_owned());
            }
            return Ok(DataSource::BigramBackcopy(Box::new(inner.parse()?)));
        }
        let Some(name) = s.strip_prefix("file:") else {
            return Err(format!(
                "expected `synthetic`, `tinyshakespeare`, `file:<name>`, `bb` or `bb:<source>`, \
                 got `{}`",
                echo(s)
            ));
        };
        if name.is_empty() {
            return Err("the file name after `file:` is empty".to_owned());
        }
        let chars = name.chars().count();
        if chars > MAX_FILE_NAME_CHARS {
            return Err(format!(
                "the file name is {chars} characters long, at most {MAX_FILE_NAME_CHARS} allowed"
            ));
        }
        // A control character (NUL above all) cannot be part of a usable path and would make
        // the URL and the log lines misleading.
        if name.chars().any(char::is_control) {
            return Err(format!(
                "the file name `{}` contains a control character",
                echo(name)
            ));
        }
        Ok(DataSource::File(name.to_owned()))
    }
}

impl From<DataSource> for String {
    fn from(value: DataSource) -> String {
        value.to_string()
    }
}

impl TryFrom<String> for DataSource {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl DataSource {
    /// The source text actually read: the inner source of `bb:…`, else itself.
    pub fn text_source(&self) -> &DataSource {
        match self {
            DataSource::BigramBackcopy(inner) => inner,
            other => other,
        }
    }

    /// The file name to read or upload, if the text comes from a file (also under `bb:`).
    pub fn file_name(&self) -> Option<&str> {
        match self.text_source() {
            DataSource::File(name) => Some(name),
            _ => None,
        }
    }

    pub fn is_bigram_backcopy(&self) -> bool {
        matches!(self, DataSource::BigramBackcopy(_))
    }
}

// ---------------------------------------------------------------------------------------
// Error
// ---------------------------------------------------------------------------------------

/// A refused spec: which key is wrong and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The canonical key at fault (`heads`, `pi`, ...), the unknown key itself, or the
    /// malformed `key=value` segment.
    pub field: String,
    /// What was given and what is allowed.
    pub message: String,
}

impl SpecError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        SpecError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

// ---------------------------------------------------------------------------------------
// RunSpec
// ---------------------------------------------------------------------------------------

/// Everything that determines a training run. See the module docs for the text form.
///
/// The serde field names are the canonical keys, so the JSON record reads like the URL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    /// Spec format version; only 1 exists. Key `v`. Default: 1.
    #[serde(rename = "v")]
    pub version: u32,
    /// Model family. Key `model`. Default: `bert`.
    pub model: ModelKind,
    /// L, the number of transformer blocks. Key `layers`, range 1..=48. Default: 2.
    pub layers: usize,
    /// d_model, the hidden size. Key `d`, range 8..=4096. Default: 64.
    #[serde(rename = "d")]
    pub d_model: usize,
    /// H, the number of attention heads; must divide `d` with `d / H >= 4`. Key `heads`.
    /// Default: 4.
    pub heads: usize,
    /// d_ff, the FFN inner size (`intermediate_size` in HF configs). Key `ffn`,
    /// range 1..=16384. Default: 256.
    #[serde(rename = "ffn")]
    pub d_ff: usize,
    /// T, tokens per sequence for bert/opt, including the special CLS/SEP or BOS tokens.
    /// Ignored by vit, whose T is `(img/patch)^2 + 1`. Key `seq`, range 4..=2048.
    /// Default: 32.
    #[serde(rename = "seq")]
    pub seq_len: usize,
    /// Sequences (or images) per training batch. Key `batch`, range 1..=4096. Default: 16.
    pub batch: usize,
    /// ViT image side in pixels. Key `img`, range 4..=512. Default: 32.
    #[serde(rename = "img")]
    pub image: usize,
    /// ViT patch side in pixels; must divide `img`. Key `patch`. Default: 4.
    pub patch: usize,
    /// ViT number of classes. Key `classes`, range 2..=16. Default: 4.
    pub classes: usize,
    /// ViT LayerNorm right after the patch embedding, as in the paper's ViT. Key
    /// `patch_ln` (`true|false|1|0`). Default: true.
    pub patch_ln: bool,
    /// Attention variant. Key `attn`. Default: `vanilla`.
    pub attn: AttnKind,
    /// γ (gamma), the lower stretch of clipped softmax in the paper's Eq. 4 (`gamma` in the
    /// paper's code); must be <= 0. Overridden by `alpha` when that is set. Key `gamma`.
    /// Default: -0.015 (α ≈ 0.5 at T = 32: clips heads that want to do nothing without clipping the near-uniform attention of a fresh model).
    pub gamma: f64,
    /// ζ (zeta), the upper stretch of clipped softmax in the paper's Eq. 4 (`eta` in the
    /// paper's code); must be >= 1. Key `zeta`. Default: 1.0.
    pub zeta: f64,
    /// α (alpha): when set, γ = −α/T instead of `gamma` and ζ = 1 whatever `zeta` says
    /// (`--alpha` in the paper's code hard-codes `eta=1.0`), so the clip threshold scales with
    /// the sequence length. Must be > 0. Key `alpha`
    /// (`none` or empty for unset; emitted only when set). Default: unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Steps over which clipped softmax's γ ramps linearly from 0 to its value (ζ likewise
    /// from 1), so a fresh model's near-uniform attention is not clipped to zero at α ≥ 1
    /// (the "dead start"); 0 uses the full γ from the first step, as the paper does. Not in
    /// the paper. Key `gamma_warmup`, range 0..=10000000. Default: 0.
    pub gamma_warmup: usize,
    /// The gating function G(x) of gated attention (the paper's Eq. 5). Key `gate`.
    /// Default: `linear`.
    pub gate: GateKind,
    /// π_init, the gate's initial open probability: the gate bias starts at logit(π_init)
    /// (`attn_gate_init` in the paper's code). Open interval (0, 1). Key `pi`.
    /// Default: 0.25.
    #[serde(rename = "pi")]
    pub pi_init: f64,
    /// Number of optimiser steps. Key `steps`, range 1..=10000000. Default: 300.
    pub steps: usize,
    /// Peak learning rate, reached after warm-up. Key `lr`, in (0, 10]. Default: 1e-3.
    pub lr: f64,
    /// Linear warm-up steps, followed by linear decay to 0 (more than `steps` only warns). Key `warmup`.
    /// Default: 30.
    pub warmup: usize,
    /// What the learning rate does after warm-up: `linear` decays to 0 at the last step (the
    /// paper's), `const` holds it. Key `sched`. Default: `linear`.
    pub sched: Schedule,
    /// AdamW decoupled weight decay. Key `wd`, in [0, 1]. Default: 0.01.
    #[serde(rename = "wd")]
    pub weight_decay: f64,
    /// Also decay LayerNorm γ (the paper's OPT scripts pass `--wd_LN_gamma`; its Table 6 shows
    /// the effect). Biases and LayerNorm β are never decayed. Key `ln_wd`. Default: false.
    pub ln_wd: bool,
    /// Adam β₁. Key `b1`, in [0, 1). Default: 0.9.
    #[serde(rename = "b1")]
    pub beta1: f64,
    /// Adam β₂. Key `b2`, in [0, 1). Default: 0.999.
    #[serde(rename = "b2")]
    pub beta2: f64,
    /// Adam ε. Key `eps`, in (0, 1]. Default: 1e-8.
    pub eps: f64,
    /// Global gradient-norm clip; 0 disables clipping. Key `clip`, >= 0. Default: 1.0.
    pub clip: f64,
    /// Dropout probability during training, on the embeddings, the attention and FFN outputs
    /// before their residual sums and, for BERT, the attention probabilities (HF's
    /// `hidden_dropout_prob` / `attention_probs_dropout_prob`, 0.1 in the paper's BERT and
    /// OPT runs). Masks come from the run seed's `Dropout` stream. Key `dropout`, in [0, 1).
    /// Default: 0.
    pub dropout: f64,
    /// Standard deviation of the normal init of embeddings, FFN and output heads (HF's
    /// `initializer_range`); Q/K/V/out projections keep PyTorch's default Linear init.
    /// Key `init_std`, in (0, 1]. Default: 0.02.
    pub init_std: f64,
    /// BERT masking probability. Key `mask`, open interval (0, 1). Default: 0.15.
    #[serde(rename = "mask")]
    pub mask_prob: f64,
    /// The single run seed from which every random stream is derived. Key `seed`.
    /// Default: 0.
    pub seed: u64,
    /// Training data source; `model=vit` accepts only `synthetic`. Key `data`.
    /// Default: `synthetic`.
    pub data: DataSource,
    /// Bigram-Backcopy triggers: the k most frequent characters of the source text, after
    /// which the next character copies the one before the trigger. Used only with `data=bb…`.
    /// Key `bb_k`, range 1..=16. Default: 3 (Guo et al.'s setting).
    pub bb_k: usize,
    /// OPT only: whether every row starts with the fixed \[BOS\] token at position 0. Off,
    /// a row is a plain window of text (position 0 holds the character before it), as in
    /// the paper's OPT pipeline, which chunks concatenated text so that rows start
    /// mid-document. A fixed BOS hands vanilla heads a ready-made sink (a unique token at a
    /// unique position), so they can do nothing without growing outliers. Key `bos`.
    /// Default: true.
    pub bos: bool,
    /// Evaluate every N steps; 0 evaluates only at the end. Key `eval_every`. Default: 50.
    pub eval_every: usize,
    /// Held-out batches per evaluation. Key `eval_batches`, range 1..=10000. Default: 8.
    pub eval_batches: usize,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            version: 1,
            model: ModelKind::Bert,
            layers: 2,
            d_model: 64,
            heads: 4,
            d_ff: 256,
            seq_len: 32,
            batch: 16,
            image: 32,
            patch: 4,
            classes: 4,
            patch_ln: true,
            attn: AttnKind::Vanilla,
            gamma: -0.015,
            zeta: 1.0,
            alpha: None,
            gamma_warmup: 0,
            gate: GateKind::Linear,
            pi_init: 0.25,
            steps: 300,
            lr: 1e-3,
            warmup: 30,
            sched: Schedule::Linear,
            weight_decay: 0.01,
            ln_wd: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: 1.0,
            dropout: 0.0,
            init_std: 0.02,
            mask_prob: 0.15,
            seed: 0,
            data: DataSource::Synthetic,
            bb_k: 3,
            bos: true,
            eval_every: 50,
            eval_batches: 8,
        }
    }
}

impl RunSpec {
    /// Strict parse of the canonical text (any key order, an optional leading `?` or `#`,
    /// empty segments ignored, missing keys defaulted), followed by [`RunSpec::validate`].
    pub fn parse(text: &str) -> Result<RunSpec, SpecError> {
        let text = text.strip_prefix(['?', '#']).unwrap_or(text);
        let mut pairs = Vec::new();
        for segment in text.split('&').filter(|s| !s.is_empty()) {
            let Some((key, value)) = segment.split_once('=') else {
                return Err(SpecError::new(
                    &echo(segment),
                    "expected a `key=value` segment, found no `=`",
                ));
            };
            pairs.push((key, value));
        }
        // The version decides how everything else is read, so a `v=2` spec is refused for
        // its version rather than for whichever unknown key happens to come first.
        pairs.sort_by_key(|&(key, _)| key != "v");

        let mut spec = RunSpec::default();
        let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
        for (key, raw) in pairs {
            if !KEYS.contains(&key) {
                return Err(unknown_key(key));
            }
            if seen.contains(&key) {
                return Err(SpecError::new(key, "given more than once"));
            }
            seen.push(key);
            let value = percent_decode(raw).map_err(|message| SpecError::new(key, message))?;
            spec.set(key, &value)?;
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Sets one field from its canonical key and (already percent-decoded) text value, as a
    /// CLI flag does. Checks the value's syntax and its own range; constraints between
    /// fields are left to [`RunSpec::validate`]. On error `self` is unchanged.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SpecError> {
        // Assign into a copy so a value that parses but is out of range never lands in self.
        let mut next = self.clone();
        match key {
            "v" => next.version = parse_num(key, value)?,
            "model" => next.model = parse_text(key, value)?,
            "layers" => next.layers = parse_num(key, value)?,
            "d" => next.d_model = parse_num(key, value)?,
            "heads" => next.heads = parse_num(key, value)?,
            "ffn" => next.d_ff = parse_num(key, value)?,
            "seq" => next.seq_len = parse_num(key, value)?,
            "batch" => next.batch = parse_num(key, value)?,
            "img" => next.image = parse_num(key, value)?,
            "patch" => next.patch = parse_num(key, value)?,
            "classes" => next.classes = parse_num(key, value)?,
            "patch_ln" => next.patch_ln = parse_bool(key, value)?,
            "attn" => next.attn = parse_text(key, value)?,
            "gamma" => next.gamma = parse_f64(key, value)?,
            "zeta" => next.zeta = parse_f64(key, value)?,
            "alpha" => {
                next.alpha = match value {
                    "" | "none" => None,
                    _ => Some(parse_f64(key, value)?),
                }
            }
            "gamma_warmup" => next.gamma_warmup = parse_num(key, value)?,
            "gate" => next.gate = parse_text(key, value)?,
            "pi" => next.pi_init = parse_f64(key, value)?,
            "steps" => next.steps = parse_num(key, value)?,
            "lr" => next.lr = parse_f64(key, value)?,
            "warmup" => next.warmup = parse_num(key, value)?,
            "sched" => next.sched = parse_text(key, value)?,
            "wd" => next.weight_decay = parse_f64(key, value)?,
            "ln_wd" => next.ln_wd = parse_bool(key, value)?,
            "b1" => next.beta1 = parse_f64(key, value)?,
            "b2" => next.beta2 = parse_f64(key, value)?,
            "eps" => next.eps = parse_f64(key, value)?,
            "clip" => next.clip = parse_f64(key, value)?,
            "dropout" => next.dropout = parse_f64(key, value)?,
            "init_std" => next.init_std = parse_f64(key, value)?,
            "mask" => next.mask_prob = parse_f64(key, value)?,
            "seed" => next.seed = parse_num(key, value)?,
            "data" => next.data = parse_text(key, value)?,
            "bb_k" => next.bb_k = parse_num(key, value)?,
            "bos" => next.bos = parse_bool(key, value)?,
            "eval_every" => next.eval_every = parse_num(key, value)?,
            "eval_batches" => next.eval_batches = parse_num(key, value)?,
            _ => return Err(unknown_key(key)),
        }
        next.check_field(key)?;
        *self = next;
        Ok(())
    }

    /// The canonical, unencoded text of one field (`alpha` gives `none` when unset), or
    /// `None` for an unknown key. `set(key, &get(key).unwrap())` is always a no-op.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "v" => self.version.to_string(),
            "model" => self.model.to_string(),
            "layers" => self.layers.to_string(),
            "d" => self.d_model.to_string(),
            "heads" => self.heads.to_string(),
            "ffn" => self.d_ff.to_string(),
            "seq" => self.seq_len.to_string(),
            "batch" => self.batch.to_string(),
            "img" => self.image.to_string(),
            "patch" => self.patch.to_string(),
            "classes" => self.classes.to_string(),
            "patch_ln" => self.patch_ln.to_string(),
            "attn" => self.attn.to_string(),
            "gamma" => format_f64(self.gamma),
            "zeta" => format_f64(self.zeta),
            "alpha" => self.alpha.map_or_else(|| "none".to_owned(), format_f64),
            "gamma_warmup" => self.gamma_warmup.to_string(),
            "gate" => self.gate.to_string(),
            "pi" => format_f64(self.pi_init),
            "steps" => self.steps.to_string(),
            "lr" => format_f64(self.lr),
            "warmup" => self.warmup.to_string(),
            "sched" => self.sched.to_string(),
            "wd" => format_f64(self.weight_decay),
            "ln_wd" => self.ln_wd.to_string(),
            "b1" => format_f64(self.beta1),
            "b2" => format_f64(self.beta2),
            "eps" => format_f64(self.eps),
            "clip" => format_f64(self.clip),
            "dropout" => format_f64(self.dropout),
            "init_std" => format_f64(self.init_std),
            "mask" => format_f64(self.mask_prob),
            "seed" => self.seed.to_string(),
            "data" => self.data.to_string(),
            "bb_k" => self.bb_k.to_string(),
            "bos" => self.bos.to_string(),
            "eval_every" => self.eval_every.to_string(),
            "eval_batches" => self.eval_batches.to_string(),
            _ => return None,
        })
    }

    /// Every range check and every cross-field constraint. The first failure is returned,
    /// checking single fields in canonical key order before cross-field constraints.
    pub fn validate(&self) -> Result<(), SpecError> {
        for key in KEYS {
            self.check_field(key)?;
        }

        // The paper's per-head conditional gate pools its logits over all tokens, future ones
        // included; in a causal model that lets a position see the future.
        if self.model == ModelKind::Opt
            && self.attn == AttnKind::Gated
            && self.gate == GateKind::ConditionalPerHead
        {
            return Err(SpecError::new(
                "gate",
                "gate=cph pools over all tokens, which breaks causality in model=opt; \
                 use linear, mlp, allheads or uph",
            ));
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return Err(SpecError::new(
                "heads",
                format!("heads={} does not divide d={}", self.heads, self.d_model),
            ));
        }
        if self.d_head() < 4 {
            return Err(SpecError::new(
                "heads",
                format!(
                    "d/heads = {}/{} = {} is below 4; each head needs at least 4 dimensions \
                     (the MLP gate uses d_head/4 hidden units)",
                    self.d_model,
                    self.heads,
                    self.d_head()
                ),
            ));
        }
        // Checked for every model so the URL never carries an inconsistent pair, even where
        // the fields are unused.
        if !self.image.is_multiple_of(self.patch) {
            return Err(SpecError::new(
                "patch",
                format!("patch={} does not divide img={}", self.patch, self.image),
            ));
        }
        if self.model == ModelKind::Vit {
            let tokens = self.seq_tokens();
            if tokens > MAX_VIT_TOKENS {
                return Err(SpecError::new(
                    "patch",
                    format!(
                        "vit would use (img/patch)^2 + 1 = ({}/{})^2 + 1 = {tokens} tokens, \
                         at most {MAX_VIT_TOKENS} allowed; use a larger patch",
                        self.image, self.patch
                    ),
                ));
            }
            if self.data != DataSource::Synthetic {
                return Err(SpecError::new(
                    "data",
                    "model=vit trains on built-in synthetic images; only `synthetic` is allowed",
                ));
            }
        }

        let params = self.param_count_estimate();
        if params > MAX_PARAMS {
            return Err(SpecError::new(
                "d",
                format!(
                    "the model would have about {params} parameters, above the limit of \
                     {MAX_PARAMS}; reduce d, ffn or layers"
                ),
            ));
        }
        let activations = self
            .batch
            .saturating_mul(self.seq_tokens())
            .saturating_mul(self.d_model);
        if activations > MAX_ACTIVATIONS {
            return Err(SpecError::new(
                "batch",
                format!(
                    "batch*tokens*d = {}*{}*{} = {activations} exceeds the activation limit \
                     of {MAX_ACTIVATIONS}; reduce batch, seq or d",
                    self.batch,
                    self.seq_tokens(),
                    self.d_model
                ),
            ));
        }
        Ok(())
    }

    /// The canonical text: every key in [`KEYS`] order (`alpha` only when set), values
    /// percent-encoded where needed, floats in their shortest exact form.
    pub fn to_canonical(&self) -> String {
        let mut out = String::new();
        for &key in KEYS {
            if key == "alpha" && self.alpha.is_none() {
                continue;
            }
            let Some(value) = self.get(key) else { continue };
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(key);
            out.push('=');
            percent_encode_into(&value, &mut out);
        }
        out
    }

    /// A short run identifier: the low 32 bits of the FNV-1a 64-bit hash of
    /// [`RunSpec::to_canonical`], as 8 lowercase hex digits.
    pub fn fingerprint(&self) -> String {
        const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = self
            .to_canonical()
            .bytes()
            .fold(OFFSET_BASIS, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
        format!("{:08x}", hash & 0xffff_ffff)
    }

    /// The γ clipped softmax actually uses: −α/T when `alpha` is set (T = [`Self::seq_tokens`]),
    /// else `gamma`.
    pub fn gamma_effective(&self) -> f64 {
        match self.alpha {
            Some(alpha) => -alpha / self.seq_tokens().max(1) as f64,
            None => self.gamma,
        }
    }

    /// ζ as the model uses it: 1 when `alpha` is set (as the paper's `--alpha`), else `zeta`.
    pub fn zeta_effective(&self) -> f64 {
        if self.alpha.is_some() { 1.0 } else { self.zeta }
    }

    /// T, the tokens per sequence the model sees: `seq` for bert/opt, `(img/patch)^2 + 1`
    /// (patches plus CLS) for vit.
    pub fn seq_tokens(&self) -> usize {
        match self.model {
            ModelKind::Bert | ModelKind::Opt => self.seq_len,
            ModelKind::Vit => {
                // Saturating so an unvalidated spec (patch=0, huge img) cannot panic here.
                let side = self.image.checked_div(self.patch).unwrap_or(0);
                side.saturating_mul(side).saturating_add(1)
            }
        }
    }

    /// Dimensions per head, `d / heads` (0 when `heads` is 0).
    pub fn d_head(&self) -> usize {
        self.d_model.checked_div(self.heads).unwrap_or(0)
    }

    /// A rough parameter count used only to refuse absurd sizes: per block 4d² + 4d
    /// (attention), 2·d·d_ff + d_ff + d (FFN) and 4d (two LayerNorms); plus T·d position
    /// embeddings and, for text models, 256·d token embeddings, or for vit patch²·d + d
    /// (patch projection) and classes·d (classifier). Gates and final norms are ignored.
    /// Saturates instead of overflowing.
    pub fn param_count_estimate(&self) -> usize {
        let mul = |a: usize, b: usize| a.saturating_mul(b);
        let d = self.d_model;
        let attention = mul(4, mul(d, d)).saturating_add(mul(4, d));
        let ffn = mul(2, mul(d, self.d_ff))
            .saturating_add(self.d_ff)
            .saturating_add(d);
        let norms = mul(4, d);
        let blocks = mul(
            self.layers,
            attention.saturating_add(ffn).saturating_add(norms),
        );
        let positions = mul(self.seq_tokens(), d);
        let inputs_and_head = match self.model {
            ModelKind::Bert | ModelKind::Opt => mul(TEXT_VOCAB_ESTIMATE, d),
            ModelKind::Vit => mul(mul(self.patch, self.patch), d)
                .saturating_add(d)
                .saturating_add(mul(self.classes, d)),
        };
        blocks
            .saturating_add(positions)
            .saturating_add(inputs_and_head)
    }

    /// Advice that does not block a run (an empty list when there is none).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.attn == AttnKind::Clipped
            && let Some(warning) = self.clipped_softmax_warning()
        {
            warnings.push(warning);
        }
        // Not an error: short test runs keep the default warm-up; the schedule then simply
        // never reaches the peak learning rate.
        if self.warmup > self.steps {
            warnings.push(format!(
                "warmup={} exceeds steps={}: the learning rate never reaches lr={}",
                self.warmup,
                self.steps,
                format_f64(self.lr)
            ));
        }
        if self.warmup == 0 && self.lr > 1e-2 {
            warnings.push(format!(
                "lr={} with no warm-up: Adam's first steps at a high learning rate often \
                 diverge; consider warmup of about 10% of steps",
                format_f64(self.lr)
            ));
        }
        warnings
    }

    /// Clipped softmax outputs exactly zero wherever softmax(x) <= p_min = −γ/(ζ−γ). At
    /// initialisation attention is close to uniform (1/T per key), so if 1/T is at or near
    /// p_min, nearly every probability is clipped, the attention output and its gradient
    /// vanish, and the heads may never start to learn.
    fn clipped_softmax_warning(&self) -> Option<String> {
        // A γ warm-up starts from plain softmax, so nothing is clipped at initialisation.
        if self.gamma_warmup > 0 {
            return None;
        }
        let gamma = self.gamma_effective();
        let zeta = self.zeta_effective();
        let p_min = -gamma / (zeta - gamma);
        let tokens = self.seq_tokens().max(1);
        let t = tokens as f64;
        // The least-attended row is the one with the most keys: every row for a
        // bidirectional model, the last row (T keys) for a causal one.
        let near_threshold = t * p_min >= CLIP_WARN_MARGIN;
        if !near_threshold {
            return None;
        }

        let row_detail = if self.model == ModelKind::Opt {
            // Causal row i attends to i + 1 keys with uniform probability 1/(i + 1).
            let rows = |margin: f64| (1..=tokens).filter(|&n| n as f64 * p_min >= margin).count();
            let fully = rows(1.0);
            let near = rows(CLIP_WARN_MARGIN) - fully;
            let near_detail = if near > 0 {
                format!(" and {near} more are within 10% of the threshold")
            } else {
                String::new()
            };
            format!(
                " For this causal model, {fully} of {tokens} rows ({:.0}%) would be fully \
                 clipped when uniform{near_detail}.",
                100.0 * fully as f64 / t
            )
        } else {
            String::new()
        };
        let position = if t * p_min >= 1.0 {
            "at or below".to_owned()
        } else {
            format!("only {:.1}% above", 100.0 * (1.0 / (t * p_min) - 1.0))
        };
        // Largest |γ| that keeps 1/T above p_min with the same margin: T·p_min < margin.
        let max_abs_gamma = CLIP_WARN_MARGIN * zeta / (t - CLIP_WARN_MARGIN);
        let max_alpha = max_abs_gamma * t;
        Some(format!(
            "clipped softmax: uniform attention over T={tokens} tokens (probability 1/T = {}) \
             is {position} the clip threshold p_min = -gamma/(zeta-gamma) = {} \
             (gamma={}, zeta={}), so near-uniform attention at initialisation is clipped to \
             exactly zero; the attention output and its gradient vanish and the model may \
             never train.{row_detail} Keep |gamma| < (zeta-gamma)/T with some margin: here \
             |gamma| < {}, i.e. alpha < {:.2} (alpha < 1 when zeta = 1).",
            approx(1.0 / t),
            approx(p_min),
            format_f64(gamma),
            format_f64(zeta),
            approx(max_abs_gamma),
            max_alpha,
        ))
    }

    /// The range check of one field on its own (cross-field constraints live in
    /// [`RunSpec::validate`]). Unknown keys pass, as [`RunSpec::set`] has refused them.
    fn check_field(&self, key: &str) -> Result<(), SpecError> {
        match key {
            "v" if self.version != 1 => Err(SpecError::new(
                key,
                format!(
                    "unsupported spec version {}; this build reads only v=1",
                    self.version
                ),
            )),
            "layers" => check_range(key, self.layers, 1, 48),
            "d" => check_range(key, self.d_model, 8, 4096),
            "heads" => check_range(key, self.heads, 1, 4096),
            "ffn" => check_range(key, self.d_ff, 1, 16384),
            "seq" => check_range(key, self.seq_len, 4, 2048),
            "batch" => check_range(key, self.batch, 1, 4096),
            "img" => check_range(key, self.image, 4, 512),
            "patch" => check_range(key, self.patch, 1, 512),
            "classes" => check_range(key, self.classes, 2, 16),
            "gamma" => check_f64(key, self.gamma, self.gamma <= 0.0, "<= 0"),
            "zeta" => check_f64(key, self.zeta, self.zeta >= 1.0, ">= 1"),
            "alpha" => match self.alpha {
                Some(alpha) => check_f64(key, alpha, alpha > 0.0, "> 0 (or `none`)"),
                None => Ok(()),
            },
            "pi" => check_f64(key, self.pi_init, open_unit(self.pi_init), "in (0, 1)"),
            "steps" => check_range(key, self.steps, 1, 10_000_000),
            "gamma_warmup" => check_range(key, self.gamma_warmup, 0, 10_000_000),
            "bb_k" => check_range(key, self.bb_k, 1, 16),
            "lr" => check_f64(key, self.lr, self.lr > 0.0 && self.lr <= 10.0, "in (0, 10]"),
            "wd" => check_f64(
                key,
                self.weight_decay,
                (0.0..=1.0).contains(&self.weight_decay),
                "in [0, 1]",
            ),
            "b1" => check_f64(
                key,
                self.beta1,
                (0.0..1.0).contains(&self.beta1),
                "in [0, 1)",
            ),
            "b2" => check_f64(
                key,
                self.beta2,
                (0.0..1.0).contains(&self.beta2),
                "in [0, 1)",
            ),
            "eps" => check_f64(
                key,
                self.eps,
                self.eps > 0.0 && self.eps <= 1.0,
                "in (0, 1]",
            ),
            "clip" => check_f64(key, self.clip, self.clip >= 0.0, ">= 0 (0 disables)"),
            "dropout" => check_f64(
                key,
                self.dropout,
                (0.0..1.0).contains(&self.dropout),
                "in [0, 1)",
            ),
            "init_std" => check_f64(
                key,
                self.init_std,
                self.init_std > 0.0 && self.init_std <= 1.0,
                "in (0, 1]",
            ),
            "mask" => check_f64(key, self.mask_prob, open_unit(self.mask_prob), "in (0, 1)"),
            // Re-check the text rules in case the spec was built as a struct or from JSON.
            "data" => {
                let text = self.data.to_string();
                text.parse::<DataSource>()
                    .map(drop)
                    .map_err(|message| SpecError::new(key, message))
            }
            "eval_batches" => check_range(key, self.eval_batches, 1, 10_000),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for RunSpec {
    /// The canonical text, as [`RunSpec::to_canonical`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical())
    }
}

impl FromStr for RunSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        RunSpec::parse(s)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// User input as shown in messages: at most [`MAX_ECHO_CHARS`] characters (cut on a char
/// boundary) so a megabyte of garbage does not become a megabyte of error.
fn echo(text: &str) -> String {
    if text.is_empty() {
        // A field must never be blank: `=5` names "(empty)" rather than nothing.
        return "(empty)".to_owned();
    }
    let mut chars = text.chars();
    let mut shown: String = chars.by_ref().take(MAX_ECHO_CHARS).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

fn unknown_key(key: &str) -> SpecError {
    SpecError::new(
        &echo(key),
        format!("unknown key (known keys: {})", KEYS.join(", ")),
    )
}

fn parse_num<T: FromStr>(key: &str, value: &str) -> Result<T, SpecError> {
    value.parse().map_err(|_| {
        SpecError::new(
            key,
            format!(
                "expected a non-negative whole number, got `{}`",
                echo(value)
            ),
        )
    })
}

/// Parses a finite float. Rust accepts both `0.001` and `1e-3`, and also `nan`/`inf`, which
/// are refused here because they cannot describe a run.
fn parse_f64(key: &str, value: &str) -> Result<f64, SpecError> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(SpecError::new(
            key,
            format!("expected a finite number, got `{}`", echo(value)),
        )),
        Err(_) => Err(SpecError::new(
            key,
            format!("expected a number, got `{}`", echo(value)),
        )),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, SpecError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(SpecError::new(
            key,
            format!("expected one of true|false|1|0, got `{}`", echo(value)),
        )),
    }
}

fn parse_text<T: FromStr<Err = String>>(key: &str, value: &str) -> Result<T, SpecError> {
    value
        .parse()
        .map_err(|message| SpecError::new(key, message))
}

fn check_range(key: &str, value: usize, lo: usize, hi: usize) -> Result<(), SpecError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(SpecError::new(
            key,
            format!("must be in {lo}..={hi}, got {value}"),
        ))
    }
}

/// `ok` is the field's own condition; written so that NaN fails it (every comparison with
/// NaN is false), and non-finite values are refused first with a clearer message.
fn check_f64(key: &str, value: f64, ok: bool, allowed: &str) -> Result<(), SpecError> {
    if !value.is_finite() {
        Err(SpecError::new(
            key,
            format!("must be a finite number, got {value}"),
        ))
    } else if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            key,
            format!("must be {allowed}, got {}", format_f64(value)),
        ))
    }
}

/// A value for a human to read, not to parse back: 4 decimals, or 4 significant digits
/// when that would round a small value away.
fn approx(x: f64) -> String {
    if x.abs() >= 1e-3 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn open_unit(x: f64) -> bool {
    x > 0.0 && x < 1.0
}

/// The shorter of Rust's `{}` and `{:e}` forms (`{}` on a tie). Both print the shortest
/// digits that parse back to the same f64, so the canonical text round-trips bit-exactly;
/// the choice only keeps `1e-8` from being spelled `0.00000001`.
fn format_f64(x: f64) -> String {
    let plain = format!("{x}");
    let sci = format!("{x:e}");
    if plain.len() > sci.len() { sci } else { plain }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'/' | b'-')
}

fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Decodes every `%XX`; a `%` not followed by two hex digits, or bytes that are not UTF-8
/// once decoded, are errors rather than being passed through, so a mangled URL is noticed.
pub(crate) fn percent_decode(raw: &str) -> Result<String, String> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let decoded = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&hi), Some(&lo)) => hex(hi).zip(hex(lo)).map(|(hi, lo)| hi << 4 | lo),
                _ => None,
            };
            let Some(decoded) = decoded else {
                return Err(format!(
                    "invalid percent-escape in `{}` (expected `%` and two hex digits)",
                    echo(raw)
                ));
            };
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| format!("`{}` is not valid UTF-8 after percent-decoding", echo(raw)))
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
