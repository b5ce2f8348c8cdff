//! Training: AdamW with warm-up and linear decay, global gradient-norm clipping, and a step API
//! that a native loop and an async browser loop both drive.
//!
//! [`Trainer::step`] queues the whole update on the device and returns a [`PendingStep`] holding
//! device tensors; nothing on that path reads back. The native loop calls
//! [`PendingStep::read`]; the browser awaits [`PendingStep::read_async`].

use std::collections::HashMap;

use burn::module::{Module, ParamId};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};

use crate::data::DataError;
use crate::dataset::{DeviceBatch, HostBatch, RunData};
use crate::init::Init;
use crate::metrics::{self, OutlierAccumulator, OutlierReport};
use crate::model::{Model, ModelOutput};
use crate::rng::{Rng, Stream};
use crate::spec::{ModelKind, RunSpec};

mod optim;
pub use optim::*;
/// Weighted cross-entropy: Σ w·(−log p\[target\]) / Σ w.
///
/// # Shapes
/// - `logits`: `[rows, classes]`, `target`: `[rows, 1]`, `weight`: `[rows]` → `[1]`
pub fn weighted_cross_entropy(logits: Tensor<2>, batch: &DeviceBatch) -> Tensor<1> {
    let rows = logits.dims()[0];
    let logp = log_softmax(logits, 1); // [rows, classes]
    let picked = logp.gather(1, batch.target.clone()).reshape([rows]); // [rows]
    (picked * batch.weight.clone())
        .sum()
        .neg()
        .div_scalar(batch.weight_sum.max(1.0) as f64)
}

/// `[loss, correct]` of one evaluation batch, read back (correct is 0 for the language models).
pub fn batch_loss_and_correct(
    logits: Tensor<2>,
    batch: &DeviceBatch,
    classify: bool,
) -> Result<[f64; 2], TrainError> {
    let device = logits.device();
    let correct = if classify {
        logits
            .clone()
            .argmax(1)
            .equal(batch.target.clone())
            .float()
            .sum() // [1]
    } else {
        Tensor::zeros([1], &device)
    };
    let loss = weighted_cross_entropy(logits, batch);
    let v = read_f32(Tensor::cat(vec![loss, correct], 0))?;
    Ok([v[0] as f64, v[1] as f64])
}

/// Reads a flat f32 tensor back, blocking (native, and the CPU backend in the browser).
pub(crate) fn read_f32(t: Tensor<1>) -> Result<Vec<f32>, TrainError> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Device(format!("{e:?}")))
}

/// [`read_f32`] for the browser: awaits the readback.
pub(crate) async fn read_f32_async(t: Tensor<1>) -> Result<Vec<f32>, TrainError> {
    t.to_data_async()
        .await
        .map_err(|e| TrainError::Device(format!("{e:?}")))?
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Device(format!("{e:?}")))
}

/// A queued training step. Holds device tensors; reading them is the only sync point.
pub struct PendingStep {
    pub step: usize,
    pub lr: f64,
    /// `[loss, grad_norm, (headline inf-norm, kurtosis)…]`
    packed: Tensor<1>,
    headline_layers: usize,
    /// Sequences in the batch (rows per headline tap in `packed`).
    seqs: usize,
}

/// What a training step reports once read back.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StepReport {
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    pub grad_norm: f64,
    /// Per layer, the batch mean of the per-sequence ‖x‖∞ of the headline tap on this training
    /// batch, if it was collected.
    pub inf_norms: Vec<f64>,
    /// Per layer, the batch mean of the per-sequence kurtosis of the same tap (collected with
    /// the inf-norms; absent in records from before it existed).
    #[serde(default)]
    pub kurtosis: Vec<f64>,
}

impl PendingStep {
    /// Mean over the batch's sequences of `f(row)` for headline layer `l`, from the raw
    /// `[max|x|, mean, var, m4, count]` rows after `[loss, grad_norm]`.
    fn seq_mean(&self, v: &[f32], l: usize, f: impl Fn(&[f32]) -> f64) -> f64 {
        let width = 5 * self.seqs;
        let start = 2 + l * width;
        match v.get(start..start + width) {
            Some(rows) if self.seqs > 0 => rows.chunks(5).map(f).sum::<f64>() / self.seqs as f64,
            _ => f64::NAN,
        }
    }

