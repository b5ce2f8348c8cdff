//! qtlab-core: tiny BERT / OPT / ViT with every attention variant of *Quantizable Transformers:
//! Removing Outliers by Helping Attention Heads Do Nothing* (Bondarenko, Nagel, Blankevoort,
//! NeurIPS 2023, arXiv 2306.12929), seeded data, training and the paper's outlier metrics.
//!
//! A run is a [`spec::RunSpec`]; everything random derives from its one seed ([`rng`]).
//!
//! # Module map
//! Bottom-up: a module uses only modules listed above it (`tests/layers.rs` checks this list
//! against the sources, so keep it in order).
//!
//! - [`rng`]: one run seed split into named streams (data, init, mask, order, dropout)
//! - [`data`]: host-side corpora, tokenizer, Bigram-Backcopy, synthetic images, batches
//! - [`spec`]: `RunSpec`, the one description of a run, and its canonical string
//! - [`presets`]: the app's presets, shared with the CLI
//! - [`kernels`]: custom WGSL kernels and their plain Burn-tensor twins
//! - [`taps`]: the activations a forward pass hands back for the metrics
//! - [`metrics`]: max inf-norm and kurtosis as the paper's code computes them
//! - [`quant`]: the fake-quantization op, range estimators and activation quantizer sites
//! - [`init`]: parameter initialisation from the run's init stream
//! - [`params`]: float parameters by dotted path: list them, load them from host arrays
//! - [`attention`]: self-attention with softmax, clipped softmax and gated variants
//! - [`model`]: BERT, OPT and ViT, returning logits plus taps
//! - [`dataset`]: the run's data turned into device batches
//! - [`train`]: AdamW, schedule, the trainer and evaluation
//! - [`inspect`]: attention maps, gates and histograms for the app, in one readback
//! - [`ptq`]: post-training W8A8 (and lower) quantization and its report
//! - [`record`]: the JSON record of a run, the events a run emits, and how they fill it
//! - [`checkpoint`]: one file that lets a run go on exactly where it stopped (native)
//! - [`driver`]: the one run loop: stats and evaluation cadence, inspection, divergence, timing
//! - [`url`]: the app's URL state (the spec plus app-only keys)
//!
//! # Glossary (the paper's names)
//! - **inf-norm**: ‖x‖∞ of one sequence's tracked tensor (all T×d entries); the paper reports
//!   its maximum over tracked tensors, averaged over evaluation sequences.
//! - **kurtosis**: mean((x−μ)⁴)/(s⁴+1e-6) per sequence, Gaussian = 3; averaged over tensors.
//! - **clipped softmax**: clip((ζ−γ)·softmax(x)+γ, 0, 1); γ = −α/T when `alpha` is set.
//! - **gated attention**: each head's output times π = sigmoid(G(x)), a per-head, per-token
//!   gate; π_init is the gate's initial mean.
//! - **no-op head**: a head that wants its output to change nothing; in vanilla attention it
//!   parks its mass on a low-information token (the sink) with a small value.
//! - **lane** (app, [`url`]): one run shown beside others on the same seed and batches, one
//!   per compared attention variant.
//! - **act quant** (`forward_act_quant`): the forward pass with the paper's activation
//!   quantizers in place; `q`/`k`/`v` always mean query, key and value.
//! - **W8A8**: 8-bit weights (symmetric, per tensor) and 8-bit activations (asymmetric) at
//!   the paper's quantizer sites; WxAy lowers the bit widths.

pub mod attention;
#[cfg(not(target_arch = "wasm32"))]
pub mod checkpoint;
pub mod data;
pub mod dataset;
pub mod driver;
pub mod init;
pub mod inspect;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod params;
pub mod presets;
pub mod ptq;
pub mod quant;
pub mod record;
pub mod rng;
pub mod spec;
pub mod taps;
pub mod train;
pub mod url;

/// Burn itself, so the app uses exactly the core's Burn and features.
pub use burn;
pub use burn::tensor::Device;

/// The backends a run can use (named apart from Burn's `Backend` trait, which core also uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (Flex).
    Cpu,
    /// WebGPU / Vulkan through wgpu (lavapipe on GPU-less Linux).
    Wgpu,
    /// NVIDIA GPUs through CubeCL's CUDA runtime (the `cuda` feature; off by default).
    #[cfg(feature = "cuda")]
    Cuda,
}

impl BackendKind {
    pub fn device(self) -> Device {
        match self {
            BackendKind::Cpu => Device::flex(),
            BackendKind::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Device::cuda(0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => "cuda",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" | "flex" => Ok(BackendKind::Cpu),
            "wgpu" | "gpu" => Ok(BackendKind::Wgpu),
            #[cfg(feature = "cuda")]
            "cuda" => Ok(BackendKind::Cuda),
            #[cfg(not(feature = "cuda"))]
            "cuda" => Err("this qtlab was built without CUDA: build the CLI with \
                           `--features cuda` (docs/scale-out.md)"
                .into()),
            other => Err(format!("unknown backend `{other}` (expected cpu|wgpu)")),
        }
    }
}
