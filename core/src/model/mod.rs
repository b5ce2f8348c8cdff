//! The three models and what their forward passes hand back.
//!
//! `forward` returns the logits plus [`Taps`]: the tensors the outlier metrics, the app's
//! charts and the quantization report read. Nothing is spied on with hooks.

pub mod bert;
pub mod block;
pub mod opt;
pub mod vit;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

use crate::init::Init;
use crate::quant::ActQuant;
use crate::spec::{ModelKind, RunSpec};
use crate::taps::{TapKind, Taps};

pub use bert::Bert;
pub use opt::Opt;
pub use vit::Vit;

pub struct ModelOutput {
    /// One row per prediction: `[batch*seq, vocab]` for the language models, `[batch, classes]` for ViT.
    pub logits: Tensor<2>,
    pub taps: Taps,
}

/// A batch on the device.
#[derive(Clone, Debug)]
pub enum ModelInput {
    /// Token ids. `[batch, seq]`
    Tokens(Tensor<2, Int>),
    /// Flattened patches. `[batch, n_patches, patch*patch]`
    Patches(Tensor<3>),
}

#[derive(Module, Debug)]
pub enum Model {
    Bert(Bert),
    Opt(Opt),
    Vit(Vit),
}

impl Model {
    /// Builds the model for `spec`; `vocab` is the tokenizer's size (ignored by ViT).
    pub fn init(spec: &RunSpec, vocab: usize, init: &mut Init, device: &Device) -> Model {
        match spec.model {
            ModelKind::Bert => Model::Bert(Bert::init(spec, vocab, init, device)),
            ModelKind::Opt => Model::Opt(Opt::init(spec, vocab, init, device)),
            ModelKind::Vit => Model::Vit(Vit::init(spec, init, device)),
        }
    }

    pub fn forward(&self, input: ModelInput) -> ModelOutput {
        self.forward_act_quant(input, &mut ActQuant::off())
    }

    /// Forward with activation quantizers (identity when `aq` is off).
    pub fn forward_act_quant(&self, input: ModelInput, aq: &mut ActQuant) -> ModelOutput {
        aq.begin();
        match (self, input) {
            (Model::Bert(m), ModelInput::Tokens(ids)) => m.forward(ids, aq),
            (Model::Opt(m), ModelInput::Tokens(ids)) => m.forward(ids, aq),
            (Model::Vit(m), ModelInput::Patches(p)) => m.forward(p, aq),
            _ => panic!("model and input kinds do not match"),
        }
    }

    /// Every attention layer, in order.
    pub fn attentions_mut(&mut self) -> Vec<&mut crate::attention::Attention> {
        match self {
            Model::Bert(m) => m.layers.iter_mut().map(|l| &mut l.attn).collect(),
            Model::Opt(m) => m.layers.iter_mut().map(|l| &mut l.attn).collect(),
            Model::Vit(m) => m.layers.iter_mut().map(|l| &mut l.attn).collect(),
        }
    }

    /// Sets every layer's score normaliser (the clipped-softmax γ warm-up changes γ and ζ
    /// between steps; they are not parameters).
    pub fn set_score_norm(&mut self, norm: crate::attention::ScoreNorm) {
        for attn in self.attentions_mut() {
            attn.norm = norm;
        }
    }

    /// The tap kind whose max inf-norm the paper reports as "Max inf. norm": the FFN output for
    /// BERT, the block output (residual stream) for OPT and ViT.
    pub fn headline_kind(&self) -> TapKind {
        match self {
            Model::Bert(_) => TapKind::FfnOut,
            Model::Opt(_) | Model::Vit(_) => TapKind::BlockOut,
        }
    }
}
