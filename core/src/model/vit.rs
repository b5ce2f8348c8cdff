//! Small ViT classifier (pre-LN encoder on image patches, CLS token, linear head).
//!
//! The paper's ViT-S/16 adds a LayerNorm after the patch embedding (`patch_ln`); its clipped
//! softmax and gated rows use it. The FFN is GELU as in timm. Patches are cut on the host.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

use crate::attention::AttentionConfig;
use crate::init::Init;
use crate::model::block::{Activation, PreLnBlock};
use crate::model::{ModelOutput, Tap, TapKind, Taps};
use crate::spec::RunSpec;

#[derive(Module, Debug)]
pub struct Vit {
    /// Patch embedding Linear(patch² → d_model).
    pub patch_embed: Linear,
    pub patch_ln: Option<LayerNorm>,
    /// `[1, 1, d_model]`
    pub cls: Param<Tensor<3>>,
    /// `[n_patches + 1, d_model]`
    pub positions: Param<Tensor<2>>,
    pub layers: Vec<PreLnBlock>,
    pub final_ln: LayerNorm,
    pub head: Linear,
}

impl Vit {
    pub fn init(spec: &RunSpec, init: &mut Init, device: &Device) -> Vit {
        let d = spec.d_model;
        let std = spec.init_std;
        let p2 = spec.patch * spec.patch;
        let cfg = AttentionConfig::from_spec(spec, false);
        Vit {
            patch_embed: init.linear_normal(p2, d, std, device),
            patch_ln: spec.patch_ln.then(|| init.layer_norm(d, device)),
            cls: init.normal_param([1, 1, d], std, device),
            positions: init.normal_param([spec.seq_tokens(), d], std, device),
            layers: (0..spec.layers)
                .map(|_| PreLnBlock::init(&cfg, spec.d_ff, Activation::Gelu, std, init, device))
                .collect(),
            final_ln: init.layer_norm(d, device),
            head: init.linear_normal(d, spec.classes, std, device),
        }
    }

    /// # Shapes
    /// - `patches`: `[batch, n_patches, patch*patch]`
    /// - logits: `[batch, classes]`
    pub fn forward(&self, patches: Tensor<3>) -> ModelOutput {
        let [b, n, _] = patches.dims();
        let mut x = self.patch_embed.forward(patches); // [b, n, d]
        if let Some(ln) = &self.patch_ln {
            x = ln.forward(x);
        }
        let d = x.dims()[2];
        let cls = self.cls.val().expand([b, 1, d]); // [b, 1, d]
        let pos = self.positions.val().narrow(0, 0, n + 1).unsqueeze::<3>(); // [1, n+1, d]
        let mut x = Tensor::cat(vec![cls, x], 1) + pos; // [b, n+1, d]
        let mut taps = Taps::default();
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, l, &mut taps);
        }
        let h = self.final_ln.forward(x); // [b, n+1, d]
        taps.tracked.push(Tap {
            kind: TapKind::FinalLn,
            layer: None,
            x: h.clone(),
        });
        let cls_out = h.narrow(1, 0, 1).reshape([b, d]); // [b, d]
        ModelOutput {
            logits: self.head.forward(cls_out),
            taps,
        }
    }
}
