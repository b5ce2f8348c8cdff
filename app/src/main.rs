//! qtlab in the browser: pick a model and an attention variant, train it beside vanilla on the
//! user's GPU, watch the outliers, quantize, and share the run as a link.

mod app;
mod browser;
mod charts;
mod components;
mod drive;
mod lanes;
mod runner;
mod state;

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// Runs the module's static constructors (the `inventory` registrations of Burn's compiler
    /// crates). Synthesised by wasm-ld.
    fn __wasm_call_ctors();
}

fn main() {
    // Without one explicit call, wasm-ld links a "command" module: it wraps *every* export in a
    // call to the constructors, so each JS → wasm call (each future poll, each externref) re-ran
    // them all. The browser profile had those re-runs at about 70 % of the page's CPU time
    // while training. Calling them once here tells wasm-ld not to wrap the exports.
    #[cfg(target_arch = "wasm32")]
    unsafe {
        __wasm_call_ctors();
    }
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
