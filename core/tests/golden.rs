//! Golden test in the style of llm.c's `test_gpt2.c`: qtlab's BERT and OPT against an
//! independent PyTorch implementation of the paper's math (`scripts/golden.py`; its header
//! says how to regenerate the fixtures in `tests/fixtures/golden/`).
//!
//! Per model, the fixture holds weights drawn from a numpy seed and one batch; per attention
//! variant (vanilla, clipped softmax, gated) the spec, and the logits, loss and gradient of
//! every parameter after one forward and backward, computed in float64. qtlab loads the weights
//! by name ([`qtlab_core::params`]), runs its own forward, loss and backward on the CPU backend
//! in f32, and must agree.
//!
//! # Tolerance
//! Element-wise |qtlab − reference| ≤ ATOL + RTOL·|reference|, with RTOL = 1e-4 and ATOL =
//! 1e-5. The reference is exact (f64) math on the f32 weights, so the difference is qtlab's
//! f32 rounding alone. Observed (print it with `--nocapture`): logits within 4e-6, loss
//! within 5e-7 and gradients within 1.5e-6 absolute; no element uses more than 4 % of its
//! bound, so the test does not flake on a different summation order, and a wrong formula is
//! far outside it (a flipped clipped-softmax γ, a gate without its sigmoid, or a clip that
//! lets the gradient through, which leaves the forward exact, miss by 10³–10⁵ times the bound).

use std::collections::BTreeMap;

use burn::tensor::Device;
use qtlab_core::dataset::{HostBatch, HostInput};
use qtlab_core::init::Init;
use qtlab_core::model::Model;
use qtlab_core::params::{self, HostArray};
use qtlab_core::rng::{Rng, Stream};
use qtlab_core::spec::RunSpec;
use qtlab_core::train::{collect_grads, weighted_cross_entropy};
use serde_json::Value;

const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-5;

fn fixture(model: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/golden/{model}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn host_array(v: &Value) -> HostArray {
    let shape = v["shape"].as_array().expect("shape");
    let values = v["values"].as_array().expect("values");
    HostArray {
        shape: shape.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
        values: values.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
    }
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|y| y.as_u64().unwrap() as u32).collect(),
            None => vec![x.as_u64().unwrap() as u32],
        })
        .collect()
}

/// Row-major index → `[i, j, …]`, for messages.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        idx[k] = i % d.max(1);
        i /= d.max(1);
    }
    idx
}

/// The worst element of one comparison.
struct Worst {
    name: String,
    index: Vec<usize>,
    got: f32,
    want: f32,
    /// |got − want| / (ATOL + RTOL·|want|): above 1 fails.
    ratio: f32,
    max_abs: f32,
}

fn compare(name: &str, got: &[f32], want: &HostArray) -> Worst {
    assert_eq!(got.len(), want.values.len(), "{name}: element count");
    let mut w = Worst {
        name: name.to_string(),
        index: Vec::new(),
        got: 0.0,
        want: 0.0,
        ratio: -1.0,
        max_abs: 0.0,
    };
    for (i, (&g, &r)) in got.iter().zip(&want.values).enumerate() {
        let err = (g - r).abs();
        // NaN compares false everywhere, so it is made the worst element explicitly.
        let ratio = if err.is_nan() {
            f32::INFINITY
        } else {
            err / (ATOL + RTOL * r.abs())
        };
        w.max_abs = w
            .max_abs
            .max(if err.is_nan() { f32::INFINITY } else { err });
        if ratio > w.ratio {
            (w.index, w.got, w.want, w.ratio) = (unravel(i, &want.shape), g, r, ratio);
        }
    }
    w
}

