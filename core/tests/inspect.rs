//! The app's inspection (attention maps, gates, histograms) and the weight copy it quantizes with.

use burn::tensor::{Device, read_sync};
use qtlab_core::dataset::RunData;
use qtlab_core::inspect::{HIST_BINS, inspect, model_to_device};
use qtlab_core::ptq::calibrate::{QuantSettings, quantize_and_evaluate, quantize_model};
use qtlab_core::ptq::weights::WeightRange;
use qtlab_core::spec::RunSpec;
use qtlab_core::train::Trainer;

fn trainer(text: &str) -> Trainer {
    let spec = RunSpec::parse(text).unwrap();
    let data = RunData::load(&spec, None).unwrap();
    Trainer::new(spec, data, &Device::flex())
}

#[test]
fn attention_rows_sum_to_one_and_histograms_count_every_value() {
    let mut t = trainer("layers=2&d=32&heads=4&ffn=64&seq=12&batch=3&attn=gated&steps=3");
    for _ in 0..2 {
        t.step_sync(false).unwrap();
    }
    let ins = inspect(&t).unwrap();
    assert_eq!(ins.step, 2);
    assert_eq!(ins.heads, 4);
    assert_eq!(ins.tokens.len(), 12);
    assert_eq!(ins.attn.len(), 2);
    for layer in &ins.attn {
        assert_eq!(layer.len(), 4 * 12 * 12);
        for row in layer.chunks(12) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-4, "softmax row sums to {s}");
        }
    }
    // Gated: one gate per head and token, all probabilities.
    for g in &ins.gates {
        let g = g.as_ref().expect("gated attention has gates");
        assert_eq!(g.len(), 4 * 12);
        assert!(g.iter().all(|&p| p > 0.0 && p < 1.0));
    }
    assert_eq!(ins.hists.len(), 2);
    for h in &ins.hists {
        assert_eq!(h.counts.len(), HIST_BINS);
        assert_eq!(h.counts.iter().sum::<u64>(), 3 * 12 * 32, "{}", h.name);
        assert!(h.range > 0.0);
    }
}

#[test]
fn clipped_softmax_can_put_exact_zeros_in_the_attention_map() {
    let t = trainer("layers=1&d=16&heads=2&ffn=32&seq=8&batch=2&attn=clipped&gamma=-0.3");
    let ins = inspect(&t).unwrap();
    assert!(ins.gates.iter().all(Option::is_none));
    assert!(
        ins.attn[0].iter().any(|&p| p == 0.0),
        "γ = −0.3 at T = 8 clips"
    );
}

#[test]
fn weight_copy_gives_the_same_model_and_the_same_quantization() {
    let mut t =
        trainer("layers=1&d=16&heads=2&ffn=32&seq=8&batch=4&steps=3&eval_batches=2&attn=gated");
    for _ in 0..3 {
        t.step_sync(false).unwrap();
    }
    let copy = read_sync(model_to_device(t.model(), &Device::flex())).unwrap();
    let settings = QuantSettings {
        w_bits: 8,
        a_bits: 6,
        weight_range: WeightRange::MinMax,
        per_channel: false,
        act_range: "running_minmax".into(),
        calib_batches: 2,
    };
    let direct = quantize_and_evaluate(&t, &settings).unwrap();
    let via_copy = quantize_model(&copy, &t.spec, &t.data, &Device::flex(), &settings).unwrap();
    assert_eq!(direct.fp, via_copy.fp);
    assert_eq!(direct.quantized, via_copy.quantized);
    assert!(direct.quantized.loss.is_finite());
    assert!(!direct.act_sqnr.is_empty());
}

/// Issue 3's dead start: at the shipped defaults (γ = −0.015, and the app's α = 0.5 preset) a
/// freshly initialised model must keep most attention probabilities above the clip, or no
/// gradient reaches Q and K and the head never learns.
#[test]
fn clipped_softmax_at_the_shipped_defaults_is_alive_at_initialisation() {
    for text in ["attn=clipped&steps=1", "attn=clipped&alpha=0.5&steps=1"] {
        let t = trainer(text);
        let ins = inspect(&t).unwrap();
        for (l, layer) in ins.attn.iter().enumerate() {
            let alive = layer.iter().filter(|&&p| p > 0.0).count() as f64 / layer.len() as f64;
            assert!(
                alive > 0.5,
                "{text}: layer {l} keeps only {alive:.2} of its probabilities"
            );
        }
    }
    // The contrast that makes the check meaningful: γ far below −1/T clips everything.
    let t = trainer("attn=clipped&gamma=-0.5&steps=1");
    let ins = inspect(&t).unwrap();
    let alive = ins.attn[0].iter().filter(|&&p| p > 0.0).count() as f64 / ins.attn[0].len() as f64;
    assert!(
        alive < 0.05,
        "γ = −0.5 at T = 32 should clip nearly all, kept {alive:.2}"
    );
}

