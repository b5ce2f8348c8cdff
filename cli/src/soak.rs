//! `qtlab soak`: a long run with memory readings, to show that nothing grows.

use std::time::Instant;

use qtlab_core::dataset::RunData;
use qtlab_core::train::Trainer;

use crate::args::{cpu_threads, parse_args};

/// Current resident memory of this process (Linux VmRSS), in MiB.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A long run of the app's default preset (gated BERT) with evaluation and stats on their usual
/// cadence, sampling memory; a leak in the step, the readback or the evaluation shows as growth.
pub(crate) fn cmd_soak(args: &[String]) -> Result<(), String> {
    let mut steps = 10_000usize;
    let mut bound = 64.0f64;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--soak-steps" => {
                steps = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--soak-steps takes a whole number")?
            }
            "--max-growth-mib" => {
                bound = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--max-growth-mib takes a number")?
            }
            _ => rest.push(a.clone()),
        }
    }
    let (mut spec, opts) = if rest.is_empty() {
        (
            qtlab_core::url::AppState::default().spec,
            parse_args(&[])?.1,
        )
    } else {
        parse_args(&rest)?
    };
    spec.steps = steps;
    let data = RunData::load(&spec, None).map_err(|e| e.to_string())?;
    let device = opts.backend.device();
    let mut trainer = Trainer::new(spec.clone(), data, &device);
    trainer.set_threads(cpu_threads(&opts, opts.backend));
    let warm = (steps / 20).max(1);
    let mut base = None;
    let mut peak_growth = 0.0f64;
    let t0 = Instant::now();
    println!("soak: {} steps of {}", steps, spec.to_canonical());
    while !trainer.done() {
        let s = trainer.step;
        trainer.step_sync(s % 5 == 0).map_err(|e| e.to_string())?;
        if spec.eval_every > 0 && trainer.step % spec.eval_every == 0 {
            trainer.evaluate().map_err(|e| e.to_string())?;
        }
        if trainer.step == warm {
            base = rss_mib();
        }
        if trainer.step % (steps / 10).max(1) == 0 || trainer.done() {
            let rss = rss_mib().unwrap_or(f64::NAN);
            let growth = base.map(|b| rss - b).unwrap_or(0.0);
            peak_growth = peak_growth.max(growth);
            println!(
                "  step {:>6}  rss {:7.1} MiB  growth since step {warm}: {:+6.1} MiB  ({:.1} s)",
                trainer.step,
                rss,
                growth,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    println!("soak: peak growth {peak_growth:+.1} MiB (bound {bound} MiB)");
    if peak_growth > bound {
        return Err(format!(
            "resident memory grew {peak_growth:.1} MiB, above the {bound} MiB bound"
        ));
    }
    Ok(())
}
