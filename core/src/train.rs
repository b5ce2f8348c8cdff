//! Training: AdamW with warm-up and linear decay, global gradient-norm clipping, and a step API
//! that a native loop and an async browser loop both drive.
//!
//! [`Trainer::step`] queues the whole update on the device and returns a [`PendingStep`] holding
//! device tensors; nothing on that path reads back. The native loop calls
//! [`PendingStep::read`]; the browser awaits [`PendingStep::read_async`].

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Gradients, Tensor, TensorData};

use crate::data::DataError;
use crate::dataset::{DeviceBatch, HostBatch, RunData};
use crate::init::Init;
use crate::kernels;
use crate::metrics::{self, OutlierAccumulator, OutlierReport};
use crate::model::{Model, ModelOutput};
use crate::rng::{Rng, Stream};
use crate::spec::{ModelKind, RunSpec, Schedule};

/// Learning rate at `step` (0-based): linear warm-up to `lr` over `warmup` steps, then linear
/// decay to 0 at `steps` (HF `get_linear_schedule_with_warmup`, shifted by one so the first
/// step already learns).
///
/// With `sched=const` the rate stays at `lr` after warm-up.
pub fn lr_at(spec: &RunSpec, step: usize) -> f64 {
    if step < spec.warmup {
        spec.lr * (step + 1) as f64 / spec.warmup as f64
    } else if spec.sched == Schedule::Const {
        spec.lr
    } else {
        let left = spec.steps.saturating_sub(step) as f64;
        spec.lr * left / spec.steps.saturating_sub(spec.warmup).max(1) as f64
    }
}

/// Clipped softmax's (γ, ζ) at `step` (0-based): with `gamma_warmup` > 0 they ramp linearly
/// from plain softmax (0, 1) to their values, reached at step `gamma_warmup`; `None` for the
/// other variants. The ramp lets a fresh model's near-uniform attention through at α ≥ 1,
/// where the full γ would clip it to zero and stall every head (the dead start).
pub fn clip_at(spec: &RunSpec, step: usize) -> Option<(f64, f64)> {
    if spec.attn != crate::spec::AttnKind::Clipped {
        return None;
    }
    let (gamma, zeta) = (spec.gamma_effective(), spec.zeta_effective());
    let f = if spec.gamma_warmup == 0 {
        1.0
    } else {
        (step as f64 / spec.gamma_warmup as f64).min(1.0)
    };
    Some((gamma * f, 1.0 + (zeta - 1.0) * f))
}

/// Parameters exempt from weight decay: biases and LayerNorm weights, as in the paper's
/// scripts (`["bias", "LayerNorm.weight"]`), plus the other scalar-per-channel parameters
/// (gate logits, sink logits) that play the role of biases. With `ln_wd` the LayerNorm weight
/// (`gamma`) decays too, as in the paper's OPT scripts (`--wd_LN_gamma`).
const NO_DECAY: &[&str] = &[
    "bias",
    "b1",
    "b2",
    "beta",
    "gamma",
    "alpha",
    "sink",
    "head_bias",
];

/// Where one parameter sits in the optimizer's flat buffers.
#[derive(Clone, Debug, PartialEq)]
struct Slot {
    id: ParamId,
    /// Values in the parameter.
    n: usize,
    /// Start of its segment in the flat buffers.
    off: usize,
    /// Whether weight decay applies (not to the [`NO_DECAY`] parameters).
    decay: bool,
}

/// The optimizer state of every parameter, packed like the gradients (see [`kernels::pack`]).
struct Flat {
    slots: Vec<Slot>,
    align: usize,
    /// First moments. `[total]`
    m: Tensor<1>,
    /// Second moments. `[total]`
    v: Tensor<1>,
    /// 1 where weight decay applies, 0 elsewhere and on the padding. `[total]`
    decay: Tensor<1>,
}

