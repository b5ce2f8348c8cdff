//! Multi-head self-attention with every variant the lab compares.
//!
//! One module serves BERT, OPT and ViT. The score normaliser (vanilla softmax, clipped softmax,
//! softmax+1, learnable sink) and the optional output gate are separate fields, as
//! `--attn_softmax`/`--alpha` and `--attn_gate_type` are separate flags in the paper's code
//! (`bert_attention.py` / `opt_attention.py` of Qualcomm-AI-research/outlier-free-transformers);
//! the run spec picks one variant at a time, as the paper's experiments do.

pub mod gate;
pub mod softmax;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Bool, Device, Tensor};

use crate::init::Init;
use crate::kernels::{linear, matmul, matmul_t};
use crate::quant::ActQuant;
use crate::spec::{AttnKind, GateKind, RunSpec};
pub use gate::Gate;
pub use softmax::ScoreNorm;

/// Everything that shapes one attention layer. Built from a [`RunSpec`] by [`AttentionConfig::from_spec`].
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionConfig {
    /// Hidden size `d_model`. Default: 64.
    pub d_model: usize,
    /// Number of heads `H`; must divide `d_model`. Default: 4.
    pub heads: usize,
    /// How scores become attention probabilities (the paper's Eq. 4 for clipped softmax).
    /// Default: vanilla softmax.
    pub norm: ScoreNorm,
    /// The output gate of gated attention (paper Eqs. 5–7), `None` for ungated variants.
    /// Default: `None`.
    pub gate: Option<GateKind>,
    /// π_init, the gate's initial open probability (`--attn_gate_init` in the paper's code);
    /// the per-head Linear gate's bias starts at logit(π_init). Default: 0.25.
    pub pi_init: f64,
    /// Causal masking (OPT). Default: false.
    pub causal: bool,
    /// Init of the output projection: `None` keeps PyTorch's default Linear init (OPT's
    /// `out_proj` is part of the swapped-in attention module), `Some(σ)` the HF N(0, σ²) init
    /// (BERT's `BertSelfOutput.dense` is not swapped, so it keeps `initializer_range`).
    /// Default: `None`.
    pub out_init_std: Option<f64>,
}

impl AttentionConfig {
    pub fn from_spec(spec: &RunSpec, causal: bool) -> Self {
        let norm = match spec.attn {
            AttnKind::Vanilla | AttnKind::Gated => ScoreNorm::Softmax,
            AttnKind::Clipped => ScoreNorm::Clipped {
                gamma: spec.gamma_effective(),
                zeta: spec.zeta_effective(),
            },
            AttnKind::Softmax1 => ScoreNorm::Softmax1,
            AttnKind::Sink => ScoreNorm::Sink,
        };
        let gate = (spec.attn == AttnKind::Gated).then_some(spec.gate);
        AttentionConfig {
            d_model: spec.d_model,
            heads: spec.heads,
            norm,
            gate,
            pi_init: spec.pi_init,
            causal,
            out_init_std: None,
        }
    }

    pub fn d_head(&self) -> usize {
        self.d_model / self.heads
    }

    pub fn init(&self, init: &mut Init, device: &Device) -> Attention {
        let d = self.d_model;
        // The paper's code swaps in freshly built attention modules after the HF init, so
        // Q/K/V and the output projection keep PyTorch's default Linear init (paper.md §1).
        // Q, K and V are three Linear(d→d) layers stored side by side as one Linear(d→3d):
        // identical math and init (each fan_in = d), one matmul instead of three.
        let qkv = init.linear_default(d, 3 * d, device);
        let out = match self.out_init_std {
            Some(std) => init.linear_normal(d, d, std, device),
            None => init.linear_default(d, d, device),
        };
        let gate = self
            .gate
            .map(|kind| Gate::init(kind, d, self.heads, self.pi_init, init, device));
        // gpt-oss style sink logits start at 0, i.e. exactly softmax+1 at initialisation.
        let sink = matches!(self.norm, ScoreNorm::Sink)
            .then(|| Param::from_tensor(Tensor::<1>::zeros([self.heads], device)));
        Attention {
            qkv,
            out,
            gate,
            sink,
            heads: self.heads,
            causal: self.causal,
            norm: self.norm,
        }
    }
}

/// Multi-head self-attention with an optional per-head output gate.
#[derive(Module, Debug)]
pub struct Attention {
    /// Q, K, V projections fused: output columns `[0, d)` are Q, `[d, 2d)` K, `[2d, 3d)` V.
    pub qkv: Linear,
    /// Output projection (`out_proj` in OPT, `BertSelfOutput.dense` in BERT).
    pub out: Linear,
    pub gate: Option<Gate>,
    /// Per-head learnable sink logit S_h (only for [`ScoreNorm::Sink`]). `[heads]`
    pub sink: Option<Param<Tensor<1>>>,
    pub heads: usize,
    pub causal: bool,
    #[module(skip)]
    pub norm: ScoreNorm,
}

