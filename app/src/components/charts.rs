//! The live results: the summary table, the loss chart and the per-layer outlier charts. The
//! SVG itself is drawn by `crate::charts`, imported here as `svg`.

use leptos::prelude::*;
use qtlab_core::metrics::format_quality;

use crate::charts::{self as svg, Series};
use crate::lanes::{self, LaneView, with_lanes};

/// One solid line per lane, in the lane's colour, from `curves` (parallel to `lanes`).
pub fn lane_series<'a>(lanes: &'a [LaneView], curves: &'a [Vec<(f64, f64)>]) -> Vec<Series<'a>> {
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

/// The paper's Table 2 for the runs on screen, so the numbers the charts show as lines can be
/// read off and compared at a glance.
#[component]
pub fn SummaryTable(
    /// Bumped whenever the lanes (outside the reactive graph) change.
    version: RwSignal<u64>,
) -> impl IntoView {
    let rows = move || {
        version.track();
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

/// Training and held-out loss per variant: the check that removing outliers did not cost
/// quality.
#[component]
pub fn LossChart(
    /// Bumped whenever the lanes (outside the reactive graph) change.
    version: RwSignal<u64>,
) -> impl IntoView {
    let chart = move || {
        version.track();
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
            svg::line_chart(
                "loss (solid: train, dashed: held-out)",
                "step",
                &series,
                false,
            )
        })
    };
    view! { <figure class="card" id="loss-chart"><div inner_html=chart></div>
    <figcaption>"All variants should learn about equally well: the fixes must not cost quality."</figcaption></figure> }
}

/// The page's main exhibit: per layer, max |x| and kurtosis over training, where vanilla's
/// outliers show as its line climbing away from the fixed variants.
#[component]
pub fn LayerCharts(
    /// Bumped whenever the lanes (outside the reactive graph) change.
    version: RwSignal<u64>,
) -> impl IntoView {
    let pairs = move || {
        version.track();
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
                out.push_str(&svg::line_chart(
                    &format!("layer {l} {tap}: max |x| (log)"),
                    "step",
                    &s1,
                    true,
                ));
                out.push_str(&svg::line_chart(
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
    view! { <figure class="card" id="outlier-charts"><div class="pairs" inner_html=pairs></div>
    <figcaption>"Per layer, the batch-mean of each sequence's largest |activation| (training batches) and its kurtosis (held-out batches; 3 = Gaussian). Outliers show as vanilla's line climbing away from the others. Kurtosis is the paper's m₄/(s⁴+10⁻⁶), so it reads near 0 while activations are still tiny."</figcaption></figure> }
}