/// AdamW (PyTorch semantics: decoupled decay `p ← p·(1−lr·wd)`, bias-corrected moments).
/// Written here rather than taken from burn-optim because the paper's recipe needs a global
/// gradient-norm clip and a decay exclusion list, and both must stay on the device.
///
/// Every parameter, gradient and moment is packed into one flat buffer, so the norm and the
/// update are one reduction and one fused elementwise launch for the whole model rather than
/// two or three launches per parameter: in the browser a step's time is mostly per-launch
/// cost. The updated parameters are views into the new flat buffer.
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Decay LayerNorm γ as well (spec `ln_wd`).
    decay_ln_gamma: bool,
    clip: f64,
    t: i32,
    state: Option<Flat>,
    /// Moments of parameters that had no gradient at the last step, kept for when they
    /// return (PyTorch skips such parameters and keeps their state).
    parked: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    pub fn new(spec: &RunSpec) -> Self {
        AdamW {
            beta1: spec.beta1,
            beta2: spec.beta2,
            eps: spec.eps,
            weight_decay: spec.weight_decay,
            decay_ln_gamma: spec.ln_wd,
            clip: spec.clip,
            t: 0,
            state: None,
            parked: HashMap::new(),
        }
    }

    /// Applies one update; returns the global gradient norm (before clipping) as a device scalar.
    pub fn step<M: Module>(&mut self, model: M, mut grads: Gradients, lr: f64) -> (M, Tensor<1>) {
        let flat = collect_grads(&model, &mut grads);
        self.apply(model, flat, lr)
    }

    /// The moments for `slots`: last step's when the layout is unchanged (every step after
    /// the first), else rebuilt parameter by parameter, starting at zero for new ones.
    fn moments(&mut self, slots: &[Slot], align: usize, device: &Device) -> Flat {
        let old = self.state.take();
        if let Some(flat) = old.as_ref()
            && flat.slots == slots
            && flat.align == align
        {
            return old.expect("checked above");
        }
        // The layout changed: carry each parameter's moments over by id.
        if let Some(f) = old {
            for o in f.slots {
                let seg = |t: &Tensor<1>| kernels::segment(t.clone(), o.off, o.n); // [n]
                self.parked.insert(o.id, (seg(&f.m), seg(&f.v)));
            }
        }
        let (mut ms, mut vs) = (Vec::new(), Vec::new());
        for s in slots {
            let (m, v) = match self.parked.remove(&s.id) {
                Some((m, v)) if m.dims()[0] == s.n => (m, v),
                _ => (Tensor::zeros([s.n], device), Tensor::zeros([s.n], device)),
            };
            ms.push(m);
            vs.push(v);
        }
        let m = kernels::pack(ms, align); // [total]
        let v = kernels::pack(vs, align); // [total]
        let total = m.dims()[0];
        let mut mask = vec![0f32; total];
        for s in slots.iter().filter(|s| s.decay) {
            mask[s.off..s.off + s.n].fill(1.0);
        }
        let decay = Tensor::from_data(TensorData::new(mask, [total]), device);
        Flat {
            slots: slots.to_vec(),
            align,
            m,
            v,
            decay,
        }
    }

    /// Applies one update from gradients already pulled out of the autodiff graph(s), keyed by
    /// parameter; returns the global gradient norm (before clipping).
    pub fn apply<M: Module>(
        &mut self,
        model: M,
        flat_grads: HashMap<ParamId, Tensor<1>>,
        lr: f64,
    ) -> (M, Tensor<1>) {
        let device = model
            .devices()
            .first()
            .cloned()
            .expect("model has a device")
            .inner();
        // Parameter-visit order, not hash order, so the layout (and the norm) is reproducible.
        let mut gather = Gather {
            grads: flat_grads,
            path: Vec::new(),
            found: Vec::new(),
            all: std::collections::HashSet::new(),
            decay_ln_gamma: self.decay_ln_gamma,
        };
        model.visit(&mut gather);
        // Moments parked for parameters the model no longer has would pin old buffers forever.
        self.parked.retain(|id, _| gather.all.contains(id));
        if gather.found.is_empty() {
            return (model, Tensor::zeros([1], &device));
        }
        let align = if kernels::active(&device) {
            kernels::PACK_ALIGN
        } else {
            1
        };
        let mut slots = Vec::with_capacity(gather.found.len());
        let (mut params, mut grads) = (Vec::new(), Vec::new());
        let mut off = 0;
        for (id, decay, p, g) in gather.found {
            let n = p.dims()[0];
            slots.push(Slot { id, n, off, decay });
            off += kernels::packed_len([n], align);
            params.push(p);
            grads.push(g);
        }
        let g = kernels::pack(grads, align); // [total]
        let p = kernels::pack(params, align); // [total]
        let norm = kernels::sum_all(g.clone().powi_scalar(2)).sqrt(); // [1]
        // PyTorch's clip_grad_norm_: coefficient max_norm/(norm+1e-6), capped at 1.
        let g = if self.clip > 0.0 {
            let scale = (norm.clone().add_scalar(1e-6))
                .recip()
                .mul_scalar(self.clip)
                .clamp_max(1.0); // [1]
            g * scale // [total] · [1]
        } else {
            g
        };
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let flat = self.moments(&slots, align, &device);
        let m = flat.m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1); // [total]
        let v = flat.v.mul_scalar(b2) + g.powi_scalar(2).mul_scalar(1.0 - b2); // [total]
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2 = 1.0 - b2.powi(self.t);
        let p = if self.weight_decay > 0.0 {
            // p·(1 − lr·wd·mask): exempt values are multiplied by exactly 1.
            p * flat
                .decay
                .clone()
                .mul_scalar(-lr * self.weight_decay)
                .add_scalar(1.0)
        } else {
            p
        };
        // p ← p − lr·m̂/(√v̂ + ε), with m̂ = m/bc1 and v̂ = v/bc2.
        let denom = v.clone().div_scalar(bc2).sqrt().add_scalar(self.eps);
        let p = p - m.clone().div(denom).mul_scalar(lr / bc1); // [total]
        self.state = Some(Flat { m, v, ..flat });
        let mut scatter = Scatter {
            p,
            slots: slots.into_iter().map(|s| (s.id, s)).collect(),
        };
        let model = model.map(&mut scatter);
        (model, norm)
    }
}

