//! Outlier metrics exactly as the paper's code computes them (paper.md §2):
//! per sequence, inf-norm = max |x| over all T×d entries and raw kurtosis
//! mean((x−μ)⁴)/(s⁴+1e-6) with the unbiased s (Gaussian = 3); both averaged over evaluation
//! sequences, separately per tracked tensor.
//!
//! The tensor functions run on the device and return per-sequence values; [`OutlierAccumulator`]
//! does the host-side running mean, so one small readback per batch is all the app needs.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::taps::{TapKind, Taps};

/// ‖x_b‖∞ per sequence.
///
/// # Shapes
/// - `x`: `[batch, seq, d]` → `[batch]`
pub fn inf_norm_per_seq(x: Tensor<3>) -> Tensor<1> {
    let [b, t, d] = x.dims();
    // In chunks: a sequence can be longer than Burn's wgpu reductions reach (`REDUCE_CHUNK`).
    crate::kernels::reduce_rows(x.abs().reshape([b, t * d]), |r| r.max_dim(1)).reshape([b])
}

/// Raw kurtosis per sequence: mean((x−μ)⁴) / (s⁴ + 1e-6), s the unbiased standard deviation
/// (torch's default), over all T×d entries of the sequence.
///
/// # Shapes
/// - `x`: `[batch, seq, d]` → `[batch]`
pub fn kurtosis_per_seq(x: Tensor<3>) -> Tensor<1> {
    let [b, t, d] = x.dims();
    let n = t * d;
    let x = x.reshape([b, n]); // [b, n]
    // In chunks: a sequence can be longer than Burn's wgpu reductions reach (`REDUCE_CHUNK`).
    let sum = |t: Tensor<2>| crate::kernels::reduce_rows(t, |r| r.sum_dim(1)); // [b, 1]
    let centred = x.clone() - sum(x).div_scalar(n.max(1) as f64); // [b, n]
    let sq = centred.powi_scalar(2); // [b, n]
    let var = sum(sq.clone()).div_scalar((n.max(2) - 1) as f64); // [b, 1] unbiased s²
    let m4 = sum(sq.powi_scalar(2)).div_scalar(n.max(1) as f64); // [b, 1]
    crate::kernels::kurtosis(var, m4)
}

/// [`inf_norm_per_seq`] and [`kurtosis_per_seq`] in one pass: the outlier-statistics kernel on
/// a GPU, the same definitions in tensor ops on the CPU.
///
/// # Shapes
/// - `x`: `[batch, seq, d]` → (`[batch]`, `[batch]`)
pub fn inf_norm_and_kurtosis(x: Tensor<3>) -> (Tensor<1>, Tensor<1>) {
    let [b, t, d] = x.dims();
    // One bin: the histogram is not wanted here, and one bin costs one atomic per value.
    let stats = crate::kernels::seq_moments(x.reshape([b, t * d])); // [b, 5]
    let inf = stats.clone().narrow(1, 0, 1).reshape([b]); // [b]
    (inf, crate::kernels::kurtosis_from_stats(stats))
}

/// The paper's kurtosis m4 / (s⁴ + 1e-6) from the unbiased variance s² and the fourth central
/// moment m4, as the statistics kernel reports them.
pub fn kurtosis_from_moments(var: f32, m4: f32) -> f64 {
    let var = var as f64;
    m4 as f64 / (var * var + crate::kernels::KURTOSIS_EPS)
}

/// Host reference of [`kurtosis_per_seq`] for one sequence (f64), the test oracle.
pub fn kurtosis_host(x: &[f32]) -> f64 {
    let n = x.len() as f64;
    let mu = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / (n - 1.0);
    let m4 = x.iter().map(|&v| (v as f64 - mu).powi(4)).sum::<f64>() / n;
    m4 / (var * var + 1e-6)
}

/// Per-head no-op signature of one layer, as device tensors.
///
/// # Shapes
/// - `probs`: `[batch, heads, seq_q, seq_k]`; `delim`: `[batch, seq_k]` (1.0 on delimiter keys)
/// - output: `(first_mass [heads], delim_mass [heads])`
pub fn noop_masses(probs: Tensor<4>, delim: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let [b, h, _, t] = probs.dims();
    let first = probs.clone().narrow(3, 0, 1); // [b, h, tq, 1]
    let first = first.mean_dim(0).mean_dim(2).reshape([h]); // [h]
    let mask = delim.reshape([b, 1, 1, t]); // [b, 1, 1, t]
    let on_delim = (probs * mask).sum_dim(3); // [b, h, tq, 1]
    let on_delim = on_delim.mean_dim(0).mean_dim(2).reshape([h]); // [h]
    (first, on_delim)
}

