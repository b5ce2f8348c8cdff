//! `qtlab`: run the same run spec as the browser app, headless.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

mod bench_kernels;

use qtlab_core::Backend;
use qtlab_core::dataset::RunData;
use qtlab_core::presets::{self, Preset};
use qtlab_core::ptq::{QuantSettings, WeightRange, quantize_and_evaluate};
use qtlab_core::record::{Progress, RunRecord, run_native};
use qtlab_core::spec::{KEYS, RunSpec};
use qtlab_core::train::{EvalReport, StepReport, Trainer};

const USAGE: &str = "\
qtlab — Quantizable Transformers Lab (headless)

USAGE:
  qtlab train [--spec '<canonical spec>'] [--<key> <value>]... [--backend cpu|wgpu]
              [--out FILE] [--stats-every N] [--threads N] [--quiet]
              [--quantize w8a8[,w6a6,...]] [--weight-range auto|minmax|mse]
              [--weight-granularity tensor|channel]
              [--act-range running_minmax|current_minmax|percentile:99.999] [--calib-batches N]
  qtlab bench [--backend cpu|wgpu|all] [--bench-steps N] [--threads N]
  qtlab bench kernels [--backend cpu|wgpu|all] [--bench-steps N] [--only NAME]   custom WGSL
              kernels vs their Burn-tensor references on the same device, and the cost of
              per-step outlier stats (--only: rows whose name contains NAME; `step` for the last)
  qtlab experiment [--preset ID] [--spec ...] [--<key> <value>]... [--seeds N]
              [--variants vanilla,clipped,gated] [--quantize w8a8,w8a6,...] [--out FILE]
              Table 2 at demo scale over N seeds (mean ± sd, per-seed ratios; markdown + JSON)
  qtlab presets   the app's presets (id, link fragment, what each shows); the first is the default
  qtlab spec  [--preset ID] [--spec '<canonical spec>'] [--<key> <value>]...   print the canonical spec
  qtlab soak  [--soak-steps N] [--max-growth-mib M] [--spec ...]   long run, memory sampled;
              fails if resident memory grows more than M MiB after warm-up (default 10000, 64)
  qtlab shaders DIR   write every WGSL kernel variant, templates filled, for compile checks
  qtlab help

Every spec key is also a flag: --model bert|opt|vit, --attn vanilla|clipped|gated|softmax1|sink,
--steps N, --seed N, --data synthetic|tinyshakespeare|bb|bb:<source>|<path>, --gamma, --zeta, --alpha, --gate uph|cph|linear|mlp|allheads,
--pi, --layers, --d, --heads, --ffn, --seq, --batch, --lr, --warmup, --wd, ...
Flags after --spec or --preset override their values.

