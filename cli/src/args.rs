//! Command-line arguments: spec keys become a `RunSpec`, the rest `RunOpts`.

use qtlab_core::BackendKind;
use qtlab_core::presets::{self, Preset};
use qtlab_core::ptq::{QuantSettings, WeightRange};
use qtlab_core::spec::{KEYS, RunSpec};

/// Options that are not part of the spec (they do not change results).
pub(crate) struct RunOpts {
    pub(crate) backend: BackendKind,
    pub(crate) out: Option<String>,
    pub(crate) stats_every: usize,
    pub(crate) quiet: bool,
    pub(crate) bench_steps: usize,
    pub(crate) bench_backends: Vec<BackendKind>,
    /// Data-parallel shards on the CPU backend (0 = the default,
    /// [`qtlab_core::driver::DEFAULT_CPU_THREADS`]).
    pub(crate) threads: usize,
    /// Post-training quantization points (`--quantize w8a8,w6a6`).
    pub(crate) quant_bits: Vec<(u32, u32)>,
    /// `None`: the paper's choice for the model (MSE for OPT, min-max otherwise).
    pub(crate) weight_range: Option<WeightRange>,
    /// One weight grid per output channel (`--weight-granularity channel`).
    pub(crate) per_channel: bool,
    pub(crate) act_range: String,
    pub(crate) calib_batches: usize,
    /// `qtlab bench kernels --only fake`: just the rows whose name contains this.
    pub(crate) only: Option<String>,
    /// `--preset ID`: the spec starts from this preset instead of the defaults.
    pub(crate) preset: Option<&'static Preset>,
    /// `qtlab experiment --seeds N`: seeds `seed`, `seed + 1`, … `seed + N − 1`.
    pub(crate) seeds: u64,
    /// `--devices`: data parallel over these (see [`crate::devices`]); empty = one `backend`.
    pub(crate) devices: Vec<crate::devices::DeviceEntry>,
    /// `--token-file`: the credential remote workers demand.
    pub(crate) token_file: Option<String>,
    /// `--checkpoint FILE`: where the run's checkpoint goes.
    pub(crate) checkpoint: Option<String>,
    /// `--checkpoint-every N` (default 100 when `--checkpoint` is given).
    pub(crate) checkpoint_every: usize,
    /// `--resume FILE`: go on from this checkpoint.
    pub(crate) resume: Option<String>,
}

impl RunOpts {
    /// The driver's options for these flags: `train`, `experiment` and `soak` all start their
    /// runs the same way.
    pub(crate) fn driver_opts(&self) -> qtlab_core::driver::RunOpts {
        let native = if self.devices.is_empty() {
            qtlab_core::driver::RunOpts::native(self.backend, self.threads)
        } else {
            // Several devices: one shard on each unless --threads says more, so that
            // `--devices 2` splits the batch exactly as `--threads 2` does on one.
            qtlab_core::driver::RunOpts {
                backend: self.devices[0].backend_name().into(),
                threads: self.threads.max(1),
                ..qtlab_core::driver::RunOpts::native(self.backend, self.threads)
            }
        };
        qtlab_core::driver::RunOpts {
            stats_every: self.stats_every,
            checkpoint: self
                .checkpoint
                .as_ref()
                .map(|p| qtlab_core::driver::Checkpointing {
                    path: p.into(),
                    every: self.checkpoint_every,
                }),
            ..native
        }
    }

    /// The run's devices, connected, with their names (one `backend` device without
    /// `--devices`).
    pub(crate) fn connect_devices(&self) -> Result<Vec<(qtlab_core::Device, String)>, String> {
        if self.devices.is_empty() {
            return Ok(vec![(self.backend.device(), String::new())]);
        }
        let token = self
            .token_file
            .as_deref()
            .map(crate::devices::read_token)
            .transpose()?;
        crate::devices::connect(&self.devices, token.as_deref())
    }
}

pub(crate) fn parse_args(args: &[String]) -> Result<(RunSpec, RunOpts), String> {
    let mut opts = RunOpts {
        backend: BackendKind::Cpu,
        out: None,
        stats_every: qtlab_core::driver::STATS_EVERY,
        quiet: false,
        bench_steps: 30,
        bench_backends: vec![BackendKind::Cpu, BackendKind::Wgpu],
        threads: 0,
        quant_bits: Vec::new(),
        weight_range: None,
        per_channel: false,
        act_range: "running_minmax".into(),
        calib_batches: 16,
        only: None,
        preset: None,
        seeds: 1,
        devices: Vec::new(),
        token_file: None,
        checkpoint: None,
        checkpoint_every: 100,
        resume: None,
    };
    let mut devices_arg = None;
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
                    opts.bench_backends = vec![BackendKind::Cpu, BackendKind::Wgpu];
                } else {
                    opts.backend = value.parse()?;
                    opts.bench_backends = vec![opts.backend];
                }
            }
            "out" => opts.out = Some(value),
            "devices" => devices_arg = Some(value),
            "token-file" => opts.token_file = Some(value),
            "checkpoint" => opts.checkpoint = Some(value),
            "checkpoint-every" => {
                opts.checkpoint_every =
                    value
                        .parse()
                        .ok()
                        .filter(|&n: &usize| n >= 1)
                        .ok_or_else(|| {
                            format!("--checkpoint-every expects a number ≥ 1, got `{value}`")
                        })?
            }
            "resume" => opts.resume = Some(value),
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
                    other => Some(
                        other
                            .parse::<WeightRange>()
                            .map_err(|e| format!("--weight-range: {e} (or auto)"))?,
                    ),
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
    if let Some(d) = devices_arg {
        opts.devices = crate::devices::parse(&d, opts.backend)?;
    }
    spec.validate().map_err(|e| e.to_string())?;
    Ok((spec, opts))
}