fn check(model_name: &str) {
    let fx = fixture(model_name);
    let all_params: BTreeMap<String, HostArray> = fx["params"]
        .as_object()
        .expect("params")
        .iter()
        .map(|(k, v)| (k.clone(), host_array(v)))
        .collect();
    let vocab = fx["dims"]["vocab"].as_u64().unwrap() as usize;
    let ids = u32s(&fx["inputs"]["ids"]);
    let targets = u32s(&fx["inputs"]["targets"]);
    let weights: Vec<f32> = fx["inputs"]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let device = Device::flex().autodiff();

    let mut failures = Vec::new();
    for (variant, v) in fx["variants"].as_object().expect("variants") {
        let spec = RunSpec::parse(v["spec"].as_str().unwrap()).unwrap();
        let want_grads: BTreeMap<String, HostArray> = v["grads"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, g)| (k.clone(), host_array(g)))
            .collect();
        // The variant's parameters are those it has gradients for (gate weights only when
        // gated); `load` refuses anything but an exact match.
        let arrays: BTreeMap<String, HostArray> = want_grads
            .keys()
            .map(|k| (k.clone(), all_params[k].clone()))
            .collect();
        let model = Model::init(
            &spec,
            vocab,
            &mut Init::new(Rng::stream(0, Stream::Init)),
            &device,
        );
        let model = match model {
            Model::Bert(m) => Model::Bert(params::load(m, &arrays).unwrap()),
            Model::Opt(m) => Model::Opt(params::load(m, &arrays).unwrap()),
            Model::Vit(_) => unreachable!("fixtures are language models"),
        };

        let (b, t) = (spec.batch, spec.seq_len);
        let host = HostBatch {
            input: HostInput::Tokens(ids.clone()),
            target: targets.clone(),
            weight: weights.clone(),
            delim: vec![0.0; b * t],
            copy: vec![0.0; b * t],
            batch: b,
            seq: t,
        };
        let batch = host.to_device(&spec, &device);
        let logits = model.forward(batch.input.clone()).logits; // [b*t, vocab]
        let loss = weighted_cross_entropy(logits.clone(), &batch); // [1]
        let mut grads = loss.backward();
        let by_id = collect_grads(&model, &mut grads);

        let vals = |t: burn::tensor::Tensor<1>| t.into_data().try_into_vec::<f32>().unwrap();
        let n = b * t * vocab;
        let mut worst = vec![
            compare(
                "loss",
                &vals(loss.inner()),
                &HostArray {
                    shape: vec![1],
                    values: vec![v["loss"].as_f64().unwrap() as f32],
                },
            ),
            compare(
                "logits",
                &vals(logits.inner().reshape([n])),
                &host_array(&v["logits"]),
            ),
        ];
        for (name, _, id) in params::names(&model) {
            let got = by_id
                .get(&id)
                .unwrap_or_else(|| panic!("{model_name}/{variant}: no gradient for `{name}`"));
            worst.push(compare(
                &format!("grad {name}"),
                &vals(got.clone()),
                &want_grads[&name],
            ));
        }

        let grads_only = || worst.iter().filter(|w| w.name.starts_with("grad "));
        let max_grad_abs = grads_only().map(|w| w.max_abs).fold(0.0, f32::max);
        let worst_grad = grads_only()
            .max_by(|a, b| a.ratio.total_cmp(&b.ratio))
            .unwrap();
        println!(
            "{model_name}/{variant}: max |err| loss {:.1e}, logits {:.1e}, grads {:.1e} \
             (worst relative to tolerance: {} at {:?}, {:.2} of the bound)",
            worst[0].max_abs,
            worst[1].max_abs,
            max_grad_abs,
            worst_grad.name,
            worst_grad.index,
            worst_grad.ratio
        );
        // Loss and logits, then the gradients furthest out of tolerance: enough to name the
        // broken part without a screen of every parameter downstream of it.
        let (mut bad, bad_grads): (Vec<&Worst>, Vec<&Worst>) = worst
            .iter()
            .filter(|w| w.ratio > 1.0)
            .partition(|w| !w.name.starts_with("grad "));
        let n_bad_grads = bad_grads.len();
        let mut bad_grads = bad_grads;
        bad_grads.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
        bad.extend(bad_grads.iter().take(3));
        for w in bad {
            failures.push(format!(
                "{model_name}/{variant}: {} at {:?}: qtlab {:e}, reference {:e} \
                 (|err| {:.2e}, {:.1}x the tolerance {ATOL:e} + {RTOL:e}·|ref|)",
                w.name,
                w.index,
                w.got,
                w.want,
                (w.got - w.want).abs(),
                w.ratio
            ));
        }
        if n_bad_grads > 3 {
            failures.push(format!(
                "{model_name}/{variant}: … and {} more gradients out of tolerance ({n_bad_grads} \
                 of {} parameters)",
                n_bad_grads - 3,
                worst.len() - 2
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "qtlab differs from the PyTorch reference (scripts/golden.py):\n{}",
        failures.join("\n")
    );
}

#[test]
fn bert_matches_the_pytorch_reference() {
    check("bert");
}

#[test]
fn opt_matches_the_pytorch_reference() {
    check("opt");
}

#[test]
fn loading_refuses_a_fixture_that_does_not_fit() {
    let spec = RunSpec::parse("model=opt&layers=1&d=16&heads=2&ffn=32&seq=8").unwrap();
    let model = Model::init(
        &spec,
        16,
        &mut Init::new(Rng::stream(0, Stream::Init)),
        &Device::flex(),
    );
    let mut arrays: BTreeMap<String, HostArray> = params::names(&model)
        .into_iter()
        .map(|(name, shape, _)| {
            let n = shape.iter().product();
            (
                name,
                HostArray {
                    shape,
                    values: vec![0.5; n],
                },
            )
        })
        .collect();
    let Model::Opt(opt) = model else {
        unreachable!()
    };
    // Names match the inner struct's (no `Opt.` prefix), and a full set loads.
    let loaded = params::load(opt, &arrays).unwrap();
    let w = loaded.layers[0]
        .fc1
        .weight
        .val()
        .into_data()
        .try_into_vec::<f32>();
    assert!(w.unwrap().iter().all(|&x| x == 0.5));

    arrays.remove("final_ln.beta");
    arrays.get_mut("layers.0.fc1.weight").unwrap().shape = vec![32, 16];
    arrays.insert(
        "layers.0.attn.gate.w1".into(),
        HostArray {
            shape: vec![1],
            values: vec![0.0],
        },
    );
    let err = params::load(loaded, &arrays).unwrap_err();
    for part in [
        "`final_ln.beta` [16]: no array given",
        "`layers.0.fc1.weight`: array has shape [32, 16], the parameter [16, 32]",
        "`layers.0.attn.gate.w1`: no such parameter",
    ] {
        assert!(err.contains(part), "{part} missing from:\n{err}");
    }
}
