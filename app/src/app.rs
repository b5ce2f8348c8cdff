//! The page's components: controls, run buttons, live charts, quantization and sharing. The
//! training loop behind the buttons is in `drive.rs`, the page's state in `state.rs`.

use leptos::prelude::*;
use leptos::task::spawn_local;
use qtlab_core::metrics::format_quality;
use qtlab_core::url::{AppState, BackendChoice};
use wasm_bindgen::JsCast;

use crate::browser::{self, download, input_file, read_file};
use crate::charts::{self, Series};
use crate::controls::{GROUPS, compare_box, control, data_box, quant_box};
use crate::drive::{continue_on_cpu, quantize_all, start, toggle_run};
use crate::lanes::{self, LaneView, with_lanes};
use crate::runner::{self, GpuProblem, with_engine};
use crate::state::{Ctx, Phase, apply_record, current_record, reset, restore_saved};

// ------------------------------------------------------------------------------------------
// Results
// ------------------------------------------------------------------------------------------

/// One solid line per lane, in the lane's colour, from `curves` (parallel to `lanes`).
fn lane_series<'a>(lanes: &'a [LaneView], curves: &'a [Vec<(f64, f64)>]) -> Vec<Series<'a>> {
    lanes
        .iter()
        .zip(curves)
        .map(|(l, p)| Series {
            name: &l.label,
            color: lanes::color(&l.attn),
            points: p,
            dashed: false,
        })
        .collect()
}

fn loss_chart(ctx: Ctx) -> impl IntoView {
    let svg = move || {
        ctx.version.track();
        with_lanes(|lanes| {
            let vals: Vec<Vec<(f64, f64)>> = lanes.iter().map(|l| l.val_curve()).collect();
            let mut series = Vec::new();
            for (l, v) in lanes.iter().zip(&vals) {
                series.push(Series {
                    name: &l.label,
                    color: lanes::color(&l.attn),
                    points: &l.losses,
                    dashed: false,
                });
                series.push(Series {
                    name: &l.label,
                    color: lanes::color(&l.attn),
                    points: v,
                    dashed: true,
                });
            }
            charts::line_chart(
                "loss (solid: train, dashed: held-out)",
                "step",
                &series,
                false,
            )
        })
    };
    view! { <figure class="card" id="loss-chart"><div inner_html=svg></div>
    <figcaption>"All variants should learn about equally well: the fixes must not cost quality."</figcaption></figure> }
}

