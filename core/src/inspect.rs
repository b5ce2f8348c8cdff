//! What the app draws beyond the scalar curves: one held-out sequence's attention maps and gates,
//! and histograms of the tracked activations. Everything comes back in a single readback, so
//! the browser pays one GPU→CPU round trip per inspection.
//!
//! Also the async weight copy that lets the browser quantize a GPU-trained model on the CPU
//! backend (whose reads never block).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::Device;
use crate::dataset::{HostInput, RunData};
use crate::model::{Model, ModelOutput};
use crate::train::{TrainError, Trainer, read_f32, read_f32_async};

/// Bins per activation histogram. Odd, so zero sits in the middle of a bin.
pub const HIST_BINS: usize = 41;

/// A histogram of one tracked tensor over evaluation batch 0.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    /// The tap's label, e.g. `layer0.ffn_out`.
    pub name: String,
    /// Bins cover [-range, range] evenly; the outermost bins also take anything beyond.
    pub range: f64,
    pub counts: Vec<u64>,
}

/// One sequence's attention, gates and activation histograms at a given step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Inspection {
    pub step: usize,
    pub heads: usize,
    /// Tokens (or patches) of the shown sequence, as labels.
    pub tokens: Vec<String>,
    /// Per layer, `[heads, seq, seq]` row-major: row = query, column = key.
    pub attn: Vec<Vec<f32>>,
    /// Per layer, `[heads, seq]` gate values π (gated attention only).
    pub gates: Vec<Option<Vec<f32>>>,
    pub hists: Vec<Histogram>,
}

fn token_labels(data: &RunData, input: &HostInput, seq: usize) -> Vec<String> {
    match (data, input) {
        (RunData::Text(c), HostInput::Tokens(ids)) => ids[..seq]
            .iter()
            .map(|&id| match c.tokenizer.decode(&[id]).as_str() {
                "\n" => "⏎".to_string(),
                " " => "␣".to_string(),
                s => s.to_string(),
            })
            .collect(),
        _ => (0..seq)
            .map(|i| {
                if i == 0 {
                    "CLS".to_string()
                } else {
                    format!("p{i}")
                }
            })
            .collect(),
    }
}

/// Everything [`inspect`] reads, laid out in one flat tensor, plus how to cut it apart.
struct Packed {
    flat: Tensor<1>,
    seq: usize,
    heads: usize,
    gate_layers: Vec<bool>,
    tap_names: Vec<String>,
    tokens: Vec<String>,
}

fn pack(trainer: &Trainer) -> Packed {
    let spec = &trainer.spec;
    let device = trainer.device().clone().inner();
    let host = trainer.data.eval_batch(spec, 0);
    let tokens_all = token_labels(&trainer.data, &host.input, host.seq);
    let batch = host.to_device(spec, &device);
    let model = trainer.model().valid();
    let ModelOutput { taps, .. } = model.forward(batch.input);
    let heads = spec.heads;
    let mut parts: Vec<Tensor<1>> = Vec::new();
    let mut seq = 0;
    for p in &taps.probs {
        let [_, h, t, _] = p.dims();
        seq = t;
        parts.push(p.clone().slice([0..1]).reshape([h * t * t])); // [heads*seq*seq]
    }
    let mut gate_layers = Vec::new();
    for g in &taps.gates {
        gate_layers.push(g.is_some());
        if let Some(g) = g {
            let g = g.clone().slice([0..1]).expand([1, heads, seq, 1]); // [1, heads, seq, 1]
            parts.push(g.reshape([heads * seq]));
        }
    }
    let headline = model.headline_kind();
    let mut tap_names = Vec::new();
    for tap in taps.tracked.iter().filter(|t| t.kind == headline) {
        let [b, t, d] = tap.x.dims();
        tap_names.push(tap.label());
        // The histogram is built on the device (the statistics kernel on a GPU) over
        // [-max|x|, max|x|]: HIST_BINS + 1 floats come back instead of the activations.
        let x = tap.x.clone().reshape([b, t * d]); // [batch, seq*d_model]
        let range = crate::kernels::min_max(x.clone())
            .abs()
            .max()
            .clamp_min(1e-6); // [1]
        let stats = crate::kernels::seq_stats(x, range.clone(), HIST_BINS); // [batch, 4 + bins]
        let counts = stats
            .narrow(1, crate::kernels::STAT_COLS, HIST_BINS)
            .sum_dim(0)
            .reshape([HIST_BINS]); // [bins]
        parts.push(range);
        parts.push(counts);
    }
    Packed {
        flat: Tensor::cat(parts, 0),
        seq,
        heads,
        gate_layers,
        tap_names,
        tokens: tokens_all.into_iter().take(seq).collect(),
    }
}

