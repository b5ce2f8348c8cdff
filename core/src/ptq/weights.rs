//! Weight fake-quantization of a whole model: symmetric per-tensor grids on every Linear and
//! embedding weight and every LayerNorm γ, as the paper's `QuantLinear` / `QuantEmbedding` /
//! `QuantLayerNorm` do. Biases, gates and the output heads stay in floating point. Optionally the
//! 2-D weights get one grid per output channel instead (the paper's per-tensor setting is the
//! default; per-channel is the usual remedy for weight outliers, so it isolates the activations).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::quant::quantizer::{QuantParams, fake_quant, fake_quant_host};
use crate::quant::range::mse_weight_range;

/// How a weight's grid is chosen. Text: `minmax|mse`, the same in the URL, the CLI and the
/// record (records before issue 16 wrote `min_max`, still read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum WeightRange {
    /// The tensor's own min and max (the paper's BERT setting).
    MinMax,
    /// The paper's 100-point MSE grid (its OPT setting, and its sub-8-bit weights).
    Mse,
}

crate::spec::text_enum!(WeightRange { MinMax => "minmax" | "min_max", Mse => "mse" });

impl WeightRange {
    /// The paper's choice per model: min-max for BERT (and the ViT, which has no paper code),
    /// the MSE grid for OPT (`validate_clm.py` forces it for OPT's weights).
    pub fn default_for(model: crate::spec::ModelKind) -> WeightRange {
        match model {
            crate::spec::ModelKind::Opt => WeightRange::Mse,
            _ => WeightRange::MinMax,
        }
    }
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
    per_channel: bool,
    path: Vec<String>,
    /// The struct each entry of `path` sits in (`Struct:Linear`, ...), to find a weight's
    /// output axis.
    containers: Vec<String>,
    report: Vec<WeightSqnr>,
}

/// The symmetric grid of one group of weights under `range`.
fn grid(values: &[f32], bits: u32, range: WeightRange) -> QuantParams {
    let (lo, hi) = match range {
        WeightRange::MinMax => values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            }),
        WeightRange::Mse => mse_weight_range(values, bits),
    };
    QuantParams::symmetric(lo, hi, bits)
}

/// Per-channel fake quantization of a row-major `[rows, cols]` matrix on the host: one grid per
/// column when `by_column` (a Burn `Linear` weight is `[d_in, d_out]`, so its output channels are
/// columns), otherwise one per row (embedding and position tables: one per token or position,
/// as PyTorch's axis 0). Returns the quantized values and their SQNR.
pub fn fake_quant_per_channel(
    values: &[f32],
    rows: usize,
    cols: usize,
    by_column: bool,
    bits: u32,
    range: WeightRange,
) -> (Vec<f32>, f64) {
    let mut out = values.to_vec();
    let (channels, len) = if by_column {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let index = |c: usize, i: usize| {
        if by_column {
            i * cols + c
        } else {
            c * cols + i
        }
    };
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    let mut group = vec![0f32; len];
    for c in 0..channels {
        for (i, g) in group.iter_mut().enumerate() {
            *g = values[index(c, i)];
        }
        let p = grid(&group, bits, range);
        for (i, &v) in group.iter().enumerate() {
            let q = fake_quant_host(v, &p);
            out[index(c, i)] = q;
            sig += (v as f64).powi(2);
            err += ((q - v) as f64).powi(2);
        }
    }
    (out, sqnr_db(sig, err))
}

/// Fake quantization of a row-major `[rows, cols]` matrix whose columns are `blocks` equal
/// blocks side by side, one per-tensor grid per block: the fused Q/K/V weight `[d, 3d]` is
/// three `Linear(d → d)` layers in the paper (`quantized_bert.py` wraps query, key and value
/// as separate `QuantLinear`s), so each gets its own range. Returns the quantized values and
/// each block's SQNR.
pub fn fake_quant_column_blocks(
    values: &[f32],
    rows: usize,
    cols: usize,
    blocks: usize,
    bits: u32,
    range: WeightRange,
) -> (Vec<f32>, Vec<f64>) {
    let mut out = values.to_vec();
    let width = cols / blocks.max(1);
    let mut sqnrs = Vec::with_capacity(blocks);
    for k in 0..blocks {
        let idx: Vec<usize> = (0..rows)
            .flat_map(|r| (k * width..(k + 1) * width).map(move |c| r * cols + c))
            .collect();
        let group: Vec<f32> = idx.iter().map(|&i| values[i]).collect();
        let p = grid(&group, bits, range);
        for &i in &idx {
            out[i] = fake_quant_host(values[i], &p);
        }
        sqnrs.push(sqnr_db_host(&group, &p));
    }
    (out, sqnrs)
}

impl ModuleMapper for WeightQuantizer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
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
        let dims = param.val().dims();
        if self.per_channel && D == 2 {
            let by_column = self
                .containers
                .last()
                .is_some_and(|c| c.ends_with(":Linear"));
            let (q, sqnr_db) =
                fake_quant_per_channel(&values, dims[0], dims[1], by_column, self.bits, self.range);
            self.report.push(WeightSqnr { name, sqnr_db });
            return param.map(|t| Tensor::from_data(TensorData::new(q, t.dims()), &t.device()));
        }
        // The fused Q/K/V weight `[d, 3d]`: one grid each for Q, K and V, as the paper's
        // three separately quantized Linear layers have.
        if D == 2 && self.path.iter().rev().nth(1).is_some_and(|p| p == "qkv") {
            let (q, sqnrs) =
                fake_quant_column_blocks(&values, dims[0], dims[1], 3, self.bits, self.range);
            for (part, sqnr_db) in ["q", "k", "v"].iter().zip(sqnrs) {
                self.report.push(WeightSqnr {
                    name: format!("{name}[{part}]"),
                    sqnr_db,
                });
            }
            return param.map(|t| Tensor::from_data(TensorData::new(q, t.dims()), &t.device()));
        }
        let p = grid(&values, self.bits, self.range);
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
/// The tied LM / MLM decoder keeps the floating-point embedding matrix. `per_channel` gives each
/// output channel of a 2-D weight its own grid; 1-D weights (LayerNorm γ) stay per-tensor.
pub fn quantize_weights(
    model: &Model,
    bits: u32,
    range: WeightRange,
    per_channel: bool,
) -> (Model, Vec<WeightSqnr>) {
    let mut model = model.valid();
    match &mut model {
        Model::Bert(m) => m.head_weight = Some(m.tokens.weight.val()),
        Model::Opt(m) => m.head_weight = Some(m.tokens.weight.val()),
        Model::Vit(_) => {}
    }
    let mut q = WeightQuantizer {
        bits,
        range,
        per_channel,
        path: Vec::new(),
        containers: Vec::new(),
        report: Vec::new(),
    };
    let model = model.map(&mut q);
    (model, q.report)
}

#[cfg(test)]
mod tests {
    use super::WeightRange;

    #[test]
    fn weight_range_has_one_spelling_and_reads_the_old_one() {
        for (range, name) in WeightRange::ALL.iter().zip(WeightRange::NAMES) {
            assert_eq!(range.to_string(), *name);
            assert_eq!(name.parse::<WeightRange>(), Ok(*range));
            let json = serde_json::to_string(range).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<WeightRange>(&json).unwrap(), *range);
        }
        // Records written before the spellings were unified.
        let old: WeightRange = serde_json::from_str("\"min_max\"").unwrap();
        assert_eq!(old, WeightRange::MinMax);
        assert!("MinMax".parse::<WeightRange>().is_err());
    }
}
