//! Model shapes, causality, determinism and a short run whose loss falls (CPU backend).

use burn::tensor::{Device, Int, Tensor, TensorData};
use qtlab_core::dataset::RunData;
use qtlab_core::init::Init;
use qtlab_core::model::{Model, ModelInput};
use qtlab_core::rng::{Rng, Stream};
use qtlab_core::spec::{AttnKind, RunSpec};
use qtlab_core::taps::TapKind;
use qtlab_core::train::Trainer;

fn spec(text: &str) -> RunSpec {
    RunSpec::parse(text).unwrap()
}

fn ids(v: Vec<i32>, b: usize, t: usize, d: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(v, [b, t]), d)
}

#[test]
fn shapes_and_taps_for_every_model_and_variant() {
    let d = Device::flex();
    for model in ["bert", "opt", "vit"] {
        for attn in ["vanilla", "clipped", "gated", "softmax1", "sink"] {
            let s = spec(&format!(
                "model={model}&attn={attn}&layers=2&d=16&heads=2&ffn=32&seq=8&batch=2&img=8&patch=4&classes=3"
            ));
            let mut init = Init::new(Rng::stream(0, Stream::Init));
            let m = Model::init(&s, 20, &mut init, &d);
            let (input, rows, cols, t) = match model {
                "vit" => (ModelInput::Patches(Tensor::zeros([2, 4, 16], &d)), 2, 3, 5),
                _ => (
                    ModelInput::Tokens(ids((0..16).map(|i| i % 20).collect(), 2, 8, &d)),
                    16,
                    20,
                    8,
                ),
            };
            let out = m.forward(input);
            assert_eq!(out.logits.dims(), [rows, cols], "{model}/{attn}");
            let per_layer = if model == "bert" { 2 } else { 5 };
            let extra = if model == "bert" { 0 } else { 1 };
            assert_eq!(
                out.taps.tracked.len(),
                2 * per_layer + extra,
                "{model}/{attn}"
            );
            assert!(
                out.taps
                    .tracked
                    .iter()
                    .all(|tap| tap.x.dims() == [2, t, 16])
            );
            assert_eq!(out.taps.probs.len(), 2);
            assert_eq!(out.taps.probs[0].dims(), [2, 2, t, t]);
            assert_eq!(out.taps.gates[0].is_some(), attn.starts_with("gated"));
            let headline = m.headline_kind();
            assert_eq!(
                headline,
                if model == "bert" {
                    TapKind::FfnOut
                } else {
                    TapKind::BlockOut
                }
            );
        }
    }
}

#[test]
fn opt_is_causal_changing_a_future_token_never_changes_an_earlier_logit() {
    let d = Device::flex();
    for attn in ["vanilla", "gated", "clipped", "sink"] {
        let s = spec(&format!(
            "model=opt&attn={attn}&layers=2&d=16&heads=2&ffn=32&seq=8&batch=1"
        ));
        let m = Model::init(&s, 12, &mut Init::new(Rng::new(5)), &d);
        let a: Vec<i32> = vec![5, 6, 7, 8, 9, 10, 11, 6];
        let mut b = a.clone();
        b[5] = 3;
        let la = m
            .forward(ModelInput::Tokens(ids(a, 1, 8, &d)))
            .logits
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let lb = m
            .forward(ModelInput::Tokens(ids(b, 1, 8, &d)))
            .logits
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let v = 12;
        assert_eq!(
            &la[..5 * v],
            &lb[..5 * v],
            "{attn}: positions before 5 must not change"
        );
        assert_ne!(
            &la[5 * v..6 * v],
            &lb[5 * v..6 * v],
            "{attn}: position 5 must change"
        );
    }
    // BERT is bidirectional: the same change does move earlier positions.
    let s = spec("model=bert&layers=1&d=16&heads=2&ffn=32&seq=8&batch=1");
    let m = Model::init(&s, 12, &mut Init::new(Rng::new(5)), &d);
    let a: Vec<i32> = vec![5, 6, 7, 8, 9, 10, 11, 6];
    let mut b = a.clone();
    b[5] = 3;
    let la = m
        .forward(ModelInput::Tokens(ids(a, 1, 8, &d)))
        .logits
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let lb = m
        .forward(ModelInput::Tokens(ids(b, 1, 8, &d)))
        .logits
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    assert_ne!(&la[..12], &lb[..12]);
}

