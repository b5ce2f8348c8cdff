//! The WGSL kernels against their Burn-tensor twins on wgpu (lavapipe here): values and
//! gradients, on shapes that are not multiples of any workgroup size and on rows of length 1.

use burn::tensor::{Device, DeviceKind, Distribution, Tensor, TensorData};
use qtlab_core::kernels::{self, STAT_COLS, custom, reference};
use qtlab_core::quant::quantizer::QuantParams;

fn gpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

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

/// Deterministic values with a spread of magnitudes, some large enough to saturate a clip.
fn data(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let u = ((i as u64 * 2_654_435_761) % 10_007) as f32 / 10_007.0;
            (u - 0.5) * scale + if i % 97 == 0 { 4.0 * scale } else { 0.0 }
        })
        .collect()
}

const SHAPES: [[usize; 4]; 5] = [
    [2, 3, 5, 7],
    [1, 1, 1, 1],
    [3, 2, 4, 1],
    [2, 4, 33, 33],
    [1, 2, 3, 300],
];

#[test]
fn clipped_softmax_kernel_matches_reference() {
    let device = gpu().autodiff();
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        for (gamma, zeta) in [(0.0, 1.0), (-0.025, 1.0), (-0.3, 1.2)] {
            let x = data(n, 6.0);
            let g = data(n, 1.0).into_iter().rev().collect::<Vec<_>>();
            let run = |kernel: bool| {
                let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &device)
                    .require_grad();
                let y = if kernel {
                    custom::clipped_softmax(xt.clone(), gamma, zeta)
                } else {
                    reference::clipped_softmax(xt.clone(), gamma, zeta)
                };
                let gt = Tensor::<4>::from_data(TensorData::new(g.clone(), shape), &device);
                let grads = (y.clone() * gt).sum().backward();
                (vals(y.inner()), vals(xt.grad(&grads).unwrap()))
            };
            let (yk, gk) = run(true);
            let (yr, gr) = run(false);
            let dy = max_diff(&yk, &yr);
            let dg = max_diff(&gk, &gr);
            assert!(
                dy < 1e-5,
                "{shape:?} γ={gamma} ζ={zeta}: values differ by {dy}"
            );
            assert!(
                dg < 1e-5,
                "{shape:?} γ={gamma} ζ={zeta}: gradients differ by {dg}"
            );
            if gamma < 0.0 && shape[3] > 1 {
                // The clip is active somewhere, so the test covers the masked branch.
                assert!(yk.iter().any(|&v| v == 0.0), "{shape:?}: no clipped zero");
            }
        }
    }
}

#[test]
fn layer_norm_kernels_match_reference() {
    let device = gpu().autodiff();
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        let d = shape[3];
        // A row mean far from zero checks the two-pass variance.
        let x: Vec<f32> = data(n, 3.0).into_iter().map(|v| v + 50.0).collect();
        let g = data(n, 1.0).into_iter().rev().collect::<Vec<_>>();
        let gamma: Vec<f32> = (0..d).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        let beta: Vec<f32> = (0..d).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
        let run = |kernel: bool| {
            let xt =
                Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &device).require_grad();
            let gt_ =
                Tensor::<1>::from_data(TensorData::new(gamma.clone(), [d]), &device).require_grad();
            let bt =
                Tensor::<1>::from_data(TensorData::new(beta.clone(), [d]), &device).require_grad();
            let y = if kernel {
                custom::layer_norm(xt.clone(), gt_.clone(), bt.clone(), kernels::LN_EPS)
            } else {
                reference::layer_norm(xt.clone(), gt_.clone(), bt.clone(), kernels::LN_EPS)
            };
            let go = Tensor::<4>::from_data(TensorData::new(g.clone(), shape), &device);
            let grads = (y.clone() * go).sum().backward();
            (
                vals(y.inner()),
                vals(xt.grad(&grads).unwrap()),
                vals(gt_.grad(&grads).unwrap()),
                vals(bt.grad(&grads).unwrap()),
            )
        };
        let k = run(true);
        let r = run(false);
        // Rows of length 1 normalise to β exactly; their x-gradient is 0 in exact arithmetic.
        for (what, a, b, tol) in [
            ("values", &k.0, &r.0, 1e-4),
            ("x gradient", &k.1, &r.1, 2e-3),
            ("γ gradient", &k.2, &r.2, 1e-3),
            ("β gradient", &k.3, &r.3, 1e-3),
        ] {
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let diff = max_diff(a, b);
            assert!(
                diff <= tol * scale,
                "{shape:?} {what}: differ by {diff} (scale {scale})"
            );
        }
        // The β gradient is a column sum of g: check it against the host too.
        let rows = n / d;
        for j in 0..d {
            let want: f32 = (0..rows).map(|r| g[r * d + j]).sum();
            assert!(
                (k.3[j] - want).abs() < 1e-3 * want.abs().max(1.0),
                "β grad {j}"
            );
        }
    }
}

