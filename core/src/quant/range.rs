//! Range estimators (paper.md §3, `quantization/range_estimators.py`).

use burn::tensor::Tensor;

use crate::quant::quantizer::{QuantParams, fake_quant_host};

/// How a quantizer's range is estimated during calibration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeEstimator {
    /// The latest batch's min and max (`CurrentMinMaxEstimator`).
    CurrentMinMax,
    /// First batch initialises; then m ← 0.9·m + 0.1·batch (`RunningMinMaxEstimator`).
    RunningMinMax,
    /// Running min-max of each batch's (100−p)-th and p-th percentiles (`--percentile p`).
    Percentile(f32),
}

/// The estimate so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RangeState {
    pub min: f32,
    pub max: f32,
    pub batches: usize,
}

/// EMA momentum of the running estimators.
pub const MOMENTUM: f32 = 0.9;

impl RangeEstimator {
    /// Updates `state` with one batch given as host values.
    pub fn update(self, state: &mut RangeState, values: &[f32]) {
        let (lo, hi) = match self {
            RangeEstimator::CurrentMinMax | RangeEstimator::RunningMinMax => min_max(values),
            RangeEstimator::Percentile(p) => percentiles(values, p),
        };
        let running = !matches!(self, RangeEstimator::CurrentMinMax);
        if state.batches == 0 || !running {
            state.min = lo;
            state.max = hi;
        } else {
            state.min = MOMENTUM * state.min + (1.0 - MOMENTUM) * lo;
            state.max = MOMENTUM * state.max + (1.0 - MOMENTUM) * hi;
        }
        state.batches += 1;
    }

    /// Updates `state` from a device tensor: min/max are reduced on the device and read back
    /// as two numbers; percentiles need the values on the host.
    pub fn update_tensor<const D: usize>(self, state: &mut RangeState, x: &Tensor<D>) {
        match self {
            RangeEstimator::Percentile(_) => {
                let v = x.to_data().try_into_vec::<f32>().unwrap_or_default();
                self.update(state, &v);
            }
            _ => {
                let mm = crate::kernels::min_max(x.clone()); // [2]
                let v = mm.into_data().try_into_vec::<f32>().unwrap_or_default();
                if v.len() == 2 {
                    self.update(state, &v);
                }
            }
        }
    }
}

fn min_max(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// numpy's default (linear-interpolation) percentiles (100−p) and p.
fn percentiles(values: &[f32], p: f32) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let at = |q: f32| {
        let pos = (q / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f32;
        let (i, frac) = (pos.floor() as usize, pos - pos.floor());
        let j = (i + 1).min(v.len() - 1);
        v[i] + (v[j] - v[i]) * frac
    };
    (at(100.0 - p), at(p))
}

/// The paper's MSE weight range (OPT): a grid of 100 candidate symmetric ranges [−c·s, c·s],
/// s = (max|w| + 0.5)/100, c = 1..=100, keeping the one with the least summed squared error.
pub fn mse_weight_range(w: &[f32], bits: u32) -> (f32, f32) {
    let amax = w.iter().fold(0f32, |m, &v| m.max(v.abs()));
    let step = (amax + 0.5) / 100.0;
    let has_neg = w.iter().any(|&v| v < 0.0);
    let mut best = (f64::INFINITY, (-amax, amax));
    for c in 1..=100 {
        let r = step * c as f32;
        let lo = if has_neg { -r } else { 0.0 };
        let p = QuantParams::symmetric(lo, r, bits);
        let err: f64 = w
            .iter()
            .map(|&v| ((fake_quant_host(v, &p) - v) as f64).powi(2))
            .sum();
        if err < best.0 {
            best = (err, (lo, r));
        }
    }
    best.1
}
