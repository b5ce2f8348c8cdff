//! qtlab in the browser: pick a model and an attention variant, train it beside vanilla on the
//! user's GPU, watch the outliers, quantize, and share the run as a link.

mod charts;
mod lanes;
mod runner;
mod view;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(view::App);
}
