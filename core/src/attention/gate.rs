//! The output gate of gated attention (paper Eqs. 5–7):
//! `Gated_attention(x) = sigmoid(G(x)) ⊙ softmax(QKᵀ/√d_head) V`.
//!
//! Head h's gate reads only its own channel slice `x[..., h·d_head:(h+1)·d_head]` of the
//! attention module's input (all-heads-linear reads all of `x`), as in the paper's code.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

use crate::init::Init;
use crate::spec::GateKind;

/// Gate parameters. Which fields are present depends on `kind`; per-head weights are stacked
/// along a leading head axis so all heads run as one batched op.
#[derive(Module, Debug)]
pub struct Gate {
    /// Per-head Linear(d_head→1) weight for `Linear` / `ConditionalPerHead`, or the first MLP
    /// layer's weight for `Mlp`. `[heads, d_head, n_out]`
    pub w1: Option<Param<Tensor<3>>>,
    /// Bias of `w1`. `[heads, 1, n_out]`
    pub bias1: Option<Param<Tensor<3>>>,
    /// Second MLP layer, Linear(d_head/4→1). `[heads, n_hid, 1]`
    pub w2: Option<Param<Tensor<3>>>,
    /// Bias of `w2`. `[heads, 1, 1]`
    pub bias2: Option<Param<Tensor<3>>>,
    /// All-heads-linear, Linear(d_model→H).
    pub all: Option<Linear>,
    /// Unconditional per-head logit α_h (init 0 ⇒ π = 0.5, as the paper's code). `[heads]`
    /// Named `logit`, not `alpha`: `alpha` is the spec's clipped-softmax α, and weight decay
    /// picks its exemptions by field name (`train::optim::NO_DECAY`).
    pub logit: Option<Param<Tensor<1>>>,
    pub heads: usize,
    #[module(skip)]
    pub kind: GateKind,
}

/// logit(π) with the paper's clip of π to [1e-16, 1−1e-16].
pub fn logit(pi: f64) -> f64 {
    let p = pi.clamp(1e-16, 1.0 - 1e-16);
    -(1.0 / p - 1.0).ln()
}

impl Gate {
    pub fn init(
        kind: GateKind,
        d_model: usize,
        heads: usize,
        pi_init: f64,
        init: &mut Init,
        device: &Device,
    ) -> Gate {
        let dh = d_model / heads;
        let mut g = Gate {
            w1: None,
            bias1: None,
            w2: None,
            bias2: None,
            all: None,
            logit: None,
            heads,
            kind,
        };
        // Gate weights keep PyTorch's default Linear init U(±1/√fan_in) (paper.md §1.2).
        match kind {
            GateKind::UnconditionalPerHead => {
                g.logit = Some(Param::from_tensor(Tensor::zeros([heads], device)));
            }
            GateKind::Linear | GateKind::ConditionalPerHead => {
                g.w1 = Some(init.uniform_param([heads, dh, 1], dh, device));
                // Both single-Linear gates (per token and pooled per head) get the
                // logit(π_init) bias in the paper's code; the MLP and all-heads gates do not.
                g.bias1 = Some(Param::from_tensor(Tensor::full(
                    [heads, 1, 1],
                    logit(pi_init),
                    device,
                )));
            }
            GateKind::Mlp => {
                // The code's n_hid = d_head/4 (the paper's table says 4; see paper.md §1.2).
                let n_hid = (dh / 4).max(1);
                g.w1 = Some(init.uniform_param([heads, dh, n_hid], dh, device));
                g.bias1 = Some(init.uniform_param([heads, 1, n_hid], dh, device));
                g.w2 = Some(init.uniform_param([heads, n_hid, 1], n_hid, device));
                g.bias2 = Some(init.uniform_param([heads, 1, 1], n_hid, device));
            }
            GateKind::AllHeads => {
                g.all = Some(init.linear_default(d_model, heads, device));
            }
        }
        g
    }

    /// Gate probabilities π = sigmoid(G(x)).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`
    /// - output: `[1, heads, 1, 1]` (unconditional), `[batch, heads, 1, 1]` (conditional per
    ///   head), otherwise `[batch, heads, seq, 1]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, t, d] = x.dims();
        let h = self.heads;
        let dh = d / h;
        let per_head_input = || {
            x.clone().reshape([b * t, h, dh]).swap_dims(0, 1) // [h, b*t, dh]
        };
        // [h, b*t, 1] → [b, h, t, 1]
        let to_bht = |y: Tensor<3>| y.reshape([h, b, t]).swap_dims(0, 1).unsqueeze_dim::<4>(3);
        let logits = match self.kind {
            GateKind::UnconditionalPerHead => {
                let logit = self.logit.as_ref().expect("uph gate has logit").val(); // [heads]
                logit.reshape([1, h, 1, 1])
            }
            GateKind::Linear => {
                let y = per_head_input().matmul(self.w1().val()) + self.bias1().val(); // [h, b*t, 1]
                to_bht(y)
            }
            GateKind::ConditionalPerHead => {
                let y = per_head_input().matmul(self.w1().val()) + self.bias1().val(); // [h, b*t, 1]
                // The code pools the per-token logits over tokens before the sigmoid.
                to_bht(y).mean_dim(2) // [b, h, 1, 1]
            }
            GateKind::Mlp => {
                let hid = relu(per_head_input().matmul(self.w1().val()) + self.bias1().val()); // [h, b*t, n_hid]
                let w2 = self.w2.as_ref().expect("mlp gate has w2").val();
                let b2 = self.bias2.as_ref().expect("mlp gate has bias2").val();
                to_bht(hid.matmul(w2) + b2) // [b, h, t, 1]
            }
            GateKind::AllHeads => {
                let all = self.all.as_ref().expect("all-heads gate has a Linear");
                crate::kernels::linear(all, x) // [b, t, h]
                    .swap_dims(1, 2) // [b, h, t]
                    .unsqueeze_dim::<4>(3) // [b, h, t, 1]
            }
        };
        sigmoid(logits)
    }

    fn w1(&self) -> &Param<Tensor<3>> {
        self.w1.as_ref().expect("gate kind has w1")
    }

    fn bias1(&self) -> &Param<Tensor<3>> {
        self.bias1.as_ref().expect("gate kind has bias1")
    }
}
