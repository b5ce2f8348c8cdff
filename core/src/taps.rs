//! The activations a forward pass hands back for the paper's metrics (paper.md §2): which
//! tensor each is, and the per-forward bundle. Plain data below the models, so the metrics
//! read them without depending on the models that fill them.

use burn::tensor::Tensor;

/// Which tensor a tap is, named after the module in the paper's code whose output it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TapKind {
    /// BERT `output.dense`: FFN output before dropout and the residual.
    FfnOut,
    /// BERT `output.LayerNorm`: the layer's final LayerNorm output.
    LnOut,
    /// OPT/ViT `layers.j`: block output, i.e. the residual stream.
    BlockOut,
    /// OPT/ViT `fc2` output.
    Fc2Out,
    /// OPT/ViT `self_attn_layer_norm` output.
    AttnLn,
    /// OPT/ViT `final_layer_norm` of a block (the pre-FFN LayerNorm).
    FfnLn,
    /// OPT/ViT `self_attn.out_proj` output.
    OutProj,
    /// OPT/ViT `decoder.final_layer_norm`.
    FinalLn,
    /// BERT FFN input + output (the residual sum before `output.LayerNorm`); not one of the
    /// averaged taps, reported beside them.
    FfnSum,
}

impl TapKind {
    pub fn name(self) -> &'static str {
        match self {
            TapKind::FfnOut => "ffn_out",
            TapKind::LnOut => "ln_out",
            TapKind::BlockOut => "block_out",
            TapKind::Fc2Out => "fc2_out",
            TapKind::AttnLn => "attn_ln",
            TapKind::FfnLn => "ffn_ln",
            TapKind::OutProj => "out_proj",
            TapKind::FinalLn => "final_ln",
            TapKind::FfnSum => "ffn_sum",
        }
    }
}

/// One tracked activation.
#[derive(Clone, Debug)]
pub struct Tap {
    pub kind: TapKind,
    /// Block index, `None` for model-level tensors (the final LayerNorm).
    pub layer: Option<usize>,
    /// `[batch, seq, d_model]`
    pub x: Tensor<3>,
}

impl Tap {
    pub fn label(&self) -> String {
        match self.layer {
            Some(l) => format!("layer{l}.{}", self.kind.name()),
            None => self.kind.name().to_string(),
        }
    }
}

/// Per-forward taps.
#[derive(Clone, Debug, Default)]
pub struct Taps {
    /// The tensors the paper tracks for max inf-norm and kurtosis (paper.md §2), in layer order.
    pub tracked: Vec<Tap>,
    /// Attention probabilities per layer. `[batch, heads, seq, seq]`
    pub probs: Vec<Tensor<4>>,
    /// Tensors shown beside the tracked ones but not part of the paper's averages (BERT's
    /// FFN input + output sum).
    pub extra: Vec<Tap>,
    /// Value vectors per layer. `[batch, heads, seq, d_head]`
    pub values: Vec<Tensor<4>>,
    /// Gate probabilities per layer (gated attention only), broadcastable to `[batch, heads, seq, 1]`.
    pub gates: Vec<Option<Tensor<4>>>,
}
