//! Metric functions against hand-computed numbers.

use burn::tensor::{Device, Tensor, TensorData};
use qtlab_core::metrics::{
    gate_mean, inf_norm_per_seq, kurtosis_host, kurtosis_per_seq, noop_masses,
};

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn inf_norm_and_kurtosis_by_hand() {
    let d = Device::flex();
    // Sequence 0: [0, 0, 0, 4] (T=2, d=2): μ=1, deviations [−1,−1,−1,3], m4 = 84/4 = 21,
    // unbiased s² = 12/3 = 4 ⇒ kurtosis = 21/(16+1e-6) = 1.3125.
    // Sequence 1: [−5, 1, 1, 1]: inf-norm 5; μ = −0.5, deviations [−4.5, 1.5, 1.5, 1.5],
    // m4 = (410.0625 + 3·5.0625)/4 = 106.3125, s² = (20.25 + 3·2.25)/3 = 9 ⇒ 106.3125/81 = 1.3125.
    let x = Tensor::<3>::from_data(
        TensorData::new(vec![0.0f32, 0.0, 0.0, 4.0, -5.0, 1.0, 1.0, 1.0], [2, 2, 2]),
        &d,
    );
    assert_eq!(vals(inf_norm_per_seq(x.clone())), vec![4.0, 5.0]);
    let k = vals(kurtosis_per_seq(x));
    assert!(
        (k[0] - 1.3125).abs() < 1e-5 && (k[1] - 1.3125).abs() < 1e-5,
        "{k:?}"
    );
    assert!((kurtosis_host(&[0.0, 0.0, 0.0, 4.0]) - 1.3125).abs() < 1e-6);
}

#[test]
fn gaussian_kurtosis_is_three_and_an_outlier_raises_it() {
    let d = Device::flex();
    let mut rng = qtlab_core::rng::Rng::new(9);
    let mut v: Vec<f32> = (0..4096).map(|_| rng.normal() as f32).collect();
    let k = vals(kurtosis_per_seq(Tensor::from_data(
        TensorData::new(v.clone(), [1, 64, 64]),
        &d,
    )))[0];
    assert!((k - 3.0).abs() < 0.2, "{k}");
    assert!((k as f64 - kurtosis_host(&v)).abs() < 1e-3);
    v[17] = 60.0;
    let k2 = vals(kurtosis_per_seq(Tensor::from_data(
        TensorData::new(v, [1, 64, 64]),
        &d,
    )))[0];
    assert!(k2 > 100.0, "{k2}");
}

#[test]
fn noop_masses_and_gate_means() {
    let d = Device::flex();
    // One batch, one head, 2 queries × 3 keys. Keys: [first, delimiter, other].
    let p = Tensor::<4>::from_data(
        TensorData::new(vec![0.5f32, 0.3, 0.2, 0.1, 0.6, 0.3], [1, 1, 2, 3]),
        &d,
    );
    let delim = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0, 0.0], [1, 3]), &d);
    let (first, on_delim) = noop_masses(p, delim);
    assert!((vals(first)[0] - 0.3).abs() < 1e-6);
    assert!((vals(on_delim)[0] - 0.45).abs() < 1e-6);
    let g = Tensor::<4>::from_data(
        TensorData::new(vec![0.2f32, 0.4, 0.9, 0.7], [1, 2, 2, 1]),
        &d,
    );
    let m = vals(gate_mean(g));
    assert!(
        (m[0] - 0.3).abs() < 1e-6 && (m[1] - 0.8).abs() < 1e-6,
        "{m:?}"
    );
}

#[test]
fn one_pass_stats_agree_with_the_definitions() {
    // The statistics path the trainer and the evaluation use (a kernel on a GPU, the tensor
    // reference here) against the host oracles of the paper's definitions.
    let device = burn::tensor::Device::flex();
    let (b, t, d) = (3, 7, 5);
    let vals: Vec<f32> = (0..b * t * d)
        .map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.3 + if i % 23 == 0 { 9.0 } else { 0.0 })
        .collect();
    let x = burn::tensor::Tensor::<3>::from_data(
        burn::tensor::TensorData::new(vals.clone(), [b, t, d]),
        &device,
    );
    let (inf, kurt) = qtlab_core::metrics::inf_norm_and_kurtosis(x);
    let inf = inf.into_data().try_into_vec::<f32>().unwrap();
    let kurt = kurt.into_data().try_into_vec::<f32>().unwrap();
    for s in 0..b {
        let seq = &vals[s * t * d..(s + 1) * t * d];
        let want_inf = seq.iter().fold(0f32, |m, v| m.max(v.abs()));
        let want_kurt = qtlab_core::metrics::kurtosis_host(seq);
        assert_eq!(inf[s], want_inf);
        assert!(
            (kurt[s] as f64 - want_kurt).abs() < 1e-4 * want_kurt,
            "{} vs {want_kurt}",
            kurt[s]
        );
    }
}

/// First-token and delimiter mass over a chosen set of queries, by hand: one sequence, one
/// head, three queries; query 1 is a copy, query 2 is not.
#[test]
fn noop_masses_over_selected_queries_by_hand() {
    use qtlab_core::metrics::noop_masses_over;
    let d = Device::flex();
    // rows: query 0 → [1, 0, 0]; query 1 → [0.2, 0.8, 0]; query 2 → [0.7, 0.1, 0.2]
    let probs = Tensor::<4>::from_data(
        TensorData::new(
            vec![1.0f32, 0.0, 0.0, 0.2, 0.8, 0.0, 0.7, 0.1, 0.2],
            [1, 1, 3, 3],
        ),
        &d,
    );
    let delim = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0], [1, 3]), &d);
    let copy = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0, 0.0], [1, 3]), &d);
    let other = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0], [1, 3]), &d);
    let (f, dm) = noop_masses_over(probs.clone(), delim.clone(), copy);
    assert!((vals(f)[0] - 0.2).abs() < 1e-6 && vals(dm)[0].abs() < 1e-6);
    let (f, dm) = noop_masses_over(probs, delim, other);
    assert!((vals(f)[0] - 0.7).abs() < 1e-6 && (vals(dm)[0] - 0.2).abs() < 1e-6);
}

#[test]
fn quality_is_formatted_one_way() {
    use qtlab_core::metrics::format_quality;
    assert_eq!(
        format_quality(Some(12.34567), None).as_deref(),
        Some("12.346")
    );
    // A diverged model's perplexity stays readable.
    assert_eq!(format_quality(Some(2.5e7), None).as_deref(), Some("2.50e7"));
    assert_eq!(
        format_quality(None, Some(0.9375)).as_deref(),
        Some("93.8 %")
    );
    assert_eq!(format_quality(None, None), None);
}
