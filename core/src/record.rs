//! The JSON record of a run, the events a run emits, and the one function that turns the
//! events into the record ([`RunRecord::apply`]). The CLI writes this record; the app keeps
//! one per lane (flattened into its lane view) and exports it.

use serde::{Deserialize, Serialize};

use crate::inspect::{Inspection, Mechanism};
use crate::ptq::QuantReport;
use crate::spec::RunSpec;
use crate::train::{EvalReport, StepReport, TrainError};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunRecord {
    /// The canonical spec string; `qtlab train --spec '<this>'` reproduces the run.
    pub spec: String,
    pub fingerprint: String,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// `cpu` or `wgpu`.
    #[serde(default)]
    pub backend: String,
    /// Data-parallel shards per device and step (changes float rounding, not the math).
    #[serde(default)]
    pub threads: usize,
    /// The devices a data-parallel run used (`cpu`, `wgpu:1`, `ws://host:port`); empty for
    /// a run on the one `backend` device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Steps done so far.
    #[serde(default)]
    pub step: usize,
    /// Steps planned.
    #[serde(default)]
    pub steps: usize,
    /// (step, training loss) of every step that finished; a diverged step has no entry.
    pub losses: Vec<(f64, f64)>,
    /// Global gradient norm (before clipping), parallel to `losses`.
    #[serde(default)]
    pub grad_norms: Vec<f64>,
    /// (step, per-layer headline inf-norm on the training batch) on the steps that carried
    /// stats. Steps are floats because the app's records from before this format wrote them so.
    #[serde(alias = "inf")]
    pub inf_norm_curve: Vec<(f64, Vec<f64>)>,
    /// Every evaluation, in order; the one at the last step is also in `eval`.
    pub evals: Vec<EvalReport>,
    /// The evaluation after the last step.
    #[serde(default)]
    pub eval: Option<EvalReport>,
    /// Post-training quantization results, one per bit-width point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quant: Vec<QuantReport>,
    /// Where the outliers sit and what the heads do, on evaluation batch 0 after training
    /// (see [`crate::inspect::Mechanism`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Mechanism>,
    /// The latest inspection (attention maps, gates, histograms), taken with each evaluation.
    #[serde(default)]
    pub inspection: Option<Inspection>,
    /// Set when the run stopped early (divergence, a device error); the curves up to that
    /// point are kept.
    pub error: Option<String>,
    /// Seconds spent advancing the run (pauses excluded).
    #[serde(default)]
    pub wall_seconds: f64,
    /// Mean milliseconds per step (step + readback) after the first.
    pub ms_per_step: f64,
    /// The first step alone: model upload, shader compilation and warm-up.
    #[serde(default)]
    pub first_step_ms: f64,
}

/// Why a run stopped early.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub message: String,
    /// A device error (a failed readback, a lost GPU) rather than a problem of the run itself.
    pub device: bool,
    /// `(step, loss)` when the loss or gradient went non-finite.
    pub diverged: Option<(usize, f64)>,
}

impl From<&TrainError> for Failure {
    fn from(e: &TrainError) -> Failure {
        Failure {
            message: e.to_string(),
            device: matches!(e, TrainError::Device(_)),
            diverged: match e {
                TrainError::Diverged { step, loss } => Some((*step, *loss)),
                _ => None,
            },
        }
    }
}

/// What one advance of a run produced, in order.
#[derive(Clone, Debug)]
pub enum Event {
    /// A training step finished; `ms` is the step plus its readback, by the run's clock.
    Step {
        report: StepReport,
        ms: f64,
    },
    Eval(EvalReport),
    Inspection(Inspection),
    /// The run stops here; no step follows.
    Failed(Failure),
    /// The last event of a run, after its last step or its failure.
    Finished {
        wall_seconds: f64,
    },
}

impl RunRecord {
    /// An empty record for `spec`, before its first step.
    pub fn new(spec: &RunSpec, backend: &str, threads: usize) -> RunRecord {
        RunRecord {
            spec: spec.to_canonical(),
            fingerprint: spec.fingerprint(),
            warnings: spec.warnings(),
            backend: backend.to_string(),
            threads,
            steps: spec.steps,
            ..RunRecord::default()
        }
    }

    /// The only code that fills a record from a run: the run applies each event to its own
    /// record, and the app applies the same events to the copy its charts read.
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Step { report: r, ms } => {
                self.losses.push((r.step as f64, r.loss));
                self.grad_norms.push(r.grad_norm);
                if !r.inf_norms.is_empty() {
                    self.inf_norm_curve
                        .push((r.step as f64, r.inf_norms.clone()));
                }
                self.step = r.step + 1;
                // The first step compiles shaders and uploads the model: kept apart so it does
                // not swamp the mean of a short run.
                if self.step <= 1 {
                    self.first_step_ms = *ms;
                } else {
                    let k = (self.step - 1) as f64;
                    self.ms_per_step += (ms - self.ms_per_step) / k;
                }
            }
            Event::Eval(e) => {
                if e.step == self.steps {
                    self.eval = Some(e.clone());
                }
                self.evals.push(e.clone());
            }
            Event::Inspection(i) => {
                if i.step == self.steps {
                    self.mechanism = Some(i.mechanism());
                }
                self.inspection = Some(i.clone());
            }
            Event::Failed(f) => self.error = Some(f.message.clone()),
            Event::Finished { wall_seconds } => self.wall_seconds = *wall_seconds,
        }
    }
}