/// First-token and delimiter mass per head, split by query kind: queries in `queries` only
/// (1.0 marks a query), averaged over those queries. Bigram-Backcopy uses it to separate the
/// queries that need attention (copies) from those that should do nothing.
///
/// # Shapes
/// - `probs`: `[batch, heads, seq_q, seq_k]`; `delim`: `[batch, seq_k]`; `queries`: `[batch, seq_q]`
/// - output: `(first_mass [heads], delim_mass [heads])`
pub fn noop_masses_over(
    probs: Tensor<4>,
    delim: Tensor<2>,
    queries: Tensor<2>,
) -> (Tensor<1>, Tensor<1>) {
    let [b, h, tq, tk] = probs.dims();
    let q = queries.reshape([b, 1, tq, 1]); // [b, 1, tq, 1]
    let count = q.clone().sum().clamp_min(1.0); // [1] queries counted
    let first = probs.clone().narrow(3, 0, 1) * q.clone(); // [b, h, tq, 1]
    let first = first.sum_dim(0).sum_dim(2).reshape([h]) / count.clone(); // [h]
    let on_delim = (probs * delim.reshape([b, 1, 1, tk])).sum_dim(3) * q; // [b, h, tq, 1]
    let on_delim = on_delim.sum_dim(0).sum_dim(2).reshape([h]) / count; // [h]
    (first, on_delim)
}

/// Mean gate probability per head (`last_gate_avg_prob` in the paper's code).
///
/// # Shapes
/// - `gate`: broadcastable to `[batch, heads, seq, 1]` → `[heads]`
pub fn gate_mean(gate: Tensor<4>) -> Tensor<1> {
    let h = gate.dims()[1];
    gate.mean_dim(0).mean_dim(2).reshape([h])
}

/// Everything one batch contributes, packed into one vector so that the host reads it back in
/// a single transfer. Layout (all per-batch means over sequences):
/// `[inf_norm(tap_0), kurt(tap_0), …, first(l0, h0..H), delim(l0, …), gate(l0, …) if gated, …]`.
///
/// With `copy` (Bigram-Backcopy data: 1.0 at queries that must copy), each layer also gets
/// first-token and delimiter mass over copy queries, then over the other queries (position 0,
/// which can only see itself causally, left out), after the gate means.
pub fn pack_batch_stats(
    taps: &Taps,
    delim: Option<Tensor<2>>,
    copy: Option<Tensor<2>>,
) -> Tensor<1> {
    let mut parts: Vec<Tensor<1>> = Vec::new();
    for tap in &taps.tracked {
        let (inf, kurt) = inf_norm_and_kurtosis(tap.x.clone());
        parts.push(inf.mean());
        parts.push(kurt.mean());
    }
    for (probs, gate) in taps.probs.iter().zip(&taps.gates) {
        let [b, _, _, t] = probs.dims();
        let delim = delim
            .clone()
            .unwrap_or_else(|| Tensor::zeros([b, t], &probs.device()));
        let (first, on_delim) = noop_masses(probs.clone(), delim.clone());
        parts.push(first);
        parts.push(on_delim);
        if let Some(g) = gate {
            parts.push(gate_mean(g.clone()));
        }
        if let Some(copy) = &copy {
            let tq = probs.dims()[2];
            let device = probs.device();
            // Queries other than copies, without position 0.
            let mut not_first = vec![1.0f32; b * tq];
            for row in 0..b {
                not_first[row * tq] = 0.0;
            }
            let not_first: Tensor<2> =
                Tensor::from_data(burn::tensor::TensorData::new(not_first, [b, tq]), &device);
            let other = (copy.clone().neg().add_scalar(1.0)) * not_first; // [b, tq]
            for queries in [copy.clone(), other] {
                let (f, dm) = noop_masses_over(probs.clone(), delim.clone(), queries);
                parts.push(f);
                parts.push(dm);
            }
        }
    }
    Tensor::cat(parts, 0)
}

/// One tracked tensor's averaged metrics.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TapStat {
    pub name: String,
    pub kind: String,
    pub layer: Option<usize>,
    pub inf_norm: f64,
    pub kurtosis: f64,
}

/// Per-layer, per-head no-op signature.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HeadNoop {
    pub layer: usize,
    /// Attention mass on the first token (\[CLS\] / BOS / ViT's CLS), per head.
    pub first_mass: Vec<f64>,
    /// Attention mass on delimiter tokens (\[SEP\], punctuation, newlines), per head.
    pub delim_mass: Vec<f64>,
    /// Mean gate probability per head (gated attention only).
    pub gate_mean: Option<Vec<f64>>,
    /// Bigram-Backcopy data only: first-token mass per head from the queries that must copy
    /// (attention is useful there) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_mass_copy: Option<Vec<f64>>,
    /// ... and from every other query but position 0 (attention is useless there: a head that
    /// parks on the first token is doing nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_mass_other: Option<Vec<f64>>,
    /// Delimiter mass per head from copy queries (Bigram-Backcopy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delim_mass_copy: Option<Vec<f64>>,
    /// Delimiter mass per head from the other queries (Bigram-Backcopy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delim_mass_other: Option<Vec<f64>>,
}