#[test]
fn fake_quant_kernel_matches_reference() {
    let device = gpu().autodiff();
    for n in [1usize, 4, 255, 256, 257, 70_001, 70_004] {
        for p in [
            QuantParams::asymmetric(-1.3, 2.1, 8),
            QuantParams::asymmetric(-0.2, 0.9, 4),
            QuantParams::symmetric(-1.0, 0.8, 6),
        ] {
            let x = data(n, 3.0);
            let g = data(n, 1.0);
            let run = |kernel: bool| {
                let xt =
                    Tensor::<1>::from_data(TensorData::new(x.clone(), [n]), &device).require_grad();
                let y = if kernel {
                    custom::fake_quant(xt.clone(), p.scale, p.zero_point, p.qmin, p.qmax)
                } else {
                    reference::fake_quant(xt.clone(), p.scale, p.zero_point, p.qmin, p.qmax)
                };
                let gt = Tensor::<1>::from_data(TensorData::new(g.clone(), [n]), &device);
                let grads = (y.clone() * gt).sum().backward();
                (vals(y.inner()), vals(xt.grad(&grads).unwrap()))
            };
            let (yk, gk) = run(true);
            let (yr, gr) = run(false);
            // Both round the same f32, but a value within an ulp of a half step may still land
            // on either side if the two divisions differ in the last bit: allow one grid step
            // on a vanishing fraction of the elements.
            let off = yk
                .iter()
                .zip(&yr)
                .filter(|(a, b)| (*a - *b).abs() > 1e-6)
                .count();
            assert!(max_diff(&yk, &yr) <= p.scale * 1.001, "n={n} {p:?}");
            assert!(off * 1000 <= n, "n={n} {p:?}: {off} values differ");
            // The reference's chain rule goes through ÷Δ and ×Δ, so it is off by an ulp.
            let goff = gk
                .iter()
                .zip(&gr)
                .filter(|(a, b)| (*a - *b).abs() > 1e-5 * (1.0 + b.abs()))
                .count();
            assert!(goff * 1000 <= n, "n={n} {p:?}: {goff} gradients differ");
            // Both branches of the straight-through mask occur.
            if n > 1000 {
                assert!(
                    gk.iter().zip(&g).any(|(a, b)| a == b && *b != 0.0),
                    "n={n}: no pass-through"
                );
                assert!(gk.iter().any(|&a| a == 0.0), "n={n}: no blocked gradient");
            }
        }
    }
}

#[test]
fn min_max_kernel_matches_reference() {
    let device = gpu();
    let cpu = Device::flex();
    for n in [
        1usize, 2, 255, 256, 257, 100_003, 1_000_000, 1_200_000, 4_194_307,
    ] {
        let x = data(n, 5.0);
        let t = Tensor::<1>::from_data(TensorData::new(x.clone(), [n]), &device);
        let k = vals(custom::min_max(t.clone()));
        let r = vals(reference::min_max(t));
        let r_cpu = vals(reference::min_max(Tensor::<1>::from_data(
            TensorData::new(x.clone(), [n]),
            &cpu,
        )));
        let lo = x.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Min and max are exact, so kernel, reference on the GPU and reference on the CPU
        // agree bit for bit. (Burn's own whole-tensor max on lavapipe was 0.02 % low for
        // n = 100,003 and 0.12 % low for n = 1,000,000: it stops after 65,533 vectors, which
        // is why the reference reduces in rows; see `kernels::REDUCE_CHUNK`.)
        assert_eq!(k, vec![lo, hi], "n={n}: kernel");
        assert_eq!(k, r_cpu, "n={n}: kernel vs reference on the CPU");
        assert_eq!(k, r, "n={n}: kernel vs reference on the GPU");
    }
    // A 3-D activation goes through the same path.
    let t = Tensor::<3>::random([3, 17, 5], Distribution::Normal(0.0, 2.0), &device);
    assert_eq!(
        vals(custom::min_max(t.clone())),
        vals(reference::min_max(t))
    );
}

