//! Backward passes of the kernels for Burn's autodiff: clipped softmax and fake quantization
//! get their own backward kernels, LayerNorm three (row moments, input gradient, γ/β column
//! sums); the statistics carry no gradient.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::{AutodiffBackend, tensor::FloatTensor};
use burn::tensor::{Shape, Slice};

use super::KernelOps;

impl<B: KernelOps, C: CheckpointStrategy> KernelOps for Autodiff<B, C> {
    fn clipped_softmax(x: FloatTensor<Self>, gamma: f32, zeta: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ClippedSoftmaxBackward;
        impl<B: KernelOps> Backward<B, 1> for ClippedSoftmaxBackward {
            // The input, not the output: where the clip is active the output has forgotten p.
            type State = (FloatTensor<B>, f32, f32);
            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, gamma, zeta) = ops.state;
                if let Some(node) = parent {
                    grads.register::<B>(node.id, B::clipped_softmax_backward(x, grad, gamma, zeta));
                }
            }
        }
        match ClippedSoftmaxBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.into_primitive();
                let out = B::clipped_softmax(input.clone(), gamma, zeta);
                prep.finish((input, gamma, zeta), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::clipped_softmax(x.into_primitive(), gamma, zeta))
            }
        }
    }

    fn clipped_softmax_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        gamma: f32,
        zeta: f32,
    ) -> FloatTensor<Self> {
        // Second derivatives are never taken; the result is a constant.
        Self::from_inner(B::clipped_softmax_backward(
            x.into_primitive(),
            grad.into_primitive(),
            gamma,
            zeta,
        ))
    }

    fn fake_quant(
        x: FloatTensor<Self>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct FakeQuantBackward;
        impl<B: KernelOps> Backward<B, 1> for FakeQuantBackward {
            type State = (FloatTensor<B>, [f32; 4]);
            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, [s, z, lo, hi]) = ops.state;
                if let Some(node) = parent {
                    grads.register::<B>(node.id, B::fake_quant_backward(x, grad, s, z, lo, hi));
                }
            }
        }
        let p = [scale, zero_point, qmin, qmax];
        match FakeQuantBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.into_primitive();
                let out = B::fake_quant(input.clone(), scale, zero_point, qmin, qmax);
                prep.finish((input, p), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fake_quant(
                x.into_primitive(),
                scale,
                zero_point,
                qmin,
                qmax,
            )),
        }
    }

    fn fake_quant_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::fake_quant_backward(
            x.into_primitive(),
            grad.into_primitive(),
            scale,
            zero_point,
            qmin,
            qmax,
        ))
    }

    fn matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MatmulBackward;
        impl<B: KernelOps> Backward<B, 2> for MatmulBackward {
            type State = (FloatTensor<B>, FloatTensor<B>);
            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [pa, pb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (a, b) = ops.state;
                // dA = dC·Bᵀ, dB = Aᵀ·dC; the transposes are stride swaps the kernel reads
                // directly, not copies.
                if let Some(node) = pa {
                    let bt = B::float_swap_dims(b, 1, 2); // [batch, N, K]
                    grads.register::<B>(node.id, B::matmul(grad.clone(), bt));
                }
                if let Some(node) = pb {
                    let at = B::float_swap_dims(a, 1, 2); // [batch, K, M]
                    grads.register::<B>(node.id, B::matmul(at, grad));
                }
            }
        }
        match MatmulBackward
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (a, b) = (a.into_primitive(), b.into_primitive());
                let out = B::matmul(a.clone(), b.clone());
                prep.finish((a, b), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::matmul(a.into_primitive(), b.into_primitive()))
            }
        }
    }

    fn ln_fwd(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNormBackward;
        impl<B: KernelOps> Backward<B, 3> for LayerNormBackward {
            // The input and γ; the row moments are recomputed by one kernel rather than kept
            // alive from the forward pass.
            type State = (FloatTensor<B>, FloatTensor<B>, f32);
            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [px, pgamma, pbeta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, gamma, eps) = ops.state;
                let stats = B::ln_stats(x.clone(), eps); // [rows, 2]
                if pgamma.is_some() || pbeta.is_some() {
                    let n = gamma.shape()[0];
                    let both = B::ln_bwd_params(x.clone(), stats.clone(), grad.clone()); // [2, n]
                    let row = |i: usize| {
                        B::float_reshape(
                            B::float_slice(
                                both.clone(),
                                &[Slice::from(i..i + 1), Slice::from(0..n)],
                            ),
                            Shape::new([n]),
                        ) // [n]
                    };
                    if let Some(node) = pgamma {
                        grads.register::<B>(node.id, row(0));
                    }
                    if let Some(node) = pbeta {
                        grads.register::<B>(node.id, row(1));
                    }
                }
                if let Some(node) = px {
                    grads.register::<B>(node.id, B::ln_bwd(x, stats, gamma, grad));
                }
            }
        }
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
                let out = B::ln_fwd(x.clone(), gamma.clone(), beta.into_primitive(), eps);
                prep.finish((x, gamma, eps), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ln_fwd(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                eps,
            )),
        }
    }

    fn ln_stats(x: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        Self::from_inner(B::ln_stats(x.into_primitive(), eps))
    }

    fn ln_bwd(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::ln_bwd(
            x.into_primitive(),
            stats.into_primitive(),
            gamma.into_primitive(),
            grad.into_primitive(),
        ))
    }

    fn ln_bwd_params(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::ln_bwd_params(
            x.into_primitive(),
            stats.into_primitive(),
            grad.into_primitive(),
        ))
    }

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
    ) -> FloatTensor<Self> {
        Self::from_inner(B::pack_into(
            dst.into_primitive(),
            a.into_primitive(),
            b.into_primitive(),
            c.into_primitive(),
            d.into_primitive(),
            e.into_primitive(),
            f.into_primitive(),
            used,
            start,
            align,
        ))
    }

    fn segment(flat: FloatTensor<Self>, off: usize, n: usize) -> FloatTensor<Self> {
        Self::from_inner(B::segment(flat.into_primitive(), off, n))
    }

    fn min_max(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::min_max(x.into_primitive()))
    }

    fn seq_stats(x: FloatTensor<Self>, range: FloatTensor<Self>, bins: usize) -> FloatTensor<Self> {
        Self::from_inner(B::seq_stats(
            x.into_primitive(),
            range.into_primitive(),
            bins,
        ))
    }
}
