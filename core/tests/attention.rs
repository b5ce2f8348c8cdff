//! Attention variants against hand-computed values on small tensors (CPU backend).

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use qtlab_core::attention::gate::logit;
use qtlab_core::attention::softmax::clipped_softmax;
use qtlab_core::attention::{AttentionConfig, Gate, ScoreNorm};
use qtlab_core::init::Init;
use qtlab_core::rng::Rng;
use qtlab_core::spec::GateKind;

fn dev() -> Device {
    Device::flex()
}

fn t4(v: Vec<f32>, shape: [usize; 4], d: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v, shape), d)
}

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
    }
}

#[test]
fn clipped_softmax_hits_exact_zeros_and_ones() {
    let d = dev();
    // softmax([0, 0, ln 8]) = [0.1, 0.1, 0.8]; γ = −0.2, ζ = 1.2 ⇒ 1.4·p − 0.2 = [−0.06, −0.06, 0.92].
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![0.0f32, 0.0, 8f32.ln(), 0.0, 0.0, 38f32.ln()], [2, 3]),
        &d,
    );
    let y = vals(clipped_softmax(x, -0.2, 1.2));
    close(&y[0..3], &[0.0, 0.0, 0.92], 1e-6);
    assert_eq!(y[0], 0.0, "exact zero");
    // second row: softmax([0, 0, ln38]) = [1/40, 1/40, 38/40] → [−0.165, −0.165, 1.13] → [0, 0, 1]
    assert_eq!(&y[3..6], &[0.0, 0.0, 1.0], "exact zeros and one");
}

#[test]
fn clipped_softmax_gradient_is_zero_where_clipped() {
    let d = dev().autodiff();
    // γ = −0.2, ζ = 1.2. Row 0: softmax([0, 0, 8]) ≈ [0.0003, 0.0003, 0.9993] ⇒ 1.4·p − 0.2 ≈
    // [−0.2, −0.2, 1.199] ⇒ fully clipped to (0, 0, 1). Row 1: p = 1/3 ⇒ 0.267, unclipped.
    // (With ζ = 1 the upper clip can never trigger: (1−γ)/(ζ−γ) = 1.)
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![0.0f32, 0.0, 8.0, 0.0, 0.0, 0.0], [2, 3]),
        &d,
    )
    .require_grad();
    let w = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 1.0, 2.0, 3.0], [2, 3]),
        &d,
    );
    let y = clipped_softmax(x.clone(), -0.2, 1.2);
    let grads = (y * w).sum().backward();
    let g = vals(x.grad(&grads).unwrap());
    assert_eq!(&g[0..3], &[0.0, 0.0, 0.0], "no gradient through the clip");
    assert!(
        g[3..6].iter().any(|v| v.abs() > 1e-3),
        "unclipped row has gradient: {g:?}"
    );
    // d/dx of Σ w·(ζ−γ)·softmax at uniform p: (ζ−γ)·p·(w − p·w) = 1.4·(1/3)·(w − 2)
    close(&g[3..6], &[-1.4 / 3.0, 0.0, 1.4 / 3.0], 1e-5);
}

#[test]
fn softmax1_and_sink_leave_mass_unassigned() {
    let d = dev();
    let x = t4(vec![0.0, 0.0], [1, 1, 1, 2], &d);
    close(
        &vals(ScoreNorm::Softmax1.apply(x.clone(), None)),
        &[1.0 / 3.0, 1.0 / 3.0],
        1e-6,
    );
    let sink = Tensor::<1>::from_data(TensorData::new(vec![2f32.ln()], [1]), &d);
    close(
        &vals(ScoreNorm::Sink.apply(x.clone(), Some(sink))),
        &[0.25, 0.25],
        1e-6,
    );
    close(&vals(ScoreNorm::Softmax.apply(x, None)), &[0.5, 0.5], 1e-6);
}

#[test]
fn gate_bias_is_logit_of_pi_init() {
    assert!((logit(0.25) - (-1.0986123)).abs() < 1e-6);
    assert_eq!(logit(0.5), 0.0);
    let d = dev();
    let mut init = Init::new(Rng::new(1));
    let g = Gate::init(GateKind::Linear, 8, 2, 0.25, &mut init, &d);
    let b = vals(g.bias1.as_ref().unwrap().val());
    close(&b, &[-1.0986123, -1.0986123], 1e-6);
    // With a zero input the gate is exactly σ(logit(π)) = π for every head and token.
    let x = Tensor::<3>::zeros([2, 3, 8], &d);
    let pi = g.forward(x);
    assert_eq!(pi.dims(), [2, 2, 3, 1]);
    assert!(vals(pi).iter().all(|&p| (p - 0.25).abs() < 1e-6));
    // The pooled per-head gate gets the same bias; with a zero input it is exactly π.
    let c = Gate::init(GateKind::ConditionalPerHead, 8, 2, 0.25, &mut init, &d);
    let pc = c.forward(Tensor::<3>::zeros([2, 3, 8], &d));
    assert_eq!(pc.dims(), [2, 2, 1, 1]);
    assert!(vals(pc).iter().all(|&p| (p - 0.25).abs() < 1e-6));
    // The MLP gate keeps the default init (no π bias), with n_hid = d_head/4, as in the paper's code.
    let m = Gate::init(GateKind::Mlp, 16, 2, 0.25, &mut init, &d);
    assert_eq!(
        m.w1.as_ref().unwrap().val().dims(),
        [2, 8, 2],
        "n_hid = d_head/4"
    );
    let u = Gate::init(GateKind::UnconditionalPerHead, 8, 2, 0.25, &mut init, &d);
    assert!(
        vals(u.forward(Tensor::zeros([1, 3, 8], &d)))
            .iter()
            .all(|&p| p == 0.5)
    );
}

