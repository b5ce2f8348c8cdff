//! OPT-like causal language model (pre-LN decoder, ReLU FFN, final LayerNorm, tied LM head).
//!
//! Mirrors HF `OPTForCausalLM` as used by the paper's `run_clm.py`, at toy scale: learned
//! positions without OPT's offset of 2, no dropout. Init: HF N(0, init_std) except attention.

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm};
use burn::tensor::{Device, Int, Tensor};

use crate::attention::AttentionConfig;
use crate::init::Init;
use crate::kernels::{layer_norm, matmul_t};
use crate::model::ModelOutput;
use crate::model::block::{Activation, PreLnBlock};
use crate::quant::ActQuant;
use crate::spec::RunSpec;
use crate::taps::{Tap, TapKind, Taps};

/// OPT hyper-parameters; HF `OPTConfig` names in brackets. Built from a run spec.
#[derive(Clone, Debug, PartialEq)]
pub struct OptConfig {
    /// Vocabulary size \[`vocab_size`\]: the tokenizer's, specials included.
    pub vocab: usize,
    /// Number of blocks L \[`num_hidden_layers`\]. Default: 2.
    pub layers: usize,
    /// FFN inner size \[`ffn_dim`\]. Default: 256.
    pub d_ff: usize,
    /// Sequence length T \[`max_position_embeddings`\]. Default: 32.
    pub seq_len: usize,
    /// Std of the normal init \[`init_std`\]. Default: 0.02 (OPT-125m used 0.006).
    pub init_std: f64,
    /// Causal attention: d_model \[`hidden_size`\] (default 64), heads \[`num_attention_heads`\]
    /// (default 4), variant and gate.
    pub attention: AttentionConfig,
}

impl OptConfig {
    pub fn from_spec(spec: &RunSpec, vocab: usize) -> Self {
        OptConfig {
            vocab,
            layers: spec.layers,
            d_ff: spec.d_ff,
            seq_len: spec.seq_len,
            init_std: spec.init_std,
            attention: AttentionConfig::from_spec(spec, true),
        }
    }

    pub fn init(&self, init: &mut Init, device: &Device) -> Opt {
        let d = self.attention.d_model;
        Opt {
            tokens: init.embedding(self.vocab, d, self.init_std, device),
            positions: init.normal_param([self.seq_len, d], self.init_std, device),
            layers: (0..self.layers)
                .map(|_| {
                    PreLnBlock::init(
                        &self.attention,
                        self.d_ff,
                        Activation::Relu,
                        self.init_std,
                        init,
                        device,
                    )
                })
                .collect(),
            final_ln: init.layer_norm(d, device),
            head_weight: None,
        }
    }
}

#[derive(Module, Debug)]
pub struct Opt {
    /// `[vocab, d_model]`, tied to the LM head as in OPT.
    pub tokens: Embedding,
    /// `[seq, d_model]`
    pub positions: Param<Tensor<2>>,
    pub layers: Vec<PreLnBlock>,
    pub final_ln: LayerNorm,
    /// Floating-point LM-head weight used instead of `tokens.weight` when the embeddings are
    /// weight-quantized (the paper's `fp32_head` setup). `[vocab, d_model]`
    #[module(skip)]
    pub head_weight: Option<Tensor<2>>,
}

impl Opt {
    pub fn init(spec: &RunSpec, vocab: usize, init: &mut Init, device: &Device) -> Opt {
        OptConfig::from_spec(spec, vocab).init(init, device)
    }

    /// # Shapes
    /// - `ids`: `[batch, seq]`
    /// - logits: `[batch*seq, vocab]` (row b*seq+t predicts the token after position t)
    pub fn forward(&self, ids: Tensor<2, Int>, aq: &mut ActQuant) -> ModelOutput {
        let [b, t] = ids.dims();
        let pos = self.positions.val().narrow(0, 0, t).unsqueeze::<3>(); // [1, t, d]
        let x = aq.site(None, "emb.sum", self.tokens.forward(ids) + pos); // [b, t, d]
        let mut x = aq.dropout(x);
        let mut taps = Taps::default();
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, l, &mut taps, aq);
        }
        let h = aq.site(None, "final_ln", layer_norm(&self.final_ln, x)); // [b, t, d]
        taps.tracked.push(Tap {
            kind: TapKind::FinalLn,
            layer: None,
            x: h.clone(),
        });
        let d = h.dims()[2];
        let head = self
            .head_weight
            .clone()
            .unwrap_or_else(|| self.tokens.weight.val()); // [vocab, d]
        let logits = matmul_t(h.reshape([b * t, d]), head); // [b*t, vocab]
        ModelOutput { logits, taps }
    }
}
