//! Activation quantizers at the places the paper's code puts them (paper.md §3), threaded
//! through the models' forward passes as one [`ActQuant`] that numbers its sites in call order.

use burn::tensor::Tensor;

use crate::quant::quantizer::{QuantParams, fake_quant};
use crate::quant::range::{RangeEstimator, RangeState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteMode {
    /// Floating point: every site is the identity (training, FP evaluation).
    Off,
    /// Ranges update on every call (the paper's `estimate_ranges`), and each site passes on its
    /// activation quantized with the range so far, as the paper's quantization manager does.
    Calibrate,
    /// Frozen ranges (`fix_ranges`): every site fake-quantizes.
    Apply,
}

/// Inverted dropout with masks drawn on the host from the run's `Dropout` stream, so a run
/// reproduces from its seed on every backend (Burn's device RNG would not).
pub struct Dropout {
    /// Probability of dropping a value, in [0, 1).
    pub p: f64,
    rng: crate::rng::Rng,
}

impl Dropout {
    pub fn new(p: f64, rng: crate::rng::Rng) -> Self {
        Dropout { p, rng }
    }

    /// x·m/(1−p) with m ~ Bernoulli(1−p) per value.
    pub fn apply<const D: usize>(&mut self, x: Tensor<D>) -> Tensor<D> {
        let shape = x.shape();
        let n = shape.num_elements();
        // Compare 53-bit draws with an integer threshold: exact and platform-independent.
        let threshold = (self.p * (1u64 << 53) as f64) as u64;
        let keep = (1.0 / (1.0 - self.p)) as f32;
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if self.rng.next_u64() >> 11 < threshold {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::<D>::from_data(burn::tensor::TensorData::new(mask, shape), &x.device());
        x * mask
    }
}

/// All activation quantizers of one model.
pub struct ActQuant {
    pub mode: SiteMode,
    pub bits: u32,
    pub estimator: RangeEstimator,
    /// Site names in forward order ("layer0.q", "emb.sum", …), learnt on the first pass.
    pub names: Vec<String>,
    pub ranges: Vec<RangeState>,
    params: Vec<QuantParams>,
    cursor: usize,
    /// Calibration: per site `[min, max]` of this batch, read back once per batch.
    pending: Vec<Tensor<1>>,
    /// The first failed calibration read, reported by [`ActQuant::end_calibration_batch`].
    failed: Option<String>,
    /// Apply with `measure`: per site `[Σx², Σ(x−x̂)²]` for SQNR.
    pub measure: bool,
    errors: Vec<Tensor<1>>,
    /// Training-time dropout; `None` in evaluation and quantization. It rides along with the
    /// quantizers because both are threaded through every forward pass at the same places.
    pub dropout: Option<Dropout>,
}

impl ActQuant {
    pub fn off() -> Self {
        Self::new(SiteMode::Off, 8, RangeEstimator::RunningMinMax)
    }

    pub fn new(mode: SiteMode, bits: u32, estimator: RangeEstimator) -> Self {
        ActQuant {
            mode,
            bits,
            estimator,
            names: Vec::new(),
            ranges: Vec::new(),
            params: Vec::new(),
            cursor: 0,
            pending: Vec::new(),
            failed: None,
            measure: false,
            errors: Vec::new(),
            dropout: None,
        }
    }

    pub fn is_off(&self) -> bool {
        self.mode == SiteMode::Off
    }

    /// One activation quantizer. `layer` is `None` for model-level sites; the name is only
    /// built when quantization is on, so the FP path pays nothing.
    pub fn site<const D: usize>(
        &mut self,
        layer: Option<usize>,
        name: &str,
        x: Tensor<D>,
    ) -> Tensor<D> {
        if self.mode == SiteMode::Off {
            return x;
        }
        let i = self.cursor;
        self.cursor += 1;
        if i == self.names.len() {
            self.names.push(match layer {
                Some(l) => format!("layer{l}.{name}"),
                None => name.to_string(),
            });
            self.ranges.push(RangeState::default());
        }
        match self.mode {
            SiteMode::Off => x,
            SiteMode::Calibrate => {
                let est = self.estimator;
                if matches!(est, RangeEstimator::Percentile(_)) {
                    // Percentiles need every value on the host.
                    est.update_tensor(&mut self.ranges[i], &x);
                } else {
                    // Read now, not once per batch: the paper's quantization manager updates
                    // the range and then passes the *quantized* activation on
                    // (`quantization_manager.py`), so every later site calibrates on
                    // quantized inputs. Calibration runs on the CPU backend in the browser,
                    // where this read does not block.
                    match crate::kernels::min_max(x.clone())
                        .into_data()
                        .try_into_vec::<f32>()
                    {
                        Ok(mm) => est.update(&mut self.ranges[i], &mm),
                        Err(e) => {
                            self.failed.get_or_insert(format!("{e:?}"));
                            return x;
                        }
                    }
                }
                let r = self.ranges[i];
                fake_quant(x, &QuantParams::asymmetric(r.min, r.max, self.bits))
            }
            SiteMode::Apply => {
                let p = self
                    .params
                    .get(i)
                    .copied()
                    .unwrap_or(QuantParams::asymmetric(0.0, 1.0, self.bits));
                let y = fake_quant(x.clone(), &p);
                if self.measure {
                    let n = x.shape().num_elements();
                    let xf = x.reshape([n]); // [n]
                    let err = crate::kernels::sum_all(
                        (xf.clone() - y.clone().reshape([n])).powi_scalar(2),
                    );
                    let energy = crate::kernels::sum_all(xf.powi_scalar(2));
                    self.errors.push(Tensor::cat(vec![energy, err], 0));
                }
                y
            }
        }
    }

    /// Dropout when training with it, else the identity.
    pub fn dropout<const D: usize>(&mut self, x: Tensor<D>) -> Tensor<D> {
        match &mut self.dropout {
            Some(d) if d.p > 0.0 => d.apply(x),
            _ => x,
        }
    }

    /// Starts a forward pass (site numbering restarts).
    pub fn begin(&mut self) {
        self.cursor = 0;
        self.pending.clear();
        self.errors.clear();
    }

    /// Ends a calibration batch: reads this batch's min/max back (one transfer) and updates
    /// every running range.
    pub fn end_calibration_batch(&mut self) -> Result<(), String> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let v = Tensor::cat(std::mem::take(&mut self.pending), 0)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        for (state, mm) in self.ranges.iter_mut().zip(v.chunks(2)) {
            self.estimator.update(state, mm);
        }
        Ok(())
    }

    /// Freezes the ranges into quantizer parameters and switches to [`SiteMode::Apply`].
    pub fn freeze(&mut self) {
        self.params = self
            .ranges
            .iter()
            .map(|r| QuantParams::asymmetric(r.min, r.max, self.bits))
            .collect();
        self.mode = SiteMode::Apply;
    }

    /// Reads the per-site `[Σx², Σerr²]` of the last measured pass.
    pub fn take_errors(&mut self) -> Result<Vec<(f64, f64)>, String> {
        if self.errors.is_empty() {
            return Ok(Vec::new());
        }
        let v = Tensor::cat(std::mem::take(&mut self.errors), 0)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        Ok(v.chunks(2).map(|c| (c[0] as f64, c[1] as f64)).collect())
    }
}
