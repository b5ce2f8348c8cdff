//! The page: `App` creates the state, probes the GPU, keeps the address bar in step and binds
//! the keys, then lays out the components of `components/`. The training loop behind the
//! buttons is in `drive.rs`, the page's state in `state.rs`.

use leptos::prelude::*;
use leptos::task::spawn_local;
use qtlab_core::url::{AppState, BackendChoice};
use wasm_bindgen::JsCast;

use crate::browser;
use crate::components::attention::AttentionView;
use crate::components::charts::{LayerCharts, LossChart, SummaryTable};
use crate::components::controls::{CompareBox, Control, DataBox, GROUPS, PresetPicker, QuantBox};
use crate::components::quantize::QuantPanel;
use crate::components::toolbar::{HelpDialog, RunBar, ShareBar};
use crate::drive::{continue_on_cpu, start, toggle_run};
use crate::runner::{self, GpuProblem, with_engine};
use crate::state::{Ctx, Phase, reset, restore_saved};

/// The whole page. The state lives in one [`Ctx`] of signals, handed to the components as props
/// and also provided as context.
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
                <PresetPicker ctx=ctx />
                {GROUPS.iter().map(|(name, ctls)| view! {
                    <fieldset class="group"><legend>{*name}</legend>
                        {ctls.iter().map(|c| view! { <Control ctx=ctx ctl=c /> }).collect_view()}
                    </fieldset>
                }).collect_view()}
                <DataBox ctx=ctx />
                <CompareBox ctx=ctx />
                <QuantBox app=ctx.app notes=ctx.notes />
            </aside>
            <section class="results">
                <RunBar ctx=ctx />
                <ShareBar ctx=ctx />
                <SummaryTable version=ctx.version />
                <LossChart version=ctx.version />
                <LayerCharts version=ctx.version />
                <AttentionView ctx=ctx />
                <QuantPanel ctx=ctx />
            </section>
        </main>
        <HelpDialog open=ctx.help />
        <footer><p>"Bondarenko, Nagel, Blankevoort. Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing. NeurIPS 2023."</p></footer>
    }
}