fn run_losses(s: &RunSpec, steps: usize) -> Vec<f64> {
    let data = RunData::load(s, None).unwrap();
    let mut tr = Trainer::new(s.clone(), data, &Device::flex());
    (0..steps)
        .map(|_| tr.step_sync(false).unwrap().loss)
        .collect()
}

#[test]
fn same_spec_gives_a_bit_identical_loss_curve() {
    for text in [
        "model=bert&attn=gated&layers=1&d=32&heads=2&ffn=64&seq=16&batch=4&steps=50&seed=3",
        "model=opt&attn=clipped&layers=1&d=32&heads=2&ffn=64&seq=16&batch=4&steps=50&seed=3",
        "model=vit&attn=sink&layers=1&d=32&heads=2&ffn=64&img=16&patch=4&batch=4&steps=50&seed=3",
    ] {
        let s = spec(text);
        let a = run_losses(&s, 6);
        let b = run_losses(&s, 6);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{text}");
        let mut other = s.clone();
        other.seed = 4;
        assert_ne!(
            bits(&a),
            bits(&run_losses(&other, 6)),
            "another seed must differ: {text}"
        );
    }
}

#[test]
fn a_short_run_learns() {
    for (text, steps) in [
        (
            "model=bert&layers=2&d=32&heads=2&ffn=64&seq=32&batch=16&lr=3e-3&warmup=10&steps=120",
            120,
        ),
        (
            "model=opt&attn=gated&layers=2&d=32&heads=2&ffn=64&seq=32&batch=16&lr=3e-3&warmup=10&steps=80",
            80,
        ),
        (
            "model=vit&attn=clipped&layers=2&d=32&heads=2&ffn=64&img=16&patch=4&batch=32&lr=3e-3&warmup=10&steps=120",
            120,
        ),
    ] {
        let s = spec(text);
        let l = run_losses(&s, steps);
        let head: f64 = l[..5].iter().sum::<f64>() / 5.0;
        let tail: f64 = l[steps - 5..].iter().sum::<f64>() / 5.0;
        assert!(tail < 0.85 * head, "{text}: loss {head:.3} → {tail:.3}");
    }
}

#[test]
fn evaluation_reports_the_papers_metrics() {
    let s = spec(
        "model=opt&attn=gated&layers=2&d=32&heads=2&ffn=64&seq=16&batch=4&steps=5&eval_batches=2",
    );
    let data = RunData::load(&s, None).unwrap();
    let mut tr = Trainer::new(s.clone(), data, &Device::flex());
    tr.step_sync(false).unwrap();
    let e = tr.evaluate().unwrap();
    assert_eq!(e.outliers.taps.len(), 2 * 5 + 1);
    let max_block = e
        .outliers
        .taps
        .iter()
        .filter(|t| t.kind == "block_out")
        .map(|t| t.inf_norm)
        .fold(0.0, f64::max);
    assert_eq!(e.outliers.max_inf_norm, max_block);
    let avg = e.outliers.taps.iter().map(|t| t.kurtosis).sum::<f64>() / 11.0;
    assert!((e.outliers.avg_kurtosis - avg).abs() < 1e-9);
    assert!(e.ppl.unwrap() > 1.0 && e.accuracy.is_none());
    assert_eq!(e.outliers.heads.len(), 2);
    let h = &e.outliers.heads[0];
    assert_eq!(h.first_mass.len(), 2);
    assert!(
        h.gate_mean
            .as_ref()
            .unwrap()
            .iter()
            .all(|&g| g > 0.0 && g < 1.0)
    );
    // Causal: query 0 sees only the first token, so first-token mass ≥ 1/T.
    assert!(h.first_mass.iter().all(|&m| m >= 1.0 / 16.0 - 1e-6));
    // Evaluation is fixed: asking twice gives the same numbers.
    let e2 = tr.evaluate().unwrap();
    assert_eq!(e.loss.to_bits(), e2.loss.to_bits());
    let _ = AttnKind::Vanilla;
}