/// What one attention layer hands back: the projected output plus the taps the metrics and the
/// app read (probabilities for the heatmaps, gate values for the no-op signature).
#[derive(Clone, Debug)]
pub struct AttentionOutput {
    /// Output projection result, before any residual. `[batch, seq, d_model]`
    pub out: Tensor<3>,
    /// Attention probabilities after the score normaliser. `[batch, heads, seq, seq]`
    pub probs: Tensor<4>,
    /// Value vectors per head, for the sink's value norm (a head doing nothing attends to a
    /// token whose value is small). `[batch, heads, seq, d_head]`
    pub values: Tensor<4>,
    /// Gate probabilities π, broadcastable to `[batch, heads, seq, 1]`
    /// (`[1, H, 1, 1]` unconditional, `[B, H, 1, 1]` per-head conditional, `[B, H, T, 1]` per token).
    pub gate: Option<Tensor<4>>,
}

impl Attention {
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]` (the attention module's input hidden state; the gate reads it too)
    /// - output: see [`AttentionOutput`]
    pub fn forward(&self, x: Tensor<3>) -> AttentionOutput {
        self.forward_act_quant(x, &mut ActQuant::off(), 0)
    }

    /// [`Attention::forward`] with activation quantizers where the paper's code has them:
    /// Q, K, V outputs, scores (scaled, before the mask), probabilities, the context (after the
    /// gate and the head merge for BERT/ViT, before the gate for OPT) and the output projection.
    /// The gate itself stays in floating point.
    pub fn forward_act_quant(
        &self,
        x: Tensor<3>,
        aq: &mut ActQuant,
        layer: usize,
    ) -> AttentionOutput {
        let [b, t, d] = x.dims();
        let h = self.heads;
        let dh = d / h;
        let l = Some(layer);
        let qkv = linear(&self.qkv, x.clone()); // [b, t, 3d]
        let part = |i: usize| qkv.clone().narrow(2, i * d, d); // [b, t, d]
        let heads = |y: Tensor<3>| y.reshape([b, t, h, dh]).swap_dims(1, 2); // [b, h, t, dh]
        let q = heads(aq.site(l, "q", part(0)));
        let k = heads(aq.site(l, "k", part(1)));
        let v = heads(aq.site(l, "v", part(2)));

        let scale = 1.0 / (dh as f64).sqrt();
        let scores = matmul_t(q, k).mul_scalar(scale); // [b, h, t, t]
        let mut scores = aq.site(l, "scores", scores);
        if self.causal {
            let mask = causal_mask(t, &scores.device()).unsqueeze::<4>(); // [1, 1, t, t]
            scores = scores.mask_fill(mask.expand([b, h, t, t]), softmax::MASKED_LOGIT);
        }
        let sink = self.sink.as_ref().map(|s| s.val());
        let probs = aq.site(l, "probs", self.norm.apply(scores, sink)); // [b, h, t, t]
        // BERT drops attention probabilities (`attention_probs_dropout_prob`); OPT's
        // `attention_dropout` is 0 in the paper's configs.
        let dropped = if self.causal {
            probs.clone()
        } else {
            aq.dropout(probs.clone())
        };
        let mut context = matmul(dropped, v.clone()); // [b, h, t, dh]
        // OPT's quantized attention quantizes the context before the gate; BERT's after it.
        if self.causal {
            context = aq.site(l, "context", context);
        }
        let gate = self.gate.as_ref().map(|g| g.forward(x)); // broadcastable to [b, h, t, 1]
        if let Some(g) = &gate {
            context = context * g.clone();
        }
        let mut merged = context.swap_dims(1, 2).reshape([b, t, d]); // [b, t, d]
        if !self.causal {
            merged = aq.site(l, "context", merged);
        }
        AttentionOutput {
            out: aq.site(l, "out_proj", linear(&self.out, merged)),
            probs,
            values: v,
            gate,
        }
    }
}

/// `true` where query i must not see key j (j > i). `[seq, seq]`
pub fn causal_mask(t: usize, device: &Device) -> Tensor<2, Bool> {
    let data: Vec<bool> = (0..t * t).map(|ij| ij % t > ij / t).collect();
    Tensor::<2, Bool>::from_data(burn::tensor::TensorData::new(data, [t, t]), device)
}
