//! Small ViT classifier (pre-LN encoder on image patches, CLS token, linear head).
//!
//! The paper's ViT-S/16 adds a LayerNorm after the patch embedding (`patch_ln`); its clipped
//! softmax and gated rows use it. The FFN is GELU as in timm. Patches are cut on the host.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

use crate::attention::AttentionConfig;
use crate::init::Init;
use crate::kernels::{layer_norm, linear};
use crate::model::ModelOutput;
use crate::model::block::{Activation, PreLnBlock};
use crate::quant::ActQuant;
use crate::spec::RunSpec;
use crate::taps::{Tap, TapKind, Taps};

/// ViT hyper-parameters; timm `VisionTransformer` names in brackets. Built from a run spec.
#[derive(Clone, Debug, PartialEq)]
pub struct VitConfig {
    /// Image side in pixels \[`img_size`\], single channel. Default: 32.
    pub image: usize,
    /// Patch side \[`patch_size`\]; must divide `image`. Default: 4.
    pub patch: usize,
    /// Number of classes \[`num_classes`\]. Default: 4.
    pub classes: usize,
    /// LayerNorm after the patch embedding (the paper's ViT-S/16 rows with clipped softmax and
    /// gated attention use it; Table 7). Default: true.
    pub patch_ln: bool,
    /// Number of blocks L \[`depth`\]. Default: 2.
    pub layers: usize,
    /// FFN inner size \[`mlp_ratio`·d_model\]. Default: 256.
    pub d_ff: usize,
    /// Std of the normal init. Default: 0.02.
    pub init_std: f64,
    /// Attention: d_model \[`embed_dim`\] (default 64), heads \[`num_heads`\] (default 4), variant, gate.
    pub attention: AttentionConfig,
}

impl VitConfig {
    pub fn from_spec(spec: &RunSpec) -> Self {
        VitConfig {
            image: spec.image,
            patch: spec.patch,
            classes: spec.classes,
            patch_ln: spec.patch_ln,
            layers: spec.layers,
            d_ff: spec.d_ff,
            init_std: spec.init_std,
            attention: AttentionConfig::from_spec(spec, false),
        }
    }

    /// Tokens per image: one per patch plus CLS.
    pub fn tokens(&self) -> usize {
        (self.image / self.patch).pow(2) + 1
    }

    pub fn init(&self, init: &mut Init, device: &Device) -> Vit {
        let d = self.attention.d_model;
        let std = self.init_std;
        Vit {
            patch_embed: init.linear_normal(self.patch * self.patch, d, std, device),
            patch_ln: self.patch_ln.then(|| init.layer_norm(d, device)),
            cls: init.normal_param([1, 1, d], std, device),
            positions: init.normal_param([self.tokens(), d], std, device),
            layers: (0..self.layers)
                .map(|_| {
                    PreLnBlock::init(
                        &self.attention,
                        self.d_ff,
                        Activation::Gelu,
                        std,
                        init,
                        device,
                    )
                })
                .collect(),
            final_ln: init.layer_norm(d, device),
            head: init.linear_normal(d, self.classes, std, device),
        }
    }
}

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
        VitConfig::from_spec(spec).init(init, device)
    }

    /// # Shapes
    /// - `patches`: `[batch, n_patches, patch*patch]`
    /// - logits: `[batch, classes]`
    pub fn forward(&self, patches: Tensor<3>, aq: &mut ActQuant) -> ModelOutput {
        let [b, n, _] = patches.dims();
        let mut x = aq.site(None, "patch_embed", linear(&self.patch_embed, patches)); // [b, n, d]
        if let Some(ln) = &self.patch_ln {
            x = aq.site(None, "patch_ln", layer_norm(ln, x));
        }
        let d = x.dims()[2];
        let cls = self.cls.val().expand([b, 1, d]); // [b, 1, d]
        let pos = self.positions.val().narrow(0, 0, n + 1).unsqueeze::<3>(); // [1, n+1, d]
        let mut x = aq.site(None, "emb.sum", Tensor::cat(vec![cls, x], 1) + pos); // [b, n+1, d]
        let mut taps = Taps::default();
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, l, &mut taps, aq);
        }
        let h = aq.site(None, "final_ln", layer_norm(&self.final_ln, x)); // [b, n+1, d]
        taps.tracked.push(Tap {
            kind: TapKind::FinalLn,
            layer: None,
            x: h.clone(),
        });
        let cls_out = h.narrow(1, 0, 1).reshape([b, d]); // [b, d]
        // The classifier stays in floating point.
        ModelOutput {
            logits: linear(&self.head, cls_out),
            taps,
        }
    }
}
