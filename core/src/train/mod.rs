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
    t.try_into_data()
        .map_err(|e| TrainError::Device(format!("{e:?}")))?
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
            .try_into_data()
            .map_err(|e| format!("{e:?}"))?
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
    /// The autodiff device the model and the optimizer live on (the leader, `devices[0]`).
    device: Device,
    /// Every device a step's shards run on, the leader first (autodiff twins).
    devices: Vec<Device>,
    /// How each device is named in errors (`cpu`, `wgpu:1`, `ws://127.0.0.1:4000`).
    device_names: Vec<String>,
    order: Rng,
    mask: Rng,
    /// Shards per device.
    threads: usize,
    /// Training steps taken so far; the next step's index (a field apart from the `step` method).
    pub steps_done: usize,
}

/// A trainer's state on the host (see [`Trainer::snapshot`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerState {
    pub steps_done: usize,
    /// The batch-order stream's generator state.
    pub order: [u64; 4],
    /// The masking stream's generator state.
    pub mask: [u64; 4],
    /// AdamW updates taken (its bias-correction exponent).
    pub updates: i32,
    /// Every parameter, by path.
    pub params: std::collections::BTreeMap<String, crate::params::HostArray>,
    /// AdamW's `(m, v)` of every parameter that has them, by path.
    pub moments: std::collections::BTreeMap<String, (Vec<f32>, Vec<f32>)>,
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

/// Flat tensors moved to `device` as one transfer: packed, moved, cut apart again. Values are
/// copied, not changed, so the sums that follow are bit-identical to moving each alone.
///
/// # Shapes
/// - `parts`: each `[n_i]` → the same
fn move_packed(parts: Vec<Tensor<1>>, device: &Device) -> Vec<Tensor<1>> {
    if parts.is_empty() {
        return parts;
    }
    let lens: Vec<usize> = parts.iter().map(|t| t.dims()[0]).collect();
    let flat = crate::kernels::pack(parts, 1).to_device(device); // [Σ n_i]
    let mut off = 0;
    lens.into_iter()
        .map(|n| {
            let seg = crate::kernels::segment(flat.clone(), off, n); // [n]
            off += n;
            seg
        })
        .collect()
}

/// The leader's parameters as a replica on `device` (fresh autodiff leaves, ids kept).
fn broadcast(model: &Model, device: &Device) -> Model {
    let params = crate::params::names(model);
    let mut flats = Vec::with_capacity(params.len());
    model.visit(&mut FlatParams(&mut flats));
    let moved = move_packed(flats, &device.clone().inner());
    let by_id: HashMap<ParamId, Tensor<1>> =
        params.into_iter().map(|(_, _, id)| id).zip(moved).collect();
    model.clone().map(&mut FromFlat(by_id))
}

/// A shard's result moved to the leader in one transfer.
fn gather(r: ShardResult, leader: &Device) -> ShardResult {
    // A fixed order (by id value), so the cut-apart pieces are matched without a map.
    let mut grads: Vec<(ParamId, Tensor<1>)> = r.grads.into_iter().collect();
    grads.sort_by_key(|(id, _)| id.val());
    let n_stats = r.stats.len();
    let ids: Vec<ParamId> = grads.iter().map(|(id, _)| *id).collect();
    let mut parts = vec![r.loss];
    parts.extend(r.stats);
    parts.extend(grads.into_iter().map(|(_, g)| g));
    let mut moved = move_packed(parts, leader).into_iter();
    let loss = moved.next().expect("the loss was packed");
    let stats = moved.by_ref().take(n_stats).collect();
    ShardResult {
        loss,
        stats,
        grads: ids.into_iter().zip(moved).collect(),
    }
}

/// Every float parameter's values, flattened, in visit order.
struct FlatParams<'a>(&'a mut Vec<Tensor<1>>);

impl burn::module::ModuleVisitor for FlatParams<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let t = param.val().inner();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n])); // [n]
    }
}

/// Each parameter replaced by its flat values (on their device), reshaped, as a fresh leaf.
struct FromFlat(HashMap<ParamId, Tensor<1>>);

impl burn::module::ModuleMapper for FromFlat {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        let Some(flat) = self.0.remove(&param.id) else {
            return param;
        };
        param.map(|t| Tensor::from_inner(flat.reshape(t.shape())).require_grad())
    }
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

/// The worker behind a device named `ws://HOST:PORT` (or `ws://HOST:PORT#k`, its device k):
/// its URL and every address its host resolves to (Burn's client tries them all, so a
/// dual-stack `localhost` refusing on `::1` still answers on 127.0.0.1). `None` for a device
/// of this machine.
pub fn worker_of(name: &str) -> Option<(String, Vec<std::net::SocketAddr>)> {
    let hostport = name.strip_prefix("ws://")?;
    let hostport = hostport.split('#').next().unwrap_or(hostport);
    let addrs = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .map(|a| a.collect())
        .unwrap_or_default();
    Some((format!("ws://{hostport}"), addrs))
}