/// The paper's reported outlier numbers plus their per-layer breakdown.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutlierReport {
    /// Max over the headline taps of the sequence-averaged inf-norm (BERT: FFN outputs;
    /// OPT/ViT: block outputs), the paper's "Max inf. norm".
    pub max_inf_norm: f64,
    /// Mean over all tracked tensors of the sequence-averaged kurtosis, the paper's "Avg kurtosis".
    pub avg_kurtosis: f64,
    pub max_kurtosis: f64,
    pub taps: Vec<TapStat>,
    pub heads: Vec<HeadNoop>,
}

impl OutlierReport {
    /// The report of zero evaluation batches.
    pub fn empty() -> Self {
        OutlierReport {
            max_inf_norm: f64::NAN,
            avg_kurtosis: f64::NAN,
            max_kurtosis: f64::NAN,
            taps: Vec::new(),
            heads: Vec::new(),
        }
    }
}

/// Running mean of [`pack_batch_stats`] vectors over batches (equal-size batches, so the mean
/// of batch means is the mean over sequences, like the paper's `AverageMeter`).
pub struct OutlierAccumulator {
    tap_meta: Vec<(String, TapKind, Option<usize>)>,
    headline: TapKind,
    layers: Vec<(usize, bool)>, // (heads, gated) per layer
    /// Whether [`pack_batch_stats`] was given copy queries (the split masses follow).
    split: bool,
    sum: Vec<f64>,
    batches: usize,
}

impl OutlierAccumulator {
    /// `split`: the batches were packed with copy queries (see [`pack_batch_stats`]).
    pub fn new(taps: &Taps, headline: TapKind, split: bool) -> Self {
        let tap_meta = taps
            .tracked
            .iter()
            .map(|t| (t.label(), t.kind, t.layer))
            .collect();
        let layers = taps
            .probs
            .iter()
            .zip(&taps.gates)
            .map(|(p, g)| (p.dims()[1], g.is_some()))
            .collect();
        OutlierAccumulator {
            tap_meta,
            headline,
            layers,
            split,
            sum: Vec::new(),
            batches: 0,
        }
    }

    pub fn add(&mut self, packed: &[f32]) {
        if self.sum.is_empty() {
            self.sum = vec![0.0; packed.len()];
        }
        for (s, &v) in self.sum.iter_mut().zip(packed) {
            *s += v as f64;
        }
        self.batches += 1;
    }

    pub fn report(&self) -> OutlierReport {
        let n = self.batches.max(1) as f64;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let mut taps = Vec::new();
        let mut i = 0;
        for (name, kind, layer) in &self.tap_meta {
            taps.push(TapStat {
                name: name.clone(),
                kind: kind.name().to_string(),
                layer: *layer,
                inf_norm: mean.get(i).copied().unwrap_or(f64::NAN),
                kurtosis: mean.get(i + 1).copied().unwrap_or(f64::NAN),
            });
            i += 2;
        }
        let mut heads = Vec::new();
        for (layer, &(h, gated)) in self.layers.iter().enumerate() {
            let take = |i: &mut usize| {
                let v = mean
                    .get(*i..*i + h)
                    .map(<[f64]>::to_vec)
                    .unwrap_or_default();
                *i += h;
                v
            };
            let first_mass = take(&mut i);
            let delim_mass = take(&mut i);
            let gate_mean = gated.then(|| take(&mut i));
            let mut split = || self.split.then(|| take(&mut i));
            let (first_mass_copy, delim_mass_copy) = (split(), split());
            let (first_mass_other, delim_mass_other) = (split(), split());
            heads.push(HeadNoop {
                layer,
                first_mass,
                delim_mass,
                gate_mean,
                first_mass_copy,
                first_mass_other,
                delim_mass_copy,
                delim_mass_other,
            });
        }
        let headline = self.headline.name();
        let max_inf_norm = taps
            .iter()
            .filter(|t| t.kind == headline)
            .map(|t| t.inf_norm)
            .fold(f64::NEG_INFINITY, f64::max);
        let avg_kurtosis = taps.iter().map(|t| t.kurtosis).sum::<f64>() / taps.len().max(1) as f64;
        let max_kurtosis = taps
            .iter()
            .map(|t| t.kurtosis)
            .fold(f64::NEG_INFINITY, f64::max);
        OutlierReport {
            max_inf_norm,
            avg_kurtosis,
            max_kurtosis,
            taps,
            heads,
        }
    }
}

/// The headline quality number as qtlab prints it everywhere (the app's tables, the CLI's
/// lines): perplexity to 3 decimals, in scientific notation from 1e5 (where a diverged or
/// badly quantized model lands), and ViT's top-1 accuracy in percent to 1 decimal.
pub fn format_quality(ppl: Option<f64>, accuracy: Option<f64>) -> Option<String> {
    match (ppl, accuracy) {
        (Some(p), _) if p.abs() >= 1e5 => Some(format!("{p:.2e}")),
        (Some(p), _) => Some(format!("{p:.3}")),
        (_, Some(a)) => Some(format!("{:.1} %", 100.0 * a)),
        _ => None,
    }
}
