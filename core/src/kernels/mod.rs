//! Custom WGSL kernels for the hot paths (`shaders/*.wgsl`) and their plain Burn-tensor twins.
//!
//! Every kernel has a [`reference`](mod@reference) implementation written with ordinary tensor ops. The CPU
//! backend always takes the reference; a wgpu/WebGPU device takes the kernel unless
//! [`set_enabled`] turned kernels off (the benchmark does, to time the reference on the same
//! device). Tests compare the two on lavapipe, values and gradients.
//!
//! The kernels:
//! - clipped softmax over the last axis, forward and backward, one launch each (plain softmax
//!   is the case γ = 0, ζ = 1, so vanilla attention uses it too);
//! - fake quantization with a straight-through backward, one launch each;
//! - min and max of a tensor for calibration, one shader launched twice;
//! - batched matmul with a register tile and no barriers (Burn's tiled matmul is most of a
//!   training step on CPU-emulated GPUs), used by every Linear layer and both attention
//!   products;
//! - LayerNorm, forward in one launch and backward in three (Burn's decomposition is about
//!   sixteen), since in the browser a step's time is mostly per-launch cost;
//! - outlier statistics: per-sequence max |x|, mean, variance, fourth moment and a histogram in
//!   one launch.
//!
//! The gated-attention gate (σ(g)·context) is not a kernel: it is one broadcast multiply that
//! Burn's fusion already folds into its neighbours, so a custom launch could only add a pass.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Device, Tensor};

mod autodiff;
mod cube;
mod ops;
mod wgsl;

pub use ops::KernelOps;
pub use wgsl::instances;

/// Bins per activation histogram (the inspector's, and one of the shader variants compiled
/// ahead). Odd, so zero sits in the middle of a bin.
pub const HIST_BINS: usize = 41;

/// Columns of a [`seq_stats`] row before the histogram: max |x|, mean, unbiased variance, m4.
pub const STAT_COLS: usize = 4;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the custom kernels on or off for every later call (default: on).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether calls on `device` go to the custom kernels: a wgpu/WebGPU device with kernels on.
pub fn active(device: &Device) -> bool {
    ENABLED.load(Ordering::Relaxed) && is_cube(device)
}

/// A wgpu device (Vulkan/Metal/DX12 natively, WebGPU in the browser), autodiff or not: the
/// kernels are WGSL, so another CubeCL runtime (CUDA with the `cuda` feature) takes the
/// Burn-tensor twins.
pub fn is_cube(device: &Device) -> bool {
    let inner = device.clone().inner();
    matches!(
        inner.as_dispatch(),
        burn::backend::DispatchDevice::Cube(d) if d.runtime() == burn::cubecl::RuntimeId::Wgpu
    )
}

/// clip((ζ−γ)·softmax(x)+γ, 0, 1) over the last axis; γ = 0, ζ = 1 is softmax.
///
/// # Shapes
/// - `x`: any, normalised over the last axis → same
pub fn clipped_softmax<const D: usize>(x: Tensor<D>, gamma: f64, zeta: f64) -> Tensor<D> {
    if active(&x.device()) {
        custom::clipped_softmax(x, gamma, zeta)
    } else {
        reference::clipped_softmax(x, gamma, zeta)
    }
}

/// Fake quantization Δ·(clamp(round(x/Δ) + zp, qmin, qmax) − zp) with a straight-through
/// gradient inside the grid and zero outside.
///
/// The grid comes as plain numbers (Δ, zp, qmin, qmax), so the kernels need nothing from the
/// quantizers that build it (`quant::QuantParams`).
///
/// # Shapes
/// - `x`: any → same
pub fn fake_quant<const D: usize>(
    x: Tensor<D>,
    scale: f32,
    zero_point: f32,
    qmin: f32,
    qmax: f32,
) -> Tensor<D> {
    if active(&x.device()) {
        custom::fake_quant(x, scale, zero_point, qmin, qmax)
    } else {
        reference::fake_quant(x, scale, zero_point, qmin, qmax)
    }
}

/// `a · b` over the last two axes; the leading axes must match (no broadcasting).
///
/// # Shapes
/// - `a`: `[.., M, K]`, `b`: `[.., K, N]` → `[.., M, N]`
pub fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    batched(a, b, false)
}

/// `a · bᵀ` over the last two axes, without materialising the transpose (attention scores,
/// tied output embeddings).
///
/// # Shapes
/// - `a`: `[.., M, K]`, `b`: `[.., N, K]` → `[.., M, N]`
pub fn matmul_t<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    batched(a, b, true)
}