/// The γ warm-up: clipped softmax starts as plain softmax (nothing clipped, so every head gets
/// a gradient) and reaches the full γ = −α/T at step `gamma_warmup`, where α = 2 at T = 32
/// clips a fresh model's near-uniform attention almost entirely.
#[test]
fn gamma_warm_up_starts_unclipped_and_reaches_the_full_clip() {
    use qtlab_core::attention::ScoreNorm;
    use qtlab_core::model::Model;
    use qtlab_core::train::clip_at;
    let alive = |t: &Trainer| {
        let ins = inspect(t).unwrap();
        let all: Vec<f32> = ins.attn.concat();
        all.iter().filter(|&&p| p > 0.0).count() as f64 / all.len() as f64
    };
    let norm = |t: &Trainer| match t.model() {
        Model::Bert(m) => m.layers[0].attn.norm,
        _ => unreachable!(),
    };
    let spec = RunSpec::parse("attn=clipped&alpha=2&gamma_warmup=10&steps=12").unwrap();
    assert_eq!(clip_at(&spec, 0), Some((0.0, 1.0)));
    let (g5, z5) = clip_at(&spec, 5).unwrap();
    assert!((g5 + 1.0 / 32.0).abs() < 1e-12 && z5 == 1.0, "{g5}");
    assert_eq!(clip_at(&spec, 10), Some((-2.0 / 32.0, 1.0)));
    assert_eq!(clip_at(&spec, 500), Some((-2.0 / 32.0, 1.0)));
    assert_eq!(clip_at(&RunSpec::parse("attn=gated").unwrap(), 0), None);

    let mut warm = trainer(&spec.to_canonical());
    warm.step_sync(false).unwrap();
    assert_eq!(
        norm(&warm),
        ScoreNorm::Clipped {
            gamma: 0.0,
            zeta: 1.0
        }
    );
    assert_eq!(alive(&warm), 1.0);
    for _ in 1..11 {
        warm.step_sync(false).unwrap();
    }
    assert_eq!(
        norm(&warm),
        ScoreNorm::Clipped {
            gamma: -2.0 / 32.0,
            zeta: 1.0
        }
    );
    // Without the warm-up the first step already clips nearly everything.
    let mut cold = trainer("attn=clipped&alpha=2&steps=12");
    cold.step_sync(false).unwrap();
    assert!(alive(&cold) < 0.2, "alive {}", alive(&cold));
}

/// The outlier's location: the profile's maximum is the headline tensor's maximum over
/// evaluation batch 0, and the value at the reported (sequence, position, channel) is it.
/// Bigram-Backcopy evaluations also split the first-token mass by query kind.
#[test]
fn profiles_locate_the_maximum_and_bb_splits_the_first_token_mass() {
    use qtlab_core::model::ModelOutput;
    let mut t = trainer(
        "model=opt&data=bb%3Asynthetic&layers=2&d=16&heads=2&ffn=32&seq=16&batch=4&steps=3",
    );
    for _ in 0..3 {
        t.step_sync(false).unwrap();
    }
    let ins = inspect(&t).unwrap();
    assert_eq!(ins.profiles.len(), 2, "one profile per block output");
    let model = burn::module::Module::valid(t.model());
    let host = t.data.eval_batch(&t.spec, 0);
    let batch = host.to_device(&t.spec, &Device::flex());
    let ModelOutput { taps, .. } = model.forward(batch.input);
    let outs: Vec<_> = taps
        .tracked
        .iter()
        .filter(|x| x.kind == model.headline_kind())
        .collect();
    for (p, tap) in ins.profiles.iter().zip(outs) {
        let [_, tt, d] = tap.x.dims();
        let v = tap.x.clone().into_data().try_into_vec::<f32>().unwrap();
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(
            (p.max_abs - max as f64).abs() < 1e-5,
            "{} vs {max}",
            p.max_abs
        );
        let at = v[(p.row * tt + p.position) * d + p.channel];
        assert!((at.abs() - max).abs() < 1e-5 && (p.value - at as f64).abs() < 1e-5);
        assert_eq!(p.token_norm.len(), tt);
        assert_eq!(p.channel_abs.len(), d);
        assert!(p.max_over_sd > 1.0 && p.first_token_ratio() > 0.0);
    }
    let ratios = ins.first_value_ratio();
    assert_eq!(ratios.len(), 2);
    assert!(
        ratios
            .iter()
            .all(|l| l.len() == 2 && l.iter().all(|r| r.is_finite()))
    );
    let ev = t.evaluate().unwrap();
    for h in &ev.outliers.heads {
        let (o, c) = (
            h.first_mass_other.as_ref().unwrap(),
            h.first_mass_copy.as_ref().unwrap(),
        );
        assert_eq!((o.len(), c.len()), (2, 2));
        assert!(o.iter().chain(c).all(|m| (0.0..=1.0).contains(m)));
    }
    // Running text has no copies, so no split.
    let plain = trainer("model=opt&layers=1&d=16&heads=2&ffn=32&seq=16&batch=4&steps=1");
    assert!(
        plain.evaluate().unwrap().outliers.heads[0]
            .first_mass_other
            .is_none()
    );
}
