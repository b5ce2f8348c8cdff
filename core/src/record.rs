//! The JSON record of a run: its spec (canonical string) and everything it measured.

use serde::Serialize;

use crate::train::{EvalReport, StepReport, TrainError, Trainer};

#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// The canonical spec string; `qtlab train --spec '<this>'` reproduces the run.
    pub spec: String,
    pub fingerprint: String,
    pub warnings: Vec<String>,
    pub backend: String,
    /// Data-parallel shards per CPU step (changes float rounding, not the math).
    pub threads: usize,
    /// Training loss per step.
    pub losses: Vec<f64>,
    /// Global gradient norm per step (before clipping).
    pub grad_norms: Vec<f64>,
    /// (step, per-layer headline inf-norm on the training batch), every `stats_every` steps.
    pub inf_norm_curve: Vec<(usize, Vec<f64>)>,
    /// Every evaluation, in order; the last one is also in `eval`.
    pub evals: Vec<EvalReport>,
    /// The final evaluation.
    pub eval: Option<EvalReport>,
    /// Post-training quantization results, one per bit-width point (`--quantize`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quant: Vec<crate::ptq::QuantReport>,
    /// Where the outliers sit and what the heads do, on evaluation batch 0 after training
    /// (see [`crate::inspect::Mechanism`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<crate::inspect::Mechanism>,
    /// Set when the run stopped early (divergence); the curves up to that point are kept.
    pub error: Option<String>,
    pub wall_seconds: f64,
    pub ms_per_step: f64,
}

/// Hooks the native loop calls so the CLI can draw a progress bar.
pub trait Progress {
    fn step(&mut self, _report: &StepReport, _total: usize) {}
    fn eval(&mut self, _report: &EvalReport) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// Runs `trainer` to the end on the native blocking path, evaluating every `eval_every` steps
/// and at the end. Divergence stops the run but keeps what was recorded.
pub fn run_native(
    trainer: &mut Trainer,
    backend: &str,
    stats_every: usize,
    progress: &mut dyn Progress,
) -> RunRecord {
    let spec = trainer.spec.clone();
    let mut rec = RunRecord {
        spec: spec.to_canonical(),
        fingerprint: spec.fingerprint(),
        warnings: spec.warnings(),
        backend: backend.to_string(),
        threads: trainer.threads(),
        losses: Vec::new(),
        grad_norms: Vec::new(),
        inf_norm_curve: Vec::new(),
        evals: Vec::new(),
        eval: None,
        quant: Vec::new(),
        mechanism: None,
        error: None,
        wall_seconds: 0.0,
        ms_per_step: 0.0,
    };
    let t0 = std::time::Instant::now();
    let mut step_time = 0.0;
    while !trainer.done() {
        let with_stats =
            stats_every > 0 && (trainer.step % stats_every == 0 || trainer.step + 1 == spec.steps);
        let ts = std::time::Instant::now();
        match trainer.step_sync(with_stats) {
            Ok(r) => {
                step_time += ts.elapsed().as_secs_f64();
                rec.losses.push(r.loss);
                rec.grad_norms.push(r.grad_norm);
                if !r.inf_norms.is_empty() {
                    rec.inf_norm_curve.push((r.step, r.inf_norms.clone()));
                }
                progress.step(&r, spec.steps);
            }
            Err(e) => {
                if let TrainError::Diverged { loss, .. } = &e {
                    rec.losses.push(*loss);
                }
                rec.error = Some(e.to_string());
                break;
            }
        }
        let s = trainer.step;
        if spec.eval_every > 0 && s % spec.eval_every == 0 && s < spec.steps {
            match trainer.evaluate() {
                Ok(ev) => {
                    progress.eval(&ev);
                    rec.evals.push(ev);
                }
                Err(e) => {
                    rec.error = Some(e.to_string());
                    break;
                }
            }
        }
    }
    if rec.error.is_none() {
        match trainer.evaluate() {
            Ok(ev) => {
                progress.eval(&ev);
                rec.evals.push(ev.clone());
                rec.eval = Some(ev);
            }
            Err(e) => rec.error = Some(e.to_string()),
        }
    }
    if rec.error.is_none() {
        match crate::inspect::inspect(trainer) {
            Ok(ins) => rec.mechanism = Some(ins.mechanism()),
            Err(e) => rec.error = Some(e.to_string()),
        }
    }
    rec.wall_seconds = t0.elapsed().as_secs_f64();
    rec.ms_per_step = 1000.0 * step_time / rec.losses.len().max(1) as f64;
    rec
}
