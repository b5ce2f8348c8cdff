//! OPT-like causal language model (pre-LN decoder, ReLU FFN, final LayerNorm, tied LM head).
//!
//! Mirrors HF `OPTForCausalLM` as used by the paper's `run_clm.py`, at toy scale: learned
//! positions without OPT's offset of 2, no dropout. Init: HF N(0, init_std) except attention.

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm};
use burn::tensor::{Device, Int, Tensor};

use crate::attention::AttentionConfig;
use crate::init::Init;
use crate::model::block::{Activation, PreLnBlock};
use crate::model::{ModelOutput, Tap, TapKind, Taps};
use crate::spec::RunSpec;

#[derive(Module, Debug)]
pub struct Opt {
    /// `[vocab, d_model]`, tied to the LM head as in OPT.
    pub tokens: Embedding,
    /// `[seq, d_model]`
    pub positions: Param<Tensor<2>>,
    pub layers: Vec<PreLnBlock>,
    pub final_ln: LayerNorm,
}

impl Opt {
    pub fn init(spec: &RunSpec, vocab: usize, init: &mut Init, device: &Device) -> Opt {
        let d = spec.d_model;
        let cfg = AttentionConfig::from_spec(spec, true);
        Opt {
            tokens: init.embedding(vocab, d, spec.init_std, device),
            positions: init.normal_param([spec.seq_len, d], spec.init_std, device),
            layers: (0..spec.layers)
                .map(|_| {
                    PreLnBlock::init(
                        &cfg,
                        spec.d_ff,
                        Activation::Relu,
                        spec.init_std,
                        init,
                        device,
                    )
                })
                .collect(),
            final_ln: init.layer_norm(d, device),
        }
    }

    /// # Shapes
    /// - `ids`: `[batch, seq]`
    /// - logits: `[batch*seq, vocab]` (row b*seq+t predicts the token after position t)
    pub fn forward(&self, ids: Tensor<2, Int>) -> ModelOutput {
        let [b, t] = ids.dims();
        let pos = self.positions.val().narrow(0, 0, t).unsqueeze::<3>(); // [1, t, d]
        let mut x = self.tokens.forward(ids) + pos; // [b, t, d]
        let mut taps = Taps::default();
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, l, &mut taps);
        }
        let h = self.final_ln.forward(x); // [b, t, d]
        taps.tracked.push(Tap {
            kind: TapKind::FinalLn,
            layer: None,
            x: h.clone(),
        });
        let d = h.dims()[2];
        let logits = h
            .reshape([b * t, d])
            .matmul(self.tokens.weight.val().transpose()); // [b*t, vocab]
        ModelOutput { logits, taps }
    }
}