fn unpack(p: Packed, v: Vec<f32>, step: usize) -> Inspection {
    let (t, h) = (p.seq, p.heads);
    let mut at = 0;
    let mut take = |n: usize| {
        let s = v[at.min(v.len())..(at + n).min(v.len())].to_vec();
        at += n;
        s
    };
    let layers = p.gate_layers.len();
    let attn: Vec<Vec<f32>> = (0..layers).map(|_| take(h * t * t)).collect();
    let gates = p
        .gate_layers
        .iter()
        .map(|&g| g.then(|| take(h * t)))
        .collect();
    let hists = p
        .tap_names
        .into_iter()
        .map(|name| {
            let range = take(1).first().copied().unwrap_or(f32::NAN) as f64;
            let counts = take(HIST_BINS).iter().map(|&c| c.max(0.0) as u64).collect();
            Histogram {
                name,
                range,
                counts,
            }
        })
        .collect();
    Inspection {
        step,
        heads: h,
        tokens: p.tokens,
        attn,
        gates,
        hists,
    }
}

/// Inspects the trainer's model on evaluation batch 0 (blocking readback; native and CPU).
pub fn inspect(trainer: &Trainer) -> Result<Inspection, TrainError> {
    let p = pack(trainer);
    let v = read_f32(p.flat.clone())?;
    Ok(unpack(p, v, trainer.step))
}

/// [`inspect`] for the browser: awaits the one readback.
pub async fn inspect_async(trainer: &Trainer) -> Result<Inspection, TrainError> {
    let p = pack(trainer);
    let v = read_f32_async(p.flat.clone()).await?;
    Ok(unpack(p, v, trainer.step))
}

/// Collects every float parameter, flattened, in visiting order.
struct Flatten {
    parts: Vec<Tensor<1>>,
    shapes: Vec<Vec<usize>>,
}

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let dims = t.dims();
        let n: usize = dims.iter().product();
        self.shapes.push(dims.to_vec());
        self.parts.push(t.reshape([n])); // [numel]
    }
}

/// Refills every float parameter, in the same visiting order, from host values on `device`.
struct Refill<'a> {
    values: &'a [f32],
    at: usize,
    device: Device,
}

impl ModuleMapper for Refill<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dims = param.val().dims();
        let n: usize = dims.iter().product();
        let slice = self.values[self.at..self.at + n].to_vec();
        self.at += n;
        let device = self.device.clone();
        param.map(move |_| Tensor::from_data(TensorData::new(slice, dims), &device))
    }
}

/// A copy of `model`'s weights on `device`, read with one awaited readback, so the browser can
/// move a WebGPU-trained model to the CPU backend without a blocking read.
pub async fn model_to_device(model: &Model, device: &Device) -> Result<Model, String> {
    let model = model.valid();
    let mut flat = Flatten {
        parts: Vec::new(),
        shapes: Vec::new(),
    };
    model.visit(&mut flat);
    let values = Tensor::cat(flat.parts, 0)
        .to_data_async()
        .await
        .map_err(|e| format!("{e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    let expected: usize = flat
        .shapes
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum();
    if values.len() != expected {
        return Err(format!(
            "weight copy read {} of {expected} values",
            values.len()
        ));
    }
    let mut refill = Refill {
        values: &values,
        at: 0,
        device: device.clone(),
    };
    Ok(model.map(&mut refill))
}
