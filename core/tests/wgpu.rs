//! The same math on wgpu (lavapipe here) as on the CPU backend. One test function, so the
//! shader compilation cost (about a minute on lavapipe) is paid once per process.

use burn::tensor::{Device, DeviceKind, Tensor, TensorData};
use qtlab_core::attention::ScoreNorm;
use qtlab_core::dataset::RunData;
use qtlab_core::spec::RunSpec;
use qtlab_core::train::Trainer;

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn wgpu_matches_cpu() {
    let cpu = Device::flex();
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);

    // Score normalisers, including a row length that is not a multiple of any workgroup size.
    let n = 2 * 3 * 5 * 7;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.4)
        .collect();
    let sink: Vec<f32> = vec![0.3, -0.2, 1.0];
    for norm in [
        ScoreNorm::Softmax,
        ScoreNorm::Clipped {
            gamma: -0.05,
            zeta: 1.02,
        },
        ScoreNorm::Softmax1,
        ScoreNorm::Sink,
    ] {
        let run = |d: &Device| {
            let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [2, 3, 5, 7]), d);
            let s = Tensor::<1>::from_data(TensorData::new(sink.clone(), [3]), d);
            vals(norm.apply(t, Some(s)))
        };
        let diff = max_diff(&run(&cpu), &run(&gpu));
        assert!(diff < 1e-5, "{norm:?}: max diff {diff}");
    }

    // A few training steps of each model: same init (host-drawn), so the losses agree closely.
    for text in [
        "model=bert&attn=clipped&alpha=0.5&layers=1&d=16&heads=2&ffn=32&seq=16&batch=4&steps=10",
        "model=opt&attn=gated&layers=1&d=16&heads=2&ffn=32&seq=16&batch=4&steps=10",
        "model=vit&attn=sink&layers=1&d=16&heads=2&ffn=32&img=16&patch=4&batch=4&steps=10",
    ] {
        let spec = RunSpec::parse(text).unwrap();
        let losses = |d: &Device| {
            let mut tr = Trainer::new(spec.clone(), RunData::load(&spec, None).unwrap(), d);
            (0..3)
                .map(|_| tr.step_sync(true).unwrap().loss)
                .collect::<Vec<_>>()
        };
        let (a, b) = (losses(&cpu), losses(&gpu));
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() < 1e-3 * x.abs().max(1.0),
                "{text}: cpu {a:?} vs wgpu {b:?}"
            );
        }
    }
}