/// [`matmul`] (`b` is `[.., K, N]`) or [`matmul_t`] (`b` is `[.., N, K]`): the kernel on a GPU
/// when the leading axes match, Burn's matmul otherwise.
fn batched<const D: usize>(a: Tensor<D>, b: Tensor<D>, b_transposed: bool) -> Tensor<D> {
    let (da, db) = (a.dims(), b.dims());
    if !active(&a.device()) || da[..D - 2] != db[..D - 2] {
        let b = if b_transposed {
            b.swap_dims(D - 2, D - 1)
        } else {
            b
        };
        return a.matmul(b);
    }
    let batch: usize = da[..D - 2].iter().product();
    let (m, k) = (da[D - 2], da[D - 1]);
    let a3 = a.reshape([batch, m, k]); // [batch, M, K]
    let (b3, n) = if b_transposed {
        let n = db[D - 2];
        (b.reshape([batch, n, k]).swap_dims(1, 2), n) // [batch, K, N], a strided view
    } else {
        let n = db[D - 1];
        (b.reshape([batch, k, n]), n) // [batch, K, N]
    };
    let mut out = da;
    out[D - 1] = n;
    custom::matmul(a3, b3).reshape(out)
}

/// Burn's `Linear` forward (`x · W + b`, W stored `[d_in, d_out]`) through [`matmul`].
///
/// # Shapes
/// - `x`: `[.., d_in]` → `[.., d_out]`
pub fn linear<const D: usize>(layer: &burn::nn::Linear, x: Tensor<D>) -> Tensor<D> {
    if !active(&x.device()) {
        return layer.forward(x);
    }
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = x.shape().num_elements() / d_in.max(1);
    let w = layer.weight.val(); // [d_in, d_out]
    let d_out = w.dims()[1];
    let y = custom::matmul(x.reshape([1, rows, d_in]), w.unsqueeze::<3>()); // [1, rows, d_out]
    let y = match &layer.bias {
        Some(bias) => y + bias.val().reshape([1, 1, d_out]),
        None => y,
    };
    let mut out = dims;
    out[D - 1] = d_out;
    y.reshape(out)
}

/// ε of every LayerNorm in the models (Burn's and PyTorch's default). Burn's `LayerNorm` keeps
/// its ε private, so the models build theirs with this constant and the kernel reads it here.
pub const LN_EPS: f64 = 1e-5;

/// Burn's `LayerNorm` forward, (x − mean)/√(var + ε)·γ + β over the last axis, as one kernel
/// forward and three backward (Burn's decomposition is about four launches forward and a dozen
/// backward). A LayerNorm without β takes Burn's path.
///
/// # Shapes
/// - `x`: `[.., d_model]` → same
pub fn layer_norm<const D: usize>(layer: &burn::nn::LayerNorm, x: Tensor<D>) -> Tensor<D> {
    match &layer.beta {
        Some(beta) if active(&x.device()) => {
            custom::layer_norm(x, layer.gamma.val(), beta.val(), LN_EPS)
        }
        _ => layer.forward(x),
    }
}

/// Burn 0.22.1's wgpu reduction along one axis reads at most 65,533 vectors of it: 262,132 f32
/// with 16-byte loads, 65,532 without (measured on lavapipe: `ones([300_000]).sum()` is
/// 262,132, and the max of `0..100_003` is 65,532). A longer axis is silently cut short, so
/// every whole-tensor reduction here goes through rows of this many values.
pub const REDUCE_CHUNK: usize = 16_384;

/// Reduces every row of `x` to one value, in chunks of [`REDUCE_CHUNK`] when the rows are longer
/// (each row's whole chunks through `row`, then their results and the row's tail through `row`
/// again), so no reduced axis is longer than a chunk. `row` must be a sum, min or max along
/// axis 1; a mean is a sum divided by the length.
///
/// # Shapes
/// - `x`: `[rows, n]` → `[rows, 1]`
pub fn reduce_rows(x: Tensor<2>, row: impl Fn(Tensor<2>) -> Tensor<2>) -> Tensor<2> {
    let [b, n] = x.dims();
    if n <= REDUCE_CHUNK {
        return row(x);
    }
    let chunks = n / REDUCE_CHUNK;
    let whole = chunks * REDUCE_CHUNK;
    let heads = row(
        x.clone()
            .slice([0..b, 0..whole])
            .reshape([b * chunks, REDUCE_CHUNK]), // [rows·chunks, chunk]
    )
    .reshape([b, chunks]); // [rows, chunks]
    let mut parts = vec![heads];
    if whole < n {
        parts.push(x.slice([0..b, whole..n])); // [rows, n - whole]
    }
    row(Tensor::cat(parts, 1)) // [rows, 1]
}

