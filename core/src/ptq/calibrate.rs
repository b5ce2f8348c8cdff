//! Post-training quantization of a trained run: quantize weights, calibrate activation ranges on
//! training batches, freeze, and evaluate FP and quantized models on the same held-out batches
//! (paper.md §3).

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::Device;
use crate::dataset::RunData;
use crate::model::Model;
use crate::ptq::weights::{WeightRange, WeightSqnr, quantize_weights, sqnr_db};
use crate::quant::range::RangeEstimator;
use crate::quant::sites::{ActQuant, SiteMode};
use crate::rng::{Rng, Stream};
use crate::spec::{ModelKind, RunSpec};
use crate::train::{TrainError, Trainer, batch_loss_and_correct};

/// Settings of one quantization point.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QuantSettings {
    pub w_bits: u32,
    pub a_bits: u32,
    pub weight_range: WeightRange,
    /// One weight grid per output channel instead of per tensor (default false: the paper's
    /// per-tensor setting). Older records lack the field and read as per-tensor.
    #[serde(default)]
    pub per_channel: bool,
    /// `running_minmax`, `current_minmax` or `percentile:<p>`.
    pub act_range: String,
    /// Calibration batches (the paper: 16).
    pub calib_batches: usize,
}

impl QuantSettings {
    /// Parses `w8a8`-style bit widths (2..=16 each).
    pub fn parse_bits(text: &str) -> Result<(u32, u32), String> {
        let bad = || format!("bit widths look like w8a8 (each 2..=16), got `{text}`");
        let rest = text.trim().strip_prefix('w').ok_or_else(bad)?;
        let (w, a) = rest.split_once('a').ok_or_else(bad)?;
        let (w, a): (u32, u32) = (w.parse().map_err(|_| bad())?, a.parse().map_err(|_| bad())?);
        if !(2..=16).contains(&w) || !(2..=16).contains(&a) {
            return Err(bad());
        }
        Ok((w, a))
    }

    pub fn estimator(&self) -> Result<RangeEstimator, String> {
        match self.act_range.as_str() {
            "running_minmax" => Ok(RangeEstimator::RunningMinMax),
            "current_minmax" => Ok(RangeEstimator::CurrentMinMax),
            other => match other
                .strip_prefix("percentile:")
                .and_then(|p| p.parse::<f32>().ok())
            {
                Some(p) if p > 50.0 && p <= 100.0 => Ok(RangeEstimator::Percentile(p)),
                _ => Err(format!(
                    "activation range `{other}`: expected running_minmax, current_minmax or percentile:<50..100>"
                )),
            },
        }
    }
}

/// SQNR of one activation quantizer over the evaluation batches.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SiteSqnr {
    pub name: String,
    pub sqnr_db: f64,
}

/// Loss and the task metric of one model on the evaluation batches.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QuantMetric {
    pub loss: f64,
    pub ppl: Option<f64>,
    pub accuracy: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QuantReport {
    pub settings: QuantSettings,
    pub fp: QuantMetric,
    pub quantized: QuantMetric,
    /// Per activation quantizer, in forward order.
    pub act_sqnr: Vec<SiteSqnr>,
    pub weight_sqnr: Vec<WeightSqnr>,
}

/// Quantizes the trainer's current model and evaluates it against its FP self.
pub fn quantize_and_evaluate(
    trainer: &Trainer,
    settings: &QuantSettings,
) -> Result<QuantReport, TrainError> {
    let device = trainer.device().clone().inner();
    quantize_model(
        trainer.model(),
        &trainer.spec,
        &trainer.data,
        &device,
        settings,
    )
}

/// Quantizes `model` (trained under `spec` on `data`) on `device` and evaluates it against its
/// FP self. Blocking readbacks: the browser runs this on the CPU backend, whose reads complete
/// at once, after copying the weights off the GPU ([`crate::inspect::model_to_device`]).
pub fn quantize_model(
    model: &Model,
    spec: &RunSpec,
    data: &RunData,
    device: &Device,
    settings: &QuantSettings,
) -> Result<QuantReport, TrainError> {
    let device = device.clone();
    let estimator = settings.estimator().map_err(TrainError::Device)?;
    let fp_model = model.valid();
    let (q_model, weight_sqnr) = quantize_weights(
        model,
        settings.w_bits,
        settings.weight_range,
        settings.per_channel,
    );

    // Calibrate on training batches from their own stream, so calibration never shifts the
    // training order and repeats exactly.
    let mut aq = ActQuant::new(SiteMode::Calibrate, settings.a_bits, estimator);
    let mut order = Rng::stream(spec.seed, Stream::Calib);
    let mut mask = order.fork(1);
    for _ in 0..settings.calib_batches.max(1) {
        let host = data.train_batch(spec, &mut order, &mut mask);
        let batch = host.to_device(spec, &device);
        let _ = q_model.forward_act_quant(batch.input.clone(), &mut aq);
        aq.end_calibration_batch().map_err(TrainError::Device)?;
    }
    aq.freeze();
    aq.measure = true;

    let mut off = ActQuant::off();
    let (mut fp_sum, mut q_sum) = ([0f64; 2], [0f64; 2]);
    let mut sq: Vec<(f64, f64)> = Vec::new();
    for i in 0..spec.eval_batches {
        let host = data.eval_batch(spec, i);
        let batch = host.to_device(spec, &device);
        for (model, aq, sum) in [
            (&fp_model, &mut off, &mut fp_sum),
            (&q_model, &mut aq, &mut q_sum),
        ] {
            let out = model.forward_act_quant(batch.input.clone(), aq);
            let v = batch_loss_and_correct(out.logits, &batch, spec.model == ModelKind::Vit)?;
            sum[0] += v[0];
            sum[1] += v[1];
        }
        let errs = aq.take_errors().map_err(TrainError::Device)?;
        if sq.is_empty() {
            sq = vec![(0.0, 0.0); errs.len()];
        }
        for (acc, e) in sq.iter_mut().zip(errs) {
            acc.0 += e.0;
            acc.1 += e.1;
        }
    }
    let n = spec.eval_batches.max(1) as f64;
    let metric = |s: [f64; 2]| {
        let loss = s[0] / n;
        let vit = spec.model == ModelKind::Vit;
        QuantMetric {
            loss,
            ppl: (!vit).then(|| loss.exp()),
            accuracy: vit.then(|| s[1] / (n * spec.batch as f64)),
        }
    };
    let act_sqnr = aq
        .names
        .iter()
        .zip(&sq)
        .map(|(name, &(sig, err))| SiteSqnr {
            name: name.clone(),
            sqnr_db: sqnr_db(sig, err),
        })
        .collect();
    Ok(QuantReport {
        settings: settings.clone(),
        fp: metric(fp_sum),
        quantized: metric(q_sum),
        act_sqnr,
        weight_sqnr,
    })
}