EXAMPLES:
  qtlab train --model bert --attn clipped --alpha 0.5 --steps 300 --out run.json
  qtlab train --spec 'v=1&model=opt&attn=gated&pi=0.25&steps=200' --backend cpu
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("train") => cmd_train(&args[1..]),
        Some("bench") if args.get(1).map(String::as_str) == Some("kernels") => {
            cmd_bench_kernels(&args[2..])
        }
        Some("bench") => cmd_bench(&args[1..]),
        Some("spec") => cmd_spec(&args[1..]),
        Some("experiment") => cmd_experiment(&args[1..]),
        Some("presets") => cmd_presets(),
        Some("soak") => cmd_soak(&args[1..]),
        Some("shaders") => cmd_shaders(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Options that are not part of the spec (they do not change results).
struct RunOpts {
    backend: Backend,
    out: Option<String>,
    stats_every: usize,
    quiet: bool,
    bench_steps: usize,
    bench_backends: Vec<Backend>,
    /// Data-parallel shards on the CPU backend (0 = the default, 2).
    threads: usize,
    /// Post-training quantization points (`--quantize w8a8,w6a6`).
    quant_bits: Vec<(u32, u32)>,
    /// `None`: the paper's choice for the model (MSE for OPT, min-max otherwise).
    weight_range: Option<WeightRange>,
    /// One weight grid per output channel (`--weight-granularity channel`).
    per_channel: bool,
    act_range: String,
    calib_batches: usize,
    /// `qtlab bench kernels --only fake`: just the rows whose name contains this.
    only: Option<String>,
    /// `--preset ID`: the spec starts from this preset instead of the defaults.
    preset: Option<&'static Preset>,
    /// `qtlab experiment --seeds N`: seeds `seed`, `seed + 1`, … `seed + N − 1`.
    seeds: u64,
}

fn parse_args(args: &[String]) -> Result<(RunSpec, RunOpts), String> {
    let mut opts = RunOpts {
        backend: Backend::Cpu,
        out: None,
        stats_every: 10,
        quiet: false,
        bench_steps: 30,
        bench_backends: vec![Backend::Cpu, Backend::Wgpu],
        threads: 0,
        quant_bits: Vec::new(),
        weight_range: None,
        per_channel: false,
        act_range: "running_minmax".into(),
        calib_batches: 16,
        only: None,
        preset: None,
        seeds: 1,
    };
    let mut spec = RunSpec::default();
    let mut sets: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let Some(key) = flag.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument `{flag}` (flags look like --key value)"
            ));
        };
        if key == "quiet" {
            opts.quiet = true;
            i += 1;
            continue;
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("flag `--{key}` needs a value"))?
            .clone();
        match key {
            "spec" => spec = RunSpec::parse(&value).map_err(|e| e.to_string())?,
            "preset" => {
                let p = presets::find(&value).ok_or_else(|| {
                    let ids: Vec<&str> = presets::PRESETS.iter().map(|p| p.id).collect();
                    format!("unknown preset `{value}`; presets: {}", ids.join(", "))
                })?;
                spec = p.spec().map_err(|e| format!("preset {}: {e}", p.id))?;
                if opts.quant_bits.is_empty()
                    && let Some(q) = p.quant_points()
                {
                    opts.quant_bits = q
                        .split(',')
                        .map(QuantSettings::parse_bits)
                        .collect::<Result<_, _>>()?;
                }
                opts.preset = Some(p);
            }
            "seeds" => {
                opts.seeds = value
                    .parse()
                    .ok()
                    .filter(|&n: &u64| (1..=100).contains(&n))
                    .ok_or_else(|| format!("--seeds expects 1..=100, got `{value}`"))?
            }
            "backend" => {
                if value == "all" {
                    opts.bench_backends = vec![Backend::Cpu, Backend::Wgpu];
                } else {
                    opts.backend = value.parse()?;
                    opts.bench_backends = vec![opts.backend];
                }
            }
            "out" => opts.out = Some(value),
            "stats-every" => {
                opts.stats_every = value
                    .parse()
                    .map_err(|_| format!("--stats-every expects a number, got `{value}`"))?
            }
            "threads" => {
                opts.threads = value
                    .parse()
                    .map_err(|_| format!("--threads expects a number, got `{value}`"))?
            }
            "quantize" => {
                opts.quant_bits = value
                    .split(',')
                    .map(QuantSettings::parse_bits)
                    .collect::<Result<_, _>>()?
            }
            "weight-range" => {
                opts.weight_range = match value.as_str() {
                    "auto" => None,
                    "minmax" => Some(WeightRange::MinMax),
                    "mse" => Some(WeightRange::Mse),
                    other => {
                        return Err(format!(
                            "--weight-range expects auto|minmax|mse, got `{other}`"
                        ));
                    }
                }
            }
            "weight-granularity" => {
                opts.per_channel = match value.as_str() {
                    "tensor" => false,
                    "channel" => true,
                    other => {
                        return Err(format!(
                            "--weight-granularity expects tensor|channel, got `{other}`"
                        ));
                    }
                }
            }
            "act-range" => opts.act_range = value,
            "calib-batches" => {
                opts.calib_batches = value
                    .parse()
                    .ok()
                    .filter(|&n: &usize| (1..=10_000).contains(&n))
                    .ok_or_else(|| format!("--calib-batches expects 1..=10000, got `{value}`"))?
            }
            "only" => opts.only = Some(value),
            "bench-steps" => {
                opts.bench_steps = value
                    .parse()
                    .map_err(|_| format!("--bench-steps expects a number, got `{value}`"))?
            }
            // `--data <path>` is the CLI's shorthand for `data=file:<path>`; `synthetic` and
            // `tinyshakespeare` name the built-in corpora.
            "data"
                if !["synthetic", "tinyshakespeare", "bb"].contains(&value.as_str())
                    && !value.starts_with("file:")
                    && !value.starts_with("bb:") =>
            {
                sets.push(("data".into(), format!("file:{value}")))
            }
            k if KEYS.contains(&k) => sets.push((k.to_string(), value)),
            k => {
                return Err(format!(
                    "unknown flag `--{k}`; spec keys are: {}",
                    KEYS.join(", ")
                ));
            }
        }
        i += 2;
    }
    for (k, v) in sets {
        spec.set(&k, &v).map_err(|e| e.to_string())?;
    }
    spec.validate().map_err(|e| e.to_string())?;
    Ok((spec, opts))
}

