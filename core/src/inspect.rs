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

pub use crate::kernels::HIST_BINS;

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
    /// Per headline tap (BERT FFN output, OPT/ViT block output), then for BERT per FFN
    /// input + output sum, where its largest values sit on evaluation batch 0.
    #[serde(default)]
    pub profiles: Vec<TapProfile>,
    /// Per layer, `[heads, seq]` row-major: each position's value-vector norm ‖v_h(x_t)‖,
    /// averaged over evaluation batch 0. A head that parks on a sink token to do nothing
    /// learns to give it a small value (Guo et al.'s "value drain").
    #[serde(default)]
    pub value_norms: Vec<Vec<f32>>,
}

/// Where one tracked tensor's outliers sit, on evaluation batch 0.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TapProfile {
    pub name: String,
    /// The largest |x| over the batch, and its signed value.
    pub max_abs: f64,
    pub value: f64,
    /// Where it is: the sequence in the batch, the position in it, that position's input
    /// token, and the channel.
    pub row: usize,
    pub position: usize,
    pub token: String,
    pub channel: usize,
    /// max |x| divided by the standard deviation of its sequence's T×d values: ≈ 4 for a
    /// Gaussian tensor this size, tens for an outlier.
    pub max_over_sd: f64,
    /// Per position, the token's L2 norm averaged over the batch. `[seq]`
    pub token_norm: Vec<f32>,
    /// Per channel, |x| averaged over the batch's tokens. `[d_model]`
    pub channel_abs: Vec<f32>,
}

fn median(xs: &[f32]) -> f64 {
    let mut v: Vec<f64> = xs
        .iter()
        .map(|&x| x as f64)
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

impl TapProfile {
    /// The first token's norm over the median of the other positions' (Guo et al.'s residual
    /// peak at BOS); about 1 when no position stands out.
    pub fn first_token_ratio(&self) -> f64 {
        match self.token_norm.split_first() {
            Some((&first, rest)) if !rest.is_empty() => first as f64 / median(rest),
            _ => f64::NAN,
        }
    }

    /// The largest channel mean |x| over the median channel's: large when the outliers live
    /// in a few fixed channels, as in the paper.
    pub fn top_channel_ratio(&self) -> f64 {
        let top = self
            .channel_abs
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max) as f64;
        top / median(&self.channel_abs)
    }
}

/// The record's summary of an [`Inspection`]: the mechanism in a few numbers per layer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Mechanism {
    pub step: usize,
    pub taps: Vec<TapMechanism>,
    /// Per layer and head, the first token's value norm over the mean of the other
    /// positions' (below 1: the sink's value is drained).
    pub first_value_ratio: Vec<Vec<f64>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TapMechanism {
    pub name: String,
    pub max_abs: f64,
    pub position: usize,
    pub token: String,
    pub channel: usize,
    pub max_over_sd: f64,
    pub first_token_ratio: f64,
    pub top_channel_ratio: f64,
}

impl Inspection {
    /// Per layer and head, the first position's value norm over the mean of the others'.
    pub fn first_value_ratio(&self) -> Vec<Vec<f64>> {
        let t = self.tokens.len();
        self.value_norms
            .iter()
            .map(|layer| {
                layer
                    .chunks(t.max(1))
                    .map(|row| {
                        let rest = &row[1.min(row.len())..];
                        let mean =
                            rest.iter().map(|&x| x as f64).sum::<f64>() / rest.len().max(1) as f64;
                        row.first().map_or(f64::NAN, |&f| f as f64 / mean)
                    })
                    .collect()
            })
            .collect()
    }

    pub fn mechanism(&self) -> Mechanism {
        Mechanism {
            step: self.step,
            taps: self
                .profiles
                .iter()
                .map(|p| TapMechanism {
                    name: p.name.clone(),
                    max_abs: p.max_abs,
                    position: p.position,
                    token: p.token.clone(),
                    channel: p.channel,
                    max_over_sd: p.max_over_sd,
                    first_token_ratio: p.first_token_ratio(),
                    top_channel_ratio: p.top_channel_ratio(),
                })
                .collect(),
            first_value_ratio: self.first_value_ratio(),
        }
    }
}