/// Collects, in visit order, each parameter that has a gradient: id, whether it decays, its
/// values and its gradient, both flattened.
struct Gather {
    grads: HashMap<ParamId, Tensor<1>>,
    path: Vec<String>,
    found: Vec<(ParamId, bool, Tensor<1>, Tensor<1>)>,
    /// Every parameter, with a gradient or not.
    all: std::collections::HashSet<ParamId>,
    decay_ln_gamma: bool,
}

impl ModuleVisitor for Gather {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.all.insert(param.id);
        let Some(grad) = self.grads.remove(&param.id) else {
            return;
        };
        // The field name, skipping list indices (`layers.0.bias` → `bias`).
        let field = self
            .path
            .iter()
            .rev()
            .find(|p| p.parse::<usize>().is_err())
            .map(String::as_str)
            .unwrap_or("");
        let p = param.val().inner();
        let n = p.shape().num_elements();
        self.found.push((
            param.id,
            !NO_DECAY.contains(&field) || (self.decay_ln_gamma && field == "gamma"),
            p.reshape([n]), // [n]
            grad,
        ));
    }
}

/// Replaces each updated parameter by its segment of the new flat buffer.
struct Scatter {
    p: Tensor<1>,
    slots: HashMap<ParamId, Slot>,
}

impl ModuleMapper for Scatter {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(s) = self.slots.remove(&param.id) else {
            return param;
        };
        let flat = &self.p;
        param.map(|tensor| {
            let shape = tensor.shape();
            let p = kernels::segment(flat.clone(), s.off, s.n); // [n], a view on a GPU
            Tensor::from_inner(p.reshape(shape)).require_grad()
        })
    }
}

/// Pulls every parameter's gradient out of `grads`, flattened, keyed by parameter id.
pub fn collect_grads<M: Module>(model: &M, grads: &mut Gradients) -> HashMap<ParamId, Tensor<1>> {
    let mut collect = GradCollector {
        grads,
        out: HashMap::new(),
    };
    model.visit(&mut collect);
    collect.out
}

/// Gives every parameter a fresh autodiff leaf, so that a shard's graph shares no node with
/// another shard's and Burn keeps their graphs (and locks) apart.
struct Releaf;

impl ModuleMapper for Releaf {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| Tensor::from_inner(t.inner()).require_grad())
    }
}

/// Pulls every gradient out, flattened.
struct GradCollector<'a> {
    grads: &'a mut Gradients,
    out: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = param.val().grad_remove(self.grads) {
            let n = g.shape().num_elements();
            self.out.insert(param.id, g.reshape([n])); // [n]
        }
    }
}

/// Weighted cross-entropy: Σ w·(−log p[target]) / Σ w.
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
    pub step: usize,
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
    let ModelOutput { logits, taps } = model.forward_q(batch.input.clone(), &mut aq);
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
            step: 0,
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
        self.step >= self.spec.steps
    }

    /// Queues one training step. With `with_stats`, the headline taps' inf-norms of this batch
    /// ride along in the same readback (cheap; the app asks for them every few steps).
    pub fn step(&mut self, with_stats: bool) -> PendingStep {
        let host = self
            .data
            .train_batch(&self.spec, &mut self.order, &mut self.mask);
        let mut model = self.model.take().expect("model present between steps");
        if self.spec.gamma_warmup > 0
            && self.step <= self.spec.gamma_warmup
            && let Some((gamma, zeta)) = clip_at(&self.spec, self.step)
        {
            model.set_score_norm(crate::attention::ScoreNorm::Clipped { gamma, zeta });
        }
        let total_weight: f32 = host.weight.iter().sum();
        let shards = host.split(self.threads);
        let (spec, device) = (&self.spec, &self.device);
        // One mask stream per step and shard, so a shard's masks do not depend on thread timing.
        let step = self.step as u64;
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
        let lr = lr_at(&self.spec, self.step);
        let (model, grad_norm) = self.opt.apply(model, grads, lr);
        self.model = Some(model);
        let headline_layers = stats.len();
        let mut parts = vec![loss, grad_norm];
        parts.extend(stats);
        let step = self.step;
        self.step += 1;
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
        let lr = lr_at(&self.spec, self.step);
        let (model, grad_norm) = self.opt.step(model, grads, lr);
        self.model = Some(model);
        sync(&self.device)?;
        let t_opt = lap(&mut t);
        let v = Tensor::cat(vec![loss.inner(), grad_norm], 0)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Device(format!("{e:?}")))?;
        let t_read = lap(&mut t);
        self.step += 1;
        if !v.iter().all(|x| x.is_finite()) {
            return Err(TrainError::Diverged {
                step: self.step - 1,
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
        Ok(eval.finish(&self.spec, self.step))
    }

    /// [`Trainer::evaluate`] for the browser: awaits each batch's readback instead of blocking.
    pub async fn evaluate_async(&self) -> Result<EvalReport, TrainError> {
        let mut eval = EvalAccumulator::default();
        let model = self.model().valid();
        for i in 0..self.spec.eval_batches {
            let (packed, acc) = self.eval_batch(&model, i);
            eval.add(&read_f32_async(packed).await?, acc);
        }
        Ok(eval.finish(&self.spec, self.step))
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