#[test]
fn weight_decay_spares_biases_and_layer_norms() {
    // Adam's first step moves every entry by exactly ±lr; decay would add −lr·wd·γ = −0.005
    // on top, pushing the entries with a downward step outside ±lr.
    let s = spec(
        "model=bert&layers=1&d=16&heads=2&ffn=32&seq=8&batch=2&wd=0.5&lr=1e-2&warmup=0&steps=10",
    );
    let data = RunData::load(&s, None).unwrap();
    let mut tr = Trainer::new(s, data, &Device::flex());
    tr.step_sync(false).unwrap();
    let Model::Bert(b) = tr.model() else { panic!() };
    let gamma = b
        .emb_ln
        .gamma
        .val()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    // Adam's first step moves each entry by at most lr (·1.0); decay would add −lr·wd·γ = −0.005.
    assert!(
        gamma.iter().all(|g| (g - 1.0).abs() <= 1e-2 + 1e-6),
        "{gamma:?}"
    );
}

#[test]
fn a_nan_in_the_weights_is_caught_within_one_step() {
    let s = spec("model=bert&layers=1&d=16&heads=2&ffn=32&seq=8&batch=2&steps=10");
    let data = RunData::load(&s, None).unwrap();
    let mut tr = Trainer::new(s, data, &Device::flex());
    assert!(tr.step_sync(false).is_ok());
    tr.map_model(qtlab_core::train::poison_weights);
    match tr.step_sync(false) {
        Err(qtlab_core::train::TrainError::Diverged { step, .. }) => assert_eq!(step, 1),
        other => panic!("expected divergence, got {:?}", other.map(|r| r.loss)),
    }
}

#[test]
fn alpha_sets_gamma_from_the_sequence_length_and_forces_zeta_one() {
    use qtlab_core::attention::{AttentionConfig, ScoreNorm};
    let s = spec("model=bert&attn=clipped&alpha=2&zeta=1.5&seq=64");
    let cfg = AttentionConfig::from_spec(&s, false);
    assert_eq!(
        cfg.norm,
        ScoreNorm::Clipped {
            gamma: -2.0 / 64.0,
            zeta: 1.0
        }
    );
    let s = spec("model=bert&attn=clipped&gamma=-0.02&zeta=1.5");
    assert_eq!(
        AttentionConfig::from_spec(&s, false).norm,
        ScoreNorm::Clipped {
            gamma: -0.02,
            zeta: 1.5
        }
    );
}

#[test]
fn data_parallel_shards_match_one_thread_and_are_deterministic() {
    for text in [
        "model=bert&attn=gated&layers=1&d=32&heads=2&ffn=64&seq=16&batch=5&steps=20&seed=8",
        "model=vit&attn=clipped&layers=1&d=32&heads=2&ffn=64&img=16&patch=4&batch=6&steps=20&seed=8",
    ] {
        let s = spec(text);
        let run = |threads: usize| {
            let mut tr = Trainer::new(s.clone(), RunData::load(&s, None).unwrap(), &Device::flex());
            tr.set_threads(threads);
            (0..5)
                .map(|_| {
                    let r = tr.step_sync(true).unwrap();
                    assert_eq!(r.kurtosis.len(), r.inf_norms.len());
                    assert!(r.kurtosis[0].is_finite() && r.kurtosis[0] > 0.0, "{r:?}");
                    (r.loss, r.grad_norm, r.inf_norms[0], r.kurtosis[0])
                })
                .collect::<Vec<_>>()
        };
        let one = run(1);
        let two = run(2);
        assert_eq!(two, run(2), "{text}: sharded runs must be bit-identical");
        for (a, b) in one.iter().zip(&two) {
            assert!(
                (a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-3 * a.1.max(1.0),
                "{text}: {one:?} vs {two:?}"
            );
            assert!(
                (a.2 - b.2).abs() < 1e-3 * a.2.max(1.0),
                "{text}: {one:?} vs {two:?}"
            );
            // The per-sequence rows of each shard are concatenated, then averaged on the host.
            assert!(
                (a.3 - b.3).abs() < 1e-3 * a.3.max(1.0),
                "{text}: {one:?} vs {two:?}"
            );
        }
        // Three shards of a batch of 5 or 6 exercise uneven splits.
        let three = run(3);
        assert!((three[4].0 - one[4].0).abs() < 1e-3, "{text}");
    }
}
