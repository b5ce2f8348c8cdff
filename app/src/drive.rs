//! The page's side of training: it builds one [`Run`] per lane and advances them round-robin
//! through the core driver, which decides cadences, evaluation, inspection, divergence and
//! timing. What stays here is what only a page has: pausing and single steps, a reset that
//! abandons a loop mid-await, redraw throttling, yielding to the browser, the warming clock,
//! the tinyshakespeare download, GPU loss, and quantization on a CPU copy.

use leptos::prelude::*;
use leptos::task::spawn_local;
use qtlab_core::driver::{self, Run, RunOpts};
use qtlab_core::record::Event;

use crate::lanes::{LaneView, with_lanes};
use crate::runner::{self, GpuProblem, with_engine};
use crate::state::{Ctx, Phase, bump, reset, save_finished};

/// Redraw the charts at most this often while training: drawing every step would spend the
/// page's time on SVG instead of the run.
const REDRAW_MS: f64 = 150.0;

/// Builds a run for every lane if there are none yet. Returns false (with a note) when the
/// data cannot be loaded or a spec is refused.
fn ensure_lanes(ctx: &Ctx) -> bool {
    if with_engine(|e| !e.lanes.is_empty()) {
        return true;
    }
    let app = ctx.app.get_untracked();
    let (specs, notes) = app.lanes();
    let (device, on_gpu) = runner::current_device();
    let opts = RunOpts {
        backend: (if on_gpu { "wgpu" } else { "cpu" }).into(),
        // The browser has no threads to shard a CPU step over.
        threads: 1,
        stats_every: driver::STATS_EVERY,
        clock: runner::now_ms,
        checkpoint: None,
    };
    let mut runs = Vec::new();
    let mut views = Vec::new();
    for spec in specs {
        let made = runner::load_data(&spec).and_then(|data| {
            Run::new(spec.clone(), data, &device, opts.clone()).map_err(|e| e.to_string())
        });
        match made {
            Ok(run) => {
                views.push(LaneView::new(&spec, run.record().clone()));
                runs.push(Some(run));
            }
            Err(e) => {
                ctx.notes.set(vec![e]);
                return false;
            }
        }
    }
    ctx.notes.set(notes);
    with_engine(|e| {
        e.lanes = runs;
        e.on_gpu = on_gpu;
    });
    with_lanes(|l| *l = views);
    bump(ctx);
    true
}

/// Downloads tinyshakespeare if the spec needs it. False when the loop must not go on: the
/// download failed, or a reset came meanwhile (the lanes it would build are for a spec no
/// longer shown).
async fn ensure_download(ctx: &Ctx) -> bool {
    if !runner::needs_download(&ctx.app.get_untracked().spec) {
        return true;
    }
    ctx.phase.set(Phase::Warming(
        "downloading tinyshakespeare (1.1 MB)…".into(),
    ));
    // While the download runs no second loop may start (see `start`).
    let generation = with_engine(|e| {
        e.downloading = true;
        e.generation
    });
    let fetched = runner::fetch_builtin().await;
    let reset_meanwhile = with_engine(|e| {
        e.downloading = false;
        e.generation != generation
    });
    if let Err(e) = fetched {
        ctx.notes.set(vec![e]);
    }
    if reset_meanwhile || with_engine(|e| e.shakespeare.is_none()) {
        ctx.phase.set(Phase::Idle);
        ctx.running.set(false);
        return false;
    }
    true
}

/// The first GPU step compiles every kernel, which can take many seconds on a slow adapter;
/// a ticking clock shows the page is alive meanwhile.
fn warming_clock(ctx: Ctx) {
    ctx.phase.set(Phase::Warming(
        "compiling shaders and running the first step…".into(),
    ));
    let t_start = runner::now_ms();
    spawn_local(async move {
        loop {
            runner::sleep_ms(500).await;
            if !matches!(ctx.phase.get_untracked(), Phase::Warming(_)) {
                break;
            }
            let secs = (runner::now_ms() - t_start) / 1000.0;
            ctx.phase.set(Phase::Warming(format!(
                "compiling shaders and running the first step… {secs:.0} s"
            )));
        }
    });
}

/// Advances lane `i` once. `Some(progressed)` to go on; `None` when the loop must end
/// because a reset came during the await or the GPU was lost.
async fn advance_lane(ctx: &Ctx, i: usize, generation: u64, on_gpu: bool) -> Option<bool> {
    let Some(mut run) = with_engine(|e| e.lanes.get_mut(i).and_then(Option::take)) else {
        return Some(false);
    };
    if run.finished() {
        with_engine(|e| {
            if e.generation == generation {
                e.lanes[i] = Some(run)
            }
        });
        return Some(false);
    }
    if runner::poison_requested(run.step()) {
        run.map_model(qtlab_core::train::poison_weights);
    }
    let events = run.advance_async().await;
    // On the GPU a device error means the device is gone (a failed buffer map after a loss,
    // or an uncaptured error): stop and offer the CPU instead of failing the lane.
    let device_failure = events.iter().find_map(|e| match e {
        Event::Failed(f) if f.device => Some(f.message.clone()),
        _ => None,
    });
    let gpu_failure = if on_gpu {
        device_failure.or_else(runner::gpu_lost)
    } else {
        None
    };
    if with_engine(|e| e.generation) != generation {
        return None;
    }
    with_lanes(|l| {
        if let Some(v) = l.get_mut(i) {
            for ev in &events {
                if gpu_failure.is_some() && matches!(ev, Event::Failed(_)) {
                    continue;
                }
                v.rec.apply(ev);
            }
        }
    });
    if let Some(msg) = gpu_failure {
        device_lost(ctx, msg);
        return None;
    }
    with_engine(|e| e.lanes[i] = Some(run));
    Some(true)
}