#[test]
fn seq_stats_kernel_matches_reference() {
    let device = gpu();
    let bins = 41;
    for (b, n) in [
        (1usize, 1usize),
        (3, 255),
        (2, 257),
        (4, 64 * 128),
        (1, 10_000),
    ] {
        let x = data(b * n, 2.0);
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [b, n]), &device);
        for range in [0.5f32, 3.0, 0.0] {
            let r = Tensor::<1>::from_data(TensorData::new(vec![range], [1]), &device);
            let k = vals(custom::seq_stats(xt.clone(), r.clone(), bins));
            let rf = vals(reference::seq_stats(xt.clone(), r, bins));
            let w = STAT_COLS + bins;
            assert_eq!(k.len(), b * w);
            for s in 0..b {
                let (kr, rr) = (&k[s * w..(s + 1) * w], &rf[s * w..(s + 1) * w]);
                for c in 0..STAT_COLS {
                    let tol = 1e-4 * rr[c].abs().max(1e-3);
                    assert!(
                        (kr[c] - rr[c]).abs() <= tol,
                        "b={b} n={n} col {c}: {} vs {}",
                        kr[c],
                        rr[c]
                    );
                }
                // Counts are integers; a value on a bin edge may fall either side after the
                // two paths' divisions, so allow a handful of moves but keep the total exact.
                let moved: f32 = kr[STAT_COLS..]
                    .iter()
                    .zip(&rr[STAT_COLS..])
                    .map(|(a, b)| (a - b).abs())
                    .sum();
                assert!(
                    moved <= 2.0 + n as f32 * 1e-3,
                    "b={b} n={n} range={range}: {moved} counts moved"
                );
                let total: f32 = kr[STAT_COLS..].iter().sum();
                assert_eq!(total, n as f32, "every value is counted once");
            }
        }
        // Kurtosis from the kernel's moments is the paper's definition (host f64 oracle).
        let r = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
        let kurt = vals(kernels::kurtosis_from_stats(custom::seq_stats(xt, r, bins)));
        for s in (0..b).filter(|_| n > 1) {
            let want = qtlab_core::metrics::kurtosis_host(&x[s * n..(s + 1) * n]);
            assert!(
                (kurt[s] as f64 - want).abs() <= 1e-3 * want.max(1.0),
                "b={b} n={n}: {} vs {want}",
                kurt[s]
            );
        }
    }
    // NaNs are not counted; ±∞ land in the edge bins.
    let xt = Tensor::<2>::from_data(
        TensorData::new(
            vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0],
            [1, 4],
        ),
        &device,
    );
    let r = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
    let k = vals(custom::seq_stats(xt.clone(), r.clone(), 5));
    let rf = vals(reference::seq_stats(xt, r, 5));
    assert_eq!(&k[STAT_COLS..], &[1.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!(&k[STAT_COLS..], &rf[STAT_COLS..]);
}

#[test]
fn dispatch_picks_kernel_on_gpu_and_reference_on_cpu() {
    assert!(kernels::is_cube(&gpu()));
    assert!(kernels::is_cube(&gpu().autodiff()));
    assert!(!kernels::is_cube(&Device::flex()));
    assert!(!kernels::is_cube(&Device::flex().autodiff()));
    // The CPU path runs (the extension has no CPU implementation, so this would panic if the
    // dispatch sent it to the kernel).
    let t = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
        &Device::flex(),
    );
    let y = vals(kernels::clipped_softmax(t, 0.0, 1.0));
    assert!((y[0] + y[1] - 1.0).abs() < 1e-6);
}

