//! Post-training quantization (W8A8 and lower) of a trained model, as the paper evaluates it
//! (paper.md §3): weight grids, activation-range calibration on quantized upstream
//! activations, then evaluation with every quantizer on. Built on the quantizer op in
//! [`crate::quant`].

pub mod calibrate;
pub mod weights;

pub use calibrate::{QuantReport, QuantSettings, quantize_and_evaluate};
pub use weights::{WeightRange, quantize_weights};
