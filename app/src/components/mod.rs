//! The page's parts, each a `#[component]` that `App` (in `app.rs`) puts together:
//!
//! - `controls.rs`: presets, one control per spec key, and the compare, data, quantization boxes;
//! - `toolbar.rs`: the run bar, the share bar (link, export, import) and the help dialog;
//! - `charts.rs`: the summary table, the loss chart and the per-layer outlier charts;
//! - `attention.rs`: the inspect figure: variant and layer pickers, attention maps, head shares;
//! - `histogram.rs`: the activation histogram at the foot of the inspect figure;
//! - `quantize.rs`: the Quantize button and its table, bit sweep and SQNR bars.

pub mod attention;
pub mod charts;
pub mod controls;
pub mod histogram;
pub mod quantize;
pub mod toolbar;