#[test]
fn matmul_kernel_matches_reference() {
    let device = gpu().autodiff();
    // (batch, M, K, N): tiles that do not divide, single elements, K = 1, a long K.
    // The first five take the vec4 kernels (K, N multiples of 4), the rest the strided one.
    // Where M, K, N all divide by 4 the backward pass's Aᵀ·dC and dC·Bᵀ (and matmul_t's
    // forward) read the transposed views in place: the _tn and _nt kernels, including a
    // partial row tile (12 and 36 rows against tiles of 8).
    for (batch, m, k, n) in [
        (2, 9, 8, 12),
        (1, 33, 300, 8),
        (2, 8, 12, 16),
        (1, 4, 4, 4),
        (1, 20, 36, 4),
        (1, 1, 1, 1),
        (3, 5, 7, 9),
        (2, 33, 17, 6),
    ] {
        let av = data(batch * m * k, 2.0);
        let bv = data(batch * k * n, 1.0)
            .into_iter()
            .rev()
            .collect::<Vec<_>>();
        let gv = data(batch * m * n, 1.0);
        let run = |kernel: bool, transposed: bool| {
            let a = Tensor::<3>::from_data(TensorData::new(av.clone(), [batch, m, k]), &device)
                .require_grad();
            // The same B, either as [K, N] or stored as [N, K] and read through matmul_t.
            let b = if transposed {
                let t = Tensor::<3>::from_data(TensorData::new(bv.clone(), [batch, k, n]), &device);
                Tensor::<3>::from_data(t.swap_dims(1, 2).into_data(), &device).require_grad() // [batch, N, K]
            } else {
                Tensor::<3>::from_data(TensorData::new(bv.clone(), [batch, k, n]), &device)
                    .require_grad()
            };
            kernels::set_enabled(kernel);
            let y = if transposed {
                kernels::matmul_t(a.clone(), b.clone())
            } else {
                kernels::matmul(a.clone(), b.clone())
            };
            kernels::set_enabled(true);
            let g = Tensor::<3>::from_data(TensorData::new(gv.clone(), [batch, m, n]), &device);
            let grads = (y.clone() * g).sum().backward();
            (
                vals(y.inner()),
                vals(a.grad(&grads).unwrap()),
                vals(b.grad(&grads).unwrap()),
            )
        };
        for transposed in [false, true] {
            let (yk, gak, gbk) = run(true, transposed);
            let (yr, gar, gbr) = run(false, transposed);
            let tol = 1e-4 * (k as f32).sqrt() * 4.0;
            let what = format!("batch={batch} m={m} k={k} n={n} transposed={transposed}");
            assert!(
                max_diff(&yk, &yr) < tol,
                "{what}: values differ by {}",
                max_diff(&yk, &yr)
            );
            assert!(
                max_diff(&gak, &gar) < tol,
                "{what}: dA differs by {}",
                max_diff(&gak, &gar)
            );
            assert!(
                max_diff(&gbk, &gbr) < tol,
                "{what}: dB differs by {}",
                max_diff(&gbk, &gbr)
            );
        }
    }
}

#[test]
fn linear_through_the_kernel_matches_burn_linear() {
    use burn::nn::LinearConfig;
    let device = gpu().autodiff();
    for bias in [true, false] {
        let layer = LinearConfig::new(13, 6).with_bias(bias).init(&device);
        let x = Tensor::<3>::random([2, 5, 13], Distribution::Normal(0.0, 1.0), &device);
        let k = vals(kernels::linear(&layer, x.clone()));
        let r = vals(layer.forward(x));
        assert!(max_diff(&k, &r) < 1e-4, "bias={bias}: {}", max_diff(&k, &r));
    }
}