fn layer_charts(ctx: Ctx) -> impl IntoView {
    let svg = move || {
        ctx.version.track();
        with_lanes(|lanes| {
            let layers = lanes.iter().map(|l| l.layers()).max().unwrap_or(0);
            let mut out = String::new();
            for l in 0..layers {
                let infs: Vec<Vec<(f64, f64)>> = lanes.iter().map(|x| x.inf_curve(l)).collect();
                let kurts: Vec<Vec<(f64, f64)>> = lanes.iter().map(|x| x.kurt_curve(l)).collect();
                let s1 = lane_series(lanes, &infs);
                let s2 = lane_series(lanes, &kurts);
                let tap = lanes
                    .first()
                    .map(|x| lanes::headline(x.model()))
                    .unwrap_or("");
                out.push_str(&format!(r#"<div class="pair" data-layer="{l}">"#));
                out.push_str(&charts::line_chart(
                    &format!("layer {l} {tap}: max |x| (log)"),
                    "step",
                    &s1,
                    true,
                ));
                out.push_str(&charts::line_chart(
                    &format!("layer {l} {tap}: kurtosis (log)"),
                    "step",
                    &s2,
                    true,
                ));
                out.push_str("</div>");
            }
            if layers == 0 {
                out.push_str(r#"<p class="hint">Press Run (Space) to start.</p>"#);
            }
            out
        })
    };
    view! { <figure class="card" id="outlier-charts"><div class="pairs" inner_html=svg></div>
    <figcaption>"Per layer, the batch-mean of each sequence's largest |activation| (training batches) and its kurtosis (held-out batches; 3 = Gaussian). Outliers show as vanilla's line climbing away from the others. Kurtosis is the paper's m₄/(s⁴+10⁻⁶), so it reads near 0 while activations are still tiny."</figcaption></figure> }
}

fn summary_table(ctx: Ctx) -> impl IntoView {
    let rows = move || {
        ctx.version.track();
        with_lanes(|lanes| {
            lanes.iter().map(|l| {
                let ev = l.evals.last();
                let metric = ev.and_then(|e| format_quality(e.ppl, e.accuracy)).unwrap_or("–".into());
                let inf = ev.map(|e| format!("{:.2}", e.outliers.max_inf_norm)).unwrap_or("–".into());
                let kurt = ev.map(|e| format!("{:.2}", e.outliers.avg_kurtosis)).unwrap_or("–".into());
                let status = match &l.error { Some(e) => e.clone(), None => format!("{}/{}", l.step, l.steps) };
                let color = lanes::color(&l.attn);
                view! {
                    <tr>
                        <td><span style:color=color>"■ "</span>{l.label.clone()}</td>
                        <td class="num">{metric}</td><td class="num">{inf}</td><td class="num">{kurt}</td>
                        <td class="num">{format!("{:.0}", l.ms_per_step)}</td>
                        <td class=if l.error.is_some() { "err" } else { "" }>{status}</td>
                    </tr>
                }
            }).collect_view()
        })
    };
    view! {
        <figure class="card">
            <table id="summary"><thead><tr><th>"variant"</th><th>"held-out ppl / acc"</th><th>"max inf-norm"</th><th>"avg kurtosis"</th><th>"ms/step"</th><th>"step"</th></tr></thead>
            <tbody>{rows}</tbody></table>
            <figcaption>"The paper's Table 2 columns at the last evaluation: max over layers of the headline tensor's inf-norm, and kurtosis averaged over all tracked tensors."</figcaption>
        </figure>
    }
}

fn lane_picker(ctx: Ctx) -> impl IntoView {
    view! {
        <select aria-label="variant" prop:value=move || ctx.sel_lane.get().to_string() on:change=move |ev| {
            ctx.sel_lane.set(event_target_value(&ev).parse().unwrap_or(0));
        }>
            {move || { ctx.version.track(); with_lanes(|l| l.iter().enumerate().map(|(i, x)| view! { <option value=i.to_string()>{x.label.clone()}</option> }).collect_view()) }}
        </select>
    }
}

fn layer_picker(ctx: Ctx) -> impl IntoView {
    view! {
        <select aria-label="layer" prop:value=move || ctx.sel_layer.get().to_string() on:change=move |ev| {
            ctx.sel_layer.set(event_target_value(&ev).parse().unwrap_or(0));
        }>
            {move || { ctx.version.track(); let n = with_lanes(|l| l.iter().map(|x| x.layers()).max().unwrap_or(0)); (0..n).map(|i| view! { <option value=i.to_string()>{format!("layer {i}")}</option> }).collect_view() }}
        </select>
    }
}

fn inspect_panel(ctx: Ctx) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let hist = move || {
        ctx.version.track();
        let (li, l) = (ctx.sel_lane.get(), ctx.sel_layer.get());
        with_lanes(|lanes| {
            let Some(lane) = lanes.get(li) else {
                return String::new();
            };
            match lane.inspection.as_ref().and_then(|i| i.hists.get(l)) {
                Some(h) => charts::histogram(
                    &format!(
                        "{} — {} at step {}",
                        lane.label,
                        h.name,
                        lane.inspection.as_ref().map(|i| i.step).unwrap_or(0)
                    ),
                    h.range,
                    &h.counts,
                    lanes::color(&lane.attn),
                ),
                None => String::new(),
            }
        })
    };
    let heads_text = move || {
        ctx.version.track();
        let (li, l) = (ctx.sel_lane.get(), ctx.sel_layer.get());
        with_lanes(|lanes| {
            let Some(h) = lanes
                .get(li)
                .and_then(|x| x.evals.last())
                .and_then(|e| e.outliers.heads.get(l))
            else {
                return Vec::new();
            };
            let lane = &lanes[li];
            let value_ratio = lane
                .inspection
                .as_ref()
                .map(|i| i.first_value_ratio())
                .and_then(|r| r.get(l).cloned())
                .unwrap_or_default();
            let mut lines: Vec<String> = (0..h.first_mass.len())
                .map(|k| {
                    let gate = h
                        .gate_mean
                        .as_ref()
                        .and_then(|g| g.get(k))
                        .map(|g| format!(", gate {g:.2}"))
                        .unwrap_or_default();
                    // Bigram-Backcopy: where the head looks when it has nothing to do, and
                    // when it must copy.
                    let split = match (&h.first_mass_other, &h.first_mass_copy) {
                        (Some(o), Some(c)) => format!(
                            " (queries with nothing to do {:.0} %, copies {:.0} %)",
                            100.0 * o.get(k).copied().unwrap_or(f64::NAN),
                            100.0 * c.get(k).copied().unwrap_or(f64::NAN)
                        ),
                        _ => String::new(),
                    };
                    let value = value_ratio
                        .get(k)
                        .map(|r| format!(", first token's value {r:.2}× the others'"))
                        .unwrap_or_default();
                    format!(
                        "head {k}: first token {:.0} %{split}, delimiters {:.0} %{gate}{value}",
                        100.0 * h.first_mass[k],
                        100.0 * h.delim_mass[k]
                    )
                })
                .collect();
            let prefix = format!("layer{l}.");
            let profiles = lane
                .inspection
                .iter()
                .flat_map(|i| i.profiles.iter())
                .filter(|p| p.name.starts_with(&prefix));
            for p in profiles {
                lines.push(format!(
                    "{}: largest |x| {:.2} at position {} ('{}'), channel {}; {:.1}σ of its sequence; position 0's norm {:.1}× the median position's",
                    p.name,
                    p.max_abs,
                    p.position,
                    p.token,
                    p.channel,
                    p.max_over_sd,
                    p.first_token_ratio()
                ));
            }
            lines
        })
    };
    Effect::new(move |_| {
        ctx.version.track();
        let (li, l) = (ctx.sel_lane.get(), ctx.sel_layer.get());
        let Some(c) = canvas.get() else { return };
        let el: &web_sys::HtmlCanvasElement = &c;
        let Ok(Some(ctx2d)) = el.get_context("2d") else {
            return;
        };
        let Ok(ctx2d) = ctx2d.dyn_into::<web_sys::CanvasRenderingContext2d>() else {
            return;
        };
        let dark = web_sys::window()
            .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
            .map(|m| m.matches())
            .unwrap_or(false);
        ctx2d.clear_rect(0.0, 0.0, el.width() as f64, el.height() as f64);
        with_lanes(|lanes| {
            let Some(ins) = lanes.get(li).and_then(|x| x.inspection.as_ref()) else {
                return;
            };
            let Some(attn) = ins.attn.get(l) else { return };
            let heads = ins.heads.max(1);
            let seq = ins.tokens.len().max(1);
            let size = 150.0;
            el.set_width((heads as f64 * (size + 12.0)) as u32);
            el.set_height((size + 34.0) as u32);
            for h in 0..heads {
                let x = h as f64 * (size + 12.0);
                let part =
                    &attn[(h * seq * seq).min(attn.len())..((h + 1) * seq * seq).min(attn.len())];
                charts::draw_heatmap(&ctx2d, part, seq, x, 18.0, size, dark);
                ctx2d.set_fill_style_str(if dark { "#ddd" } else { "#222" });
                ctx2d.set_font("11px sans-serif");
                let gate = ins
                    .gates
                    .get(l)
                    .and_then(|g| g.as_ref())
                    .map(|g| {
                        let s = &g[(h * seq).min(g.len())..((h + 1) * seq).min(g.len())];
                        format!(" π̄={:.2}", s.iter().sum::<f32>() / s.len().max(1) as f32)
                    })
                    .unwrap_or_default();
                let _ = ctx2d.fill_text(&format!("head {h}{gate}"), x, 12.0);
            }
        });
    });
    view! {
        <figure class="card" id="inspect">
            <div class="row">{lane_picker(ctx)}{layer_picker(ctx)}</div>
            <canvas node_ref=canvas width="640" height="190" aria-label="attention maps per head: rows are queries, columns keys"></canvas>
            <ul class="heads">{move || heads_text().into_iter().map(|t| view! { <li>{t}</li> }).collect_view()}</ul>
            <figcaption>"Attention of one held-out sequence (rows: queries, columns: keys). A head 'doing nothing' puts its mass on the first token or on delimiters; gated attention can instead close its gate."</figcaption>
            <p class="hint" id="look-for">{move || ctx.app.with(|a| qtlab_core::presets::look_for(&a.spec))}</p>
            <div inner_html=hist></div>
            <figcaption>"Histogram of this layer's tracked activations (log counts): the few values far out in the tails are the outliers that stretch an 8-bit grid."</figcaption>
        </figure>
    }
}

fn quant_results(ctx: Ctx) -> impl IntoView {
    let table = move || {
        ctx.version.track();
        with_lanes(|lanes| {
            let points: Vec<String> = lanes
                .iter()
                .flat_map(|l| {
                    l.quant
                        .iter()
                        .map(|q| format!("W{}A{}", q.settings.w_bits, q.settings.a_bits))
                })
                .fold(Vec::new(), |mut v, p| {
                    if !v.contains(&p) {
                        v.push(p)
                    }
                    v
                });
            if points.is_empty() {
                return view! { <p class="hint">"Train, then Quantize: each variant is calibrated on 16 training batches and evaluated on the held-out batches."</p> }.into_any();
            }
            let metric = lanes.first().map(|l| l.metric_name()).unwrap_or("");
            let fmt = |m: &qtlab_core::ptq::calibrate::QuantMetric| {
                format_quality(m.ppl, m.accuracy).unwrap_or("–".into())
            };
            view! {
                <table id="quant-table"><thead><tr><th>"variant"</th><th>{format!("FP {metric}")}</th>
                    {points.iter().map(|p| view! { <th>{p.clone()}</th> }).collect_view()}</tr></thead>
                <tbody>{lanes.iter().map(|l| view! {
                    <tr><td><span style:color=lanes::color(&l.attn)>"■ "</span>{l.label.clone()}</td>
                        <td class="num">{l.quant.first().map(|q| fmt(&q.fp)).unwrap_or("–".into())}</td>
                        {points.iter().map(|p| {
                            let q = l.quant.iter().find(|q| &format!("W{}A{}", q.settings.w_bits, q.settings.a_bits) == p);
                            let cell = q.map(|q| {
                                let rel = match (q.fp.ppl, q.quantized.ppl) { (Some(a), Some(b)) => format!(" ({:+.1} %)", 100.0 * (b / a - 1.0)), _ => String::new() };
                                format!("{}{rel}", fmt(&q.quantized))
                            }).unwrap_or("–".into());
                            view! { <td class="num">{cell}</td> }
                        }).collect_view()}
                    </tr>
                }).collect_view()}</tbody></table>
            }.into_any()
        })
    };
    let sweep = move || {
        ctx.version.track();
        with_lanes(|lanes| {
            let curves: Vec<Vec<(f64, f64)>> = lanes
                .iter()
                .map(|l| {
                    let mut v: Vec<(f64, f64)> = l
                        .quant
                        .iter()
                        .map(|q| {
                            (
                                q.settings.a_bits as f64,
                                q.quantized
                                    .ppl
                                    .or(q.quantized.accuracy.map(|a| 100.0 * a))
                                    .unwrap_or(f64::NAN),
                            )
                        })
                        .collect();
                    v.sort_by(|a, b| a.0.total_cmp(&b.0));
                    v
                })
                .collect();
            if curves.iter().all(|c| c.is_empty()) {
                return String::new();
            }
            let s = lane_series(lanes, &curves);
            let metric = lanes.first().map(|l| l.metric_name()).unwrap_or("");
            charts::line_chart(
                &format!("quantized {metric} vs activation bits"),
                "activation bits",
                &s,
                metric == "perplexity",
            )
        })
    };
    let sqnr = move || {
        ctx.version.track();
        let p = ctx.sel_point.get();
        with_lanes(|lanes| {
            let Some(first) = lanes.iter().find_map(|l| l.quant.get(p)) else {
                return String::new();
            };
            let names: Vec<String> = first.act_sqnr.iter().map(|s| s.name.clone()).collect();
            let series: Vec<(&str, &str, Vec<f64>)> = lanes
                .iter()
                .filter_map(|l| {
                    l.quant.get(p).map(|q| {
                        (
                            l.label.as_str(),
                            lanes::color(&l.attn),
                            names
                                .iter()
                                .map(|n| {
                                    q.act_sqnr
                                        .iter()
                                        .find(|s| &s.name == n)
                                        .map(|s| s.sqnr_db)
                                        .unwrap_or(f64::NAN)
                                })
                                .collect(),
                        )
                    })
                })
                .collect();
            charts::bars(
                &format!(
                    "activation SQNR per quantizer at W{}A{} (dB, higher is better)",
                    first.settings.w_bits, first.settings.a_bits
                ),
                &names,
                &series,
            )
        })
    };
    view! {
        <section class="card" id="quant">
            <div class="row">
                <button id="quantize" on:click=move |_| {
                    if ctx.running.get_untracked() { ctx.running.set(false); }
                    spawn_local(quantize_all(ctx));
                }>"Quantize"</button>
                <select aria-label="SQNR point" prop:value=move || ctx.sel_point.get().to_string() on:change=move |ev| ctx.sel_point.set(event_target_value(&ev).parse().unwrap_or(0))>
                    {move || ctx.app.with(|a| a.quant_points.iter().enumerate().map(|(i, (w, x))| view! { <option value=i.to_string()>{format!("SQNR at W{w}A{x}")}</option> }).collect_view())}
                </select>
            </div>
            {table}
            <div class="row"><div inner_html=sweep></div></div>
            <p class="hint">"Lower activation bits make a wide range costly: where vanilla's line lifts off first is where its outliers hurt."</p>
            <div inner_html=sqnr></div>
        </section>
    }
}

// ------------------------------------------------------------------------------------------
// App
// ------------------------------------------------------------------------------------------

/// The presets live in core so that `qtlab presets` and `qtlab experiment --preset` run the
/// very same fragments; the first is the app's default run.
use qtlab_core::presets::PRESETS;

#[component]
pub fn App() -> impl IntoView {
    let (spec_text, from_query) = browser::location_spec();
    let (state, errors) = AppState::from_url(&spec_text);
    let mut notes: Vec<String> = errors.iter().map(|e| format!("Link: {e}")).collect();
    if from_query {
        notes.push(
            "Link: the settings were read from after '?'; qtlab links keep them after '#', as the address bar now shows."
                .into(),
        );
    }
    let ctx = Ctx {
        app: RwSignal::new(state),
        phase: RwSignal::new(Phase::Probing),
        running: RwSignal::new(false),
        version: RwSignal::new(0),
        banner: RwSignal::new(None),
        notes: RwSignal::new(notes),
        backend: RwSignal::new("probing…".into()),
        sel_layer: RwSignal::new(0),
        sel_lane: RwSignal::new(0),
        sel_point: RwSignal::new(0),
        help: RwSignal::new(false),
        copied: RwSignal::new(false),
    };
    provide_context(ctx);

    // The address bar follows every edit (replaceState: no history flood).
    Effect::new(move |_| {
        let url = ctx.app.with(|a| a.to_url());
        browser::replace_url(&url);
    });

    // Probe the GPU once; any failure falls back to the CPU with a banner naming the reason.
    spawn_local(async move {
        let forced = ctx.app.get_untracked().backend == BackendChoice::Cpu;
        let result = if forced {
            Err(GpuProblem::ChosenCpu)
        } else {
            runner::probe_gpu().await
        };
        match result {
            Ok((device, name)) => {
                with_engine(|e| {
                    e.gpu = Some(device);
                    e.gpu_name = name.clone();
                });
                ctx.backend.set(format!(
                    "WebGPU ({})",
                    if name.is_empty() { "adapter" } else { &name }
                ));
            }
            Err(p) => {
                ctx.banner.set(Some((p.code().to_string(), p.message())));
                with_engine(|e| e.gpu_problem = Some(p));
                ctx.backend.set("CPU (WebAssembly)".into());
            }
        }
        ctx.phase.set(Phase::Idle);
        restore_saved(&ctx);
    });

    let _keys = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
        let tag = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map(|e| e.tag_name())
            .unwrap_or_default();
        if matches!(tag.as_str(), "INPUT" | "SELECT" | "TEXTAREA" | "BUTTON")
            || ev.ctrl_key()
            || ev.meta_key()
            || ev.alt_key()
        {
            return;
        }
        match ev.key().as_str() {
            " " => {
                ev.prevent_default();
                toggle_run(ctx);
            }
            "ArrowRight" => {
                ev.prevent_default();
                start(ctx, true);
            }
            "r" | "R" => reset(&ctx),
            "?" => ctx.help.update(|h| *h = !*h),
            "Escape" => ctx.help.set(false),
            _ => {}
        }
    });

    let phase_text = move || match ctx.phase.get() {
        Phase::Probing => "Looking for a GPU…".to_string(),
        Phase::Idle => "Ready. Space runs, → steps.".to_string(),
        Phase::Warming(s) => format!("Warming up: {s}"),
        Phase::Running => "Training…".to_string(),
        Phase::Paused => "Paused.".to_string(),
        Phase::Done => "Done.".to_string(),
        Phase::Quantizing(s) => format!("Quantizing: {s}"),
    };
    let fingerprint = move || ctx.app.with(|a| a.spec.fingerprint());

    view! {
        <header>
            <h1>"qtlab" <small>" — quantizable transformers lab"</small></h1>
            <p class="sub">"Heads that learn to do nothing grow activation outliers that break 8-bit quantization. Clipped softmax and gated attention remove them. Train both beside vanilla, here, on your GPU."</p>
        </header>
        {move || ctx.banner.get().map(|(code, msg)| {
            let lost = code == "device-lost";
            view! { <div class="banner" id="banner" data-code=code role="status">{msg}
                {lost.then(|| view! { <button id="continue-cpu" on:click=move |_| continue_on_cpu(ctx)>"Continue on the CPU"</button> })}
            </div> }
        })}
        <div class="notes" id="notes" role="status" aria-live="polite">
            {move || ctx.notes.get().into_iter().map(|n| view! { <p>{n}</p> }).collect_view()}
            {move || (!ctx.notes.get().is_empty()).then(|| view! { <button class="small" id="dismiss" on:click=move |_| ctx.notes.set(Vec::new())>"Dismiss"</button> })}
        </div>
        <main>
            <aside class="controls" aria-label="settings">
                <fieldset class="group"><legend>"Presets"</legend>
                    <select id="preset" aria-label="preset" on:change=move |ev| {
                        let v = event_target_value(&ev);
                        if let Some(p) = PRESETS.iter().find(|p| p.name == v) {
                            let (s, errs) = AppState::from_url(p.fragment);
                            ctx.app.set(s);
                            ctx.notes.set(errs.iter().map(|e| e.to_string()).collect());
                            reset(&ctx);
                        }
                    }>
                        <option value="">"choose a preset…"</option>
                        {PRESETS.iter().map(|p| view! { <option value=p.name title=p.shows>{p.name}</option> }).collect_view()}
                    </select>
                </fieldset>
                {GROUPS.iter().map(|(name, ctls)| view! {
                    <fieldset class="group"><legend>{*name}</legend>
                        {ctls.iter().map(|c| control(ctx, c)).collect_view()}
                    </fieldset>
                }).collect_view()}
                {data_box(ctx)}
                {compare_box(ctx)}
                {quant_box(ctx)}
            </aside>
            <section class="results">
                <div class="toolbar" role="toolbar" aria-label="run">
                    <button id="run" class="primary" on:click=move |_| toggle_run(ctx) aria-keyshortcuts="Space">
                        {move || if ctx.running.get() { "Pause" } else { "Run" }}</button>
                    <button id="step" on:click=move |_| start(ctx, true) aria-keyshortcuts="ArrowRight">"Step"</button>
                    <button id="reset" on:click=move |_| reset(&ctx) aria-keyshortcuts="R">"Reset"</button>
                    <span class="phase" id="phase">{phase_text}</span>
                    <span class="backend" id="backend">{move || ctx.backend.get()}</span>
                </div>
                <div class="toolbar">
                    <span class="fp" title="Short hash of the run settings: equal fingerprints, equal runs">"run " <code id="fingerprint">{fingerprint}</code></span>
                    <button id="copy-link" on:click=move |_| {
                        browser::copy_text(&browser::share_link(&ctx.app.get_untracked().to_url()));
                        ctx.copied.set(true);
                    }>{move || if ctx.copied.get() { "Link copied" } else { "Copy link" }}</button>
                    <button id="export-json" on:click=move |_| {
                        let rec = current_record(&ctx);
                        if let Ok(j) = serde_json::to_string_pretty(&rec) { download(&format!("qtlab-{}.json", fingerprint()), "application/json", &j); }
                    }>"Export JSON"</button>
                    <button id="export-csv" on:click=move |_| {
                        let csv = with_lanes(|l| lanes::to_csv(l));
                        download(&format!("qtlab-{}.csv", fingerprint()), "text/csv", &csv);
                    }>"Export CSV"</button>
                    <label class="filebtn" for="import">"Import…"
                        <input id="import" type="file" accept=".json,application/json" on:change=move |ev| {
                            let Some(file) = input_file(&ev) else { return };
                            spawn_local(async move {
                                match read_file(file).await.and_then(|b| lanes::parse_record(&b)) {
                                    Ok(rec) => apply_record(&ctx, rec),
                                    Err(e) => ctx.notes.set(vec![format!("Import: {e}")]),
                                }
                            });
                        } /></label>
                    <button id="help-btn" on:click=move |_| ctx.help.update(|h| *h = !*h) aria-keyshortcuts="?">"?"</button>
                </div>
                {summary_table(ctx)}
                {loss_chart(ctx)}
                {layer_charts(ctx)}
                {inspect_panel(ctx)}
                {quant_results(ctx)}
            </section>
        </main>
        <Show when=move || ctx.help.get()>
            <div class="help" id="help" role="dialog" aria-label="help">
                <h2>"Keys"</h2>
                <p><kbd>"Space"</kbd>" run / pause · "<kbd>"→"</kbd>" one step · "<kbd>"R"</kbd>" reset · "<kbd>"?"</kbd>" this help · "<kbd>"Esc"</kbd>" close"</p>
                <h2>"What you see"</h2>
                <p>"Each step trains every compared variant on the same batch. Max |x| is the paper's infinity norm of the FFN output (BERT) or block output (OPT, ViT), averaged over sequences; kurtosis measures how heavy the tails are. Quantize simulates W8A8 (or your bit widths): weights symmetric per tensor, activations asymmetric with running min-max ranges, as in the paper."</p>
                <p>"The link in the address bar holds every setting and the seed: the same link trains the same run."</p>
                <button on:click=move |_| ctx.help.set(false)>"Close"</button>
            </div>
        </Show>
        <footer><p>"Bondarenko, Nagel, Blankevoort. Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing. NeurIPS 2023."</p></footer>
    }
}
