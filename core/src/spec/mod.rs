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
//!
//! Every key is described once, in [`KEY_TABLE`]: its allowed values, default, meaning and
//! the paper's name. Canonical order, [`RunSpec::set`], [`RunSpec::get`], the range checks
//! and the README's key table ([`readme_key_table`]) are read from it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod keys;
mod kinds;
mod text;

pub use keys::{Allowed, KEY_TABLE, KEYS, Key, key, readme_key_table};
pub(crate) use kinds::text_enum;
pub use kinds::{AttnKind, DataSource, GateKind, ModelKind, Schedule};
use text::{approx, format_f64, percent_encode_into};
pub(crate) use text::{echo, percent_decode};

/// Refuse models whose estimated parameter count ([`RunSpec::param_count_estimate`]) exceeds
/// this: the paper's largest model (OPT-1.3B) fits, and a typo such as `d=40960` fails fast
/// instead of exhausting memory.
pub const MAX_PARAMS: usize = 2_000_000_000;

/// The browser's own, lower limit ([`RunSpec::validate_for_browser`]): a tab shares the user's
/// GPU and memory with everything else, and the paper-scale presets are CLI work.
pub const BROWSER_MAX_PARAMS: usize = 50_000_000;

/// Refuse runs where `batch * seq_tokens() * d_model` exceeds this, a proxy for the size of
/// one activation tensor (4 GB of f32; the browser allows 256 MB).
pub const MAX_ACTIVATIONS: usize = 1_000_000_000;

/// The browser's limit on `batch * seq_tokens() * d_model` (256 MB of f32).
pub const BROWSER_MAX_ACTIVATIONS: usize = 64_000_000;

/// The longest ViT token sequence accepted, `(img/patch)^2 + 1`; the same bound as `seq`.
pub const MAX_VIT_TOKENS: usize = 2048;

/// Vocabulary size assumed for text models in [`RunSpec::param_count_estimate`] (byte-level).
const TEXT_VOCAB_ESTIMATE: usize = 256;

/// The clipped-softmax warning fires when uniform attention is within this factor of the
/// clip threshold: `T * p_min >= 0.9`. Exactly at the threshold almost nothing survives the
/// clip, and the small random deviations from uniform at initialisation then zero out about
/// half of the entries, so "barely above" is as bad as "below" in practice.
const CLIP_WARN_MARGIN: f64 = 0.9;

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
/// The serde field names are the canonical keys, so the JSON record reads like the URL. Each
/// field's key, default, allowed values and paper name are in [`KEY_TABLE`]; the field docs
/// add only what a table line cannot say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    /// Key `v`: the spec format version.
    #[serde(rename = "v")]
    pub version: u32,
    /// Key `model`.
    pub model: ModelKind,
    /// Key `layers`: L, the number of transformer blocks.
    pub layers: usize,
    /// Key `d`: d_model, the hidden size.
    #[serde(rename = "d")]
    pub d_model: usize,
    /// Key `heads`: H, the number of attention heads.
    pub heads: usize,
    /// Key `ffn`: d_ff, the FFN inner size (`intermediate_size` in HF configs).
    #[serde(rename = "ffn")]
    pub d_ff: usize,
    /// Key `seq`: T for bert/opt, including the special CLS/SEP or BOS tokens. Ignored by
    /// vit, whose T is `(img/patch)^2 + 1` ([`RunSpec::seq_tokens`]).
    #[serde(rename = "seq")]
    pub seq_len: usize,
    /// Key `batch`.
    pub batch: usize,
    /// Key `img`: the ViT image side in pixels.
    #[serde(rename = "img")]
    pub image: usize,
    /// Key `patch`: the ViT patch side in pixels.
    pub patch: usize,
    /// Key `classes`: the ViT's classes.
    pub classes: usize,
    /// Key `patch_ln`.
    pub patch_ln: bool,
    /// Key `attn`.
    pub attn: AttnKind,
    /// Key `gamma`: γ, the lower stretch of clipped softmax in the paper's Eq. 4 (`gamma` in
    /// the paper's code). The model uses [`RunSpec::gamma_effective`].
    pub gamma: f64,
    /// Key `zeta`: ζ, the upper stretch of clipped softmax in Eq. 4 (`eta` in the paper's
    /// code). The model uses [`RunSpec::zeta_effective`].
    pub zeta: f64,
    /// Key `alpha`: when set, γ = −α/T instead of `gamma` and ζ = 1 whatever `zeta` says
    /// (`--alpha` in the paper's code hard-codes `eta=1.0`), so the clip threshold scales
    /// with the sequence length. Emitted in the canonical text only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Key `gamma_warmup`: steps over which clipped softmax's γ ramps linearly from 0 (ζ from
    /// 1), so a fresh model's near-uniform attention is not clipped to zero at α ≥ 1 (the
    /// "dead start"); 0 uses the full γ from the first step, as the paper does.
    pub gamma_warmup: usize,
    /// Key `gate`: the gating function G(x) of gated attention (the paper's Eq. 5).
    pub gate: GateKind,
    /// Key `pi`: π_init, the gate's initial open probability; the gate bias starts at
    /// logit(π_init) (`attn_gate_init` in the paper's code).
    #[serde(rename = "pi")]
    pub pi_init: f64,
    /// Key `steps`.
    pub steps: usize,
    /// Key `lr`: the peak learning rate, reached after warm-up.
    pub lr: f64,
    /// Key `warmup`: linear warm-up steps (more than `steps` only warns).
    pub warmup: usize,
    /// Key `sched`: what the learning rate does after warm-up.
    pub sched: Schedule,
    /// Key `wd`: AdamW decoupled weight decay.
    #[serde(rename = "wd")]
    pub weight_decay: f64,
    /// Key `ln_wd`: also decay LayerNorm γ (the paper's OPT scripts pass `--wd_LN_gamma`; its
    /// Table 6 shows the effect). Biases and LayerNorm β are never decayed.
    pub ln_wd: bool,
    /// Key `b1`: Adam β₁.
    #[serde(rename = "b1")]
    pub beta1: f64,
    /// Key `b2`: Adam β₂.
    #[serde(rename = "b2")]
    pub beta2: f64,
    /// Key `eps`: Adam ε.
    pub eps: f64,
    /// Key `clip`: the global gradient-norm clip; 0 disables clipping.
    pub clip: f64,
    /// Key `dropout`: dropout during training, on the embeddings, the attention and FFN
    /// outputs before their residual sums and, for BERT, the attention probabilities (HF's
    /// `hidden_dropout_prob` / `attention_probs_dropout_prob`, 0.1 in the paper's BERT and
    /// OPT runs). Masks come from the run seed's `Dropout` stream.
    pub dropout: f64,
    /// Key `init_std`: standard deviation of the normal init of embeddings, FFN and output
    /// heads (HF's `initializer_range`); Q/K/V/out projections keep PyTorch's default Linear
    /// init.
    pub init_std: f64,
    /// Key `mask`: the BERT masking probability.
    #[serde(rename = "mask")]
    pub mask_prob: f64,
    /// Key `seed`: the single run seed from which every random stream is derived.
    pub seed: u64,
    /// Key `data`: where training text comes from; `model=vit` accepts only `synthetic`.
    pub data: DataSource,
    /// Key `bb_k`: Bigram-Backcopy triggers, the k most frequent characters of the source
    /// text, after which the next character copies the one before the trigger (Guo et al.'s
    /// setting is 3). Used only with `data=bb…`.
    pub bb_k: usize,
    /// Key `bos`, OPT only: whether every row starts with the fixed \[BOS\] token at position
    /// 0. Off, a row is a plain window of text (position 0 holds the character before it), as
    /// in the paper's OPT pipeline, which chunks concatenated text so that rows start
    /// mid-document. A fixed BOS hands vanilla heads a ready-made sink (a unique token at a
    /// unique position), so they can do nothing without growing outliers.
    pub bos: bool,
    /// Key `eval_every`: evaluate every N steps; 0 evaluates only at the end.
    pub eval_every: usize,
    /// Key `eval_batches`: held-out batches per evaluation.
    pub eval_batches: usize,
}

