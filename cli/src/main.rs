//! `qtlab`: run the same run spec as the browser app, headless.

use std::process::ExitCode;

mod args;
mod bench;
mod bench_kernels;
mod devices;
mod experiment;
mod soak;
mod train;
mod watchdog;
mod worker;

use args::parse_args;
use bench::{cmd_bench, cmd_bench_kernels, cmd_shaders};
use experiment::cmd_experiment;
use qtlab_core::presets;
use qtlab_core::ptq::weights::WeightRange;
use qtlab_core::spec;
use soak::cmd_soak;
use train::cmd_train;

const USAGE: &str = "\
qtlab — Quantizable Transformers Lab (headless)

USAGE:
  qtlab train [--spec '<canonical spec>'] [--<key> <value>]... [--backend cpu|wgpu]
              [--out FILE] [--stats-every N] [--threads N] [--quiet]
              [--quantize w8a8[,w6a6,...]] [--weight-range auto|{weight_ranges}]
              [--weight-granularity tensor|channel]
              [--act-range running_minmax|current_minmax|percentile:99.999] [--calib-batches N]
              [--devices N|cpu,wgpu[:I|:integrated:I|:virtual:I|:cpu],ws://HOST:PORT,...]
              [--token-file F]
              [--checkpoint FILE] [--checkpoint-every N] [--resume FILE]
              --devices: data parallel, `batch` stays the global batch (docs/scale-out.md)
  qtlab worker --listen HOST:PORT [--backend cpu|wgpu] [--devices N|LIST] [--token-file F]
              host this machine's devices for a trainer's --devices ws://HOST:PORT (which
              takes them all); prints `listening on ws://ADDR`; a non-loopback address needs
              --token-file
  qtlab bench [--backend cpu|wgpu|all] [--bench-steps N] [--threads N]
  qtlab bench --devices LIST [--preset ID|--spec ...] [--token-file F] [--bench-steps N]
              tokens/s on one device and on all, per device, and the scaling efficiency
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

Every spec key is also a flag (flags after --spec or --preset override their values):
{keys}

EXAMPLES:
  qtlab train --model bert --attn clipped --alpha 0.5 --steps 300 --out run.json
  qtlab train --spec 'v=1&model=opt&attn=gated&pi=0.25&steps=200' --backend cpu
";

/// The help text. The key list and the choices come from the spec's one key table and the enums'
/// `NAMES`, so the help cannot fall behind a new key or spelling.
fn usage() -> String {
    let keys: Vec<String> = spec::KEY_TABLE
        .iter()
        .map(|k| {
            format!(
                "  --{:<14} {} (default {})",
                k.name,
                k.allowed_text(),
                k.default
            )
        })
        .collect();
    USAGE
        .replace("{weight_ranges}", &WeightRange::NAMES.join("|"))
        .replace("{keys}", &keys.join("\n"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("train") => cmd_train(&args[1..]),
        Some("worker") => worker::cmd_worker(&args[1..]),
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
            print!("{}", usage());
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
fn cmd_spec(args: &[String]) -> Result<(), String> {
    let (spec, _) = parse_args(args)?;
    println!("{}", spec.to_canonical());
    for w in spec.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(())
}

fn cmd_presets() -> Result<(), String> {
    for (i, p) in presets::PRESETS.iter().enumerate() {
        let default = if i == 0 { "  (the app's default)" } else { "" };
        println!(
            "{}: {}{default}\n  {}\n  shows: {}\n",
            p.id, p.name, p.fragment, p.shows
        );
    }
    println!("GPU work, CLI only (days on real GPUs; see docs/scale-out.md):\n");
    for p in presets::PAPER_PRESETS {
        println!(
            "{}: {}  [GPU]\n  {}\n  shows: {}\n",
            p.id, p.name, p.fragment, p.shows
        );
    }
    Ok(())
}
