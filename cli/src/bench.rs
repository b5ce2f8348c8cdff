//! `qtlab bench` and `qtlab shaders`: ms per step of the reference config, and the WGSL the kernels compile to.

use std::time::Instant;

use qtlab_core::dataset::RunData;
use qtlab_core::spec::RunSpec;
use qtlab_core::train::Trainer;

use crate::args::parse_args;
use crate::bench_kernels;

/// Peak resident memory of this process (Linux VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The reference config: BERT, 2 layers, d_model 64, 4 heads, FFN 256, seq 32, batch 16.
pub(crate) fn reference_spec() -> RunSpec {
    RunSpec::parse(
        "v=1&model=bert&layers=2&d=64&heads=4&ffn=256&seq=32&batch=16&steps=1000000&warmup=10",
    )
    .expect("reference spec is valid")
}

pub(crate) fn cmd_shaders(args: &[String]) -> Result<(), String> {
    let dir = std::path::Path::new(args.first().ok_or("usage: qtlab shaders DIR")?);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, source) in qtlab_core::kernels::instances() {
        let path = dir.join(&name);
        std::fs::write(&path, source).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

pub(crate) fn cmd_bench_kernels(args: &[String]) -> Result<(), String> {
    let (_, opts) = parse_args(args)?;
    for backend in opts.bench_backends.iter().copied() {
        bench_kernels::run(backend, opts.bench_steps.max(1), opts.only.as_deref())?;
        println!();
    }
    Ok(())
}

/// `qtlab bench --devices LIST`: tokens/s on the first device alone and on all of them, per
/// device, and the scaling efficiency (N-device throughput over N × one device's).
fn bench_devices(spec: &RunSpec, opts: &crate::args::RunOpts) -> Result<(), String> {
    let all = opts.connect_devices()?;
    let n = opts.bench_steps.max(1);
    let tokens_per_step = (spec.batch * spec.seq_tokens()) as f64;
    let threads = opts.threads.max(1);
    let mut one = None;
    for k in [1, all.len()] {
        let devices = &all[..k];
        let data = RunData::load(spec, None).map_err(|e| e.to_string())?;
        let mut trainer = Trainer::with_devices(spec.clone(), data, devices);
        trainer.set_threads(threads);
        for _ in 0..3 {
            trainer.step_sync(false).map_err(|e| e.to_string())?;
        }
        let t = Instant::now();
        for _ in 0..n {
            trainer.step_sync(false).map_err(|e| e.to_string())?;
        }
        let secs = t.elapsed().as_secs_f64();
        let tok_s = tokens_per_step * n as f64 / secs;
        let names: Vec<&str> = devices.iter().map(|(_, n)| n.as_str()).collect();
        let eff = one.map(|o: f64| tok_s / (k as f64 * o));
        println!(
            "devices {k} [{}]  threads/device {threads}  ms/step {:8.2}  tokens/s {tok_s:10.0}  per device {:10.0}{}",
            names.join(", "),
            secs * 1e3 / n as f64,
            tok_s / k as f64,
            eff.map_or(String::new(), |e| format!(
                "  scaling efficiency {:.0} %",
                e * 100.0
            ))
        );
        one.get_or_insert(tok_s);
        if all.len() == 1 {
            break;
        }
    }
    Ok(())
}

pub(crate) fn cmd_bench(args: &[String]) -> Result<(), String> {
    let (parsed, opts) = parse_args(args)?;
    // A preset, `--spec` or any spec flag benches that run; nothing benches the reference config.
    let spec = if opts.preset.is_some() || parsed != RunSpec::default() {
        RunSpec {
            steps: 1_000_000,
            ..parsed
        }
    } else {
        reference_spec()
    };
    if !opts.devices.is_empty() {
        println!("config: {}", spec.to_canonical());
        return bench_devices(&spec, &opts);
    }
    let label = if spec == reference_spec() {
        "reference config"
    } else {
        "config"
    };
    println!("{label}: {}", spec.to_canonical());
    for backend in opts.bench_backends.iter().copied() {
        let data = RunData::load(&spec, None).map_err(|e| e.to_string())?;
        let device = backend.device();
        let mut trainer = Trainer::new(spec.clone(), data, &device);
        let threads = qtlab_core::driver::RunOpts::native(backend, opts.threads).threads;
        trainer.set_threads(threads);
        let t_first = Instant::now();
        trainer.step_sync(false).map_err(|e| e.to_string())?;
        let first_ms = t_first.elapsed().as_secs_f64() * 1e3;
        for _ in 0..3 {
            trainer.step_sync(false).map_err(|e| e.to_string())?;
        }
        let n = opts.bench_steps.max(1);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            trainer.step_sync(false).map_err(|e| e.to_string())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / n as f64;
        let t_stats = Instant::now();
        for _ in 0..n {
            trainer.step_sync(true).map_err(|e| e.to_string())?;
        }
        let with_stats = t_stats.elapsed().as_secs_f64() * 1e3 / n as f64;
        let mut phases = [0.0f64; 5];
        for _ in 0..n {
            let p = trainer.step_timed().map_err(|e| e.to_string())?;
            for (a, b) in phases.iter_mut().zip(p) {
                *a += b / n as f64;
            }
        }
        println!(
            "{:<5} breakdown (synchronised, one thread, ms): batch {:.2}  forward {:.2}  backward {:.2}  optimizer {:.2}  readback {:.2}",
            backend.name(),
            phases[0],
            phases[1],
            phases[2],
            phases[3],
            phases[4]
        );
        println!(
            "{:<5} threads {threads}  ms/step mean {mean:7.2}  median {:7.2}  min {:7.2}  (with per-step inf-norm stats {with_stats:7.2})  first step {first_ms:8.1} ms  peak RSS {:.0} MiB",
            backend.name(),
            times[n / 2],
            times[0],
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
