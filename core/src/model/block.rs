//! The pre-LN transformer block shared by OPT and ViT.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::{Device, Tensor};

use crate::attention::{Attention, AttentionConfig};
use crate::init::Init;
use crate::kernels::{layer_norm, linear};
use crate::quant::ActQuant;
use crate::taps::{Tap, TapKind, Taps};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Gelu,
}

impl Activation {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => relu(x),
            Activation::Gelu => gelu(x),
        }
    }
}

/// `h = x + out_proj(attn(LN₁(x)))`, `y = h + fc2(act(fc1(LN₂(h))))`.
#[derive(Module, Debug)]
pub struct PreLnBlock {
    pub attn_ln: LayerNorm,
    pub attn: Attention,
    pub ffn_ln: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
    #[module(skip)]
    pub act: Activation,
}

impl PreLnBlock {
    pub fn init(
        cfg: &AttentionConfig,
        d_ff: usize,
        act: Activation,
        init_std: f64,
        init: &mut Init,
        device: &Device,
    ) -> Self {
        let d = cfg.d_model;
        PreLnBlock {
            attn_ln: init.layer_norm(d, device),
            attn: cfg.init(init, device),
            ffn_ln: init.layer_norm(d, device),
            fc1: init.linear_normal(d, d_ff, init_std, device),
            fc2: init.linear_normal(d_ff, d, init_std, device),
            act,
        }
    }

    /// # Shapes
    /// - `x`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        layer: usize,
        taps: &mut Taps,
        aq: &mut ActQuant,
    ) -> Tensor<3> {
        let l = Some(layer);
        let a_in = aq.site(l, "attn_ln", layer_norm(&self.attn_ln, x.clone())); // [b, t, d]
        let att = self.attn.forward_act_quant(a_in.clone(), aq, layer);
        let a_out = aq.dropout(att.out.clone()); // [b, t, d]
        let h = aq.site(l, "attn_resid", x + a_out); // [b, t, d]
        let f_in = aq.site(l, "ffn_ln", layer_norm(&self.ffn_ln, h.clone())); // [b, t, d]
        let f_hid = aq.site(l, "fc1", self.act.apply(linear(&self.fc1, f_in.clone()))); // [b, t, d_ff]
        let f_out = aq.site(l, "fc2", linear(&self.fc2, f_hid)); // [b, t, d]
        let f_drop = aq.dropout(f_out.clone()); // [b, t, d]
        let y = aq.site(l, "ffn_resid", h + f_drop); // [b, t, d]
        let tap = |kind, x| Tap {
            kind,
            layer: Some(layer),
            x,
        };
        taps.tracked.extend([
            tap(TapKind::AttnLn, a_in),
            tap(TapKind::OutProj, att.out),
            tap(TapKind::FfnLn, f_in),
            tap(TapKind::Fc2Out, f_out),
            tap(TapKind::BlockOut, y.clone()),
        ]);
        taps.probs.push(att.probs);
        taps.values.push(att.values);
        taps.gates.push(att.gate);
        y
    }
}
