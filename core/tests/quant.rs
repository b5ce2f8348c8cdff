//! Quantizer math against hand-computed values, STE gradient masks and range estimators.

use burn::tensor::{Device, Tensor, TensorData};
use qtlab_core::quant::{
    QuantParams, RangeEstimator, RangeState, fake_quant, fake_quant_host, mse_weight_range,
};

fn t1(v: Vec<f32>, d: &Device) -> Tensor<1> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), d)
}

fn vals(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn asymmetric_grid_by_hand() {
    // [−1, 3] at 8 bits: Δ = 4/255, zp = round(1/Δ) = round(63.75) = 64.
    let p = QuantParams::asymmetric(-1.0, 3.0, 8);
    assert!((p.scale - 4.0 / 255.0).abs() < 1e-9);
    assert_eq!((p.zero_point, p.qmin, p.qmax), (64.0, 0.0, 255.0));
    assert_eq!(fake_quant_host(0.0, &p), 0.0, "zero is exact");
    // 3 → round(191.25) + 64 = 255 → (255 − 64)·Δ
    assert!((fake_quant_host(3.0, &p) - 191.0 * 4.0 / 255.0).abs() < 1e-6);
    // Clamped below: −5 → q = 0 → −64·Δ.
    assert!((fake_quant_host(-5.0, &p) + 64.0 * 4.0 / 255.0).abs() < 1e-6);
    // A positive-only range is widened to contain 0.
    let q = QuantParams::asymmetric(0.5, 2.0, 8);
    assert_eq!(q.zero_point, 0.0);
    assert!((q.scale - 2.0 / 255.0).abs() < 1e-9);
    assert_eq!(QuantParams::asymmetric(-1.0, 3.0, 4).qmax, 15.0);
}

#[test]
fn symmetric_grids_by_hand() {
    // Signed when the tensor has negatives: Δ = max(|−2|, 1)/127, grid [−128, 127].
    let p = QuantParams::symmetric(-2.0, 1.0, 8);
    assert!((p.scale - 2.0 / 127.0).abs() < 1e-9);
    assert_eq!((p.zero_point, p.qmin, p.qmax), (0.0, -128.0, 127.0));
    assert!((fake_quant_host(-2.0, &p) + 2.0).abs() < 1e-6);
    assert!(
        (fake_quant_host(-2.2, &p) + 128.0 * 2.0 / 127.0).abs() < 1e-6,
        "clamped to −128"
    );
    // Unsigned otherwise: Δ = 2.55/255 = 0.01, grid [0, 255].
    let u = QuantParams::symmetric(0.0, 2.55, 8);
    assert!((u.scale - 0.01).abs() < 1e-9);
    assert_eq!((u.qmin, u.qmax), (0.0, 255.0));
    assert!((fake_quant_host(1.234, &u) - 1.23).abs() < 1e-6);
}

#[test]
fn tensor_fake_quant_matches_the_host_reference_including_ties() {
    let d = Device::flex();
    // Δ = 1.875/15 = 0.125 exactly, so the ties below are exact ties.
    let p = QuantParams::asymmetric(-1.0, 0.875, 4);
    assert_eq!((p.scale, p.zero_point), (0.125, 8.0));
    let xs: Vec<f32> = vec![
        -1.5,
        -1.0,
        -0.5 * p.scale,
        0.5 * p.scale,
        1.5 * p.scale,
        2.5 * p.scale,
        0.3,
        0.99,
        1.7,
    ];
    let got = vals(fake_quant(t1(xs.clone(), &d), &p));
    for (x, g) in xs.iter().zip(&got) {
        assert!(
            (g - fake_quant_host(*x, &p)).abs() < 1e-6,
            "x={x}: {g} vs {}",
            fake_quant_host(*x, &p)
        );
    }
    // Ties round to even: 0.5Δ → 0, 1.5Δ → 2Δ, 2.5Δ → 2Δ.
    assert!(
        got[3].abs() < 1e-7
            && (got[4] - 2.0 * p.scale).abs() < 1e-6
            && (got[5] - 2.0 * p.scale).abs() < 1e-6,
        "{got:?}"
    );
}

#[test]
fn straight_through_gradient_is_one_inside_and_zero_outside_the_range() {
    let d = Device::flex().autodiff();
    let p = QuantParams::asymmetric(-1.0, 1.0, 8);
    let (lo, hi) = p.range();
    let x = t1(vec![lo - 0.5, -0.3, 0.0, 0.77, hi + 0.5], &d).require_grad();
    let g = vals(x.grad(&fake_quant(x.clone(), &p).sum().backward()).unwrap());
    assert_eq!(g, vec![0.0, 1.0, 1.0, 1.0, 0.0]);
}

#[test]
fn sixteen_bits_is_nearly_lossless_and_four_bits_is_not() {
    let mut rng = qtlab_core::rng::Rng::new(3);
    let xs: Vec<f32> = (0..10_000).map(|_| rng.normal() as f32).collect();
    let err = |bits| {
        let (lo, hi) = xs
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let p = QuantParams::asymmetric(lo, hi, bits);
        (xs.iter()
            .map(|&v| ((fake_quant_host(v, &p) - v) as f64).powi(2))
            .sum::<f64>()
            / xs.len() as f64)
            .sqrt()
    };
    assert!(err(16) < 1e-4, "{}", err(16));
    assert!(err(4) > 0.05, "{}", err(4));
}

#[test]
fn range_estimators() {
    let mut s = RangeState::default();
    RangeEstimator::CurrentMinMax.update(&mut s, &[0.0, 10.0]);
    RangeEstimator::CurrentMinMax.update(&mut s, &[-1.0, 2.0]);
    assert_eq!(
        (s.min, s.max),
        (-1.0, 2.0),
        "current min-max keeps the latest batch"
    );
    let mut r = RangeState::default();
    RangeEstimator::RunningMinMax.update(&mut r, &[0.0, 10.0]);
    RangeEstimator::RunningMinMax.update(&mut r, &[-10.0, 20.0]);
    assert!(
        (r.min + 1.0).abs() < 1e-6 && (r.max - 11.0).abs() < 1e-5,
        "EMA 0.9: {r:?}"
    );
    let values: Vec<f32> = (0..=100).map(|v| v as f32).collect();
    let mut pc = RangeState::default();
    RangeEstimator::Percentile(99.0).update(&mut pc, &values);
    assert!(
        (pc.min - 1.0).abs() < 1e-5 && (pc.max - 99.0).abs() < 1e-5,
        "{pc:?}"
    );
    // The device path agrees with the host path.
    let d = Device::flex();
    let mut dev = RangeState::default();
    RangeEstimator::RunningMinMax.update_tensor(&mut dev, &t1(vec![3.0, -2.0, 7.0], &d));
    assert_eq!((dev.min, dev.max, dev.batches), (-2.0, 7.0, 1));
}

#[test]
fn per_channel_grids_by_hand() {
    use qtlab_core::ptq::WeightRange;
    use qtlab_core::ptq::weights::fake_quant_per_channel;
    // [2, 3], row-major. Column 2 holds an outlier that would flatten the other columns on one
    // per-tensor grid (Δ = 100/7 at 4 bits rounds 0.3 and −0.5 to 0).
    let w = [1.0f32, -0.5, 100.0, -2.0, 0.3, 3.0];
    let col = |c: usize| [w[c], w[3 + c]];
    let (q, sqnr) = fake_quant_per_channel(&w, 2, 3, true, 4, WeightRange::MinMax);
    for c in 0..3 {
        let v = col(c);
        let p = QuantParams::symmetric(v[0].min(v[1]), v[0].max(v[1]), 4);
        for r in 0..2 {
            assert_eq!(q[r * 3 + c], fake_quant_host(w[r * 3 + c], &p), "[{r},{c}]");
        }
    }
    // Column 1, [−0.5, 0.3]: Δ = 0.5/7, 0.3/Δ = 4.2 rounds to 4 → 2/7.
    assert!((q[4] - 2.0 / 7.0).abs() < 1e-6, "{q:?}");
    assert!(
        (q[1] + 0.5).abs() < 1e-6,
        "a column's extreme is on its own grid: {q:?}"
    );
    let tensor = QuantParams::symmetric(-2.0, 100.0, 4);
    assert_eq!(fake_quant_host(0.3, &tensor), 0.0);
    let (err_t, sig): (f64, f64) = w.iter().fold((0.0, 0.0), |(e, s), &v| {
        let d = (fake_quant_host(v, &tensor) - v) as f64;
        (e + d * d, s + (v as f64).powi(2))
    });
    assert!(
        sqnr > 10.0 * (sig / err_t).log10(),
        "per-channel beats per-tensor here"
    );

    // By row: row 0 is [1, −0.5, 100] on one grid, row 1 on another.
    let (q, _) = fake_quant_per_channel(&w, 2, 3, false, 4, WeightRange::MinMax);
    let p0 = QuantParams::symmetric(-0.5, 100.0, 4);
    let p1 = QuantParams::symmetric(-2.0, 3.0, 4);
    for c in 0..3 {
        assert_eq!(q[c], fake_quant_host(w[c], &p0));
        assert_eq!(q[3 + c], fake_quant_host(w[3 + c], &p1));
    }
}

#[test]
fn mse_weight_range_clips_a_lone_outlier() {
    let mut rng = qtlab_core::rng::Rng::new(4);
    let mut w: Vec<f32> = (0..4096).map(|_| 0.05 * rng.normal() as f32).collect();
    w[7] = 2.0;
    let (lo, hi) = mse_weight_range(&w, 4);
    assert!(hi < 2.0 && lo == -hi, "({lo}, {hi})");
    let sse = |lo: f32, hi: f32| {
        let p = QuantParams::symmetric(lo, hi, 4);
        w.iter()
            .map(|&v| ((fake_quant_host(v, &p) - v) as f64).powi(2))
            .sum::<f64>()
    };
    assert!(sse(lo, hi) < sse(-2.0, 2.0));
}

mod placement {
    use burn::tensor::Device;
    use qtlab_core::dataset::RunData;
    use qtlab_core::model::Model;
    use qtlab_core::ptq::{QuantSettings, WeightRange, quantize_and_evaluate, quantize_weights};
    use qtlab_core::quant::{ActQuant, RangeEstimator, SiteMode};
    use qtlab_core::spec::RunSpec;
    use qtlab_core::train::Trainer;

    fn trainer(text: &str) -> Trainer {
        let s = RunSpec::parse(text).unwrap();
        let mut tr = Trainer::new(s.clone(), RunData::load(&s, None).unwrap(), &Device::flex());
        for _ in 0..3 {
            tr.step_sync(false).unwrap();
        }
        tr
    }

    fn sites(tr: &Trainer) -> Vec<String> {
        let mut aq = ActQuant::new(SiteMode::Calibrate, 8, RangeEstimator::RunningMinMax);
        let host = tr.data.eval_batch(&tr.spec, 0);
        let batch = host.to_device(&tr.spec, &tr.device().clone().inner());
        let _ = tr
            .model()
            .valid()
            .forward_act_quant(batch.input.clone(), &mut aq);
        aq.names.clone()
    }

    use burn::module::Module;

    #[test]
    fn the_quantizers_sit_where_the_papers_code_puts_them() {
        let per_layer = [
            "q",
            "k",
            "v",
            "scores",
            "probs",
            "context",
            "out_proj",
            "attn_resid",
            "fc1",
            "fc2",
            "ffn_resid",
        ];
        for (text, model_level) in [
            (
                "model=bert&attn=gated&layers=2&d=16&heads=2&ffn=32&seq=16&batch=4&eval_batches=2",
                vec!["emb.sum", "emb.ln"],
            ),
            (
                "model=opt&attn=clipped&layers=2&d=16&heads=2&ffn=32&seq=16&batch=4&eval_batches=2",
                vec!["emb.sum", "final_ln"],
            ),
            (
                "model=vit&layers=2&d=16&heads=2&ffn=32&img=16&patch=4&batch=4&eval_batches=2",
                vec!["patch_embed", "patch_ln", "emb.sum", "final_ln"],
            ),
        ] {
            let tr = trainer(text);
            let names = sites(&tr);
            // 13 per layer (the 11 above plus the two LayerNorm outputs) and the model-level ones.
            assert_eq!(names.len(), 2 * 13 + model_level.len(), "{text}: {names:?}");
            for l in 0..2 {
                for s in per_layer.iter().chain(&["attn_ln", "ffn_ln"]) {
                    let n = format!("layer{l}.{s}");
                    assert_eq!(
                        names.iter().filter(|x| **x == n).count(),
                        1,
                        "{text}: {n} in {names:?}"
                    );
                }
            }
            for m in model_level {
                assert!(
                    names.iter().any(|x| x == m),
                    "{text}: {m} missing from {names:?}"
                );
            }
        }
    }

    /// Q, K and V each get their own grid: with Q's weights 100× larger than V's, a shared
    /// grid rounds most of V to zero, separate grids keep V as well as Q.
    #[test]
    fn fused_qkv_weights_get_one_grid_per_projection() {
        use qtlab_core::ptq::weights::fake_quant_column_blocks;
        let (rows, d) = (8, 4);
        let cols = 3 * d;
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                let v = ((r * 7 + c * 3) % 11) as f32 / 11.0 - 0.45;
                if c < d { v * 100.0 } else { v }
            })
            .collect();
        let (q, sqnrs) = fake_quant_column_blocks(&values, rows, cols, 3, 8, WeightRange::MinMax);
        assert_eq!(sqnrs.len(), 3);
        assert!(sqnrs.iter().all(|&s| s > 35.0), "{sqnrs:?}");
        // The shared grid, for contrast: V's block loses most of its signal.
        let (shared, _) = fake_quant_column_blocks(&values, rows, cols, 1, 8, WeightRange::MinMax);
        let err = |x: &[f32]| -> f64 {
            (0..rows)
                .flat_map(|r| (2 * d..3 * d).map(move |c| r * cols + c))
                .map(|i| ((x[i] - values[i]) as f64).powi(2))
                .sum()
        };
        assert!(
            err(&shared) > 100.0 * err(&q),
            "{} vs {}",
            err(&shared),
            err(&q)
        );
    }

    #[test]
    fn weights_quantized_except_heads_gates_and_biases() {
        let tr = trainer(
            "model=bert&attn=gated&gate=allheads&layers=2&d=16&heads=2&ffn=32&seq=16&batch=4",
        );
        let (q, report) = quantize_weights(tr.model(), 8, WeightRange::MinMax, false);
        // tokens, positions, emb LN γ; per layer q, k, v (one grid each), out, attn LN γ, fc1,
        // fc2, FFN LN γ.
        assert_eq!(
            report.len(),
            3 + 2 * 8,
            "{:?}",
            report.iter().map(|r| &r.name).collect::<Vec<_>>()
        );
        assert!(
            report
                .iter()
                .all(|r| !r.name.contains("head") && !r.name.contains("gate"))
        );
        assert!(report.iter().all(|r| r.sqnr_db > 20.0), "{report:?}");
        for part in ["q", "k", "v"] {
            assert!(
                report
                    .iter()
                    .any(|r| r.name.ends_with(&format!("qkv.weight[{part}]"))),
                "no grid for {part}"
            );
        }
        let (Model::Bert(fp), Model::Bert(qb)) = (tr.model(), &q) else {
            panic!()
        };
        let fp_w = fp
            .tokens
            .weight
            .val()
            .inner()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let head = qb
            .head_weight
            .clone()
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let qw = qb
            .tokens
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(fp_w, head, "the tied MLM decoder keeps the FP weights");
        assert_ne!(fp_w, qw, "the embedding lookup uses quantized weights");
    }

    #[test]
    fn per_channel_weights_use_one_grid_per_output_channel() {
        let tr = trainer("model=bert&attn=vanilla&layers=1&d=16&heads=2&ffn=32&seq=16&batch=4");
        let (_, per_tensor) = quantize_weights(tr.model(), 4, WeightRange::MinMax, false);
        let (q, per_channel) = quantize_weights(tr.model(), 4, WeightRange::MinMax, true);
        let names = |r: &[qtlab_core::ptq::weights::WeightSqnr]| {
            r.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        };
        // Per tensor, the fused Q/K/V weight reports one grid per projection; per channel it is
        // one weight with a grid per column anyway.
        let mut merged = names(&per_tensor);
        for n in merged.iter_mut() {
            if let Some(base) = n
                .strip_suffix("[q]")
                .or(n.strip_suffix("[k]"))
                .or(n.strip_suffix("[v]"))
            {
                *n = base.to_string();
            }
        }
        merged.dedup();
        assert_eq!(merged, names(&per_channel), "same weights quantized");
        let per_tensor: Vec<_> = per_tensor
            .into_iter()
            .filter(|r| !r.name.contains("qkv"))
            .collect();
        let per_channel: Vec<_> = per_channel
            .into_iter()
            .filter(|r| !r.name.contains("qkv"))
            .collect();
        for (t, c) in per_tensor.iter().zip(&per_channel) {
            if t.name.ends_with("gamma") {
                assert_eq!(
                    t.sqnr_db, c.sqnr_db,
                    "1-D weights stay per tensor: {}",
                    t.name
                );
            } else {
                assert!(
                    c.sqnr_db > t.sqnr_db,
                    "{}: {} vs {}",
                    t.name,
                    c.sqnr_db,
                    t.sqnr_db
                );
            }
        }
        // A Linear weight is [d_in, d_out]: each output column's largest |w| sits exactly on
        // its own grid, and each column has at most 2^4 levels.
        let (Model::Bert(fp), Model::Bert(qb)) = (tr.model(), &q) else {
            panic!()
        };
        let host = |t: burn::tensor::Tensor<2>| t.into_data().try_into_vec::<f32>().unwrap();
        let w = host(fp.layers[0].fc1.weight.val().inner());
        let wq = host(qb.layers[0].fc1.weight.val());
        let [rows, cols] = fp.layers[0].fc1.weight.val().dims();
        assert_eq!((rows, cols), (16, 32));
        for c in 0..cols {
            let colv: Vec<f32> = (0..rows).map(|r| w[r * cols + c]).collect();
            let colq: Vec<f32> = (0..rows).map(|r| wq[r * cols + c]).collect();
            let amax = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!((amax(&colv) - amax(&colq)).abs() < 1e-6, "column {c}");
            let mut levels = colq.clone();
            levels.sort_by(f32::total_cmp);
            levels.dedup();
            assert!(levels.len() <= 16, "column {c}: {} levels", levels.len());
        }
    }

    fn settings(w: u32, a: u32) -> QuantSettings {
        QuantSettings {
            w_bits: w,
            a_bits: a,
            weight_range: WeightRange::MinMax,
            per_channel: false,
            act_range: "running_minmax".into(),
            calib_batches: 4,
        }
    }

    #[test]
    fn sixteen_bits_keeps_the_fp_metric_and_calibration_is_deterministic() {
        for text in [
            "model=opt&layers=2&d=32&heads=2&ffn=64&seq=16&batch=8&eval_batches=2",
            "model=vit&layers=1&d=32&heads=2&ffn=64&img=16&patch=4&batch=16&eval_batches=2",
        ] {
            let tr = trainer(text);
            let r16 = quantize_and_evaluate(&tr, &settings(16, 16)).unwrap();
            assert!(
                (r16.quantized.loss - r16.fp.loss).abs() < 2e-3 * r16.fp.loss,
                "{text}: {:?} vs {:?}",
                r16.quantized,
                r16.fp
            );
            let r4 = quantize_and_evaluate(&tr, &settings(4, 4)).unwrap();
            assert!(
                (r4.quantized.loss - r4.fp.loss).abs() > (r16.quantized.loss - r16.fp.loss).abs(),
                "{text}"
            );
            assert_eq!(
                r4,
                quantize_and_evaluate(&tr, &settings(4, 4)).unwrap(),
                "{text}: frozen calibration repeats exactly"
            );
            assert!(!r4.act_sqnr.is_empty() && r4.act_sqnr.iter().all(|s| s.sqnr_db.is_finite()));
            let worst16 = r16
                .act_sqnr
                .iter()
                .map(|s| s.sqnr_db)
                .fold(f64::INFINITY, f64::min);
            let worst4 = r4
                .act_sqnr
                .iter()
                .map(|s| s.sqnr_db)
                .fold(f64::INFINITY, f64::min);
            assert!(worst4 < worst16, "{text}");
        }
        assert!(QuantSettings::parse_bits("w8a6") == Ok((8, 6)));
        assert!(
            QuantSettings::parse_bits("w1a8").is_err() && QuantSettings::parse_bits("8/8").is_err()
        );
    }
}