/// Whether a worker accepts a TCP connection on any of its addresses within `timeout`.
pub fn worker_answers(addrs: &[std::net::SocketAddr], timeout: std::time::Duration) -> bool {
    addrs
        .iter()
        .any(|a| std::net::TcpStream::connect_timeout(a, timeout).is_ok())
}

/// Runs `f`, turning a panic into a device error: Burn's remote client and a lost GPU panic
/// on some paths, and that must end the run with a message (and its record kept), not take
/// the process down.
pub fn catch_device<T>(f: impl FnOnce() -> Result<T, TrainError>) -> Result<T, TrainError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(TrainError::Device(panic_text(&p))))
}

/// The text of a caught panic.
pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
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
        Trainer::with_devices(spec, data, &[(device.clone(), String::new())])
    }

    /// Data parallel over `devices` (plain devices with their names; at least one): the
    /// model and the optimizer live on the first, the leader. Each step the leader's
    /// parameters are copied to the other devices, every device runs its shards of the global
    /// batch, and their gradients come back to the leader and are summed there in shard order
    /// (a leader reduction: Burn 0.22's collectives exist for CUDA only, see
    /// docs/scale-out.md). The same devices in any number of processes give the same bits.
    pub fn with_devices(spec: RunSpec, data: RunData, devices: &[(Device, String)]) -> Trainer {
        assert!(!devices.is_empty(), "a trainer needs a device");
        let devs: Vec<Device> = devices.iter().map(|(d, _)| d.clone().autodiff()).collect();
        let device = devs[0].clone();
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
            devices: devs,
            device_names: devices.iter().map(|(_, n)| n.clone()).collect(),
            steps_done: 0,
        }
    }

    /// Devices the shards run on.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Shards per step: `threads` on each device.
    pub fn shards(&self) -> usize {
        self.devices.len() * self.threads
    }

    /// Which devices no longer answer (after a failed step), by name: a lost worker is named,
    /// not "a device".
    fn failed_devices(&self) -> String {
        let dead: Vec<String> = (0..self.devices.len())
            .filter(|&d| match worker_of(&self.device_name(d)) {
                // A live worker's session may still report the failure it was waiting on
                // (a transfer from the dead one), so a worker is judged by whether it answers.
                Some((_, addrs)) => !worker_answers(&addrs, std::time::Duration::from_secs(2)),
                None => {
                    let dev = self.devices[d].clone().inner();
                    !matches!(
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dev.sync())),
                        Ok(Ok(()))
                    )
                }
            })
            .map(|d| self.device_name(d))
            .collect();
        match dead.len() {
            0 => "a device".into(),
            _ => dead.join(", "),
        }
    }

    /// A device's name for an error message.
    fn device_name(&self, d: usize) -> String {
        match self.device_names.get(d) {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!("device {d}"),
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
    ///
    /// A device that fails mid-step (a worker that went away) is an error naming it; the
    /// trainer is not usable after that (its model went with the step).
    pub fn step(&mut self, with_stats: bool) -> Result<PendingStep, TrainError> {
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
        let shards = host.split(self.shards());
        let threads = self.threads;
        let (spec, devices) = (&self.spec, &self.devices);
        // One mask stream per step and shard, so a shard's masks do not depend on thread timing
        // nor on which device runs it: `--devices 2 --threads 1` draws what `--threads 2` does.
        let step = self.steps_done as u64;
        let dropout = move |shard: usize| {
            (spec.dropout > 0.0)
                .then(|| Rng::stream(spec.seed, Stream::Dropout).fork((step << 16) | shard as u64))
        };
        let results: Vec<Result<ShardResult, usize>> = if shards.len() == 1 {
            vec![Ok(run_shard(
                &model,
                &shards[0],
                spec,
                &devices[0],
                total_weight,
                with_stats,
                false,
                dropout(0),
            ))]
        } else {
            // The broadcast: each other device gets the leader's parameters, once per step, as
            // one packed transfer (a worker pays a round trip per tensor moved).
            let used = shards.len().div_ceil(threads).min(devices.len());
            let replicas: Vec<Model> = (0..used)
                .map(|d| match d {
                    0 => model.clone(),
                    _ if devices[d] == devices[0] => model.clone().map(&mut Releaf),
                    _ => broadcast(&model, &devices[d]),
                })
                .collect();
            std::thread::scope(|scope| {
                let replicas = &replicas;
                let handles: Vec<_> = shards
                    .iter()
                    .enumerate()
                    .map(|(k, sh)| {
                        let d = k / threads;
                        let rng = dropout(k);
                        scope.spawn(move || {
                            run_shard(
                                &replicas[d],
                                sh,
                                spec,
                                &devices[d],
                                total_weight,
                                with_stats,
                                true,
                                rng,
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .enumerate()
                    .map(|(k, h)| h.join().map_err(|_| k / threads))
                    .collect()
            })
        };
        let leader = self.device.clone().inner();
        // Combine in shard order so the result does not depend on thread timing; a shard from
        // another device comes home first, packed into one transfer.
        let mut acc: Option<ShardResult> = None;
        for (k, r) in results.into_iter().enumerate() {
            let d = k / threads;
            let r = r.map_err(|d| {
                TrainError::Device(format!("the shard on {} stopped", self.device_name(d)))
            })?;
            let r = if devices[d] == devices[0] {
                r
            } else {
                gather(r, &leader)
            };
            acc = Some(match acc {
                None => r,
                Some(mut a) => {
                    a.loss = a.loss + r.loss;
                    for (id, g) in r.grads {
                        let sum = match a.grads.remove(&id) {
                            Some(x) => x + g,
                            None => g,
                        };
                        a.grads.insert(id, sum);
                    }
                    a.stats = a
                        .stats
                        .into_iter()
                        .zip(r.stats)
                        .map(|(x, y)| Tensor::cat(vec![x, y], 0))
                        .collect();
                    a
                }
            });
        }
        let ShardResult { loss, grads, stats } = acc.expect("at least one shard");
        let lr = lr_at(&self.spec, self.steps_done);
        let (model, grad_norm) = self.opt.apply(model, grads, lr);
        self.model = Some(model);
        let headline_layers = stats.len();
        let mut parts = vec![loss, grad_norm];
        parts.extend(stats);
        let step = self.steps_done;
        self.steps_done += 1;
        Ok(PendingStep {
            step,
            lr,
            packed: Tensor::cat(parts, 0),
            headline_layers,
            seqs: self.spec.batch,
        })
    }

    /// Everything the next step depends on, read back to the host: parameters, optimizer
    /// moments (both by parameter path, so they outlive this process's parameter ids), the
    /// batch-order and masking streams, and the step. Dropout needs nothing: its masks are a
    /// pure function of (seed, step, shard).
    pub fn snapshot(&self) -> Result<TrainerState, TrainError> {
        let model = self.model();
        let params = crate::params::read(model).map_err(TrainError::Device)?;
        let mut by_id = self.opt.export()?;
        let moments = crate::params::names(model)
            .into_iter()
            .filter_map(|(path, _, id)| by_id.remove(&id).map(|mv| (path, mv)))
            .collect();
        Ok(TrainerState {
            steps_done: self.steps_done,
            order: self.order.state(),
            mask: self.mask.state(),
            updates: self.opt.updates(),
            params,
            moments,
        })
    }

    /// Puts a [`Trainer::snapshot`] back: the next step is the one the snapshot's trainer would
    /// have taken, bit for bit on a deterministic backend.
    pub fn restore(&mut self, st: TrainerState) -> Result<(), String> {
        let model = self.model.take().expect("model present between steps");
        let ids: HashMap<String, ParamId> = crate::params::names(&model)
            .into_iter()
            .map(|(path, _, id)| (path, id))
            .collect();
        let model = match crate::params::load(model, &st.params) {
            Ok(m) => m,
            Err(e) => {
                return Err(format!("the checkpoint does not fit this model: {e}"));
            }
        };
        self.model = Some(model);
        let mut moments = HashMap::new();
        for (path, mv) in st.moments {
            let id = ids
                .get(&path)
                .ok_or_else(|| format!("the checkpoint has moments for an unknown `{path}`"))?;
            moments.insert(*id, mv);
        }
        self.opt.import(st.updates, moments, &self.device);
        self.order = Rng::from_state(st.order);
        self.mask = Rng::from_state(st.mask);
        self.steps_done = st.steps_done;
        Ok(())
    }

    /// Data-parallel shards per device (native only; the browser has no threads and GPUs
    /// gain nothing). Splitting changes float rounding, not the math, and is deterministic for
    /// a given total shard count. Default: 1.
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
        let step = self.steps_done;
        let r = catch_device(|| self.step(with_stats)?.read().map_err(TrainError::Device))
            .map_err(|e| self.name_failure(&format!("step {step}"), e))?;
        if !r.loss.is_finite() || !r.grad_norm.is_finite() {
            return Err(TrainError::Diverged {
                step: r.step,
                loss: r.loss,
            });
        }
        Ok(r)
    }

    /// A device error of `what` (a step, an evaluation, a quantization) named by the devices
    /// that no longer answer, so a lost worker or GPU is named, not "a device error".
    pub fn name_failure(&self, what: &str, e: TrainError) -> TrainError {
        match e {
            TrainError::Device(why) => TrainError::Device(format!(
                "{} failed during {what} ({why})",
                self.failed_devices()
            )),
            e => e,
        }
    }

    /// [`Trainer::step_sync`] for the browser: awaits the readback instead of blocking.
    pub async fn step_async(&mut self, with_stats: bool) -> Result<StepReport, TrainError> {
        let r = self
            .step(with_stats)?
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
        catch_device(|| {
            let mut eval = EvalAccumulator::default();
            let model = self.model().valid();
            for i in 0..self.spec.eval_batches {
                let (packed, acc) = self.eval_batch(&model, i);
                eval.add(&read_f32(packed)?, acc);
            }
            Ok(eval.finish(&self.spec, self.steps_done))
        })
        .map_err(|e| self.name_failure("evaluation", e))
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