#[test]
fn each_head_gate_reads_only_its_channel_slice() {
    let d = dev();
    let mut init = Init::new(Rng::new(2));
    for kind in [
        GateKind::Linear,
        GateKind::Mlp,
        GateKind::ConditionalPerHead,
    ] {
        let g = Gate::init(kind, 8, 2, 0.5, &mut init, &d);
        let mut base = vec![0.1f32; 2 * 3 * 8];
        let a = vals(g.forward(Tensor::from_data(
            TensorData::new(base.clone(), [2, 3, 8]),
            &d,
        )));
        // Change head 1's channels (4..8) of every token.
        for (i, v) in base.iter_mut().enumerate() {
            if i % 8 >= 4 {
                *v = 0.9;
            }
        }
        let b = vals(g.forward(Tensor::from_data(TensorData::new(base, [2, 3, 8]), &d)));
        let per = a.len() / 4; // [b=2, h=2, t', 1]
        for bi in 0..2 {
            let h0 = bi * 2 * per;
            let h1 = h0 + per;
            assert_eq!(
                &a[h0..h0 + per],
                &b[h0..h0 + per],
                "{kind:?}: head 0 must not see head 1's channels"
            );
            assert_ne!(
                &a[h1..h1 + per],
                &b[h1..h1 + per],
                "{kind:?}: head 1 must see its channels"
            );
        }
    }
}

#[test]
fn a_closed_gate_silences_the_head_before_the_output_projection() {
    let d = dev();
    let cfg = AttentionConfig {
        d_model: 8,
        heads: 2,
        norm: ScoreNorm::Softmax,
        gate: Some(GateKind::UnconditionalPerHead),
        pi_init: 0.5,
        causal: false,
        out_init_std: None,
    };
    let mut init = Init::new(Rng::new(3));
    let mut att = cfg.init(&mut init, &d);
    // Close head 0 completely, leave head 1 open.
    let gate = att.gate.as_mut().unwrap();
    gate.logit = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(vec![-100.0f32, 100.0], [2]),
        &d,
    )));
    let x = Tensor::<3>::from_data(
        TensorData::new(
            (0..2 * 4 * 8)
                .map(|i| (i as f32 * 0.37).sin())
                .collect::<Vec<_>>(),
            [2, 4, 8],
        ),
        &d,
    );
    let out = att.forward(x.clone());
    // Reference: run without a gate, zero head 0's channels of the merged context by hand.
    let v = att.qkv.forward(x.clone()).narrow(2, 16, 8); // [2, 4, 8]
    let ctx = out
        .probs
        .clone()
        .matmul(v.reshape([2, 4, 2, 4]).swap_dims(1, 2)); // [2, 2, 4, 4]
    let mask = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 1.0], [1, 2, 1, 1]), &d);
    let merged = (ctx * mask).swap_dims(1, 2).reshape([2, 4, 8]);
    let expect = att.out.forward(merged);
    close(&vals(out.out), &vals(expect), 1e-5);
}

#[test]
fn causal_attention_never_looks_ahead() {
    let d = dev();
    let cfg = AttentionConfig {
        d_model: 8,
        heads: 2,
        norm: ScoreNorm::Softmax,
        gate: None,
        pi_init: 0.5,
        causal: true,
        out_init_std: None,
    };
    let att = cfg.init(&mut Init::new(Rng::new(4)), &d);
    let x = Tensor::<3>::from_data(
        TensorData::new(
            (0..5 * 8)
                .map(|i| (i as f32 * 0.7).cos())
                .collect::<Vec<_>>(),
            [1, 5, 8],
        ),
        &d,
    );
    let p = vals(att.forward(x).probs); // [1, 2, 5, 5]
    for h in 0..2 {
        for i in 0..5 {
            let row = &p[(h * 5 + i) * 5..(h * 5 + i + 1) * 5];
            assert!(row[i + 1..].iter().all(|&v| v == 0.0), "row {i}: {row:?}");
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn per_token_gates_scale_each_heads_context() {
    let d = dev();
    let cfg = AttentionConfig {
        d_model: 8,
        heads: 2,
        norm: ScoreNorm::Softmax,
        gate: Some(GateKind::Linear),
        pi_init: 0.3,
        causal: false,
        out_init_std: None,
    };
    let att = cfg.init(&mut Init::new(Rng::new(6)), &d);
    let x = Tensor::<3>::from_data(
        TensorData::new(
            (0..3 * 8)
                .map(|i| (i as f32 * 0.91).sin())
                .collect::<Vec<_>>(),
            [1, 3, 8],
        ),
        &d,
    );
    let out = att.forward(x.clone());
    let g = out.gate.clone().unwrap(); // [1, 2, 3, 1]
    assert_eq!(g.dims(), [1, 2, 3, 1]);
    let v = att
        .qkv
        .forward(x)
        .narrow(2, 16, 8)
        .reshape([1, 3, 2, 4])
        .swap_dims(1, 2); // [1, 2, 3, 4]
    let ctx = out.probs.clone().matmul(v) * g; // gate per head and token
    let expect = att.out.forward(ctx.swap_dims(1, 2).reshape([1, 3, 8]));
    close(&vals(out.out), &vals(expect), 1e-5);
}