#[test]
fn pack_kernel_matches_reference() {
    let device = gpu();
    // 13 parts is three launches (six a launch); lengths straddle the alignment and include
    // a length-1 part and parts longer than a workgroup.
    let lens = [1usize, 3, 64, 65, 200, 7, 1000, 4, 5, 130, 2, 9, 77];
    let parts: Vec<Vec<f32>> = lens
        .iter()
        .enumerate()
        .map(|(k, &n)| data(n, 1.0 + k as f32))
        .collect();
    let tensors = |d: &Device| -> Vec<Tensor<1>> {
        parts
            .iter()
            .map(|p| Tensor::from_data(TensorData::new(p.clone(), [p.len()]), d))
            .collect()
    };
    for align in [1usize, 4, 64] {
        let k = vals(custom::pack(tensors(&device), align));
        let r = vals(reference::pack(tensors(&Device::flex()), align));
        // Built by hand: each part, then zeros to the next multiple of `align`.
        let mut expect = Vec::new();
        for p in &parts {
            expect.extend_from_slice(p);
            expect.resize(expect.len().div_ceil(align) * align, 0.0);
        }
        assert_eq!(k.len(), kernels::packed_len(lens, align), "align {align}");
        assert_eq!(k, expect, "align {align}: kernel");
        assert_eq!(r, expect, "align {align}: reference");
    }
    // Two views of one buffer in one launch (LayerNorm's γ and β gradients are the rows of
    // one [2, n] tensor).
    let both = Tensor::<2>::from_data(TensorData::new(data(2 * 64, 3.0), [2, 64]), &device);
    let rows: Vec<Tensor<1>> = (0..2)
        .map(|i| both.clone().slice([i..i + 1, 0..64]).reshape([64]))
        .collect();
    assert_eq!(vals(custom::pack(rows, 64)), data(2 * 64, 3.0));
}

#[test]
fn pack_into_never_writes_a_buffer_someone_else_holds() {
    use burn::backend::Dispatch;
    use qtlab_core::kernels::KernelOps;
    let device = gpu();
    let dst = Tensor::<1>::zeros([8], &device);
    let kept = dst.clone();
    let a = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [3]), &device);
    let s = || a.clone().into_dispatch();
    let out: Tensor<1> = Tensor::from_dispatch(Dispatch::pack_into(
        dst.into_dispatch(),
        s(),
        s(),
        s(),
        s(),
        s(),
        s(),
        1,
        4,
        4,
    ));
    assert_eq!(vals(out), vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.0]);
    assert_eq!(
        vals(kept),
        vec![0.0; 8],
        "the shared buffer was written in place"
    );
}

#[test]
fn segments_of_a_flat_buffer_read_back_their_values() {
    let device = gpu();
    let v = data(300, 2.0);
    let flat = Tensor::<1>::from_data(TensorData::new(v.clone(), [300]), &device);
    // Aligned starts are views (the optimizer's parameters), ending anywhere; other starts
    // are copies. Both must read the right values, and a view must survive the flat tensor.
    for (off, n) in [
        (0usize, 300usize),
        (0, 5),
        (64, 70),
        (128, 1),
        (192, 108),
        (3, 10),
        (65, 64),
    ] {
        let seg = kernels::segment(flat.clone(), off, n);
        assert_eq!(vals(seg), v[off..off + n].to_vec(), "off {off} n {n}");
    }
    let kept = kernels::segment(flat, 64, 70).reshape([7, 10]);
    assert_eq!(vals(kept.clone().sum_dim(1).reshape([7])).len(), 7);
    assert_eq!(vals(kept.reshape([70])), v[64..134].to_vec());
}

/// Burn 0.22.1's wgpu reductions stop after 65,533 vectors of the reduced axis (see
/// `kernels::REDUCE_CHUNK`); the whole-tensor reductions the trainer and the quantizer use
/// must still see every element.
#[test]
fn whole_tensor_reductions_cover_every_element() {
    let device = gpu();
    for n in [1usize, 16_384, 16_385, 300_000, (1 << 20) + 3] {
        let ones = Tensor::<1>::ones([n], &device);
        assert_eq!(vals(kernels::sum_all(ones)), vec![n as f32], "n={n}: sum");
        for p in [0, n / 2, n - 1] {
            let mut x = vec![0f32; n];
            x[p] = 7.0;
            if n > 1 {
                x[(p + 1) % n] = -3.0;
            }
            let want = if n > 1 {
                vec![-3.0, 7.0]
            } else {
                vec![7.0, 7.0]
            };
            let t = Tensor::<1>::from_data(TensorData::new(x, [n]), &device);
            assert_eq!(
                vals(reference::min_max(t.clone())),
                want,
                "n={n}, p={p}: reference"
            );
            assert_eq!(vals(custom::min_max(t)), want, "n={n}, p={p}: kernel");
        }
    }
}

