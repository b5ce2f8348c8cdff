//! `qtlab train`: one run, its progress bar, its record.

use qtlab_core::metrics::format_quality;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use qtlab_core::dataset::RunData;
use qtlab_core::driver::Run;
use qtlab_core::ptq::{QuantSettings, WeightRange, quantize_and_evaluate};
use qtlab_core::record::{Event, RunRecord};
use qtlab_core::spec::RunSpec;
use qtlab_core::train::{EvalReport, StepReport};
use qtlab_core::train::{catch_device, panic_text};

use crate::args::{RunOpts, parse_args};

struct Bar {
    tty: bool,
    quiet: bool,
    last_inf: Option<f64>,
    t0: Instant,
    /// Tokens (or patches) a step trains on: batch × sequence length.
    tokens_per_step: usize,
    /// The step the bar started at (a resumed run's rate counts only its own steps).
    first: Option<usize>,
}

/// `1h02m`, `3m05s`, `42s`.
fn human_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Bar {
    fn step(&mut self, r: &StepReport, total: usize) {
        if let Some(m) = r.inf_norms.iter().cloned().reduce(f64::max) {
            self.last_inf = Some(m);
        }
        if self.quiet {
            return;
        }
        let done = r.step + 1;
        let first = *self.first.get_or_insert(r.step);
        let inf = self.last_inf.map_or("-".to_string(), |v| format!("{v:.2}"));
        let rate = (done - first) as f64 / self.t0.elapsed().as_secs_f64().max(1e-9);
        let tok = rate * self.tokens_per_step as f64;
        let eta = human_secs(total.saturating_sub(done) as f64 / rate.max(1e-9));
        if self.tty {
            let width = 30;
            let filled = (width * done / total.max(1)).min(width);
            eprint!(
                "\r[{}{}] {done}/{total}  loss {:.4}  max|x| {inf}  {tok:.0} tok/s  ETA {eta} \x1b[K",
                "#".repeat(filled),
                "-".repeat(width - filled),
                r.loss
            );
            if done == total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        } else if done % 50 == 0 || done == total {
            eprintln!(
                "step {done}/{total}  loss {:.4}  max|x| {inf}  {tok:.0} tok/s  ETA {eta}",
                r.loss
            );
        }
    }

    fn eval(&mut self, e: &EvalReport) {
        if self.quiet {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[K");
        }
        let metric = quality(e.ppl, e.accuracy);
        eprintln!(
            "eval @ {}: loss {:.4}  {metric}  max inf-norm {:.3}  avg kurtosis {:.3}",
            e.step, e.loss, e.outliers.max_inf_norm, e.outliers.avg_kurtosis
        );
    }
}

/// Trains one spec (and quantizes it at every `--quantize` point). Errors before training
/// starts are `Err`; a run that stops early comes back with `error` set and its curves kept.
pub(crate) fn train_one(spec: RunSpec, opts: &RunOpts) -> Result<RunRecord, String> {
    for w in spec.warnings() {
        eprintln!("warning: {w}");
    }
    let settings: Vec<QuantSettings> = opts
        .quant_bits
        .iter()
        .map(|&(w_bits, a_bits)| QuantSettings {
            w_bits,
            a_bits,
            weight_range: opts
                .weight_range
                .unwrap_or(WeightRange::default_for(spec.model)),
            per_channel: opts.per_channel,
            act_range: opts.act_range.clone(),
            calib_batches: opts.calib_batches,
        })
        .collect();
    for s in &settings {
        s.estimator()?;
    }
    let data = RunData::load(&spec, None).map_err(|e| e.to_string())?;
    if !opts.quiet {
        eprintln!(
            "spec {} ({}) on {}",
            spec.to_canonical(),
            spec.fingerprint(),
            match opts.devices.len() {
                0 => opts.backend.name().to_string(),
                n => (0..n)
                    .map(|i| opts.devices[i].name(i, n))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        );
    }
    let devices = opts.connect_devices()?;
    // Lives to the end of the run, quantization included: every part of it talks to the workers.
    let ckfile = (opts.checkpoint.as_ref())
        .map(|p| crate::watchdog::CheckpointFile::new(p, opts.resume.as_deref()));
    let watch = crate::watchdog::Watchdog::start(&devices, ckfile.clone());
    // Building the model on the devices (or restoring it) talks to the workers too.
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &opts.resume {
        Some(path) => {
            let run = Run::resume(
                spec,
                data,
                &devices,
                opts.driver_opts(),
                std::path::Path::new(path),
            )?;
            if !opts.quiet {
                eprintln!("resuming {path} at step {}", run.step());
            }
            Ok(run)
        }
        None => {
            Run::with_devices(spec, data, &devices, opts.driver_opts()).map_err(|e| e.to_string())
        }
    }));
    let mut run = made.unwrap_or_else(|p| {
        Err(format!(
            "device error: a device failed while the run was set up ({})",
            panic_text(&p)
        ))
    })?;
    if let Some(w) = &watch {
        w.step
            .store(run.step(), std::sync::atomic::Ordering::Relaxed);
    }
    let total = run.record().steps;
    let mut bar = Bar {
        tty: std::io::stderr().is_terminal(),
        quiet: opts.quiet,
        last_inf: None,
        t0: Instant::now(),
        tokens_per_step: tokens_per_step(&run.trainer().spec),
        first: None,
    };
    run.run_to_end(|ev| match ev {
        Event::Step { report, .. } => {
            if let Some(w) = &watch {
                w.step
                    .store(report.step + 1, std::sync::atomic::Ordering::Relaxed);
            }
            bar.step(report, total)
        }
        Event::Eval(e) => bar.eval(e),
        _ => {}
    });
    if run.record().error.is_none() {
        for s in &settings {
            let t = run.trainer();
            let q = catch_device(|| quantize_and_evaluate(t, s))
                .map_err(|e| t.name_failure("quantization", e));
            match q {
                Ok(q) => {
                    if !opts.quiet {
                        let worst = q
                            .act_sqnr
                            .iter()
                            .min_by(|a, b| a.sqnr_db.total_cmp(&b.sqnr_db));
                        eprintln!(
                            "W{}A{}: FP {}  quantized {}  worst activation SQNR {}",
                            s.w_bits,
                            s.a_bits,
                            show_metric(&q.fp),
                            show_metric(&q.quantized),
                            worst.map_or("-".into(), |w| format!(
                                "{:.1} dB ({})",
                                w.sqnr_db, w.name
                            ))
                        );
                    }
                    run.record_mut().quant.push(q);
                }
                Err(e) => run.record_mut().error = Some(format!("quantization failed: {e}")),
            }
        }
    }
    let mut rec = run.finish();
    // A lost device: say whether this run's checkpoint is there to go on from, and how.
    if let (Some(err), Some(c)) = (&mut rec.error, &ckfile)
        && err.contains("device error")
    {
        *err = format!("{err}; {}", c.advice());
    }
    Ok(rec)
}

