//! The settings panel: the presets, one control per spec key, grouped, plus the compare, data
//! and quantization boxes. Every edit goes through the spec's own validation and resets the runs.

use leptos::prelude::*;
use leptos::task::spawn_local;
use qtlab_core::presets::{PAPER_PRESETS, PRESETS};
use qtlab_core::ptq::weights::WeightRange;
use qtlab_core::spec::{self, Allowed, AttnKind, ModelKind, RunSpec};
use qtlab_core::url::AppState;
use wasm_bindgen::JsCast;

use crate::browser::{input_file, read_file};
use crate::lanes;
use crate::runner::{self, with_engine};
use crate::state::{Ctx, reset};

enum Kind {
    /// A menu of the key's spellings, read from the spec's key table.
    Select,
    Num(&'static str),
    Check,
}

pub struct Ctl {
    key: &'static str,
    label: &'static str,
    kind: Kind,
    help: &'static str,
    show: fn(&RunSpec) -> bool,
}

fn always(_: &RunSpec) -> bool {
    true
}
fn text_model(s: &RunSpec) -> bool {
    s.model != ModelKind::Vit
}
fn vit(s: &RunSpec) -> bool {
    s.model == ModelKind::Vit
}
fn bert(s: &RunSpec) -> bool {
    s.model == ModelKind::Bert
}
fn opt(s: &RunSpec) -> bool {
    s.model == ModelKind::Opt
}
fn bigram_backcopy(s: &RunSpec) -> bool {
    s.data.is_bigram_backcopy() && s.model != ModelKind::Vit
}
fn clipped(s: &RunSpec) -> bool {
    s.attn == AttnKind::Clipped
}
fn clipped_gz(s: &RunSpec) -> bool {
    s.attn == AttnKind::Clipped && s.alpha.is_none()
}
fn gated(s: &RunSpec) -> bool {
    s.attn == AttnKind::Gated
}

pub const GROUPS: &[(&str, &[Ctl])] = &[
    (
        "Model",
        &[
            Ctl {
                key: "model",
                label: "model",
                kind: Kind::Select,
                help: "BERT: masked LM, post-LN. OPT: causal LM, pre-LN. ViT: image classifier.",
                show: always,
            },
            Ctl {
                key: "layers",
                label: "layers",
                kind: Kind::Num("1"),
                help: "Transformer blocks.",
                show: always,
            },
            Ctl {
                key: "d",
                label: "d_model",
                kind: Kind::Num("8"),
                help: "Hidden size; must divide by heads.",
                show: always,
            },
            Ctl {
                key: "heads",
                label: "heads",
                kind: Kind::Num("1"),
                help: "More heads = more heads that may want to do nothing.",
                show: always,
            },
            Ctl {
                key: "ffn",
                label: "d_ff",
                kind: Kind::Num("8"),
                help: "FFN width.",
                show: always,
            },
            Ctl {
                key: "seq",
                label: "sequence length",
                kind: Kind::Num("1"),
                help: "Tokens per sequence.",
                show: text_model,
            },
            Ctl {
                key: "img",
                label: "image size",
                kind: Kind::Num("1"),
                help: "Synthetic image side in pixels.",
                show: vit,
            },
            Ctl {
                key: "patch",
                label: "patch",
                kind: Kind::Num("1"),
                help: "Patch side; must divide the image.",
                show: vit,
            },
            Ctl {
                key: "classes",
                label: "classes",
                kind: Kind::Num("1"),
                help: "Shape classes.",
                show: vit,
            },
            Ctl {
                key: "patch_ln",
                label: "LN after patch embedding",
                kind: Kind::Check,
                help: "The paper's ViT setting.",
                show: vit,
            },
        ],
    ),
    (
        "Attention",
        &[
            Ctl {
                key: "attn",
                label: "variant",
                kind: Kind::Select,
                help: "clipped: clip((ζ−γ)·softmax+γ, 0, 1). gated: sigmoid gate per head and token.",
                show: always,
            },
            Ctl {
                key: "alpha",
                label: "α (γ = −α/T)",
                kind: Kind::Num("0.5"),
                help: "Sets γ from the sequence length, ζ = 1. 'none' to use γ directly.",
                show: clipped,
            },
            Ctl {
                key: "gamma",
                label: "γ (stretch below 0)",
                kind: Kind::Num("0.005"),
                help: "Negative: lets softmax reach exact zeros.",
                show: clipped_gz,
            },
            Ctl {
                key: "zeta",
                label: "ζ (stretch above 1)",
                kind: Kind::Num("0.01"),
                help: "Above 1 lets it reach exact ones.",
                show: clipped_gz,
            },
            Ctl {
                key: "gamma_warmup",
                label: "γ warm-up steps",
                kind: Kind::Num("10"),
                help: "γ ramps from 0 over these steps, so α ≥ 1 does not clip a fresh model's uniform attention to zero. 0 = the paper's fixed γ.",
                show: clipped,
            },
            Ctl {
                key: "gate",
                label: "gate",
                kind: Kind::Select,
                help: "linear: one small Linear per head (the paper's default).",
                show: gated,
            },
            Ctl {
                key: "pi",
                label: "π_init",
                kind: Kind::Num("0.05"),
                help: "Initial gate probability.",
                show: gated,
            },
        ],
    ),
    (
        "Training",
        &[
            Ctl {
                key: "steps",
                label: "steps",
                kind: Kind::Num("50"),
                help: "Training steps.",
                show: always,
            },
            Ctl {
                key: "batch",
                label: "batch",
                kind: Kind::Num("1"),
                help: "Sequences per step.",
                show: always,
            },
            Ctl {
                key: "lr",
                label: "learning rate",
                kind: Kind::Num("0.0001"),
                help: "Peak AdamW learning rate.",
                show: always,
            },
            Ctl {
                key: "warmup",
                label: "warm-up steps",
                kind: Kind::Num("10"),
                help: "Linear warm-up, then the schedule below.",
                show: always,
            },
            Ctl {
                key: "sched",
                label: "after warm-up",
                kind: Kind::Select,
                help: "linear: decay to 0 (the paper). const: hold the rate, as sink studies train.",
                show: always,
            },
            Ctl {
                key: "wd",
                label: "weight decay",
                kind: Kind::Num("0.01"),
                help: "Decoupled (AdamW); not on biases or LayerNorm.",
                show: always,
            },
            Ctl {
                key: "ln_wd",
                label: "decay LayerNorm γ",
                kind: Kind::Check,
                help: "The paper's OPT recipe decays LayerNorm weights too (its Table 6).",
                show: always,
            },
            Ctl {
                key: "b2",
                label: "Adam β₂",
                kind: Kind::Num("0.001"),
                help: "",
                show: always,
            },
            Ctl {
                key: "clip",
                label: "grad-norm clip",
                kind: Kind::Num("0.1"),
                help: "0 = off.",
                show: always,
            },
            Ctl {
                key: "dropout",
                label: "dropout",
                kind: Kind::Num("0.05"),
                help: "Training dropout (the paper: 0.1); masks come from the seed.",
                show: always,
            },
            Ctl {
                key: "init_std",
                label: "init σ",
                kind: Kind::Num("0.005"),
                help: "N(0, σ) for embeddings, FFNs.",
                show: always,
            },
            Ctl {
                key: "mask",
                label: "mask rate",
                kind: Kind::Num("0.05"),
                help: "BERT's masked-token fraction.",
                show: bert,
            },
            Ctl {
                key: "seed",
                label: "seed",
                kind: Kind::Num("1"),
                help: "One seed → data, init, masking and batch order.",
                show: always,
            },
            Ctl {
                key: "bb_k",
                label: "BB triggers k",
                kind: Kind::Num("1"),
                help: "Bigram-Backcopy: the k most frequent characters trigger a copy.",
                show: bigram_backcopy,
            },
            Ctl {
                key: "bos",
                label: "fixed [BOS] first",
                kind: Kind::Check,
                help: "Off: rows start mid-text, as in the paper's OPT, so no free sink token.",
                show: opt,
            },
            Ctl {
                key: "eval_every",
                label: "evaluate every",
                kind: Kind::Num("10"),
                help: "Steps between held-out evaluations.",
                show: always,
            },
        ],
    ),
];

/// The presets live in core so that `qtlab presets` and `qtlab experiment --preset` run the
/// very same fragments; picking one replaces every setting at once and starts afresh.
#[component]
pub fn PresetPicker(ctx: Ctx) -> impl IntoView {
    view! {
        <fieldset class="group"><legend>"Presets"</legend>
            <select id="preset" aria-label="preset" prop:value=move || ctx.app.with(current_preset) on:change=move |ev| {
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
            <p class="hint" id="paper-scale" title=paper_scale_title()>
                "Paper-scale runs ("{paper_scale_ids()}") take days on GPUs: run them with the "
                <code>"qtlab"</code>" CLI (docs/scale-out.md)."
            </p>
        </fieldset>
    }
}

/// The paper-scale presets' ids, which the app names but does not run.
fn paper_scale_ids() -> String {
    PAPER_PRESETS
        .iter()
        .map(|p| p.id)
        .collect::<Vec<_>>()
        .join(", ")
}

fn paper_scale_title() -> String {
    PAPER_PRESETS
        .iter()
        .map(|p| {
            format!(
                "qtlab train --preset {} --devices … --checkpoint run.ckpt: {}",
                p.id, p.name
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The preset whose run is on screen, or "" once a setting differs from every preset: the menu
/// names what the user is looking at (an empty link opens the first preset).
fn current_preset(a: &AppState) -> &'static str {
    PRESETS
        .iter()
        .find(|p| {
            let (s, _) = AppState::from_url(p.fragment);
            s.spec == a.spec && s.compare == a.compare
        })
        .map_or("", |p| p.name)
}

/// One spec key as a labelled input. It hides where the key means nothing for the chosen model
/// or variant, so the panel offers only what changes the run; a rejected value leaves the one
/// in force showing and says why in the notes.
#[component]
pub fn Control(
    ctx: Ctx,
    /// The row of [`GROUPS`] this input edits.
    ctl: &'static Ctl,
) -> impl IntoView {
    let key = ctl.key;
    let value = move || ctx.app.with(|a| a.spec.get(key).unwrap_or_default());
    let on_change = move |v: String| {
        let mut a = ctx.app.get_untracked();
        let res = a
            .spec
            .set(key, &v)
            .and_then(|_| a.spec.validate_for_browser());
        match res {
            Ok(()) => {
                ctx.notes.set(a.spec.warnings());
                ctx.app.set(a);
                reset(&ctx);
            }
            Err(e) => {
                ctx.notes.set(vec![e.to_string()]);
                // Re-render so the control shows the value still in force.
                ctx.app.update(|_| {});
            }
        }
    };
    let id = format!("ctl-{key}");
    let input = match &ctl.kind {
        Kind::Select => view! {
            <select id=id.clone() prop:value=value on:change=move |ev| on_change(event_target_value(&ev))>
                {choices(key).iter().map(|o| view! { <option value=*o prop:selected=move || value() == *o>{*o}</option> }).collect_view()}
            </select>
        }
        .into_any(),
        Kind::Num(step) => view! {
            <input id=id.clone() type="text" inputmode="decimal" data-step=*step prop:value=value
                on:change=move |ev| on_change(event_target_value(&ev)) />
        }
        .into_any(),
        Kind::Check => view! {
            <input id=id.clone() type="checkbox" prop:checked=move || value() == "true"
                on:change=move |ev| {
                    let on = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()).map(|i| i.checked()).unwrap_or(false);
                    on_change(on.to_string())
                } />
        }
        .into_any(),
    };
    let show = ctl.show;
    view! {
        <label class="ctl" for=id title=tooltip(ctl) style:display=move || if ctx.app.with(|a| show(&a.spec)) { "" } else { "none" }>
            <span>{ctl.label}</span>
            {input}
        </label>
    }
}

/// The variants trained beside the chosen one: the comparison is the point of the page, so
/// each checkbox carries its lane's chart colour.
#[component]
pub fn CompareBox(ctx: Ctx) -> impl IntoView {
    // Every kind the spec knows, in its canonical order, so a new variant gets a checkbox.
    let kinds = AttnKind::ALL.iter().copied();
    view! {
        <fieldset class="group">
            <legend>"Compare with"</legend>
            {kinds.map(|k| {
                let id = format!("cmp-{k}");
                let for_id = id.clone();
                view! {
                    <label class="chk" for=for_id>
                        <input id=id type="checkbox"
                            prop:checked=move || ctx.app.with(|a| a.compare.contains(&k))
                            on:change=move |_| {
                                ctx.app.update(|a| {
                                    if let Some(p) = a.compare.iter().position(|x| *x == k) { a.compare.remove(p); } else { a.compare.push(k); }
                                });
                                reset(&ctx);
                            } />
                        <span style:color=lanes::color(&k.to_string())>"■ "</span>{k.to_string()}
                    </label>
                }
            }).collect_view()}
            <p class="hint">"Same data, init seed and batches; only attention differs."</p>
        </fieldset>
    }
}

/// What the text models train on: the built-in corpora or the user's own file, checked against
/// the model at upload rather than at Run. Hidden for ViT, which draws its own images.
#[component]
pub fn DataBox(ctx: Ctx) -> impl IntoView {
    let cap_mb = qtlab_core::data::text_file::MAX_FILE_BYTES / (1024 * 1024);
    let on_upload = move |ev: leptos::ev::Event| {
        let Some(file) = input_file(&ev) else { return };
        let name = file.name();
        let size = file.size();
        if size > qtlab_core::data::text_file::MAX_FILE_BYTES as f64 {
            ctx.notes.set(vec![format!(
                "`{}` is {:.0} MB; the limit is {cap_mb} MB.",
                name,
                size / 1048576.0
            )]);
            return;
        }
        spawn_local(async move {
            let bytes = match read_file(file).await {
                Ok(b) => b,
                Err(e) => {
                    ctx.notes.set(vec![e]);
                    return;
                }
            };
            match qtlab_core::data::text_file::text_from_bytes(&name, &bytes) {
                Ok(text) => {
                    let mut a = ctx.app.get_untracked();
                    // An upload under Bigram-Backcopy becomes the task's source text.
                    let prefix = if a.spec.data.is_bigram_backcopy() {
                        "bb:file:"
                    } else {
                        "file:"
                    };
                    let set = a
                        .spec
                        .set("data", &format!("{prefix}{name}"))
                        .and_then(|_| a.spec.validate_for_browser());
                    match set {
                        Ok(()) => {
                            with_engine(|e| {
                                e.upload = Some(runner::Upload {
                                    name: name.clone(),
                                    text,
                                })
                            });
                            // Validate the corpus against the model now, not at Run.
                            match runner::load_data(&a.spec) {
                                Ok(_) => {
                                    ctx.notes.set(vec![format!(
                                        "Loaded `{name}`. Runs now train on it."
                                    )]);
                                    ctx.app.set(a);
                                    reset(&ctx);
                                }
                                Err(e) => {
                                    with_engine(|e| e.upload = None);
                                    ctx.notes.set(vec![e]);
                                }
                            }
                        }
                        Err(e) => ctx.notes.set(vec![e.to_string()]),
                    }
                }
                Err(e) => ctx.notes.set(vec![e.to_string()]),
            }
        });
    };
    // A built-in corpus: valid for every text model, so setting it cannot fail.
    let use_data = move |source: &str| {
        let mut a = ctx.app.get_untracked();
        let _ = a.spec.set("data", source);
        ctx.app.set(a);
        reset(&ctx);
    };
    view! {
        <fieldset class="group" style:display=move || if ctx.app.with(|a| a.spec.model == ModelKind::Vit) { "none" } else { "" }>
            <legend>"Data"</legend>
            <p class="hint" id="data-now">{move || ctx.app.with(|a| match &a.spec.data {
                qtlab_core::spec::DataSource::Synthetic => "Built-in synthetic English-like corpus.".to_string(),
                qtlab_core::spec::DataSource::Shakespeare => "tinyshakespeare: 1.1 MB of Shakespeare's plays, the corpus of the paper-style tables in docs/results.md.".to_string(),
                qtlab_core::spec::DataSource::File(n) => format!("Your file: {n}"),
                qtlab_core::spec::DataSource::BigramBackcopy(inner) => format!(
                    "Bigram-Backcopy on {}: characters follow its bigrams, except that after one of the {} most frequent the next copies the one before it. Attention helps only there, so heads must learn to do nothing elsewhere.",
                    match inner.as_ref() {
                        qtlab_core::spec::DataSource::File(n) => format!("your file {n}"),
                        other => other.to_string(),
                    },
                    a.spec.bb_k
                ),
            })}</p>
            <label class="ctl" for="upload"><span>{format!("Upload text (UTF-8, ≤ {cap_mb} MB)")}</span>
                <input id="upload" type="file" accept=".txt,text/plain" on:change=on_upload /></label>
            <button class="small" on:click=move |_| use_data("synthetic")>"Use the built-in corpus"</button>
            <button class="small" id="use-shakespeare" on:click=move |_| use_data("tinyshakespeare")>"Use tinyshakespeare"</button>
            <button class="small" id="use-bb" on:click=move |_| use_data("bb")>"Use Bigram-Backcopy (a no-op task)"</button>
        </fieldset>
    }
}

/// How Quantize simulates the integer grids. These settings are not part of the run spec, so
/// they go through the link's own parser and, unlike the controls above, keep the trained runs.
#[component]
pub fn QuantBox(
    /// The page's settings, link included.
    app: RwSignal<AppState>,
    /// Where a rejected value is explained.
    notes: RwSignal<Vec<String>>,
) -> impl IntoView {
    let set_app = move |key: &'static str, v: String| {
        let cur = app.get_untracked();
        let url = format!(
            "{}&{key}={v}",
            cur.to_url()
                .split('&')
                .filter(|kv| !kv.starts_with(&format!("{key}=")))
                .collect::<Vec<_>>()
                .join("&")
        );
        let (next, errors) = AppState::from_url(&url);
        if errors.is_empty() {
            app.set(next);
        } else {
            notes.set(errors.iter().map(|e| e.to_string()).collect());
            app.update(|_| {});
        }
    };
    view! {
        <fieldset class="group">
            <legend>"Quantization"</legend>
            <label class="ctl" for="q-points" title="Bit-width points, e.g. w8a8,w8a6,w8a4,w6a6,w4a8">
                <span>"bit widths"</span>
                <input id="q-points" type="text" prop:value=move || app.with(|a| a.quant_points.iter().map(|(w, x)| format!("w{w}a{x}")).collect::<Vec<_>>().join(","))
                    on:change=move |ev| set_app("q", event_target_value(&ev)) />
            </label>
            <label class="ctl" for="q-ar" title="running_minmax (paper), current_minmax, percentile:99.99">
                <span>"activation range"</span>
                <select id="q-ar" prop:value=move || app.with(|a| a.act_range.clone()) on:change=move |ev| set_app("ar", event_target_value(&ev))>
                    <option value="running_minmax">"running min-max"</option>
                    <option value="current_minmax">"current min-max"</option>
                    <option value="percentile:99.99">"percentile 99.99"</option>
                    <option value="percentile:99.999">"percentile 99.999"</option>
                </select>
            </label>
            <label class="ctl" for="q-wr" title="min-max (paper's BERT) or the 100-point MSE grid">
                <span>"weight range"</span>
                <select id="q-wr" prop:value=move || app.with(|a| a.weight_range.map_or("auto", WeightRange::as_str))
                    on:change=move |ev| set_app("wr", event_target_value(&ev))>
                    <option value="auto">"paper's (MSE for OPT)"</option>
                    {WeightRange::ALL.iter().map(|w| view! { <option value=w.as_str()>{weight_range_label(*w)}</option> }).collect_view()}
                </select>
            </label>
            <label class="ctl" for="q-wg" title="one weight grid per tensor (paper) or per output channel">
                <span>"weight grid"</span>
                <select id="q-wg" prop:value=move || app.with(|a| if a.per_channel { "channel".to_string() } else { "tensor".to_string() })
                    on:change=move |ev| set_app("wg", event_target_value(&ev))>
                    <option value="tensor">"per tensor"</option>
                    <option value="channel">"per channel"</option>
                </select>
            </label>
        </fieldset>
    }
}

/// The weight-range menu's words for each spelling in [`WeightRange::ALL`]; the match has no
/// wildcard, so a new range cannot reach the menu without a label.
fn weight_range_label(w: WeightRange) -> &'static str {
    match w {
        WeightRange::MinMax => "min-max",
        WeightRange::Mse => "MSE grid",
    }
}

/// A menu key's spellings, from the spec's key table (the enum's `NAMES`), so the menu offers
/// exactly what the link parser accepts.
fn choices(key: &str) -> &'static [&'static str] {
    match spec::key(key).map(|k| k.allowed) {
        Some(Allowed::Choice(names)) => names,
        _ => &[],
    }
}

/// The control's hover text: what it does, then the allowed values and the default as the key
/// table states them (so a range is written in one place, not copied into the page).
fn tooltip(ctl: &Ctl) -> String {
    match spec::key(ctl.key) {
        Some(k) => {
            let sep = if ctl.help.is_empty() { "" } else { " " };
            format!(
                "{}{sep}Allowed: {}; default {}.",
                ctl.help,
                k.allowed_text(),
                k.default
            )
        }
        None => ctl.help.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_is_a_spec_key_of_its_kind_and_shows_the_tables_range() {
        for (_, ctls) in GROUPS {
            for c in ctls.iter() {
                let k = spec::key(c.key)
                    .unwrap_or_else(|| panic!("control `{}` is not a spec key", c.key));
                match c.kind {
                    Kind::Select => assert!(
                        matches!(k.allowed, Allowed::Choice(n) if !n.is_empty()),
                        "`{}` is a menu but the table has no choices for it",
                        c.key
                    ),
                    Kind::Check => assert_eq!(k.allowed, Allowed::Flag, "`{}`", c.key),
                    Kind::Num(_) => assert!(
                        !matches!(k.allowed, Allowed::Choice(_) | Allowed::Flag),
                        "`{}` is a number box for a key that is not a number",
                        c.key
                    ),
                }
                let tip = tooltip(c);
                assert!(tip.contains(&k.allowed_text()), "{tip}");
                assert!(tip.contains(&format!("default {}", k.default)), "{tip}");
            }
        }
        assert_eq!(choices("model"), ModelKind::NAMES);
        assert_eq!(choices("attn"), AttnKind::NAMES);
    }
}