/// Calibration passes each activation on quantized with the range so far, as the paper's
/// quantization manager does, so downstream sites calibrate on quantized inputs.
#[test]
fn calibration_passes_quantized_activations_downstream() {
    use qtlab_core::quant::{ActQuant, SiteMode};
    let d = Device::flex();
    let mut aq = ActQuant::new(SiteMode::Calibrate, 4, RangeEstimator::RunningMinMax);
    let x = vec![-1.0f32, -0.3, 0.05, 0.4, 0.77, 2.0];
    aq.begin();
    let y = vals(aq.site(None, "s", t1(x.clone(), &d)));
    aq.end_calibration_batch().unwrap();
    let p = QuantParams::asymmetric(-1.0, 2.0, 4);
    let want: Vec<f32> = x.iter().map(|&v| fake_quant_host(v, &p)).collect();
    assert_eq!(y, want);
    assert_ne!(y, x, "calibration must not pass floating-point values on");
    // The second batch is quantized with the running range (momentum 0.9).
    aq.begin();
    let x2 = vec![-3.0f32, 0.1, 4.0];
    let y2 = vals(aq.site(None, "s", t1(x2.clone(), &d)));
    let m = qtlab_core::quant::range::MOMENTUM;
    let p2 = QuantParams::asymmetric(m * -1.0 + (1.0 - m) * -3.0, m * 2.0 + (1.0 - m) * 4.0, 4);
    let want2: Vec<f32> = x2.iter().map(|&v| fake_quant_host(v, &p2)).collect();
    assert_eq!(y2, want2);
}