fn token_labels(data: &RunData, input: &HostInput, seq: usize) -> Vec<String> {
    match (data, input) {
        (data, HostInput::Tokens(ids)) if data.tokenizer().is_some() => ids[..seq.min(ids.len())]
            .iter()
            .map(
                |&id| match data.tokenizer().expect("checked").decode(&[id]).as_str() {
                    "\n" => "⏎".to_string(),
                    " " => "␣".to_string(),
                    s => s.to_string(),
                },
            )
            .collect(),
        _ => (0..seq)
            .map(|i| i % input_seq(input, seq))
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

/// Positions per row of `input` (patch inputs carry a CLS position in front).
fn input_seq(input: &HostInput, seq: usize) -> usize {
    match input {
        HostInput::Patches(_, n) => n + 1,
        HostInput::Tokens(_) => seq,
    }
    .max(1)
}

/// Everything [`inspect`] reads, laid out in one flat tensor, plus how to cut it apart.
struct Packed {
    flat: Tensor<1>,
    seq: usize,
    heads: usize,
    gate_layers: Vec<bool>,
    tap_names: Vec<String>,
    tokens: Vec<String>,
    /// Labels of every position of the batch (`[batch * seq]`), for the outlier's token.
    all_tokens: Vec<String>,
    /// Per profiled tap (the headline taps, then BERT's FFN sums): (label, batch, d_model).
    tap_dims: Vec<(String, usize, usize)>,
}

fn pack(trainer: &Trainer) -> Packed {
    let spec = &trainer.spec;
    let device = trainer.device().clone().inner();
    let host = trainer.data.eval_batch(spec, 0);
    let tokens_all = token_labels(&trainer.data, &host.input, host.seq * host.batch);
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
    let mut tap_dims = Vec::new();
    let profiled = taps
        .tracked
        .iter()
        .filter(|t| t.kind == headline)
        .chain(&taps.extra);
    for tap in profiled {
        let [b, t, d] = tap.x.dims();
        tap_dims.push((tap.label(), b, d));
        // Row-wise first: reductions stay short (Burn's wgpu reduction stops at 65,533
        // vectors of one axis), and the host picks the winning row.
        let rows = tap.x.clone().reshape([b * t, d]); // [b*t, d]
        let abs = rows.clone().abs(); // [b*t, d]
        let arg = abs.clone().argmax(1); // [b*t, 1]
        parts.push(abs.clone().max_dim(1).reshape([b * t])); // [b*t]
        parts.push(arg.clone().float().reshape([b * t])); // [b*t]
        parts.push(rows.gather(1, arg).reshape([b * t])); // [b*t] signed value
        parts.push(crate::kernels::seq_moments(tap.x.clone().reshape([b, t * d])).reshape([b * 5]));
        let norms = tap.x.clone().powi_scalar(2).sum_dim(2).sqrt(); // [b, t, 1]
        parts.push(norms.mean_dim(0).reshape([t])); // [t]
        parts.push(abs.mean_dim(0).reshape([d])); // [d]
    }
    for v in &taps.values {
        let [_, h, t, _] = v.dims();
        let norms = v.clone().powi_scalar(2).sum_dim(3).sqrt(); // [b, h, t, 1]
        parts.push(norms.mean_dim(0).reshape([h * t])); // [h*t]
    }
    Packed {
        flat: Tensor::cat(parts, 0),
        seq,
        heads,
        gate_layers,
        tap_names,
        tokens: tokens_all.iter().take(seq).cloned().collect(),
        all_tokens: tokens_all,
        tap_dims,
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
    let hists: Vec<Histogram> = p
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
    let mut profiles = Vec::new();
    for (name, b, d) in p.tap_dims.iter().cloned() {
        let row_max = take(b * t);
        let row_arg = take(b * t);
        let row_val = take(b * t);
        let moments = take(b * 5);
        let token_norm = take(t);
        let channel_abs = take(d);
        let Some((best, &max_abs)) = row_max.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
        else {
            continue;
        };
        let seq_row = best / t;
        // Column 2 of the statistics rows is the unbiased variance.
        let var = moments.get(seq_row * 5 + 2).copied().unwrap_or(f32::NAN) as f64;
        profiles.push(TapProfile {
            name,
            max_abs: max_abs as f64,
            value: row_val.get(best).copied().unwrap_or(f32::NAN) as f64,
            row: seq_row,
            position: best % t,
            token: p.all_tokens.get(best).cloned().unwrap_or_default(),
            channel: row_arg.get(best).copied().unwrap_or(0.0) as usize,
            max_over_sd: max_abs as f64 / var.sqrt(),
            token_norm,
            channel_abs,
        });
    }
    let value_norms = (0..layers).map(|_| take(h * t)).collect();
    Inspection {
        step,
        heads: h,
        tokens: p.tokens,
        attn,
        gates,
        hists,
        profiles,
        value_norms,
    }
}

/// Inspects the trainer's model on evaluation batch 0 (blocking readback; native and CPU).
pub fn inspect(trainer: &Trainer) -> Result<Inspection, TrainError> {
    let p = pack(trainer);
    let v = read_f32(p.flat.clone())?;
    Ok(unpack(p, v, trainer.steps_done))
}

/// [`inspect`] for the browser: awaits the one readback.
pub async fn inspect_async(trainer: &Trainer) -> Result<Inspection, TrainError> {
    let p = pack(trainer);
    let v = read_f32_async(p.flat.clone()).await?;
    Ok(unpack(p, v, trainer.steps_done))
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
