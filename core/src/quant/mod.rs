//! Fake (simulated) quantization, as the paper's in-house AIMET-style simulator does it
//! (paper.md §3): uniform quantizers with straight-through rounding, range estimators and the
//! activation quantizer sites the models call. The post-training pipeline that drives them
//! over a trained model lives in [`crate::ptq`].
//!
//! Burn's own quantization is symmetric-only and detaches gradients, so this is written on
//! plain tensor ops; the host functions are the test oracle.

pub mod quantizer;
pub mod range;
pub mod sites;

pub use quantizer::{QuantParams, fake_quant, fake_quant_host};
pub use range::{RangeEstimator, RangeState, mse_weight_range};
pub use sites::{ActQuant, Dropout, SiteMode};