/// Shards per CPU step: `--threads`, else 2. A fixed default rather than the core count, so
/// that a spec reproduces bit for bit on any machine (shard count changes float rounding).
/// GPU backends use one.
fn cpu_threads(opts: &RunOpts, backend: Backend) -> usize {
    match backend {
        Backend::Wgpu => 1,
        Backend::Cpu if opts.threads > 0 => opts.threads,
        Backend::Cpu => DEFAULT_CPU_THREADS,
    }
}

const DEFAULT_CPU_THREADS: usize = 2;

fn cmd_spec(args: &[String]) -> Result<(), String> {
    let (spec, _) = parse_args(args)?;
    println!("{}", spec.to_canonical());
    for w in spec.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(())
}

struct Bar {
    tty: bool,
    quiet: bool,
    last_inf: Option<f64>,
    t0: Instant,
}

impl Progress for Bar {
    fn step(&mut self, r: &StepReport, total: usize) {
        if let Some(m) = r.inf_norms.iter().cloned().reduce(f64::max) {
            self.last_inf = Some(m);
        }
        if self.quiet {
            return;
        }
        let done = r.step + 1;
        let inf = self.last_inf.map_or("-".to_string(), |v| format!("{v:.2}"));
        let rate = done as f64 / self.t0.elapsed().as_secs_f64().max(1e-9);
        if self.tty {
            let width = 30;
            let filled = width * done / total.max(1);
            eprint!(
                "\r[{}{}] {done}/{total}  loss {:.4}  max|x| {inf}  {rate:.1} step/s ",
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
                "step {done}/{total}  loss {:.4}  max|x| {inf}  {rate:.1} step/s",
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
        let metric = match (e.ppl, e.accuracy) {
            (Some(p), _) => format!("ppl {p:.3}"),
            (_, Some(a)) => format!("acc {:.2}%", 100.0 * a),
            _ => String::new(),
        };
        eprintln!(
            "eval @ {}: loss {:.4}  {metric}  max inf-norm {:.3}  avg kurtosis {:.3}",
            e.step, e.loss, e.outliers.max_inf_norm, e.outliers.avg_kurtosis
        );
    }
}

/// Trains one spec (and quantizes it at every `--quantize` point). Errors before training
/// starts are `Err`; a run that stops early comes back with `error` set and its curves kept.
fn train_one(spec: RunSpec, opts: &RunOpts) -> Result<RunRecord, String> {
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
            opts.backend.name()
        );
    }
    let device = opts.backend.device();
    let mut trainer = Trainer::new(spec, data, &device);
    trainer.set_threads(cpu_threads(opts, opts.backend));
    let mut bar = Bar {
        tty: std::io::stderr().is_terminal(),
        quiet: opts.quiet,
        last_inf: None,
        t0: Instant::now(),
    };
    let mut rec = run_native(
        &mut trainer,
        opts.backend.name(),
        opts.stats_every,
        &mut bar,
    );
    if rec.error.is_none() {
        for s in &settings {
            match quantize_and_evaluate(&trainer, s) {
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
                    rec.quant.push(q);
                }
                Err(e) => rec.error = Some(format!("quantization failed: {e}")),
            }
        }
    }
    Ok(rec)
}

fn write_json<T: serde::Serialize>(path: &str, value: &T, quiet: bool) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("cannot write `{path}`: {e}"))?;
    if !quiet {
        eprintln!("wrote {path}");
    }
    Ok(())
}