/// The defaults of [`KEY_TABLE`], written out so they need no parsing; a test compares the two
/// key by key.
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
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SpecError> {
        let Some(row) = key(name) else {
            return Err(unknown_key(name));
        };
        // Assign into a copy so a value that parses but is out of range never lands in self.
        let mut next = self.clone();
        row.set(&mut next, value)?;
        next.check_field(name)?;
        *self = next;
        Ok(())
    }

    /// The canonical, unencoded text of one field (`alpha` gives `none` when unset), or
    /// `None` for an unknown key. `set(key, &get(key).unwrap())` is always a no-op.
    pub fn get(&self, name: &str) -> Option<String> {
        key(name).map(|row| row.get(self))
    }

    /// [`RunSpec::validate`] plus the browser's lower size limits ([`BROWSER_MAX_PARAMS`],
    /// [`BROWSER_MAX_ACTIVATIONS`]), which the app applies to every link and setting.
    pub fn validate_for_browser(&self) -> Result<(), SpecError> {
        self.validate()?;
        let params = self.param_count_estimate();
        if params > BROWSER_MAX_PARAMS {
            return Err(SpecError::new(
                "d",
                format!(
                    "the model would have about {params} parameters, above the browser's limit \
                     of {BROWSER_MAX_PARAMS}; reduce d, ffn or layers, or train it with the \
                     qtlab CLI"
                ),
            ));
        }
        let activations = self
            .batch
            .saturating_mul(self.seq_tokens())
            .saturating_mul(self.d_model);
        if activations > BROWSER_MAX_ACTIVATIONS {
            return Err(SpecError::new(
                "batch",
                format!(
                    "batch × tokens × d = {activations}, above the browser's limit of \
                     {BROWSER_MAX_ACTIVATIONS}; reduce batch, seq or d, or use the qtlab CLI"
                ),
            ));
        }
        Ok(())
    }

    /// Every range check and every cross-field constraint. The first failure is returned,
    /// checking single fields in canonical key order before cross-field constraints.
    pub fn validate(&self) -> Result<(), SpecError> {
        for row in KEY_TABLE {
            self.check_field(row.name)?;
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
    fn check_field(&self, name: &str) -> Result<(), SpecError> {
        // The table's `1..=1` would be right but would not say why.
        if name == "v" && self.version != 1 {
            return Err(SpecError::new(
                name,
                format!(
                    "unsupported spec version {}; this build reads only v=1",
                    self.version
                ),
            ));
        }
        key(name).map_or(Ok(()), |row| row.check(self))
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

fn unknown_key(key: &str) -> SpecError {
    SpecError::new(
        &echo(key),
        format!("unknown key (known keys: {})", KEYS.join(", ")),
    )
}

#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;
