//! The one run loop. Every caller that trains a run to its end (the CLI's `train` and
//! `experiment`, `qtlab soak`, the browser app) advances a [`Run`], so the stats cadence, the
//! evaluation cadence, the inspection, divergence handling and the step timing are decided
//! here and nowhere else. What a run measured comes out as [`Event`]s, which
//! [`RunRecord::apply`] turns into the record.
//!
//! A [`Run`] is one run; several lanes side by side (the app) or one after the other (the
//! experiment) are the caller's loop over runs.

use crate::Device;
use crate::dataset::RunData;
use crate::inspect::{self, Inspection};
use crate::model::Model;
use crate::record::{Event, RunRecord};
use crate::spec::{RunSpec, SpecError};
use crate::train::{EvalReport, StepReport, TrainError, Trainer};

/// Every how many steps the per-layer inf-norm of the training batch rides along with the
/// step's readback (and always on the last step, so a curve ends where the run ends).
pub const STATS_EVERY: usize = 5;

/// Monotonic milliseconds. Injected because `std::time::Instant` panics on
/// wasm32-unknown-unknown: the app passes `performance.now()`, native callers [`native_clock`].
pub type Clock = fn() -> f64;

/// How a run is driven; none of it changes the run's math except `threads` (float rounding).
#[derive(Clone, Debug)]
pub struct RunOpts {
    /// `cpu` or `wgpu`, for the record.
    pub backend: String,
    /// Data-parallel shards per CPU step.
    pub threads: usize,
    /// Stats every this many steps plus the last; 0 turns them off.
    pub stats_every: usize,
    pub clock: Clock,
    /// Write a checkpoint every this many steps (native only; `None` = never).
    pub checkpoint: Option<Checkpointing>,
}

/// Where and how often a run writes its checkpoint (one file, replaced atomically).
#[derive(Clone, Debug)]
pub struct Checkpointing {
    pub path: std::path::PathBuf,
    /// Steps between checkpoints (at least 1); none after the last step, whose state is the
    /// record itself.
    pub every: usize,
}

/// Shards per CPU step when the caller does not choose. Fixed rather than the core count, so
/// that a spec reproduces bit for bit on any machine (the shard count changes float rounding).
#[cfg(not(target_arch = "wasm32"))]
pub const DEFAULT_CPU_THREADS: usize = 2;

#[cfg(not(target_arch = "wasm32"))]
impl RunOpts {
    /// Native defaults for `backend`: `threads` shards on the CPU (0 = [`DEFAULT_CPU_THREADS`]),
    /// one on wgpu (a GPU gains nothing from splitting the batch).
    pub fn native(backend: crate::BackendKind, threads: usize) -> RunOpts {
        let threads = match backend {
            crate::BackendKind::Wgpu => 1,
            #[cfg(feature = "cuda")]
            crate::BackendKind::Cuda => 1,
            crate::BackendKind::Cpu if threads > 0 => threads,
            crate::BackendKind::Cpu => DEFAULT_CPU_THREADS,
        };
        RunOpts {
            backend: backend.name().to_string(),
            threads,
            stats_every: STATS_EVERY,
            clock: native_clock,
            checkpoint: None,
        }
    }
}

/// Milliseconds since the first call in this process.
#[cfg(not(target_arch = "wasm32"))]
pub fn native_clock() -> f64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
        * 1e3
}

/// One run: its trainer, its cadences and its own record.
pub struct Run {
    trainer: Trainer,
    opts: RunOpts,
    rec: RunRecord,
    failed: bool,
    finished: bool,
    /// Clock time spent inside `advance`, so pauses between advances do not count.
    active_ms: f64,
}

impl Run {
    /// Validates `spec` and builds the model on `device` (training runs on its autodiff twin).
    pub fn new(
        spec: RunSpec,
        data: RunData,
        device: &Device,
        opts: RunOpts,
    ) -> Result<Run, SpecError> {
        Run::with_devices(spec, data, &[(device.clone(), String::new())], opts)
    }