/// Tokens a training step consumes: batch × sequence length (patches + class token for ViT).
fn tokens_per_step(s: &RunSpec) -> usize {
    s.batch * s.seq_tokens()
}

fn show_metric(m: &qtlab_core::ptq::calibrate::QuantMetric) -> String {
    quality(m.ppl, m.accuracy)
}

/// "ppl 12.345" or "acc 93.8 %", the numbers formatted as everywhere else.
fn quality(ppl: Option<f64>, accuracy: Option<f64>) -> String {
    let name = if ppl.is_some() { "ppl" } else { "acc" };
    format_quality(ppl, accuracy).map_or_else(String::new, |v| format!("{name} {v}"))
}

pub(crate) fn write_json<T: serde::Serialize>(
    path: &str,
    value: &T,
    quiet: bool,
) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    // Through a temporary file and a rename, so an interrupted write leaves the last one whole.
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write `{path}`: {e}"))?;
    if !quiet {
        eprintln!("wrote {path}");
    }
    Ok(())
}

pub(crate) fn cmd_train(args: &[String]) -> Result<(), String> {
    let (spec, opts) = parse_args(args)?;
    let rec = train_one(spec, &opts)?;
    if let Some(path) = &opts.out {
        write_json(path, &rec, opts.quiet)?;
    }
    if let Some(e) = &rec.eval {
        println!(
            "{}",
            serde_json::json!({
                "fingerprint": rec.fingerprint,
                "loss": e.loss, "ppl": e.ppl, "accuracy": e.accuracy,
                "max_inf_norm": e.outliers.max_inf_norm, "avg_kurtosis": e.outliers.avg_kurtosis,
                "ms_per_step": rec.ms_per_step,
            })
        );
    }
    match rec.error {
        // A lost device leaves the last checkpoint whole (see `Run::save_checkpoint`); say so,
        // and how to go on, where one was asked for.
        Some(err) => Err(err),
        None => Ok(()),
    }
}
