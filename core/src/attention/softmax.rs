//! Score normalisers: how attention logits become attention probabilities.
//!
//! Softmax and clipped softmax go through [`crate::kernels::clipped_softmax`]: one fused WGSL
//! launch per direction on a GPU, the plain Burn-tensor definition on the CPU.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// Logit written into masked (future) positions. Finite rather than −∞ so that no backward
/// formula ever multiplies an infinity by zero; exp(−1e9 − max) is exactly 0 in f32 anyway.
pub const MASKED_LOGIT: f32 = -1.0e9;

/// How attention scores are normalised over the key axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScoreNorm {
    /// softmax(x).
    Softmax,
    /// The paper's clipped softmax (Eq. 4): clip((ζ−γ)·softmax(x)+γ, 0, 1), γ ≤ 0, ζ ≥ 1.
    /// Probabilities below −γ/(ζ−γ) become exactly 0 and those above (1−γ)/(ζ−γ) exactly 1,
    /// with zero gradient there: that is what stops a head from pushing logits ever further.
    Clipped {
        /// γ (`gamma`, negative in the paper's code).
        gamma: f64,
        /// ζ (`eta` in the paper's code).
        zeta: f64,
    },
    /// softmax₁ / "off by one" (Evan Miller, 2023): e^{x_i} / (1 + Σ_j e^{x_j}), an implicit
    /// zero logit so a head can put its mass on nothing.
    Softmax1,
    /// A learnable per-head sink logit S_h (gpt-oss): e^{x_i} / (e^{S_h} + Σ_j e^{x_j}).
    Sink,
}

impl ScoreNorm {
    /// # Shapes
    /// - `scores`: `[batch, heads, seq_q, seq_k]`
    /// - `sink`: `[heads]`, required for [`ScoreNorm::Sink`], ignored otherwise
    /// - output: `[batch, heads, seq_q, seq_k]`
    pub fn apply(self, scores: Tensor<4>, sink: Option<Tensor<1>>) -> Tensor<4> {
        match self {
            ScoreNorm::Softmax => crate::kernels::clipped_softmax(scores, 0.0, 1.0),
            ScoreNorm::Clipped { gamma, zeta } => clipped_softmax(scores, gamma, zeta),
            ScoreNorm::Softmax1 => {
                let [b, h, t, _] = scores.dims();
                let zero = Tensor::<4>::zeros([b, h, t, 1], &scores.device());
                softmax_with_extra_logit(scores, zero)
            }
            ScoreNorm::Sink => {
                let [b, h, t, _] = scores.dims();
                let sink = sink.expect("ScoreNorm::Sink needs the sink logits");
                let extra = sink.reshape([1, h, 1, 1]).expand([b, h, t, 1]); // [b, h, t, 1]
                softmax_with_extra_logit(scores, extra)
            }
        }
    }
}

/// clip((ζ−γ)·softmax(x)+γ, 0, 1) over the last axis.
pub fn clipped_softmax<const D: usize>(x: Tensor<D>, gamma: f64, zeta: f64) -> Tensor<D> {
    crate::kernels::clipped_softmax(x, gamma, zeta)
}

/// Softmax over `[scores, extra]` with the extra column dropped afterwards: the extra logit
/// soaks up probability mass without contributing a value vector.
///
/// # Shapes
/// - `scores`: `[batch, heads, seq_q, seq_k]`, `extra`: `[batch, heads, seq_q, 1]`
fn softmax_with_extra_logit(scores: Tensor<4>, extra: Tensor<4>) -> Tensor<4> {
    let tk = scores.dims()[3];
    let all = softmax(Tensor::cat(vec![scores, extra], 3), 3); // [b, h, tq, tk + 1]
    all.narrow(3, 0, tk) // [b, h, tq, tk]
}
