//! The activation histogram under the attention maps.

use leptos::prelude::*;

use crate::charts as svg;
use crate::lanes::{self, with_lanes};

/// The distribution of one layer's tracked activations on a log scale: where the attention maps
/// show the cause, this shows the effect, the few far-out values that stretch an 8-bit grid.
/// It renders a chart and its caption, meant as the tail of the inspect figure.
#[component]
pub fn Histogram(
    /// Index of the variant shown.
    lane: RwSignal<usize>,
    /// Index of the layer shown.
    layer: RwSignal<usize>,
    /// Bumped whenever the lanes (outside the reactive graph) change.
    version: RwSignal<u64>,
) -> impl IntoView {
    let hist = move || {
        version.track();
        let (li, l) = (lane.get(), layer.get());
        with_lanes(|lanes| {
            let Some(shown) = lanes.get(li) else {
                return String::new();
            };
            match shown.inspection.as_ref().and_then(|i| i.hists.get(l)) {
                Some(h) => svg::histogram(
                    &format!(
                        "{} — {} at step {}",
                        shown.label,
                        h.name,
                        shown.inspection.as_ref().map(|i| i.step).unwrap_or(0)
                    ),
                    h.range,
                    &h.counts,
                    lanes::color(&shown.attn),
                ),
                None => String::new(),
            }
        })
    };
    view! {
        <div inner_html=hist></div>
        <figcaption>"Histogram of this layer's tracked activations (log counts): the few values far out in the tails are the outliers that stretch an 8-bit grid."</figcaption>
    }
}