#[test]
fn per_sequence_reductions_cover_long_sequences() {
    // Sequences past Burn's wgpu reduction reach (262,132 values with 16-byte loads, 65,532
    // without): the reference statistics and the metrics reduce in chunks, and must still see
    // an outlier in the very last position.
    let device = gpu();
    let bins = 8;
    for n in [300_001usize, 4 * 70_000] {
        let b = 2;
        let mut x = data(b * n, 2.0);
        x[n - 1] = 1000.0; // sequence 0's last value
        x[2 * n - 1] = -900.0; // sequence 1's last value
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [b, n]), &device);
        let r = Tensor::<1>::from_data(TensorData::new(vec![1000f32], [1]), &device);
        let k = vals(custom::seq_stats(xt.clone(), r.clone(), bins));
        let rf = vals(reference::seq_stats(xt.clone(), r, bins));
        let w = STAT_COLS + bins;
        let x3 = Tensor::<3>::from_data(TensorData::new(x.clone(), [b, n, 1]), &device);
        let inf = vals(qtlab_core::metrics::inf_norm_per_seq(x3.clone()));
        let kurt = vals(qtlab_core::metrics::kurtosis_per_seq(x3));
        for s in 0..b {
            let seq = &x[s * n..(s + 1) * n];
            let want_max = seq.iter().fold(0f32, |m, v| m.max(v.abs()));
            let want_mean = seq.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let want_kurt = qtlab_core::metrics::kurtosis_host(seq);
            for (name, row) in [("kernel", &k), ("reference", &rf)] {
                let row = &row[s * w..(s + 1) * w];
                assert_eq!(row[0], want_max, "n={n} seq {s}: {name} max |x|");
                assert!(
                    (row[1] as f64 - want_mean).abs() <= 1e-4 * want_mean.abs().max(1.0),
                    "n={n} seq {s}: {name} mean {} vs {want_mean}",
                    row[1]
                );
                let total: f32 = row[STAT_COLS..].iter().sum();
                assert_eq!(total, n as f32, "n={n} seq {s}: {name} counts every value");
            }
            assert_eq!(inf[s], want_max, "n={n} seq {s}: metrics max |x|");
            assert!(
                (kurt[s] as f64 - want_kurt).abs() <= 1e-3 * want_kurt,
                "n={n} seq {s}: metrics kurtosis {} vs {want_kurt}",
                kurt[s]
            );
        }
    }
}

/// One rounding everywhere, the paper's `round(x/Δ) + zp`: at an odd zero point a tie of x/Δ
/// rounds to even before the shift, so round(2.5) + 3 = 5, where round(2.5 + 3) would be 6.
/// The host oracle, the Burn-tensor twin (CPU and GPU) and the WGSL kernel must agree.
#[test]
fn fake_quant_ties_round_before_the_zero_point() {
    let p = QuantParams {
        scale: 0.5,
        zero_point: 3.0,
        qmin: 0.0,
        qmax: 15.0,
    };
    // x/Δ = 2.5, −0.5, 1.5, 0.5, −1.5: all exact ties.
    let x = vec![1.25f32, -0.25, 0.75, 0.25, -0.75];
    // round-half-even(x/Δ) = 2, −0, 2, 0, −2, then + zp and back: (q − zp)·Δ.
    let want = vec![1.0f32, 0.0, 1.0, 0.0, -1.0];
    let host: Vec<f32> = x
        .iter()
        .map(|&v| qtlab_core::quant::fake_quant_host(v, &p))
        .collect();
    assert_eq!(host, want, "host oracle");
    for (on_gpu, device) in [(false, Device::flex()), (true, gpu())] {
        let t = Tensor::<1>::from_data(TensorData::new(x.clone(), [x.len()]), &device);
        assert_eq!(
            vals(reference::fake_quant(
                t.clone(),
                p.scale,
                p.zero_point,
                p.qmin,
                p.qmax
            )),
            want,
            "twin, gpu={on_gpu}"
        );
        if on_gpu {
            assert_eq!(
                vals(custom::fake_quant(t, p.scale, p.zero_point, p.qmin, p.qmax)),
                want,
                "WGSL kernel"
            );
        }
    }
}
