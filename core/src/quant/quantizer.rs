//! Uniform quantizers: asymmetric with a zero point for activations, symmetric for weights.

use burn::tensor::Tensor;

/// A uniform grid: x̂ = Δ·(clamp(round(x/Δ) + zp, qmin, qmax) − zp).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantParams {
    /// Δ, the step size.
    pub scale: f32,
    /// The integer that represents 0 (0 for symmetric grids).
    pub zero_point: f32,
    pub qmin: f32,
    pub qmax: f32,
}

impl QuantParams {
    /// The paper's `AsymmetricUniformQuantizer` (activations): the range is widened to contain
    /// 0 (`x_min ← min(x_min, 0)`, `x_max ← max(x_max, 1e-8)`), Δ = (x_max − x_min)/(2^b − 1),
    /// zp = clamp(round(−x_min/Δ), 0, 2^b − 1).
    pub fn asymmetric(x_min: f32, x_max: f32, bits: u32) -> Self {
        let levels = ((1u64 << bits) - 1) as f32;
        let lo = x_min.min(0.0);
        let hi = x_max.max(1e-8);
        let scale = (hi - lo) / levels;
        let zero_point = (-lo / scale).round_ties_even().clamp(0.0, levels);
        QuantParams {
            scale,
            zero_point,
            qmin: 0.0,
            qmax: levels,
        }
    }

    /// The paper's `SymmetricUniformQuantizer` (weights): a signed grid [−2^(b−1), 2^(b−1)−1]
    /// with Δ = max(|x_min|, x_max)/(2^(b−1) − 1) when the tensor has negatives, otherwise an
    /// unsigned grid [0, 2^b − 1] with Δ = x_max/(2^b − 1).
    pub fn symmetric(x_min: f32, x_max: f32, bits: u32) -> Self {
        if x_min < 0.0 {
            let half = (1u64 << (bits - 1)) as f32;
            let scale = (x_min.abs().max(x_max).max(1e-8)) / (half - 1.0);
            QuantParams {
                scale,
                zero_point: 0.0,
                qmin: -half,
                qmax: half - 1.0,
            }
        } else {
            let levels = ((1u64 << bits) - 1) as f32;
            QuantParams {
                scale: x_max.max(1e-8) / levels,
                zero_point: 0.0,
                qmin: 0.0,
                qmax: levels,
            }
        }
    }

    /// The representable range [Δ·(qmin − zp), Δ·(qmax − zp)].
    pub fn range(&self) -> (f32, f32) {
        (
            self.scale * (self.qmin - self.zero_point),
            self.scale * (self.qmax - self.zero_point),
        )
    }
}

/// Host reference of [`fake_quant`] for one value (the test oracle). Rounds half to even, as
/// `torch.round` and Burn's `round` do.
pub fn fake_quant_host(x: f32, p: &QuantParams) -> f32 {
    let q = ((x / p.scale).round_ties_even() + p.zero_point).clamp(p.qmin, p.qmax);
    (q - p.zero_point) * p.scale
}

/// Fake quantization with a straight-through estimator for the rounding: the forward pass
/// returns the quantized value, the backward pass lets the gradient through unchanged inside
/// the grid's range and blocks it where the clamp is active (the paper's `round_ste_func`
/// followed by a clamp).
///
/// # Shapes
/// - `x`: any → same
pub fn fake_quant<const D: usize>(x: Tensor<D>, p: &QuantParams) -> Tensor<D> {
    // A fused kernel (forward and straight-through backward) on a GPU, tensor ops on the CPU.
    crate::kernels::fake_quant(x, p.scale, p.zero_point, p.qmin, p.qmax)
}
