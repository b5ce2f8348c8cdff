//! The backend extension: one trait method per kernel launch. Implemented for the CubeCL
//! backend (the WGSL kernels, `cube.rs`) and for autodiff (`autodiff.rs`, the backward passes);
//! the macro derives the dispatch and the lazy Fusion wrapper.

use burn::backend::{Backend, backend_extension, tensor::FloatTensor};
use burn::tensor::Shape;

#[backend_extension(Cube, Autodiff, Fusion)]
pub trait KernelOps: Backend {
    /// clip((ζ−γ)·softmax(x)+γ, 0, 1) over the last axis.
    #[fusion(dtype = x, shape = x)]
    fn clipped_softmax(x: FloatTensor<Self>, gamma: f32, zeta: f32) -> FloatTensor<Self>;

    /// The gradient of [`KernelOps::clipped_softmax`] w.r.t. `x`, given the output gradient.
    #[fusion(dtype = grad, shape = grad)]
    fn clipped_softmax_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        gamma: f32,
        zeta: f32,
    ) -> FloatTensor<Self>;

    /// Δ·(clamp(round(x/Δ + zp), qmin, qmax) − zp).
    #[fusion(dtype = x, shape = x)]
    fn fake_quant(
        x: FloatTensor<Self>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> FloatTensor<Self>;

    /// The straight-through gradient of [`KernelOps::fake_quant`].
    #[fusion(dtype = grad, shape = grad)]
    fn fake_quant_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> FloatTensor<Self>;

    /// Batched matmul `[batch, M, K] · [batch, K, N] → [batch, M, N]` (operands may be strided
    /// views, e.g. transposed).
    #[fusion(dtype = a, shape = matmul_shape(a, b))]
    fn matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;

    /// LayerNorm over the last axis: (x − mean)/√(var + ε)·γ + β, biased variance.
    #[fusion(dtype = x, shape = x)]
    fn ln_fwd(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self>;

    /// `[rows, 2]`: each row's mean and 1/√(var + ε), for the LayerNorm backward kernels.
    #[fusion(dtype = x, shape = row_pair_shape(x))]
    fn ln_stats(x: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;

    /// The gradient of [`KernelOps::ln_fwd`] w.r.t. `x`.
    #[fusion(dtype = grad, shape = grad)]
    fn ln_bwd(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `[2, n]`: the gradients of [`KernelOps::ln_fwd`] w.r.t. γ (row 0) and β (row 1).
    #[fusion(dtype = grad, shape = param_pair_shape(grad))]
    fn ln_bwd_params(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `[min, max]` of a 1-D tensor.
    #[fusion(dtype = x, shape = pair_shape(x))]
    fn min_max(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Writes the first `used` (1–6) of `a`…`f` into `dst` from element `start` on, each
    /// followed by zeros up to a multiple of `align` values, and returns `dst` (written in
    /// place when nothing else holds it). See `kernels::pack`.
    #[allow(clippy::too_many_arguments)]
    #[fusion(dtype = dst, shape = dst)]
    fn pack_into(
        dst: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        d: FloatTensor<Self>,
        e: FloatTensor<Self>,
        f: FloatTensor<Self>,
        used: usize,
        start: usize,
        align: usize,
    ) -> FloatTensor<Self>;

    /// `n` values of the 1-D `flat` from `off` on, as a view sharing its buffer when `off` is a
    /// valid binding offset (see `kernels::segment`), else as a copy.
    #[fusion(dtype = flat, shape = segment_shape(flat, off, n))]
    fn segment(flat: FloatTensor<Self>, off: usize, n: usize) -> FloatTensor<Self>;

    /// `[batch, n]` → `[batch, 4 + bins]` outlier statistics (see `kernels::seq_stats`).
    #[fusion(dtype = x, shape = stats_shape(x, bins))]
    fn seq_stats(x: FloatTensor<Self>, range: FloatTensor<Self>, bins: usize) -> FloatTensor<Self>;
}

pub(crate) fn stats_shape(x: &Shape, bins: &usize) -> Shape {
    Shape::new([x[0], super::STAT_COLS + *bins])
}

pub(crate) fn segment_shape(_flat: &Shape, _off: &usize, n: &usize) -> Shape {
    Shape::new([*n])
}

pub(crate) fn pair_shape(_x: &Shape) -> Shape {
    Shape::new([2])
}

pub(crate) fn matmul_shape(a: &Shape, b: &Shape) -> Shape {
    Shape::new([a[0], a[1], b[2]])
}

/// `[rows, 2]` for a tensor normalised over its last axis.
pub(crate) fn row_pair_shape(x: &Shape) -> Shape {
    let n = x[x.num_dims() - 1].max(1);
    Shape::new([x.num_elements() / n, 2])
}

/// `[2, n]` for a tensor whose last axis is `n`.
pub(crate) fn param_pair_shape(x: &Shape) -> Shape {
    Shape::new([2, x[x.num_dims() - 1]])
}
