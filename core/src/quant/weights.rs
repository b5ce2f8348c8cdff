//! Weight fake-quantization of a whole model: symmetric per-tensor grids on every Linear and
//! embedding weight and every LayerNorm γ, as the paper's `QuantLinear` / `QuantEmbedding` /
//! `QuantLayerNorm` do. Biases, gates and the output heads stay in floating point.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::quant::quantizer::{QuantParams, fake_quant, fake_quant_host};
use crate::quant::range::mse_weight_range;

/// How a weight's grid is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightRange {
    /// The tensor's own min and max (the paper's BERT setting).
    MinMax,
    /// The paper's 100-point MSE grid (its OPT setting, and its sub-8-bit weights).
    Mse,
}

/// SQNR of one quantized weight.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WeightSqnr {
    pub name: String,
    pub sqnr_db: f64,
}

/// Field names that are weights to quantize.
const WEIGHT_FIELDS: &[&str] = &["weight", "gamma", "positions"];

struct WeightQuantizer {
    bits: u32,
    range: WeightRange,
    path: Vec<String>,
    report: Vec<WeightSqnr>,
}

impl ModuleMapper for WeightQuantizer {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let field = self.path.last().map(String::as_str).unwrap_or("");
        let in_fp_part = self
            .path
            .iter()
            .any(|p| p.starts_with("head") || p == "gate");
        if in_fp_part || !WEIGHT_FIELDS.contains(&field) {
            return param;
        }
        let name = self.path.join(".");
        let values = param
            .val()
            .to_data()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        if values.is_empty() {
            return param;
        }
        let (lo, hi) = match self.range {
            WeightRange::MinMax => values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                }),
            WeightRange::Mse => mse_weight_range(&values, self.bits),
        };
        let p = QuantParams::symmetric(lo, hi, self.bits);
        self.report.push(WeightSqnr {
            name,
            sqnr_db: sqnr_db_host(&values, &p),
        });
        param.map(|t| fake_quant(t, &p))
    }
}

fn sqnr_db_host(values: &[f32], p: &QuantParams) -> f64 {
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    for &v in values {
        let e = (fake_quant_host(v, p) - v) as f64;
        sig += (v as f64).powi(2);
        err += e * e;
    }
    sqnr_db(sig, err)
}

/// 10·log10(Σx² / Σ(x − x̂)²), capped at 200 dB for exact grids.
pub fn sqnr_db(signal: f64, error: f64) -> f64 {
    if error <= 0.0 {
        200.0
    } else {
        (10.0 * (signal / error).log10()).min(200.0)
    }
}

/// A weight-quantized copy of `model` (on a plain, non-autodiff device), plus each weight's SQNR.
/// The tied LM / MLM decoder keeps the floating-point embedding matrix.
pub fn quantize_weights(model: &Model, bits: u32, range: WeightRange) -> (Model, Vec<WeightSqnr>) {
    let mut model = model.valid();
    match &mut model {
        Model::Bert(m) => m.head_weight = Some(m.tokens.weight.val()),
        Model::Opt(m) => m.head_weight = Some(m.tokens.weight.val()),
        Model::Vit(_) => {}
    }
    let mut q = WeightQuantizer {
        bits,
        range,
        path: Vec::new(),
        report: Vec::new(),
    };
    let model = model.map(&mut q);
    (model, q.report)
}