/// Sum of every element, safe past Burn's reduction length limit ([`REDUCE_CHUNK`]).
///
/// # Shapes
/// - `x`: any → `[1]`
pub fn sum_all<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let n = x.shape().num_elements();
    reduce_rows(x.reshape([1, n]), |r| r.sum_dim(1)).reshape([1])
}

/// `[min, max]` over every element (no gradient).
///
/// # Shapes
/// - `x`: any, at least one element → `[2]`
pub fn min_max<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    if active(&x.device()) {
        custom::min_max(x)
    } else {
        reference::min_max(x)
    }
}

/// Segments of a [`pack`]ed buffer on a GPU device are padded to a multiple of this many
/// values: 64 f32 are 256 bytes, WebGPU's storage-offset alignment, so a segment sliced back
/// out is a view, not a copy.
pub const PACK_ALIGN: usize = 64;

/// Length of a [`pack`] of parts with lengths `lens`.
pub fn packed_len(lens: impl IntoIterator<Item = usize>, align: usize) -> usize {
    let align = align.max(1);
    lens.into_iter().map(|n| n.div_ceil(align) * align).sum()
}

/// The parts one after another, each followed by zeros up to a multiple of `align` values:
/// one flat buffer that an optimizer can reduce and update in one launch each. A GPU device
/// fills it six parts per launch; `Tensor::cat` takes one copy per part.
///
/// # Shapes
/// - `parts`: at least one, each `[n_i]` → `[packed_len(n_i, align)]`
pub fn pack(parts: Vec<Tensor<1>>, align: usize) -> Tensor<1> {
    assert!(!parts.is_empty(), "pack needs at least one part");
    if active(&parts[0].device()) {
        custom::pack(parts, align)
    } else {
        reference::pack(parts, align)
    }
}

/// `n` values of `flat` from `off` on. On a GPU device, when `off` is a multiple of
/// [`PACK_ALIGN`], the result is a view into `flat`'s buffer, not a copy: the optimizer hands
/// every parameter back this way.
///
/// # Shapes
/// - `flat`: `[total]` → `[n]`
pub fn segment(flat: Tensor<1>, off: usize, n: usize) -> Tensor<1> {
    if active(&flat.device()) {
        custom::segment(flat, off, n)
    } else {
        flat.slice(off..off + n)
    }
}

/// Per-sequence outlier statistics and a histogram of `bins` equal bins over
/// [−range, range] (edge bins take what lies beyond; NaNs are not counted). No gradient.
///
/// # Shapes
/// - `x`: `[batch, n]` (a sequence's T×d values flattened), `range`: `[1]`
/// - output: `[batch, STAT_COLS + bins]`, columns `[max|x|, mean, var (unbiased), m4, counts…]`
pub fn seq_stats(x: Tensor<2>, range: Tensor<1>, bins: usize) -> Tensor<2> {
    if active(&x.device()) {
        custom::seq_stats(x, range, bins)
    } else {
        reference::seq_stats(x, range, bins)
    }
}

/// [`seq_stats`] without a histogram: `[max|x|, mean, var (unbiased), m4, n]` per sequence.
/// The one-bin histogram is the count; its range binding is a one-element view of `x`, so no
/// tensor is created for it.
///
/// # Shapes
/// - `x`: `[batch, n]` → `[batch, 5]`
pub fn seq_moments(x: Tensor<2>) -> Tensor<2> {
    let range = x.clone().slice([0..1, 0..1]).reshape([1]); // [1], ignored with one bin
    seq_stats(x, range, 1)
}

/// The epsilon of the paper's kurtosis, m4 / (s⁴ + ε) (`kurtosis()` in the official
/// `transformers_language/utils.py`). Every kurtosis in qtlab goes through [`kurtosis`] or
/// `metrics::kurtosis_from_moments`, which both use it; only the test oracle
/// `metrics::kurtosis_host` spells the formula out again, on purpose.
pub const KURTOSIS_EPS: f64 = 1e-6;

