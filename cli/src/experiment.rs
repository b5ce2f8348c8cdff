//! `qtlab experiment`: a preset over consecutive seeds and variants, mean ± spread tables.

use qtlab_core::ptq::QuantSettings;
use qtlab_core::record::RunRecord;

use crate::args::parse_args;
use crate::train::{train_one, write_json};

/// The paper's Table 2 at demo scale: vanilla, clipped softmax and gated attention trained on
/// the same data and seed, each quantized at every bit width; with `--seeds N`, over N
/// consecutive seeds, as mean ± sample standard deviation, plus each seed's vanilla-to-fix
/// ratios (the issue-15 criteria must hold in every seed, not on average).
pub(crate) fn cmd_experiment(args: &[String]) -> Result<(), String> {
    let mut args = args.to_vec();
    let mut variants: Option<Vec<String>> = None;
    if let Some(i) = args.iter().position(|a| a == "--variants") {
        let v = args.get(i + 1).ok_or("--variants needs a value")?.clone();
        variants = Some(v.split(',').map(str::to_string).collect());
        args.drain(i..i + 2);
    }
    let (base, mut opts) = parse_args(&args)?;
    if opts.resume.is_some() || opts.checkpoint.is_some() {
        return Err(
            "qtlab experiment trains several runs; checkpoint and resume one of them with \
             `qtlab train --spec … --checkpoint F` (its spec is in the experiment's JSON)"
                .into(),
        );
    }
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
        runs.push((seed, Vec::new()));
        for v in &variants {
            let mut spec = base.clone();
            spec.seed = seed;
            spec.set("attn", v).map_err(|e| e.to_string())?;
            spec.validate().map_err(|e| e.to_string())?;
            let rec = train_one(spec, &opts)?;
            runs.last_mut()
                .expect("pushed above")
                .1
                .push((v.clone(), rec));
            // Written after every run, so a run that ends the process (a worker gone silent,
            // see watchdog.rs) leaves the finished ones on disk.
            if let Some(path) = &opts.out {
                write_json(path, &records_json(&runs), true)?;
            }
        }
    }
    let is_vit = base.model == qtlab_core::spec::ModelKind::Vit;
    println!(
        "{}",
        experiment_table(&variants, &runs, &opts.quant_bits, is_vit)
    );
    println!("\nbase spec: `{}`", base.to_canonical());
    if let Some(path) = &opts.out {
        write_json(path, &records_json(&runs), opts.quiet)?;
    }
    Ok(())
}

/// Every record so far, with its seed and variant.
fn records_json(runs: &[(u64, Vec<(String, RunRecord)>)]) -> Vec<serde_json::Value> {
    runs.iter()
        .flat_map(|(seed, recs)| {
            recs.iter()
                .map(move |(v, r)| serde_json::json!({"seed": seed, "variant": v, "record": r}))
        })
        .collect()
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
