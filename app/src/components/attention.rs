//! The inspect figure: attention maps per head of one variant and layer, what each head attends
//! to, and (from `histogram.rs`) the activations that result.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::histogram::Histogram;
use crate::charts::draw_heatmap;
use crate::lanes::with_lanes;
use crate::state::Ctx;

/// A menu of indices (the variant or the layer the inspect figure shows); its options follow
/// the lanes on screen.
#[component]
pub fn IndexPicker(
    /// The menu's accessible name.
    label: &'static str,
    /// Index of the option shown.
    selected: RwSignal<usize>,
    /// The options' text in index order, re-read whenever the lanes change.
    #[prop(into)]
    options: Signal<Vec<String>>,
) -> impl IntoView {
    view! {
        <select aria-label=label prop:value=move || selected.get().to_string() on:change=move |ev| {
            selected.set(event_target_value(&ev).parse().unwrap_or(0));
        }>
            {move || options.get().into_iter().enumerate().map(|(i, t)| view! { <option value=i.to_string()>{t}</option> }).collect_view()}
        </select>
    }
}

/// Why the outliers grow, made visible: the attention maps of one held-out sequence per head,
/// with each head's share of attention on the first token and delimiters (the heads "doing
/// nothing"), what to look for in the chosen preset, and the resulting activation histogram.
#[component]
pub fn AttentionView(ctx: Ctx) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let lane_names = Signal::derive(move || {
        ctx.version.track();
        with_lanes(|l| l.iter().map(|x| x.label.clone()).collect())
    });
    // Outliers sit in some layers and not others, so every layer of the deepest lane is offered.
    let layer_names = Signal::derive(move || {
        ctx.version.track();
        let n = with_lanes(|l| l.iter().map(|x| x.layers()).max().unwrap_or(0));
        (0..n).map(|i| format!("layer {i}")).collect()
    });
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
                draw_heatmap(&ctx2d, part, seq, x, 18.0, size, dark);
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
            <div class="row">
                <IndexPicker label="variant" selected=ctx.sel_lane options=lane_names />
                <IndexPicker label="layer" selected=ctx.sel_layer options=layer_names />
            </div>
            <canvas node_ref=canvas width="640" height="190" aria-label="attention maps per head: rows are queries, columns keys"></canvas>
            <ul class="heads">{move || heads_text().into_iter().map(|t| view! { <li>{t}</li> }).collect_view()}</ul>
            <figcaption>"Attention of one held-out sequence (rows: queries, columns: keys). A head 'doing nothing' puts its mass on the first token or on delimiters; gated attention can instead close its gate."</figcaption>
            <p class="hint" id="look-for">{move || ctx.app.with(|a| qtlab_core::presets::look_for(&a.spec))}</p>
            <Histogram lane=ctx.sel_lane layer=ctx.sel_layer version=ctx.version />
        </figure>
    }
}
