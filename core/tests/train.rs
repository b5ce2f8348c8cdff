//! AdamW, clipping, decay exclusions and the learning-rate schedule against hand-computed values.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use qtlab_core::spec::RunSpec;
use qtlab_core::train::{AdamW, lr_at};

#[derive(Module, Debug)]
struct Toy {
    weight: Param<Tensor<1>>,
    bias: Param<Tensor<1>>,
}

fn toy(d: &Device) -> Toy {
    Toy {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32], [1]), d)),
        bias: Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32], [1]), d)),
    }
}

fn one(t: Tensor<1>) -> f32 {
    t.into_data().try_into_vec::<f32>().unwrap()[0]
}

#[test]
fn adamw_first_steps_by_hand() {
    let d = Device::flex().autodiff();
    let spec = RunSpec::parse("lr=0.1&wd=0.5&clip=0&b1=0.9&b2=0.999&eps=1e-8").unwrap();
    let mut opt = AdamW::new(&spec);
    let m = toy(&d);
    // loss = 3·w + 4·b ⇒ g_w = 3, g_b = 4, global norm 5.
    let loss = m.weight.val().mul_scalar(3.0).sum() + m.bias.val().mul_scalar(4.0).sum();
    let (m, norm) = opt.step(m, loss.backward(), 0.1);
    assert!((one(norm) - 5.0).abs() < 1e-6);
    // Step 1: m̂ = g, v̂ = g² ⇒ update = lr·g/|g| = lr. Weight decays: 1·(1 − 0.1·0.5) − 0.1 = 0.85.
    // The bias is exempt from decay: 1 − 0.1 = 0.9.
    assert!((one(m.weight.val().inner()) - 0.85).abs() < 1e-6);
    assert!((one(m.bias.val().inner()) - 0.9).abs() < 1e-6);
    // Step 2 with g_w = −3: m = 0.9·0.3 + 0.1·(−3) = −0.03, v = 0.999·0.009 + 0.001·9 = 0.017991;
    // m̂ = −0.03/0.19, v̂ = 0.017991/0.001999; update = lr·m̂/(√v̂ + ε).
    let loss = m.weight.val().mul_scalar(-3.0).sum() + m.bias.val().mul_scalar(0.0).sum();
    let (m, _) = opt.step(m, loss.backward(), 0.1);
    let mhat = -0.03f64 / (1.0 - 0.9f64.powi(2));
    let vhat = 0.017991f64 / (1.0 - 0.999f64.powi(2));
    let expect = 0.85 * (1.0 - 0.05) - 0.1 * mhat / (vhat.sqrt() + 1e-8);
    assert!(
        (one(m.weight.val().inner()) as f64 - expect).abs() < 1e-5,
        "{expect}"
    );
}

#[test]
fn global_norm_clipping_scales_every_gradient_together() {
    let d = Device::flex().autodiff();
    // With clip = 1 and ‖g‖ = 5, gradients become (0.6, 0.8); Adam's first step is scale-free,
    // so compare the second step, where the clipped first moment matters.
    let run = |clip: f64| {
        let spec = RunSpec::parse(&format!("lr=0.1&wd=0&clip={clip}")).unwrap();
        let mut opt = AdamW::new(&spec);
        let m = toy(&d);
        let loss = m.weight.val().mul_scalar(3.0).sum() + m.bias.val().mul_scalar(4.0).sum();
        let (m, _) = opt.step(m, loss.backward(), 0.1);
        let loss = m.weight.val().mul_scalar(0.3).sum() + m.bias.val().mul_scalar(0.4).sum();
        let (m, _) = opt.step(m, loss.backward(), 0.1);
        one(m.weight.val().inner()) as f64
    };
    // Unclipped second gradient (0.3, 0.4) has norm 0.5 < 1: only the first is clipped.
    let w_clip = run(1.0);
    let w_free = run(0.0);
    let (b1, b2, lr) = (0.9f64, 0.999f64, 0.1);
    let second = |g1: f64, g2: f64| {
        let m = b1 * (1.0 - b1) * g1 + (1.0 - b1) * g2;
        let v = b2 * (1.0 - b2) * g1 * g1 + (1.0 - b2) * g2 * g2;
        let mh = m / (1.0 - b1 * b1);
        let vh = v / (1.0 - b2 * b2);
        1.0 - lr - lr * mh / (vh.sqrt() + 1e-8)
    };
    assert!(
        (w_clip - second(0.6, 0.3)).abs() < 1e-5,
        "{w_clip} vs {}",
        second(0.6, 0.3)
    );
    assert!(
        (w_free - second(3.0, 0.3)).abs() < 1e-5,
        "{w_free} vs {}",
        second(3.0, 0.3)
    );
}

