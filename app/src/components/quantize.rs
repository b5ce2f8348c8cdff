//! The quantization results: the Quantize button, the table per bit width, the sweep over
//! activation bits and the SQNR per quantizer.

use leptos::prelude::*;
use leptos::task::spawn_local;
use qtlab_core::metrics::format_quality;

use super::charts::lane_series;
use crate::charts as svg;
use crate::drive::quantize_all;
use crate::lanes::{self, with_lanes};
use crate::state::Ctx;

/// The paper's payoff: simulate integer inference on every trained variant and show where the
/// outliers cost quality, as a table per bit width, a sweep over activation bits and the SQNR
/// of each quantizer.
#[component]
pub fn QuantPanel(ctx: Ctx) -> impl IntoView {
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
            svg::line_chart(
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
            svg::bars(
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