/// Trains every lane round-robin until paused, done, reset, or (with `single`) one step each.
async fn run_loop(ctx: Ctx, single: bool) {
    if !ensure_download(&ctx).await {
        return;
    }
    if !ensure_lanes(&ctx) {
        ctx.running.set(false);
        return;
    }
    let generation = with_engine(|e| e.generation);
    let n = with_engine(|e| e.lanes.len());
    let on_gpu = with_engine(|e| e.on_gpu);
    let mut last_draw = 0.0;
    if with_lanes(|l| l.iter().all(|v| v.step == 0)) {
        warming_clock(ctx);
        runner::sleep_ms(0).await;
    } else {
        ctx.phase.set(Phase::Running);
    }
    loop {
        if with_engine(|e| e.generation) != generation {
            return;
        }
        if on_gpu && let Some(msg) = runner::gpu_lost() {
            device_lost(&ctx, msg);
            return;
        }
        let mut progressed = false;
        for i in 0..n {
            match advance_lane(&ctx, i, generation, on_gpu).await {
                Some(p) => progressed |= p,
                None => return,
            }
        }
        if matches!(ctx.phase.get_untracked(), Phase::Warming(_)) {
            ctx.phase.set(Phase::Running);
        }
        let now = runner::now_ms();
        if now - last_draw > REDRAW_MS || single || !progressed {
            last_draw = now;
            bump(&ctx);
        }
        if !progressed {
            ctx.running.set(false);
            ctx.phase.set(Phase::Done);
            save_finished(&ctx);
            return;
        }
        if single || !ctx.running.get_untracked() {
            ctx.running.set(false);
            ctx.phase.set(Phase::Paused);
            bump(&ctx);
            return;
        }
        // Let the browser paint and take input between steps.
        runner::sleep_ms(0).await;
    }
}

/// Stops on a lost GPU, keeps the curves, and offers the CPU.
fn device_lost(ctx: &Ctx, msg: String) {
    ctx.running.set(false);
    with_engine(|e| {
        e.generation += 1;
        e.lanes.clear();
    });
    let p = GpuProblem::Lost(msg);
    ctx.banner.set(Some((p.code().to_string(), p.message())));
    with_engine(|e| e.gpu_problem = Some(p));
    ctx.backend.set("CPU (WebAssembly) — GPU lost".into());
    ctx.phase.set(Phase::Paused);
    bump(ctx);
}

/// After a lost GPU: the same run again from step 0 on the CPU (same seed, same batches).
pub fn continue_on_cpu(ctx: Ctx) {
    reset(&ctx);
    ctx.banner.set(None);
    start(ctx, false);
}

pub fn start(ctx: Ctx, single: bool) {
    if ctx.running.get_untracked()
        || with_engine(|e| e.downloading)
        || matches!(
            ctx.phase.get_untracked(),
            Phase::Probing | Phase::Quantizing(_)
        )
    {
        return;
    }
    ctx.running.set(!single);
    spawn_local(run_loop(ctx, single));
}

pub fn toggle_run(ctx: Ctx) {
    if ctx.running.get_untracked() {
        ctx.running.set(false);
    } else {
        start(ctx, false);
    }
}

/// Quantizes every lane at every sweep point on the CPU backend (after one awaited copy of the
/// weights off the GPU), yielding between points so the page stays live.
pub async fn quantize_all(ctx: Ctx) {
    let generation = with_engine(|e| e.generation);
    let settings = ctx.app.get_untracked().quant_settings();
    let n = with_engine(|e| e.lanes.len());
    if n == 0 {
        ctx.notes.set(vec![
            "Train first: there is no model to quantize yet.".into(),
        ]);
        return;
    }
    let cpu = qtlab_core::Device::flex();
    for i in 0..n {
        let Some(run) = with_engine(|e| e.lanes.get_mut(i).and_then(Option::take)) else {
            continue;
        };
        let label = with_lanes(|l| l.get(i).map(|v| v.label.clone()).unwrap_or_default());
        ctx.phase
            .set(Phase::Quantizing(format!("copying {label} to the CPU…")));
        runner::sleep_ms(0).await;
        let copied = qtlab_core::inspect::model_to_device(run.trainer().model(), &cpu).await;
        let spec = run.trainer().spec.clone();
        let data = runner::load_data(&spec);
        with_engine(|e| {
            if e.generation == generation {
                e.lanes[i] = Some(run)
            }
        });
        let (model, data) = match (copied, data) {
            (Ok(m), Ok(d)) => (m, d),
            (Err(e), _) | (_, Err(e)) => {
                ctx.notes.update(|n| n.push(format!("{label}: {e}")));
                continue;
            }
        };
        let mut reports = Vec::new();
        for s in &settings {
            ctx.phase.set(Phase::Quantizing(format!(
                "{label}: W{}A{}…",
                s.w_bits, s.a_bits
            )));
            runner::sleep_ms(0).await;
            if with_engine(|e| e.generation) != generation {
                return;
            }
            match qtlab_core::ptq::calibrate::quantize_model(&model, &spec, &data, &cpu, s) {
                Ok(r) => reports.push(r),
                Err(e) => ctx.notes.update(|n| n.push(format!("{label}: {e}"))),
            }
        }
        with_lanes(|l| {
            if let Some(v) = l.get_mut(i) {
                v.quant = reports;
            }
        });
        bump(&ctx);
    }
    ctx.phase.set(Phase::Done);
    bump(&ctx);
}
