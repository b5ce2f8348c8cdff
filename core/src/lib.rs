//! qtlab-core: tiny BERT / OPT / ViT with every attention variant of *Quantizable Transformers:
//! Removing Outliers by Helping Attention Heads Do Nothing* (Bondarenko, Nagel, Blankevoort,
//! NeurIPS 2023, arXiv 2306.12929), seeded data, training and the paper's outlier metrics.
//!
//! A run is a [`spec::RunSpec`]; everything random derives from its one seed ([`rng`]).

pub mod attention;
pub mod data;
pub mod dataset;
pub mod init;
pub mod inspect;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod presets;
pub mod quant;
pub mod record;
pub mod rng;
pub mod spec;
pub mod train;
pub mod url;

/// Burn itself, so the app uses exactly the core's Burn and features.
pub use burn;
pub use burn::tensor::Device;

/// The backends a run can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (Flex).
    Cpu,
    /// WebGPU / Vulkan through wgpu (lavapipe on GPU-less Linux).
    Wgpu,
}

impl Backend {
    pub fn device(self) -> Device {
        match self {
            Backend::Cpu => Device::flex(),
            Backend::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" | "flex" => Ok(Backend::Cpu),
            "wgpu" | "gpu" => Ok(Backend::Wgpu),
            other => Err(format!("unknown backend `{other}` (expected cpu|wgpu)")),
        }
    }
}
