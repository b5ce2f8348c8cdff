//! `qtlab soak`: a long run with memory readings, to show that nothing grows.

use std::time::Instant;

use qtlab_core::dataset::RunData;
use qtlab_core::driver::Run;
use qtlab_core::record::Event;

use crate::args::parse_args;

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
    let mut run = Run::new(
        spec.clone(),
        data,
        &opts.backend.device(),
        opts.driver_opts(),
    )
    .map_err(|e| e.to_string())?;
    let warm = (steps / 20).max(1);
    let mut base = None;
    let mut peak_growth = 0.0f64;
    let t0 = Instant::now();
    println!("soak: {} steps of {}", steps, spec.to_canonical());
    while !run.finished() {
        // The run keeps its record as it goes, as every caller's does; what it holds per step
        // is a few floats, far below the growth bound.
        for ev in run.advance() {
            if let Event::Failed(f) = ev {
                return Err(f.message);
            }
        }
        let s = run.step();
        if s == warm {
            base = rss_mib();
        }
        if s % (steps / 10).max(1) == 0 || run.finished() {
            let rss = rss_mib().unwrap_or(f64::NAN);
            let growth = base.map(|b| rss - b).unwrap_or(0.0);
            peak_growth = peak_growth.max(growth);
            println!(
                "  step {:>6}  rss {:7.1} MiB  growth since step {warm}: {:+6.1} MiB  ({:.1} s)",
                s,
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
