//! BERT-like masked language model (post-LN encoder, GELU FFN, learned positions, MLM head).
//!
//! Mirrors HF `BertForMaskedLM` as used by the paper's `run_mlm.py`, at toy scale: no token-type
//! embeddings (single segment) and no dropout (demo runs are far too short to overfit).
//! Init: HF N(0, init_std) for embeddings and FFN/head weights, PyTorch default for attention.

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};

use crate::attention::{Attention, AttentionConfig};
use crate::init::Init;
use crate::kernels::{layer_norm, linear, matmul_t};
use crate::model::ModelOutput;
use crate::quant::ActQuant;
use crate::spec::RunSpec;
use crate::taps::{Tap, TapKind, Taps};

/// BERT hyper-parameters; HF `BertConfig` names in brackets. Built from a run spec.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size \[`vocab_size`\]: the tokenizer's, specials included.
    pub vocab: usize,
    /// Number of blocks L \[`num_hidden_layers`\]. Default: 2.
    pub layers: usize,
    /// FFN inner size \[`intermediate_size`\]. Default: 256.
    pub d_ff: usize,
    /// Sequence length T, the number of learned positions \[`max_position_embeddings`\]. Default: 32.
    pub seq_len: usize,
    /// Std of the normal init of embeddings, FFN and head \[`initializer_range`\]. Default: 0.02.
    pub init_std: f64,
    /// Attention: d_model \[`hidden_size`\] (default 64), heads \[`num_attention_heads`\] (default 4),
    /// variant and gate.
    pub attention: AttentionConfig,
}

impl BertConfig {
    pub fn from_spec(spec: &RunSpec, vocab: usize) -> Self {
        BertConfig {
            vocab,
            layers: spec.layers,
            d_ff: spec.d_ff,
            seq_len: spec.seq_len,
            init_std: spec.init_std,
            attention: AttentionConfig {
                out_init_std: Some(spec.init_std),
                ..AttentionConfig::from_spec(spec, false)
            },
        }
    }

    pub fn init(&self, init: &mut Init, device: &Device) -> Bert {
        let d = self.attention.d_model;
        let std = self.init_std;
        let vocab = self.vocab;
        Bert {
            tokens: init.embedding(vocab, d, std, device),
            positions: init.normal_param([self.seq_len, d], std, device),
            emb_ln: init.layer_norm(d, device),
            layers: (0..self.layers)
                .map(|_| BertLayer {
                    attn: self.attention.init(init, device),
                    attn_ln: init.layer_norm(d, device),
                    fc1: init.linear_normal(d, self.d_ff, std, device),
                    fc2: init.linear_normal(self.d_ff, d, std, device),
                    ffn_ln: init.layer_norm(d, device),
                })
                .collect(),
            head_dense: init.linear_normal(d, d, std, device),
            head_ln: init.layer_norm(d, device),
            head_bias: Param::from_tensor(Tensor::zeros([vocab], device)),
            head_weight: None,
        }
    }
}

#[derive(Module, Debug)]
pub struct BertLayer {
    pub attn: Attention,
    /// `attention.output.LayerNorm`
    pub attn_ln: LayerNorm,
    /// `intermediate.dense`
    pub fc1: Linear,
    /// `output.dense`: its output is the tracked "FFN output".
    pub fc2: Linear,
    /// `output.LayerNorm`
    pub ffn_ln: LayerNorm,
}

impl BertLayer {
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    fn forward(&self, x: Tensor<3>, layer: usize, taps: &mut Taps, aq: &mut ActQuant) -> Tensor<3> {
        let l = Some(layer);
        let att = self.attn.forward_act_quant(x.clone(), aq, layer);
        let a_out = aq.dropout(att.out); // [b, t, d]
        let h = aq.site(l, "attn_resid", x + a_out); // [b, t, d]
        let h = aq.site(l, "attn_ln", layer_norm(&self.attn_ln, h)); // [b, t, d]
        let f_hid = aq.site(l, "fc1", gelu(linear(&self.fc1, h.clone()))); // [b, t, d_ff]
        let f_out = aq.site(l, "fc2", linear(&self.fc2, f_hid)); // [b, t, d]
        let f_drop = aq.dropout(f_out.clone()); // [b, t, d]
        let sum = aq.site(l, "ffn_resid", h + f_drop); // [b, t, d]
        // The FFN input + output sum, before the LayerNorm: the paper's code logs its
        // inf-norm beside the FFN output's (`validate_mlm.py`), since post-LN BERT's outliers
        // can live in the residual sum that the LayerNorm then rescales.
        taps.extra.push(Tap {
            kind: TapKind::FfnSum,
            layer: Some(layer),
            x: sum.clone(),
        });
        let y = aq.site(l, "ffn_ln", layer_norm(&self.ffn_ln, sum)); // [b, t, d]
        taps.tracked.push(Tap {
            kind: TapKind::FfnOut,
            layer: Some(layer),
            x: f_out,
        });
        taps.tracked.push(Tap {
            kind: TapKind::LnOut,
            layer: Some(layer),
            x: y.clone(),
        });
        taps.probs.push(att.probs);
        taps.values.push(att.values);
        taps.gates.push(att.gate);
        y
    }
}

#[derive(Module, Debug)]
pub struct Bert {
    /// Word embeddings `[vocab, d_model]`, tied to the MLM decoder as in HF BERT.
    pub tokens: Embedding,
    /// Learned positions `[seq, d_model]`.
    pub positions: Param<Tensor<2>>,
    pub emb_ln: LayerNorm,
    pub layers: Vec<BertLayer>,
    /// MLM head transform: dense → GELU → LayerNorm.
    pub head_dense: Linear,
    pub head_ln: LayerNorm,
    /// Decoder bias `[vocab]`.
    pub head_bias: Param<Tensor<1>>,
    /// Floating-point decoder weight used instead of `tokens.weight` when the word embeddings
    /// are weight-quantized: the paper keeps the whole MLM head in FP. `[vocab, d_model]`
    #[module(skip)]
    pub head_weight: Option<Tensor<2>>,
}

impl Bert {
    pub fn init(spec: &RunSpec, vocab: usize, init: &mut Init, device: &Device) -> Bert {
        BertConfig::from_spec(spec, vocab).init(init, device)
    }

    /// # Shapes
    /// - `ids`: `[batch, seq]`
    /// - logits: `[batch*seq, vocab]`
    pub fn forward(&self, ids: Tensor<2, Int>, aq: &mut ActQuant) -> ModelOutput {
        let [b, t] = ids.dims();
        let pos = self.positions.val().narrow(0, 0, t).unsqueeze::<3>(); // [1, t, d]
        let e = aq.site(None, "emb.sum", self.tokens.forward(ids) + pos); // [b, t, d]
        let x = aq.site(None, "emb.ln", layer_norm(&self.emb_ln, e)); // [b, t, d]
        let mut x = aq.dropout(x);
        let mut taps = Taps::default();
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, l, &mut taps, aq);
        }
        let d = x.dims()[2];
        // The MLM head stays in floating point, as in the paper's quantized BERT.
        let h = layer_norm(&self.head_ln, gelu(linear(&self.head_dense, x))); // [b, t, d]
        let emb = self
            .head_weight
            .clone()
            .unwrap_or_else(|| self.tokens.weight.val()); // [vocab, d]
        let logits = matmul_t(h.reshape([b * t, d]), emb) + self.head_bias.val().unsqueeze(); // [b*t, vocab]
        ModelOutput { logits, taps }
    }
}
