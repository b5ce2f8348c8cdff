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
use crate::model::{ModelOutput, Tap, TapKind, Taps};
use crate::spec::RunSpec;

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
    fn forward(&self, x: Tensor<3>, layer: usize, taps: &mut Taps) -> Tensor<3> {
        let att = self.attn.forward(x.clone());
        let h = self.attn_ln.forward(x + att.out); // [b, t, d]
        let f_out = self.fc2.forward(gelu(self.fc1.forward(h.clone()))); // [b, t, d]
        let y = self.ffn_ln.forward(h + f_out.clone()); // [b, t, d]
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
}

impl Bert {
    pub fn init(spec: &RunSpec, vocab: usize, init: &mut Init, device: &Device) -> Bert {
        let d = spec.d_model;
        let std = spec.init_std;
        let cfg = AttentionConfig::from_spec(spec, false);
        Bert {
            tokens: init.embedding(vocab, d, std, device),
            positions: init.normal_param([spec.seq_len, d], std, device),
            emb_ln: init.layer_norm(d, device),
            layers: (0..spec.layers)
                .map(|_| BertLayer {
                    attn: cfg.init(init, device),
                    attn_ln: init.layer_norm(d, device),
                    fc1: init.linear_normal(d, spec.d_ff, std, device),
                    fc2: init.linear_normal(spec.d_ff, d, std, device),
                    ffn_ln: init.layer_norm(d, device),
                })
                .collect(),
            head_dense: init.linear_normal(d, d, std, device),
            head_ln: init.layer_norm(d, device),
            head_bias: Param::from_tensor(Tensor::zeros([vocab], device)),
        }
    }

    /// # Shapes
    /// - `ids`: `[batch, seq]`
    /// - logits: `[batch*seq, vocab]`
    pub fn forward(&self, ids: Tensor<2, Int>) -> ModelOutput {
        let [b, t] = ids.dims();
        let pos = self.positions.val().narrow(0, 0, t).unsqueeze::<3>(); // [1, t, d]
        let mut x = self.emb_ln.forward(self.tokens.forward(ids) + pos); // [b, t, d]
        let mut taps = Taps::default();
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, l, &mut taps);
        }
        let d = x.dims()[2];
        let h = self.head_ln.forward(gelu(self.head_dense.forward(x))); // [b, t, d]
        let emb = self.tokens.weight.val(); // [vocab, d]
        let logits =
            h.reshape([b * t, d]).matmul(emb.transpose()) + self.head_bias.val().unsqueeze(); // [b*t, vocab]
        ModelOutput { logits, taps }
    }
}
