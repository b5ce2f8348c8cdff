//! The two toolbars above the results and the help dialog: what drives a run, and what shares,
//! saves or reloads one.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::browser::{self, download, input_file, read_file};
use crate::drive::{start, toggle_run};
use crate::lanes::{self, with_lanes};
use crate::state::{Ctx, Phase, apply_record, current_record, reset};

/// Run, Step and Reset, with their keys, beside a line that says what the page is doing now and
/// which backend trains: a first step can spend a while compiling shaders, and the user should
/// see that rather than a page that looks stuck.
#[component]
pub fn RunBar(ctx: Ctx) -> impl IntoView {
    let phase_text = move || match ctx.phase.get() {
        Phase::Probing => "Looking for a GPU…".to_string(),
        Phase::Idle => "Ready. Space runs, → steps.".to_string(),
        Phase::Warming(s) => format!("Warming up: {s}"),
        Phase::Running => "Training…".to_string(),
        Phase::Paused => "Paused.".to_string(),
        Phase::Done => "Done.".to_string(),
        Phase::Quantizing(s) => format!("Quantizing: {s}"),
    };
    view! {
        <div class="toolbar" role="toolbar" aria-label="run">
            <button id="run" class="primary" on:click=move |_| toggle_run(ctx) aria-keyshortcuts="Space">
                {move || if ctx.running.get() { "Pause" } else { "Run" }}</button>
            <button id="step" on:click=move |_| start(ctx, true) aria-keyshortcuts="ArrowRight">"Step"</button>
            <button id="reset" on:click=move |_| reset(&ctx) aria-keyshortcuts="R">"Reset"</button>
            <span class="phase" id="phase">{phase_text}</span>
            <span class="backend" id="backend">{move || ctx.backend.get()}</span>
        </div>
    }
}

/// A run is reproducible from its link, so the share bar names it by the settings' fingerprint
/// and offers the link, the results as JSON or CSV, and the import of a saved JSON.
#[component]
pub fn ShareBar(ctx: Ctx) -> impl IntoView {
    let fingerprint = move || ctx.app.with(|a| a.spec.fingerprint());
    view! {
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
    }
}

/// The keys and what the charts measure, for a user who lands on a shared link with no context;
/// opened by `?` or the toolbar's button, closed by Esc or its own button.
#[component]
pub fn HelpDialog(
    /// Whether the dialog shows; the page's key handler toggles it too.
    open: RwSignal<bool>,
) -> impl IntoView {
    view! {
        <Show when=move || open.get()>
            <div class="help" id="help" role="dialog" aria-label="help">
                <h2>"Keys"</h2>
                <p><kbd>"Space"</kbd>" run / pause · "<kbd>"→"</kbd>" one step · "<kbd>"R"</kbd>" reset · "<kbd>"?"</kbd>" this help · "<kbd>"Esc"</kbd>" close"</p>
                <h2>"What you see"</h2>
                <p>"Each step trains every compared variant on the same batch. Max |x| is the paper's infinity norm of the FFN output (BERT) or block output (OPT, ViT), averaged over sequences; kurtosis measures how heavy the tails are. Quantize simulates W8A8 (or your bit widths): weights symmetric per tensor, activations asymmetric with running min-max ranges, as in the paper."</p>
                <p>"The link in the address bar holds every setting and the seed: the same link trains the same run."</p>
                <button on:click=move |_| open.set(false)>"Close"</button>
            </div>
        </Show>
    }
}