/// The paper's raw kurtosis from the unbiased variance s² and the fourth central moment m4.
///
/// # Shapes
/// - `var`, `m4`: `[batch, 1]` → `[batch]`
pub fn kurtosis(var: Tensor<2>, m4: Tensor<2>) -> Tensor<1> {
    let b = var.dims()[0];
    (m4 / (var.powi_scalar(2) + KURTOSIS_EPS)).reshape([b])
}

/// Per-sequence kurtosis from a [`seq_stats`] output.
///
/// # Shapes
/// - `stats`: `[batch, STAT_COLS + bins]` → `[batch]`
pub fn kurtosis_from_stats(stats: Tensor<2>) -> Tensor<1> {
    let var = stats.clone().narrow(1, 2, 1); // [b, 1]
    let m4 = stats.narrow(1, 3, 1); // [b, 1]
    kurtosis(var, m4)
}

/// The kernels themselves, whatever [`set_enabled`] says. Only for CubeCL devices: any other
/// device panics (the extension has no CPU implementation; the CPU takes [`reference`](mod@reference)).
pub mod custom {
    use burn::backend::Dispatch;
    use burn::tensor::Tensor;

    use super::KernelOps;

    pub fn clipped_softmax<const D: usize>(x: Tensor<D>, gamma: f64, zeta: f64) -> Tensor<D> {
        Tensor::from_dispatch(Dispatch::clipped_softmax(
            x.into_dispatch(),
            gamma as f32,
            zeta as f32,
        ))
    }

    pub fn fake_quant<const D: usize>(
        x: Tensor<D>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> Tensor<D> {
        Tensor::from_dispatch(Dispatch::fake_quant(
            x.into_dispatch(),
            scale,
            zero_point,
            qmin,
            qmax,
        ))
    }

    pub fn min_max<const D: usize>(x: Tensor<D>) -> Tensor<1> {
        let n = x.shape().num_elements();
        let flat = x.reshape([n]); // [n]
        Tensor::from_dispatch(Dispatch::min_max(flat.into_dispatch()))
    }

    pub fn layer_norm<const D: usize>(
        x: Tensor<D>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        eps: f64,
    ) -> Tensor<D> {
        Tensor::from_dispatch(Dispatch::ln_fwd(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            eps as f32,
        ))
    }

    pub fn segment(flat: Tensor<1>, off: usize, n: usize) -> Tensor<1> {
        Tensor::from_dispatch(Dispatch::segment(flat.into_dispatch(), off, n))
    }

    pub fn pack(parts: Vec<Tensor<1>>, align: usize) -> Tensor<1> {
        let lens: Vec<usize> = parts.iter().map(|p| p.dims()[0]).collect();
        let total = super::packed_len(lens.iter().copied(), align);
        let mut dst = Tensor::<1>::empty([total], &parts[0].device()); // [total]
        let mut start = 0;
        for (chunk, lens) in parts
            .chunks(super::wgsl::PACK_MAX)
            .zip(lens.chunks(super::wgsl::PACK_MAX))
        {
            // Unused slots repeat the first part; the launch binds only `used` of them.
            let slot = |k: usize| chunk.get(k).unwrap_or(&chunk[0]).clone().into_dispatch();
            dst = Tensor::from_dispatch(Dispatch::pack_into(
                dst.into_dispatch(),
                slot(0),
                slot(1),
                slot(2),
                slot(3),
                slot(4),
                slot(5),
                chunk.len(),
                start,
                align,
            ));
            start += super::packed_len(lens.iter().copied(), align);
        }
        dst
    }

    /// `[batch, M, K] · [batch, K, N]`.
    pub fn matmul(a: Tensor<3>, b: Tensor<3>) -> Tensor<3> {
        Tensor::from_dispatch(Dispatch::matmul(a.into_dispatch(), b.into_dispatch()))
    }

    pub fn seq_stats(x: Tensor<2>, range: Tensor<1>, bins: usize) -> Tensor<2> {
        Tensor::from_dispatch(Dispatch::seq_stats(
            x.into_dispatch(),
            range.into_dispatch(),
            bins,
        ))
    }
}

/// The plain Burn-tensor definitions: the oracle for the kernels and the CPU path.
pub mod reference {
    use burn::tensor::Tensor;
    use burn::tensor::activation::softmax;

    use super::STAT_COLS;

    pub fn clipped_softmax<const D: usize>(x: Tensor<D>, gamma: f64, zeta: f64) -> Tensor<D> {
        softmax(x, D - 1)
            .mul_scalar(zeta - gamma)
            .add_scalar(gamma)
            .clamp(0.0, 1.0)
    }