    fn finish(&self, v: Vec<f32>) -> StepReport {
        let get = |i: usize| v.get(i).copied().unwrap_or(f32::NAN) as f64;
        StepReport {
            step: self.step,
            lr: self.lr,
            loss: get(0),
            grad_norm: get(1),
            inf_norms: (0..self.headline_layers)
                .map(|l| self.seq_mean(&v, l, |r| r[0] as f64))
                .collect(),
            kurtosis: (0..self.headline_layers)
                .map(|l| {
                    self.seq_mean(&v, l, |r| crate::metrics::kurtosis_from_moments(r[2], r[3]))
                })
                .collect(),
        }
    }

    /// Blocking readback (native).
    pub fn read(self) -> Result<StepReport, String> {
        let v = self
            .packed
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        Ok(self.finish(v))
    }

    /// Non-blocking readback (browser).
    pub async fn read_async(self) -> Result<StepReport, String> {
        let data = self
            .packed
            .to_data_async()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let v = data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        Ok(self.finish(v))
    }
}

/// Held-out evaluation.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EvalReport {
    pub step: usize,
    pub loss: f64,
    /// exp(loss) for the language models (the paper's "exp of the mean batch loss").
    pub ppl: Option<f64>,
    /// Top-1 accuracy for ViT.
    pub accuracy: Option<f64>,
    #[serde(flatten)]
    pub outliers: OutlierReport,
}

pub struct Trainer {
    pub spec: RunSpec,
    pub data: RunData,
    model: Option<Model>,
    opt: AdamW,
    /// The autodiff device the model trains on.
    device: Device,
    order: Rng,
    mask: Rng,
    threads: usize,
    /// Training steps taken so far; the next step's index (a field apart from the `step` method).
    pub steps_done: usize,
}

/// One shard's contribution to a training step.
struct ShardResult {
    /// Σ over the shard of w·(−log p) / Σ over the whole batch of w. `[1]`
    loss: Tensor<1>,
    grads: HashMap<ParamId, Tensor<1>>,
    /// Per headline tap, the shard's per-sequence `[max|x|, mean, var, m4, count]` rows,
    /// flattened (empty without stats).
    stats: Vec<Tensor<1>>,
}

/// Forward and backward of one shard. With `releaf`, the shard works on fresh parameter
/// leaves so that concurrent shards build independent autodiff graphs.
fn run_shard(
    model: &Model,
    host: &HostBatch,
    spec: &RunSpec,
    device: &Device,
    total_weight: f32,
    with_stats: bool,
    releaf: bool,
    dropout: Option<Rng>,
) -> ShardResult {
    let model = if releaf {
        model.clone().map(&mut Releaf)
    } else {
        model.clone()
    };
    let mut batch = host.to_device(spec, device);
    batch.weight_sum = total_weight;
    let mut aq = crate::quant::ActQuant::off();
    aq.dropout = dropout.map(|rng| crate::quant::Dropout::new(spec.dropout, rng));
    let ModelOutput { logits, taps } = model.forward_act_quant(batch.input.clone(), &mut aq);
    let loss = weighted_cross_entropy(logits, &batch);
    let headline = model.headline_kind();
    let stats = if with_stats {
        taps.tracked
            .iter()
            .filter(|t| t.kind == headline)
            .map(|t| {
                let [b, tt, d] = t.x.dims();
                // One statistics launch per tap; the per-sequence moments come back raw
                // (5 floats a sequence) and the host turns them into the batch means, so no
                // further device op runs for them.
                crate::kernels::seq_moments(t.x.clone().inner().reshape([b, tt * d]))
                    .reshape([b * 5]) // [b*5]
            })
            .collect()
    } else {
        Vec::new()
    };
    drop(taps);
    let mut grads = loss.backward();
    ShardResult {
        loss: loss.inner(),
        grads: collect_grads(&model, &mut grads),
        stats,
    }
}

