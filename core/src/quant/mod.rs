//! Fake (simulated) quantization, as the paper's in-house AIMET-style simulator does it
//! (paper.md §3): uniform quantizers with straight-through rounding, and range estimators.
//!
//! Burn's own quantization is symmetric-only and detaches gradients, so this is written on
//! plain tensor ops; the host functions are the test oracle.

pub mod calibrate;
pub mod quantizer;
pub mod range;
pub mod sites;
pub mod weights;

pub use calibrate::{QuantReport, QuantSettings, quantize_and_evaluate};
pub use quantizer::{QuantParams, fake_quant, fake_quant_host};
pub use range::{RangeEstimator, RangeState, mse_weight_range};
pub use sites::{ActQuant, Dropout, SiteMode};
pub use weights::{WeightRange, quantize_weights};