    /// [`Run::new`], data parallel over `devices` (with their names for errors), `threads`
    /// shards on each (see [`Trainer::with_devices`]).
    pub fn with_devices(
        spec: RunSpec,
        data: RunData,
        devices: &[(Device, String)],
        opts: RunOpts,
    ) -> Result<Run, SpecError> {
        spec.validate()?;
        let mut rec = RunRecord::new(&spec, &opts.backend, opts.threads.max(1));
        if devices.len() > 1 || devices.iter().any(|(_, n)| !n.is_empty()) {
            rec.devices = devices.iter().map(|(_, n)| n.clone()).collect();
        }
        let mut trainer = Trainer::with_devices(spec, data, devices);
        trainer.set_threads(opts.threads);
        Ok(Run {
            trainer,
            opts,
            rec,
            failed: false,
            finished: false,
            active_ms: 0.0,
        })
    }

    /// A run that goes on from the checkpoint at `path`, taken by a run of the same spec with
    /// the same shard count (devices × threads), so that it finishes with the numbers the
    /// uninterrupted run would have had.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn resume(
        spec: RunSpec,
        data: RunData,
        devices: &[(Device, String)],
        opts: RunOpts,
        path: &std::path::Path,
    ) -> Result<Run, String> {
        let ck = crate::checkpoint::Checkpoint::load(path)?;
        let canonical = spec.to_canonical();
        if ck.header.spec != canonical {
            return Err(format!(
                "checkpoint `{}` belongs to another run:\n  its spec:  {}\n  this spec: {canonical}",
                path.display(),
                ck.header.spec
            ));
        }
        let mut run = Run::with_devices(spec, data, devices, opts).map_err(|e| e.to_string())?;
        let shards = run.trainer.shards();
        if ck.header.shards != shards {
            return Err(format!(
                "checkpoint `{}` was taken with {} shards per step (devices × threads) and this \
                 run has {shards}; the shard count changes float rounding, so resume with the \
                 same --devices and --threads",
                path.display(),
                ck.header.shards
            ));
        }
        run.trainer.restore(ck.state)?;
        run.rec = ck.header.record;
        run.rec.threads = run.opts.threads.max(1);
        run.active_ms = ck.header.active_ms;
        Ok(run)
    }

    /// Writes the run's checkpoint to `path` (atomically).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<(), String> {
        let state = crate::train::catch_device(|| self.trainer.snapshot())
            .map_err(|e| self.trainer.name_failure("checkpoint", e).to_string())?;
        crate::checkpoint::Checkpoint::save(
            &state,
            &self.trainer.spec.to_canonical(),
            self.trainer.shards(),
            &self.rec,
            self.active_ms,
            path,
        )
    }

    /// Writes the checkpoint if one is due after the step just taken; a failed write stops
    /// the run (going on would risk hours of work on a checkpoint that is not there).
    #[cfg(not(target_arch = "wasm32"))]
    fn checkpoint_if_due(&mut self, out: &mut Vec<Event>) {
        let Some(c) = self.opts.checkpoint.clone() else {
            return;
        };
        let s = self.trainer.steps_done;
        if self.failed || self.trainer.done() || s % c.every.max(1) != 0 {
            return;
        }
        if let Err(e) = self.save_checkpoint(&c.path) {
            let f = crate::record::Failure {
                device: e.starts_with("device error"),
                message: e,
                diverged: None,
            };
            self.emit(out, Event::Failed(f));
        }
    }

    /// Steps done so far (the next step's index).
    pub fn step(&self) -> usize {
        self.trainer.steps_done
    }

    /// Whether the run has emitted [`Event::Finished`]: all steps done, or failed.
    pub fn finished(&self) -> bool {
        self.finished
    }

    pub fn record(&self) -> &RunRecord {
        &self.rec
    }

    /// For what happens after the run (quantization results, a quantization error).
    pub fn record_mut(&mut self) -> &mut RunRecord {
        &mut self.rec
    }

    /// The trained model and its data, for quantization and copies off the device.
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// Replaces the model through `f` (fault injection: the tests poison the weights).
    pub fn map_model(&mut self, f: impl FnOnce(Model) -> Model) {
        self.trainer.map_model(f);
    }

    pub fn finish(self) -> RunRecord {
        self.rec
    }

    /// Whether the step about to run carries the headline stats.
    fn with_stats(&self) -> bool {
        let (k, s, n) = (
            self.opts.stats_every,
            self.trainer.steps_done,
            self.trainer.spec.steps,
        );
        k > 0 && (s % k == 0 || s + 1 == n)
    }

    /// Whether the step just taken is followed by an evaluation: every `eval_every` steps and
    /// after the last, so every run ends with an evaluation of its final model.
    fn eval_due(&self) -> bool {
        let (e, s) = (self.trainer.spec.eval_every, self.trainer.steps_done);
        (e > 0 && s % e == 0) || self.trainer.done()
    }

    fn emit(&mut self, out: &mut Vec<Event>, ev: Event) {
        self.rec.apply(&ev);
        self.failed |= matches!(ev, Event::Failed(_));
        out.push(ev);
    }

    fn emit_err(&mut self, out: &mut Vec<Event>, e: &TrainError) {
        self.emit(out, Event::Failed(e.into()));
    }

    /// The start of an advance: its clock reading, or `None` once the run has finished.
    fn begin(&self) -> Option<f64> {
        (!self.finished).then(|| (self.opts.clock)())
    }

    /// Records the step; returns whether an evaluation follows.
    fn stepped(
        &mut self,
        out: &mut Vec<Event>,
        r: Result<StepReport, TrainError>,
        t0: f64,
    ) -> bool {
        match r {
            Ok(report) => {
                let ms = (self.opts.clock)() - t0;
                self.emit(out, Event::Step { report, ms });
                self.eval_due()
            }
            Err(e) => {
                self.emit_err(out, &e);
                false
            }
        }
    }

    /// Records the evaluation; returns whether the inspection follows (it always goes with
    /// an evaluation, on the same model state).
    fn evaluated(&mut self, out: &mut Vec<Event>, r: Result<EvalReport, TrainError>) -> bool {
        match r {
            Ok(e) => {
                self.emit(out, Event::Eval(e));
                true
            }
            Err(e) => {
                self.emit_err(out, &e);
                false
            }
        }
    }

    fn inspected(&mut self, out: &mut Vec<Event>, r: Result<Inspection, TrainError>) {
        match r {
            Ok(i) => self.emit(out, Event::Inspection(i)),
            Err(e) => self.emit_err(out, &e),
        }
    }

    /// The end of an advance: counts its time, and finishes the run after its last step or
    /// a failure.
    fn close(&mut self, out: &mut Vec<Event>, t0: f64) {
        self.active_ms += (self.opts.clock)() - t0;
        if self.failed || self.trainer.done() {
            self.finished = true;
            let wall_seconds = self.active_ms / 1e3;
            self.emit(out, Event::Finished { wall_seconds });
        }
    }

    /// One step, then the evaluation and inspection if they are due. Blocking readbacks, so
    /// native only (a blocking readback on WebGPU would never complete).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn advance(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let Some(t0) = self.begin() else {
            return out;
        };
        let r = self.trainer.step_sync(self.with_stats());
        if self.stepped(&mut out, r, t0) {
            let r = self.trainer.evaluate();
            if self.evaluated(&mut out, r) {
                let r = crate::train::catch_device(|| inspect::inspect(&self.trainer))
                    .map_err(|e| self.trainer.name_failure("inspection", e));
                self.inspected(&mut out, r);
            }
        }
        self.checkpoint_if_due(&mut out);
        self.close(&mut out, t0);
        out
    }

    /// [`Run::advance`] with each readback awaited, so the browser's event loop runs while a
    /// GPU buffer maps. It never yields by itself: CPU readbacks resolve at once, so a caller
    /// that must stay responsive yields between advances.
    pub async fn advance_async(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let Some(t0) = self.begin() else {
            return out;
        };
        let r = self.trainer.step_async(self.with_stats()).await;
        if self.stepped(&mut out, r, t0) {
            let r = self.trainer.evaluate_async().await;
            if self.evaluated(&mut out, r) {
                let r = inspect::inspect_async(&self.trainer).await;
                self.inspected(&mut out, r);
            }
        }
        self.close(&mut out, t0);
        out
    }

    /// Advances to the end, handing every event to `on` (a progress bar).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_to_end(&mut self, mut on: impl FnMut(&Event)) {
        while !self.finished {
            for ev in self.advance() {
                on(&ev);
            }
        }
    }
}
