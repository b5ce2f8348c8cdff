//! The run driver: cadences, divergence, and that the events rebuild the run's own record.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use burn::tensor::Device;
use qtlab_core::BackendKind;
use qtlab_core::dataset::RunData;
use qtlab_core::driver::{Run, RunOpts};
use qtlab_core::record::{Event, RunRecord};
use qtlab_core::spec::RunSpec;

const TINY: &str = "model=bert&layers=1&d=16&heads=2&ffn=32&seq=8&batch=2&eval_batches=2";

fn run(extra: &str, stats_every: usize) -> Run {
    let s = RunSpec::parse(&format!("{TINY}&{extra}")).unwrap();
    let data = RunData::load(&s, None).unwrap();
    let opts = RunOpts {
        stats_every,
        ..RunOpts::native(BackendKind::Cpu, 1)
    };
    Run::new(s, data, &Device::flex(), opts).unwrap()
}

/// Drives `run` to the end, applying every event to a copy of its starting record.
fn drive(run: &mut Run) -> (Vec<Event>, RunRecord) {
    let mut mirror = run.record().clone();
    let mut events = Vec::new();
    run.run_to_end(|ev| {
        mirror.apply(ev);
        events.push(ev.clone());
    });
    (events, mirror)
}

fn json(r: &RunRecord) -> serde_json::Value {
    serde_json::to_value(r).unwrap()
}

/// The record without its timings, which differ between any two runs.
fn untimed(r: &RunRecord) -> serde_json::Value {
    let mut r = r.clone();
    (r.wall_seconds, r.ms_per_step, r.first_step_ms) = (0.0, 0.0, 0.0);
    json(&r)
}

#[test]
fn cadences_and_the_events_rebuild_the_runs_record() {
    let mut r = run("steps=6&eval_every=3", 5);
    let (events, mirror) = drive(&mut r);
    assert!(r.finished());
    assert!(matches!(events.last(), Some(Event::Finished { .. })));
    assert_eq!(json(&mirror), json(r.record()));
    let rec = r.finish();
    assert_eq!(rec.step, 6);
    assert_eq!(rec.losses.len(), 6);
    assert_eq!(rec.grad_norms.len(), 6);
    let inf: Vec<f64> = rec.inf_norm_curve.iter().map(|(s, _)| *s).collect();
    assert_eq!(inf, [0.0, 5.0], "every 5 steps and the last");
    let evals: Vec<usize> = rec.evals.iter().map(|e| e.step).collect();
    assert_eq!(evals, [3, 6]);
    assert_eq!(rec.eval.as_ref().map(|e| e.step), Some(6));
    assert_eq!(rec.inspection.as_ref().map(|i| i.step), Some(6));
    assert!(rec.mechanism.is_some());
    assert!(rec.error.is_none());
    // The record reads back, and the app's records from before (`inf`) still do.
    let back: RunRecord = serde_json::from_value(json(&rec)).unwrap();
    assert_eq!(json(&back), json(&rec));
    let mut old = json(&rec);
    let curve = old["inf_norm_curve"].take();
    old.as_object_mut().unwrap().remove("inf_norm_curve");
    old["inf"] = curve;
    let back: RunRecord = serde_json::from_value(old).unwrap();
    assert_eq!(back.inf_norm_curve, rec.inf_norm_curve);
}

#[test]
fn stats_every_five_plus_the_last_and_zero_turns_them_off() {
    let (_, rec) = drive(&mut run("steps=12&eval_every=0", 5));
    let inf: Vec<f64> = rec.inf_norm_curve.iter().map(|(s, _)| *s).collect();
    assert_eq!(inf, [0.0, 5.0, 10.0, 11.0]);
    let evals: Vec<usize> = rec.evals.iter().map(|e| e.step).collect();
    assert_eq!(evals, [12], "without eval_every, one evaluation at the end");
    let (_, rec) = drive(&mut run("steps=4&eval_every=0", 0));
    assert!(rec.inf_norm_curve.is_empty());
}

#[test]
fn divergence_stops_the_run_and_keeps_its_curves() {
    let mut r = run("steps=6&eval_every=3", 5);
    let mut all = Vec::new();
    while !r.finished() {
        if r.step() == 3 {
            r.map_model(qtlab_core::train::poison_weights);
        }
        all.extend(r.advance());
    }
    assert!(r.advance().is_empty(), "a finished run does nothing");
    let rec = r.finish();
    assert_eq!(rec.losses.len(), 3, "the diverged step has no loss");
    assert!(rec.losses.iter().all(|(_, l)| l.is_finite()));
    assert_eq!(rec.step, 3);
    assert_eq!(rec.evals.len(), 1);
    let err = rec.error.unwrap_or_default();
    assert!(err.contains("diverged at step 3"), "{err}");
    let failure = all.iter().find_map(|e| match e {
        Event::Failed(f) => Some(f.clone()),
        _ => None,
    });
    let failure = failure.expect("a Failed event");
    assert!(!failure.device);
    assert_eq!(failure.diverged.map(|(s, _)| s), Some(3));
    assert!(matches!(all.last(), Some(Event::Finished { .. })));
}

/// Polls a future whose readbacks resolve at once (the CPU backend's do), as the browser's
/// executor would, without one.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the CPU readbacks did not resolve");
}

#[test]
fn advance_async_gives_the_same_run_as_advance() {
    let (_, sync) = drive(&mut run("steps=6&eval_every=3", 5));
    let mut r = run("steps=6&eval_every=3", 5);
    let mut mirror = r.record().clone();
    while !r.finished() {
        for ev in ready(r.advance_async()) {
            mirror.apply(&ev);
        }
    }
    assert_eq!(json(&mirror), json(r.record()));
    assert_eq!(untimed(&mirror), untimed(&sync));
}

#[test]
fn a_bad_spec_is_an_error_not_a_panic() {
    let mut s = RunSpec::parse(TINY).unwrap();
    s.heads = 3;
    let data = RunData::load(&RunSpec::parse(TINY).unwrap(), None).unwrap();
    assert!(
        Run::new(
            s,
            data,
            &Device::flex(),
            RunOpts::native(BackendKind::Cpu, 1)
        )
        .is_err()
    );
}