fn cmd_train(args: &[String]) -> Result<(), String> {
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
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The paper's Table 2 at demo scale: vanilla, clipped softmax and gated attention trained on
/// the same data and seed, each quantized at every bit width; with `--seeds N`, over N
/// consecutive seeds, as mean ± sample standard deviation, plus each seed's vanilla-to-fix
/// ratios (the issue-15 criteria must hold in every seed, not on average).
fn cmd_experiment(args: &[String]) -> Result<(), String> {
    let mut args = args.to_vec();
    let mut variants: Option<Vec<String>> = None;
    if let Some(i) = args.iter().position(|a| a == "--variants") {
        let v = args.get(i + 1).ok_or("--variants needs a value")?.clone();
        variants = Some(v.split(',').map(str::to_string).collect());
        args.drain(i..i + 2);
    }
    let (base, mut opts) = parse_args(&args)?;
    let variants = variants.unwrap_or_else(|| match opts.preset {
        Some(p) => p.variants(),
        None => vec!["vanilla".into(), "clipped".into(), "gated".into()],
    });
    if opts.quant_bits.is_empty() {
        opts.quant_bits = ["w8a8", "w8a6", "w8a4", "w6a6", "w4a8"]
            .iter()
            .map(|b| QuantSettings::parse_bits(b))
            .collect::<Result<_, _>>()?;
    }
    // Every seed's records: runs[seed][variant].
    let mut runs: Vec<(u64, Vec<(String, RunRecord)>)> = Vec::new();
    for k in 0..opts.seeds {
        let seed = base.seed + k;
        let mut records = Vec::new();
        for v in &variants {
            let mut spec = base.clone();
            spec.seed = seed;
            spec.set("attn", v).map_err(|e| e.to_string())?;
            spec.validate().map_err(|e| e.to_string())?;
            records.push((v.clone(), train_one(spec, &opts)?));
        }
        runs.push((seed, records));
    }
    let is_vit = base.model == qtlab_core::spec::ModelKind::Vit;
    println!(
        "{}",
        experiment_table(&variants, &runs, &opts.quant_bits, is_vit)
    );
    println!("\nbase spec: `{}`", base.to_canonical());
    if let Some(path) = &opts.out {
        let all: Vec<_> = runs
            .iter()
            .flat_map(|(seed, recs)| {
                recs.iter()
                    .map(move |(v, r)| serde_json::json!({"seed": seed, "variant": v, "record": r}))
            })
            .collect();
        write_json(path, &all, opts.quiet)?;
    }
    Ok(())
}

/// FP metric of a record: ppl for text, accuracy in % for images.
fn fp_metric(rec: &RunRecord, is_vit: bool) -> Option<f64> {
    let q = rec.quant.first()?;
    if is_vit {
        q.fp.accuracy.map(|a| 100.0 * a)
    } else {
        q.fp.ppl
    }
}

fn quant_metric(rec: &RunRecord, i: usize, is_vit: bool) -> Option<f64> {
    let q = rec.quant.get(i)?;
    if is_vit {
        q.quantized.accuracy.map(|a| 100.0 * a)
    } else {
        q.quantized.ppl
    }
}

/// `mean ± sd` of the finite values (sd over seeds, n − 1), `-` when there are none.
fn mean_sd(xs: &[f64]) -> String {
    let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if xs.is_empty() {
        return "-".into();
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() == 1 {
        return format!("{mean:.3}");
    }
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    format!("{mean:.3} ± {sd:.3}")
}

fn ratio(a: f64, b: f64) -> String {
    if !(a.is_finite() && b.is_finite()) {
        "-".into()
    } else if b <= 0.0 {
        if a > 0.0 { "∞".into() } else { "-".into() }
    } else {
        format!("{:.2}", a / b)
    }
}

/// The markdown tables of an experiment: mean ± sd per variant, then per seed the ratios of
/// vanilla to each fix (max inf-norm, avg kurtosis, and the quantization loss at each point:
/// the rise in perplexity, or the drop in accuracy).
fn experiment_table(
    variants: &[String],
    runs: &[(u64, Vec<(String, RunRecord)>)],
    points: &[(u32, u32)],
    is_vit: bool,
) -> String {
    let metric_name = if is_vit { "acc %" } else { "ppl" };
    let seeds = runs.len();
    let mut t = format!(
        "{} seed{}: mean ± sd over seeds\n\n| Method | FP {metric_name} | Max inf norm | Avg kurtosis |",
        seeds,
        if seeds == 1 { "" } else { "s" }
    );
    for (w, a) in points {
        t += &format!(" W{w}A{a} |");
    }
    t += "\n|---|---|---|---|";
    t += &"---|".repeat(points.len());
    let get = |v: &str| -> Vec<&RunRecord> {
        runs.iter()
            .filter_map(|(_, recs)| recs.iter().find(|(n, _)| n == v).map(|(_, r)| r))
            .collect()
    };
    for v in variants {
        let recs = get(v);
        let errors: Vec<String> = recs.iter().filter_map(|r| r.error.clone()).collect();
        let col = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
            mean_sd(&recs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
        };
        t += &format!(
            "\n| {v} | {} | {} | {} |",
            col(&|r| fp_metric(r, is_vit)),
            col(&|r| r.eval.as_ref().map(|e| e.outliers.max_inf_norm)),
            col(&|r| r.eval.as_ref().map(|e| e.outliers.avg_kurtosis)),
        );
        for i in 0..points.len() {
            t += &format!(" {} |", col(&|r| quant_metric(r, i, is_vit)));
        }
        if !errors.is_empty() {
            t += &format!(" {} failed: {}", errors.len(), errors[0]);
        }
    }
    t += &mechanism_table(variants, runs);
    if !variants.iter().any(|v| v == "vanilla") {
        return t;
    }
    // Quantization loss: how much the metric gets worse.
    let loss = |r: &RunRecord, i: usize| -> f64 {
        match (fp_metric(r, is_vit), quant_metric(r, i, is_vit)) {
            (Some(fp), Some(q)) if is_vit => fp - q,
            (Some(fp), Some(q)) => q - fp,
            _ => f64::NAN,
        }
    };
    t += "\n\nPer seed, vanilla ÷ fix (quantization: vanilla's loss ÷ the fix's loss)\n\n| seed | fix | inf-norm | kurtosis |";
    for (w, a) in points {
        t += &format!(" W{w}A{a} |");
    }
    t += "\n|---|---|---|---|";
    t += &"---|".repeat(points.len());
    for (seed, recs) in runs {
        let Some((_, van)) = recs.iter().find(|(n, _)| n == "vanilla") else {
            continue;
        };
        for (v, fix) in recs.iter().filter(|(n, _)| n != "vanilla") {
            let (Some(ve), Some(fe)) = (&van.eval, &fix.eval) else {
                continue;
            };
            t += &format!(
                "\n| {seed} | {v} | {} | {} |",
                ratio(ve.outliers.max_inf_norm, fe.outliers.max_inf_norm),
                ratio(ve.outliers.avg_kurtosis, fe.outliers.avg_kurtosis)
            );
            for i in 0..points.len() {
                t += &format!(" {} |", ratio(loss(van, i), loss(fix, i)));
            }
        }
    }
    t
}

/// The mechanism behind the magnitudes, per variant over seeds: where the headline maximum
/// sits, how far out it is, how much the first token's residual stands out, and where the
/// heads put their attention when they have nothing to do.
fn mechanism_table(variants: &[String], runs: &[(u64, Vec<(String, RunRecord)>)]) -> String {
    let mut t = String::from(
        "\n\nMechanism (evaluation batch 0 for the position; all evaluation batches for masses)\n\n\
         | Method | max at position 0 | max/σ | first-token norm ÷ median | first-token mass, \
         queries with nothing to do | first-token mass, copy queries | first-token value ÷ others |\n\
         |---|---|---|---|---|---|---|",
    );
    let mean_heads = |v: &Option<Vec<f64>>| {
        v.as_ref()
            .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64)
    };
    for v in variants {
        let recs: Vec<&RunRecord> = runs
            .iter()
            .filter_map(|(_, recs)| recs.iter().find(|(n, _)| n == v).map(|(_, r)| r))
            .collect();
        let mechs: Vec<&qtlab_core::inspect::Mechanism> =
            recs.iter().filter_map(|r| r.mechanism.as_ref()).collect();
        // The headline tap with the largest maximum, per seed.
        let top: Vec<&qtlab_core::inspect::TapMechanism> = mechs
            .iter()
            .filter_map(|m| m.taps.iter().max_by(|a, b| a.max_abs.total_cmp(&b.max_abs)))
            .collect();
        let at_first = top.iter().filter(|m| m.position == 0).count();
        let over_sd: Vec<f64> = top.iter().map(|m| m.max_over_sd).collect();
        let first_ratio: Vec<f64> = mechs
            .iter()
            .map(|m| {
                m.taps
                    .iter()
                    .map(|t| t.first_token_ratio)
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        // Highest over layers of the head-mean mass: the layer whose heads sink most.
        let mass = |f: &dyn Fn(&qtlab_core::metrics::HeadNoop) -> Option<f64>| -> Vec<f64> {
            recs.iter()
                .filter_map(|r| r.eval.as_ref())
                .filter_map(|e| e.outliers.heads.iter().filter_map(f).reduce(f64::max))
                .collect()
        };
        let other = mass(&|h| {
            mean_heads(&h.first_mass_other).or(Some(
                h.first_mass.iter().sum::<f64>() / h.first_mass.len().max(1) as f64,
            ))
        });
        let copy = mass(&|h| mean_heads(&h.first_mass_copy));
        let value: Vec<f64> = mechs
            .iter()
            .filter_map(|m| {
                m.first_value_ratio
                    .iter()
                    .flatten()
                    .copied()
                    .reduce(f64::min)
            })
            .collect();
        t += &format!(
            "\n| {v} | {at_first}/{} | {} | {} | {} | {} | {} |",
            top.len(),
            mean_sd(&over_sd),
            mean_sd(&first_ratio),
            mean_sd(&other),
            mean_sd(&copy),
            mean_sd(&value)
        );
    }
    t
}

fn cmd_presets() -> Result<(), String> {
    for (i, p) in presets::PRESETS.iter().enumerate() {
        let default = if i == 0 { "  (the app's default)" } else { "" };
        println!(
            "{}: {}{default}\n  {}\n  shows: {}\n",
            p.id, p.name, p.fragment, p.shows
        );
    }
    Ok(())
}

fn show_metric(m: &qtlab_core::ptq::calibrate::QuantMetric) -> String {
    match (m.ppl, m.accuracy) {
        (Some(p), _) => format!("ppl {p:.3}"),
        (_, Some(a)) => format!("acc {:.2}%", 100.0 * a),
        _ => String::new(),
    }
}

/// Current resident memory of this process (Linux VmRSS), in MiB.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A long run of the app's default preset (gated BERT) with evaluation and stats on their usual
/// cadence, sampling memory; a leak in the step, the readback or the evaluation shows as growth.
fn cmd_soak(args: &[String]) -> Result<(), String> {
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

/// Peak resident memory of this process (Linux VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The reference config: BERT, 2 layers, d_model 64, 4 heads, FFN 256, seq 32, batch 16.
pub fn reference_spec() -> RunSpec {
    RunSpec::parse(
        "v=1&model=bert&layers=2&d=64&heads=4&ffn=256&seq=32&batch=16&steps=1000000&warmup=10",
    )
    .expect("reference spec is valid")
}

fn cmd_shaders(args: &[String]) -> Result<(), String> {
    let dir = std::path::Path::new(args.first().ok_or("usage: qtlab shaders DIR")?);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, source) in qtlab_core::kernels::instances() {
        let path = dir.join(&name);
        std::fs::write(&path, source).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn cmd_bench_kernels(args: &[String]) -> Result<(), String> {
    let (_, opts) = parse_args(args)?;
    for backend in opts.bench_backends.iter().copied() {
        bench_kernels::run(backend, opts.bench_steps.max(1), opts.only.as_deref())?;
        println!();
    }
    Ok(())
}

fn cmd_bench(args: &[String]) -> Result<(), String> {
    let (_, opts) = parse_args(args)?;
    let spec = reference_spec();
    println!("reference config: {}", spec.to_canonical());
    for backend in opts.bench_backends.iter().copied() {
        let data = RunData::load(&spec, None).map_err(|e| e.to_string())?;
        let device = backend.device();
        let mut trainer = Trainer::new(spec.clone(), data, &device);
        let threads = cpu_threads(&opts, backend);
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