/// Multiplies every weight by NaN: fault injection, so tests (native and in the browser) can
/// check that a diverged run is caught within one step and its curves are kept.
pub fn poison_weights(model: Model) -> Model {
    struct Poison;
    impl burn::module::ModuleMapper for Poison {
        fn map_float<const D: usize>(
            &mut self,
            p: burn::module::Param<Tensor<D>>,
        ) -> burn::module::Param<Tensor<D>> {
            p.map(|t| t.mul_scalar(f32::NAN))
        }
    }
    burn::module::Module::map(model, &mut Poison)
}

#[derive(Debug)]
pub enum TrainError {
    Data(DataError),
    /// The loss or gradient went NaN/Inf.
    Diverged {
        step: usize,
        loss: f64,
    },
    Device(String),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Data(e) => write!(f, "{e}"),
            TrainError::Diverged { step, loss } => write!(
                f,
                "training diverged at step {step} (loss = {loss}); lower the learning rate (`lr`) or raise `warmup`"
            ),
            TrainError::Device(e) => write!(f, "device error: {e}"),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<DataError> for TrainError {
    fn from(e: DataError) -> Self {
        TrainError::Data(e)
    }
}

impl Trainer {
    /// `device` is a plain device (`Device::flex()`, `Device::wgpu(..)`); training runs on its
    /// autodiff twin. The spec must already be validated.
    pub fn new(spec: RunSpec, data: RunData, device: &Device) -> Trainer {
        let device = device.clone().autodiff();
        let mut init = Init::new(Rng::stream(spec.seed, Stream::Init));
        let model = Model::init(&spec, data.vocab_size(), &mut init, &device);
        Trainer {
            opt: AdamW::new(&spec),
            order: Rng::stream(spec.seed, Stream::Order),
            mask: Rng::stream(spec.seed, Stream::Mask),
            threads: 1,
            spec,
            data,
            model: Some(model),
            device,
            steps_done: 0,
        }
    }

    pub fn model(&self) -> &Model {
        self.model.as_ref().expect("model present between steps")
    }

    /// Replaces the model through `f` (quantization wrappers, tests that poison weights).
    pub fn map_model(&mut self, f: impl FnOnce(Model) -> Model) {
        let m = self.model.take().expect("model present between steps");
        self.model = Some(f(m));
    }

    pub fn done(&self) -> bool {
        self.steps_done >= self.spec.steps
    }

    /// Queues one training step. With `with_stats`, the headline taps' inf-norms of this batch
    /// ride along in the same readback (cheap; the app asks for them every few steps).
    pub fn step(&mut self, with_stats: bool) -> PendingStep {
        let host = self
            .data
            .train_batch(&self.spec, &mut self.order, &mut self.mask);
        let mut model = self.model.take().expect("model present between steps");
        if self.spec.gamma_warmup > 0
            && self.steps_done <= self.spec.gamma_warmup
            && let Some((gamma, zeta)) = clip_at(&self.spec, self.steps_done)
        {
            model.set_score_norm(crate::attention::ScoreNorm::Clipped { gamma, zeta });
        }
        let total_weight: f32 = host.weight.iter().sum();
        let shards = host.split(self.threads);
        let (spec, device) = (&self.spec, &self.device);
        // One mask stream per step and shard, so a shard's masks do not depend on thread timing.
        let step = self.steps_done as u64;
        let dropout = move |shard: usize| {
            (spec.dropout > 0.0)
                .then(|| Rng::stream(spec.seed, Stream::Dropout).fork((step << 16) | shard as u64))
        };
        let results: Vec<ShardResult> = if shards.len() == 1 {
            vec![run_shard(
                &model,
                &shards[0],
                spec,
                device,
                total_weight,
                with_stats,
                false,
                dropout(0),
            )]
        } else {
            std::thread::scope(|scope| {
                let model = &model;
                let handles: Vec<_> = shards[1..]
                    .iter()
                    .enumerate()
                    .map(|(i, sh)| {
                        let rng = dropout(i + 1);
                        scope.spawn(move || {
                            run_shard(model, sh, spec, device, total_weight, with_stats, true, rng)
                        })
                    })
                    .collect();
                let mut results = vec![run_shard(
                    model,
                    &shards[0],
                    spec,
                    device,
                    total_weight,
                    with_stats,
                    true,
                    dropout(0),
                )];
                results.extend(
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("training shard panicked")),
                );
                results
            })
        };
        // Combine in shard order so the result does not depend on thread timing.
        let mut results = results.into_iter();
        let first = results.next().expect("at least one shard");
        let (mut loss, mut grads, mut stats) = (first.loss, first.grads, first.stats);
        for r in results {
            loss = loss + r.loss;
            for (id, g) in r.grads {
                let sum = match grads.remove(&id) {
                    Some(acc) => acc + g,
                    None => g,
                };
                grads.insert(id, sum);
            }
            stats = stats
                .into_iter()
                .zip(r.stats)
                .map(|(a, b)| Tensor::cat(vec![a, b], 0))
                .collect();
        }
        let lr = lr_at(&self.spec, self.steps_done);
        let (model, grad_norm) = self.opt.apply(model, grads, lr);
        self.model = Some(model);
        let headline_layers = stats.len();
        let mut parts = vec![loss, grad_norm];
        parts.extend(stats);
        let step = self.steps_done;
        self.steps_done += 1;
        PendingStep {
            step,
            lr,
            packed: Tensor::cat(parts, 0),
            headline_layers,
            seqs: self.spec.batch,
        }
    }

