//! The page's state: its signals ([`Ctx`]), where it is in its life ([`Phase`]), and the
//! actions on the shown runs that are not training (reset, save, restore, import).

use leptos::prelude::*;
use qtlab_core::url::AppState;

use crate::browser::{self, StoreError};
use crate::charts::esc;
use crate::lanes::{self, AppRecord, with_lanes};
use crate::runner::with_engine;

/// Where the app is in its life.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    Probing,
    Idle,
    /// Building models and compiling shaders for the first step.
    Warming(String),
    Running,
    Paused,
    Done,
    Quantizing(String),
}

#[derive(Clone, Copy)]
pub struct Ctx {
    pub app: RwSignal<AppState>,
    pub phase: RwSignal<Phase>,
    pub running: RwSignal<bool>,
    pub version: RwSignal<u64>,
    pub banner: RwSignal<Option<(String, String)>>,
    pub notes: RwSignal<Vec<String>>,
    pub backend: RwSignal<String>,
    pub sel_layer: RwSignal<usize>,
    pub sel_lane: RwSignal<usize>,
    pub sel_point: RwSignal<usize>,
    pub help: RwSignal<bool>,
    pub copied: RwSignal<bool>,
}

/// Tells the charts the lanes changed (they live outside the reactive graph).
pub fn bump(ctx: &Ctx) {
    ctx.version.update(|v| *v += 1);
}

/// Stops any loop, drops the runs and clears the charts.
pub fn reset(ctx: &Ctx) {
    ctx.running.set(false);
    with_engine(|e| {
        e.generation += 1;
        e.lanes.clear();
    });
    with_lanes(|l| l.clear());
    ctx.phase.set(Phase::Idle);
    bump(ctx);
}

const SAVED_KEY: &str = "qtlab.last_run";

/// Keeps the last finished run in browser storage so a reload does not lose it; a full storage
/// is reported, not silent.
pub fn save_finished(ctx: &Ctx) {
    let rec = current_record(ctx);
    let Ok(json) = serde_json::to_string(&rec) else {
        return;
    };
    match browser::store(SAVED_KEY, &json) {
        Ok(()) => {}
        Err(StoreError::Full) => ctx.notes.update(|n| {
            n.push("Browser storage is full: this run was not saved for the next visit. Export it instead.".into())
        }),
        Err(StoreError::Unavailable) => ctx.notes.update(|n| {
            n.push("Browser storage is unavailable: runs are not kept across reloads.".into())
        }),
    }
}

/// A finished run from an earlier visit with the same link comes back.
pub fn restore_saved(ctx: &Ctx) {
    if let Some(json) = browser::stored(SAVED_KEY)
        && let Ok(rec) = lanes::parse_record(json.as_bytes())
        && rec.url == ctx.app.get_untracked().to_url()
    {
        with_lanes(|l| *l = rec.lanes);
        ctx.phase.set(Phase::Done);
        ctx.notes.update(|n| {
            n.push("Restored the finished run saved in this browser for this link.".into())
        });
        bump(ctx);
    }
}

pub fn current_record(ctx: &Ctx) -> AppRecord {
    AppRecord {
        qtlab: 1,
        url: ctx.app.get_untracked().to_url(),
        backend: ctx.backend.get_untracked(),
        lanes: with_lanes(|l| l.clone()),
    }
}

/// Shows an imported record: its settings in the controls, its curves in the charts.
pub fn apply_record(ctx: &Ctx, rec: AppRecord) {
    reset(ctx);
    let (state, errors) = AppState::from_url(&rec.url);
    ctx.app.set(state);
    browser::replace_url(&ctx.app.get_untracked().to_url());
    let mut notes = vec![format!(
        "Viewing an imported record ({} run(s), trained on {}). Run trains it again from scratch.",
        rec.lanes.len(),
        esc(&rec.backend)
    )];
    notes.extend(errors.iter().map(|e| e.to_string()));
    ctx.notes.set(notes);
    with_lanes(|l| *l = rec.lanes);
    ctx.phase.set(Phase::Done);
    bump(ctx);
}