    pub fn fake_quant<const D: usize>(
        x: Tensor<D>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> Tensor<D> {
        // The paper's order, round(x/Δ) + zp: with ties to even, round(x/Δ + zp) differs at
        // an odd zero point (2.5 + 3 rounds to 6, round(2.5) + 3 is 5).
        let xs = x.div_scalar(scale); // x/Δ
        // STE: forward round(xs), backward identity.
        let rounded = xs.clone() + (xs.clone().round() - xs).detach();
        rounded
            .add_scalar(zero_point)
            .clamp(qmin, qmax)
            .sub_scalar(zero_point)
            .mul_scalar(scale)
    }

    pub fn min_max<const D: usize>(x: Tensor<D>) -> Tensor<1> {
        let n = x.shape().num_elements();
        let flat = x.reshape([1, n]); // [1, n]
        let min = super::reduce_rows(flat.clone(), |r| r.min_dim(1)); // [1, 1]
        let max = super::reduce_rows(flat, |r| r.max_dim(1)); // [1, 1]
        Tensor::cat(vec![min, max], 1).reshape([2])
    }

    pub fn matmul(a: Tensor<3>, b: Tensor<3>) -> Tensor<3> {
        a.matmul(b)
    }

    pub fn pack(parts: Vec<Tensor<1>>, align: usize) -> Tensor<1> {
        let mut all = Vec::with_capacity(2 * parts.len());
        for p in parts {
            let n = p.dims()[0];
            let pad = super::packed_len([n], align) - n;
            let device = p.device();
            all.push(p);
            if pad > 0 {
                all.push(Tensor::zeros([pad], &device));
            }
        }
        Tensor::cat(all, 0)
    }

    pub fn layer_norm<const D: usize>(
        x: Tensor<D>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        eps: f64,
    ) -> Tensor<D> {
        burn::tensor::module::layer_norm(x, gamma, Some(beta), eps)
    }

    pub fn seq_stats(x: Tensor<2>, range: Tensor<1>, bins: usize) -> Tensor<2> {
        let [b, n] = x.dims();
        let device = x.device();
        // Sequences can be longer than Burn's wgpu reductions reach (see `REDUCE_CHUNK`).
        let sum = |t: Tensor<2>| super::reduce_rows(t, |r| r.sum_dim(1)); // [b, 1]
        let max_abs = super::reduce_rows(x.clone().abs(), |r| r.max_dim(1)); // [b, 1]
        let mean = sum(x.clone()).div_scalar(n.max(1) as f64); // [b, 1]
        let c2 = (x.clone() - mean.clone()).powi_scalar(2); // [b, n]
        let var = sum(c2.clone()).div_scalar((n.max(2) - 1) as f64); // [b, 1]
        let m4 = sum(c2.powi_scalar(2)).div_scalar(n.max(1) as f64); // [b, 1]
        // Bin index of every value, then one comparison per bin: a histogram from tensor ops.
        let r = range.clamp_min(1e-6).reshape([1, 1]); // [1, 1]
        let idx = ((x.clone() + r.clone()) / (r * 2.0))
            .mul_scalar(bins as f64)
            .floor()
            .clamp(0.0, (bins - 1) as f64); // [b, n], NaN stays NaN
        let ids = Tensor::<1, burn::tensor::Int>::arange(0..bins as i64, &device)
            .float()
            .reshape([1, 1, bins]); // [1, 1, bins]
        // Chunk by chunk along the sequence: Burn's wgpu reduction along an axis stops short
        // past 65,532 values (`REDUCE_CHUNK`), and no [b, n, bins] tensor is ever whole.
        let counts = (0..n)
            .step_by(super::REDUCE_CHUNK)
            .map(|start| {
                let end = (start + super::REDUCE_CHUNK).min(n);
                idx.clone()
                    .slice([0..b, start..end])
                    .reshape([b, end - start, 1])
                    .equal(ids.clone())
                    .float()
                    .sum_dim(1)
                    .reshape([b, bins]) // [b, bins]
            })
            .reduce(|a, c| a + c)
            .unwrap_or_else(|| Tensor::zeros([b, bins], &device)); // [b, bins]
        let out = Tensor::cat(vec![max_abs, mean, var, m4, counts], 1); // [b, 4 + bins]
        debug_assert_eq!(out.dims()[1], STAT_COLS + bins);
        out
    }
}