    /// Data-parallel shards for CPU steps (native only; the browser has no threads and GPUs
    /// gain nothing). Splitting changes float rounding, not the math, and is deterministic for
    /// a given count. Default: 1.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// One training step with the device synchronised between phases, for `qtlab bench`'s
    /// breakdown: milliseconds for [batch, forward, backward, optimizer, readback].
    pub fn step_timed(&mut self) -> Result<[f64; 5], TrainError> {
        let sync = |d: &Device| d.sync().map_err(|e| TrainError::Device(format!("{e:?}")));
        let mut t = std::time::Instant::now();
        let lap = |t: &mut std::time::Instant| {
            let ms = t.elapsed().as_secs_f64() * 1e3;
            *t = std::time::Instant::now();
            ms
        };
        let host = self
            .data
            .train_batch(&self.spec, &mut self.order, &mut self.mask);
        let batch = host.to_device(&self.spec, &self.device);
        sync(&self.device)?;
        let t_batch = lap(&mut t);
        let model = self.model.take().expect("model present between steps");
        let ModelOutput { logits, .. } = model.forward(batch.input.clone());
        let loss = weighted_cross_entropy(logits, &batch);
        sync(&self.device)?;
        let t_fwd = lap(&mut t);
        let grads = loss.backward();
        sync(&self.device)?;
        let t_bwd = lap(&mut t);
        let lr = lr_at(&self.spec, self.steps_done);
        let (model, grad_norm) = self.opt.step(model, grads, lr);
        self.model = Some(model);
        sync(&self.device)?;
        let t_opt = lap(&mut t);
        let v = Tensor::cat(vec![loss.inner(), grad_norm], 0)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Device(format!("{e:?}")))?;
        let t_read = lap(&mut t);
        self.steps_done += 1;
        if !v.iter().all(|x| x.is_finite()) {
            return Err(TrainError::Diverged {
                step: self.steps_done - 1,
                loss: v[0] as f64,
            });
        }
        Ok([t_batch, t_fwd, t_bwd, t_opt, t_read])
    }

    /// Native convenience: step and read back, refusing a non-finite loss.
    pub fn step_sync(&mut self, with_stats: bool) -> Result<StepReport, TrainError> {
        let r = self.step(with_stats).read().map_err(TrainError::Device)?;
        if !r.loss.is_finite() || !r.grad_norm.is_finite() {
            return Err(TrainError::Diverged {
                step: r.step,
                loss: r.loss,
            });
        }
        Ok(r)
    }

    /// [`Trainer::step_sync`] for the browser: awaits the readback instead of blocking.
    pub async fn step_async(&mut self, with_stats: bool) -> Result<StepReport, TrainError> {
        let r = self
            .step(with_stats)
            .read_async()
            .await
            .map_err(TrainError::Device)?;
        if !r.loss.is_finite() || !r.grad_norm.is_finite() {
            return Err(TrainError::Diverged {
                step: r.step,
                loss: r.loss,
            });
        }
        Ok(r)
    }

    /// The packed statistics of evaluation batch `i` (loss sum, correct count, outlier stats)
    /// of `model` (the trainer's model after `valid()`, converted once per evaluation), still on
    /// the device; see [`Trainer::evaluate`] for how they are read.
    pub fn eval_batch(&self, model: &Model, i: usize) -> (Tensor<1>, OutlierAccumulator) {
        let device = self.device.clone().inner();
        let host = self.data.eval_batch(&self.spec, i);
        let batch = host.to_device(&self.spec, &device);
        let ModelOutput { logits, taps } = model.forward(batch.input.clone());
        let correct = match self.spec.model {
            ModelKind::Vit => {
                let pred = logits.clone().argmax(1); // [b, 1]
                pred.equal(batch.target.clone()).float().sum() // [1]
            }
            _ => Tensor::zeros([1], &device),
        };
        let loss = weighted_cross_entropy(logits, &batch);
        let split = self.data.has_copies();
        let acc = OutlierAccumulator::new(&taps, model.headline_kind(), split);
        let copy = split.then(|| batch.copy.clone());
        let stats = metrics::pack_batch_stats(&taps, Some(batch.delim.clone()), copy);
        (Tensor::cat(vec![loss, correct, stats], 0), acc)
    }

    /// Evaluates on `spec.eval_batches` fixed held-out batches (blocking readback per batch).
    pub fn evaluate(&self) -> Result<EvalReport, TrainError> {
        let mut eval = EvalAccumulator::default();
        let model = self.model().valid();
        for i in 0..self.spec.eval_batches {
            let (packed, acc) = self.eval_batch(&model, i);
            eval.add(&read_f32(packed)?, acc);
        }
        Ok(eval.finish(&self.spec, self.steps_done))
    }

    /// [`Trainer::evaluate`] for the browser: awaits each batch's readback instead of blocking.
    pub async fn evaluate_async(&self) -> Result<EvalReport, TrainError> {
        let mut eval = EvalAccumulator::default();
        let model = self.model().valid();
        for i in 0..self.spec.eval_batches {
            let (packed, acc) = self.eval_batch(&model, i);
            eval.add(&read_f32_async(packed).await?, acc);
        }
        Ok(eval.finish(&self.spec, self.steps_done))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// Host-side sums over evaluation batches.
#[derive(Default)]
struct EvalAccumulator {
    outliers: Option<OutlierAccumulator>,
    loss_sum: f64,
    correct: f64,
    batches: usize,
}

impl EvalAccumulator {
    /// `v` is one [`Trainer::eval_batch`] vector: `[loss, correct, packed stats…]`.
    fn add(&mut self, v: &[f32], acc: OutlierAccumulator) {
        self.loss_sum += v.first().copied().unwrap_or(f32::NAN) as f64;
        self.correct += v.get(1).copied().unwrap_or(0.0) as f64;
        self.outliers
            .get_or_insert(acc)
            .add(v.get(2..).unwrap_or(&[]));
        self.batches += 1;
    }

    fn finish(self, spec: &RunSpec, step: usize) -> EvalReport {
        let n = self.batches.max(1) as f64;
        let loss = self.loss_sum / n;
        let is_vit = spec.model == ModelKind::Vit;
        EvalReport {
            step,
            loss,
            ppl: (!is_vit).then(|| loss.exp()),
            accuracy: is_vit.then(|| self.correct / (n * spec.batch as f64)),
            outliers: self
                .outliers
                .map(|a| a.report())
                .unwrap_or_else(OutlierReport::empty),
        }
    }
}