#[test]
fn warmup_then_linear_decay() {
    let spec = RunSpec::parse("lr=0.01&warmup=4&steps=12").unwrap();
    let lrs: Vec<f64> = (0..12).map(|s| lr_at(&spec, s)).collect();
    let expect = [
        0.0025, 0.005, 0.0075, 0.01, 0.01, 0.00875, 0.0075, 0.00625, 0.005, 0.00375, 0.0025,
        0.00125,
    ];
    for (a, b) in lrs.iter().zip(expect) {
        assert!((a - b).abs() < 1e-12, "{lrs:?}");
    }
}

#[test]
fn constant_schedule_holds_after_warm_up() {
    let spec = RunSpec::parse("lr=0.01&warmup=4&steps=12&sched=const").unwrap();
    let lrs: Vec<f64> = (0..12).map(|s| lr_at(&spec, s)).collect();
    let mut expect = vec![0.0025, 0.005, 0.0075];
    expect.extend([0.01; 9]);
    for (a, b) in lrs.iter().zip(&expect) {
        assert!((a - b).abs() < 1e-12, "{lrs:?}");
    }
}

#[derive(Module, Debug)]
struct LnToy {
    gamma: Param<Tensor<1>>,
    beta: Param<Tensor<1>>,
}

#[test]
fn ln_wd_decays_layernorm_gamma_and_never_beta() {
    let d = Device::flex().autodiff();
    for (ln_wd, want_gamma) in [(false, 0.9f32), (true, 0.85)] {
        let spec = RunSpec::parse(&format!("lr=0.1&wd=0.5&clip=0&ln_wd={ln_wd}")).unwrap();
        let mut opt = AdamW::new(&spec);
        let one_t =
            || Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32], [1]), &d));
        let m = LnToy {
            gamma: one_t(),
            beta: one_t(),
        };
        let loss = m.gamma.val().mul_scalar(3.0).sum() + m.beta.val().mul_scalar(4.0).sum();
        let (m, _) = opt.step(m, loss.backward(), 0.1);
        // First Adam step moves each by lr; decay multiplies by (1 − lr·wd) first.
        assert!(
            (one(m.gamma.val().inner()) - want_gamma).abs() < 1e-6,
            "ln_wd={ln_wd}"
        );
        assert!(
            (one(m.beta.val().inner()) - 0.9).abs() < 1e-6,
            "ln_wd={ln_wd}"
        );
    }
}

#[test]
fn step_stats_are_the_paper_metrics_of_the_training_batch() {
    use qtlab_core::dataset::RunData;
    use qtlab_core::train::Trainer;
    // The per-step statistics (raw per-sequence moments read back, averaged on the host) equal
    // the tensor definitions evaluated on the same batch with the same weights.
    use qtlab_core::model::ModelOutput;
    let spec = RunSpec::parse(
        "model=bert&attn=vanilla&layers=2&d=16&heads=2&ffn=32&seq=8&batch=3&steps=5&seed=4",
    )
    .unwrap();
    let data = RunData::load(&spec, None).unwrap();
    let device = burn::tensor::Device::flex();
    let mut tr = Trainer::new(spec.clone(), RunData::load(&spec, None).unwrap(), &device);
    let model = tr.model().clone().valid();
    // The trainer's first batch: the same order and masking streams it draws from.
    use qtlab_core::rng::{Rng, Stream};
    let (mut order, mut mask) = (
        Rng::stream(spec.seed, Stream::Order),
        Rng::stream(spec.seed, Stream::Mask),
    );
    let host = data.train_batch(&spec, &mut order, &mut mask);
    let batch = host.to_device(&spec, &device);
    let ModelOutput { taps, .. } = model.forward(batch.input);
    let headline = model.headline_kind();
    let want: Vec<(f64, f64)> = taps
        .tracked
        .iter()
        .filter(|t| t.kind == headline)
        .map(|t| {
            let inf = qtlab_core::metrics::inf_norm_per_seq(t.x.clone())
                .mean()
                .into_scalar::<f32>() as f64;
            let k = qtlab_core::metrics::kurtosis_per_seq(t.x.clone())
                .mean()
                .into_scalar::<f32>() as f64;
            (inf, k)
        })
        .collect();
    let r = tr.step_sync(true).unwrap();
    assert_eq!(r.inf_norms.len(), want.len());
    for (l, (inf, k)) in want.iter().enumerate() {
        assert!(
            (r.inf_norms[l] - inf).abs() < 1e-4 * inf.max(1.0),
            "layer {l}: {} vs {inf}",
            r.inf_norms[l]
        );
        assert!(
            (r.kurtosis[l] - k).abs() < 1e-3 * k.max(1.0),
            "layer {l}: {} vs {k}",
            r.kurtosis[l]
        );
    }
}

/// Shapes that are not multiples of the flat buffers' 64-value alignment, and names on both
/// sides of the decay exclusion list.
#[derive(Module, Debug)]
struct Toy2 {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
    gamma: Param<Tensor<1>>,
    table: Param<Tensor<2>>,
}

fn toy2(d: &Device) -> Toy2 {
    let t = |n: usize, s: f32| -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * s).collect()
    };
    Toy2 {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(t(3 * 70, 0.05), [3, 70]),
            d,
        )),
        bias: Param::from_tensor(Tensor::from_data(TensorData::new(t(70, 0.1), [70]), d)),
        gamma: Param::from_tensor(Tensor::from_data(TensorData::new(t(5, 0.2), [5]), d)),
        table: Param::from_tensor(Tensor::from_data(
            TensorData::new(t(64 * 2, 0.03), [64, 2]),
            d,
        )),
    }
}

fn toy2_loss(m: &Toy2, step: usize, with_gamma: bool) -> Tensor<1> {
    let k = 1.0 + step as f64;
    let w = m.weight.val();
    let loss = (w.clone() * w).sum().mul_scalar(0.5 * k)
        + m.bias.val().sin().sum()
        + m.table.val().powi_scalar(3).sum().mul_scalar(0.1);
    if with_gamma {
        loss + m.gamma.val().exp().sum()
    } else {
        loss
    }
}

fn flat_params(m: &Toy2) -> Vec<f32> {
    let v = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().unwrap();
    let mut out = v(m.weight.val().inner().reshape([3 * 70]));
    out.extend(v(m.bias.val().inner()));
    out.extend(v(m.gamma.val().inner()));
    out.extend(v(m.table.val().inner().reshape([128])));
    out
}

#[test]
fn packed_adamw_on_the_gpu_matches_the_cpu() {
    // The GPU path packs with the WGSL kernel and 64-value padding and hands back parameters
    // as views into the flat buffer; the CPU path concatenates. Both must take the same steps,
    // including when a parameter misses a step (γ has no gradient at step 2) and returns.
    let spec = RunSpec::parse("lr=0.01&wd=0.1&clip=1").unwrap();
    let run = |d: Device| -> Vec<Vec<f32>> {
        let mut opt = AdamW::new(&spec);
        let mut m = toy2(&d);
        let mut seen = Vec::new();
        for step in 0..4 {
            let loss = toy2_loss(&m, step, step != 2);
            let (next, norm) = opt.step(m, loss.backward(), 0.01);
            assert!(one(norm).is_finite());
            seen.push(flat_params(&next));
            m = next;
        }
        seen
    };
    let cpu = run(Device::flex().autodiff());
    let gpu = run(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff());
    let start = flat_params(&toy2(&Device::flex()));
    for (step, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        let diff = c
            .iter()
            .zip(g)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "step {step}: GPU and CPU differ by {diff}");
    }
    // Every parameter moved, and γ stood still exactly at the step it had no gradient.
    let g0 = 3 * 70 + 70;
    for (name, r) in [
        ("weight", 0..210),
        ("bias", 210..280),
        ("gamma", 280..285),
        ("table", 285..413),
    ] {
        assert_ne!(cpu[0][r.clone()], start[r], "{name} did not move");
    }
    assert_eq!(
        cpu[2][g0..g0 + 5],
        cpu[1][g0..g0 + 5],
        "γ moved without a gradient"
    );
    assert_ne!(
        cpu[3][g0..g0 + 5],
        cpu[2][g0..g0 + 5],
        "γ did not come back"
    );
}

/// Dropout: masks drop about p of the values and scale the rest by 1/(1−p); they come from the
/// run seed, so the same spec trains the same losses, and they change training.
#[test]
fn dropout_masks_come_from_the_seed_and_change_training() {
    use qtlab_core::dataset::RunData;
    use qtlab_core::quant::Dropout;
    use qtlab_core::rng::{Rng, Stream};
    use qtlab_core::train::Trainer;
    let d = Device::flex();
    let mut drop = Dropout::new(0.25, Rng::stream(1, Stream::Dropout));
    let y = drop
        .apply(Tensor::<1>::ones([20_000], &d))
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((0.23..0.27).contains(&zeros), "dropped {zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    let losses = |text: &str| -> Vec<f64> {
        let s = RunSpec::parse(text).unwrap();
        let mut t = Trainer::new(s.clone(), RunData::load(&s, None).unwrap(), &d);
        (0..3).map(|_| t.step_sync(false).unwrap().loss).collect()
    };
    for model in ["bert", "opt"] {
        let base = format!("model={model}&layers=1&d=16&heads=2&ffn=32&seq=12&batch=4&steps=3");
        let plain = losses(&base);
        let dropped = losses(&format!("{base}&dropout=0.1"));
        assert_ne!(plain, dropped, "{model}: dropout changed nothing");
        assert_eq!(
            dropped,
            losses(&format!("{base}&dropout=0.1")),
            "{model}: not reproducible"
        );
        assert_eq!(plain, losses(&format!("{base}&dropout=0")), "{model}");
    }
}
