//! The WGSL kernels on Burn's CubeCL backend (wgpu natively, WebGPU in the browser).

use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::cubecl::{CubeCount, CubeDim, prelude::KernelId, server::KernelArguments};
use burn::tensor::{DType, Shape};

use super::KernelOps;

/// Largest workgroup count per dispatch dimension WebGPU guarantees.
const MAX_GROUPS: u32 = 65_535;

/// One WGSL file with its `{{ … }}` placeholders; the id keys CubeCL's pipeline cache.
struct Wgsl {
    name: &'static str,
    source: &'static str,
    vars: Vec<(&'static str, String)>,
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        self.vars
            .iter()
            .fold(SourceTemplate::new(self.source), |t, (k, v)| {
                t.register(*k, v.clone())
            })
    }
    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.name, self.vars.clone()))
    }
    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// Template values: `("wg", 64)` → `("wg", "64")`.
fn vars<const N: usize>(v: [(&'static str, &dyn ToString); N]) -> Vec<(&'static str, String)> {
    v.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// The WGSL element type for `n` values: 16-byte `vec4<f32>` loads when `n` divides by 4.
fn lanes(n: usize) -> (usize, &'static str) {
    if n % 4 == 0 {
        (4, "vec4<f32>")
    } else {
        (1, "f32")
    }
}

fn f32_tensor(x: FloatTensor<CubeBackend>) -> CubeTensor {
    assert_eq!(x.dtype, DType::F32, "qtlab kernels are f32 only");
    into_contiguous(x)
}

fn empty_like(x: &CubeTensor, shape: Shape) -> CubeTensor {
    let n = shape.num_elements();
    CubeTensor::new_contiguous(
        x.client.clone(),
        x.device.clone(),
        shape,
        x.client.empty(n.max(1) * x.dtype.size()),
        x.dtype,
    )
}

fn info(x: &CubeTensor, words: &[u32]) -> burn::cubecl::server::Handle {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    x.client.create_from_slice(&bytes)
}

/// Workgroups for `groups` units of work, folded into 2-D past WebGPU's per-dimension limit.
/// Returns the count and its width along x.
fn grid(groups: usize) -> (CubeCount, u32) {
    let groups = groups.max(1) as u32;
    if groups <= MAX_GROUPS {
        (CubeCount::Static(groups, 1, 1), groups)
    } else {
        let y = groups.div_ceil(MAX_GROUPS);
        let x = groups.div_ceil(y);
        (CubeCount::Static(x, y, 1), x)
    }
}

/// Invocations per workgroup of the one-row-per-invocation kernels.
const ROW_WG: u32 = 64;

fn launch(
    x: &CubeTensor,
    k: Wgsl,
    wg: u32,
    count: CubeCount,
    bufs: Vec<burn::cubecl::server::BufferBinding>,
) {
    let dim = CubeDim::new_1d(wg);
    x.client.launch(
        Box::new(SourceKernel::new(k, dim)),
        count,
        KernelArguments::new().with_buffers(bufs),
    );
}

const ELEM_WG: u32 = 256;

/// Values per invocation of the elementwise kernels: 4, or more past 65,535 workgroups.
/// Returns the 1-D workgroup count, the invocation count and the values per invocation.
fn elem_grid(n: usize) -> (CubeCount, u32, u32) {
    let per = n.div_ceil(MAX_GROUPS as usize * ELEM_WG as usize).max(4);
    let groups = n.div_ceil(per).div_ceil(ELEM_WG as usize).max(1) as u32;
    (
        CubeCount::Static(groups, 1, 1),
        groups * ELEM_WG,
        per as u32,
    )
}

impl KernelOps for CubeBackend {
    fn clipped_softmax(x: FloatTensor<Self>, gamma: f32, zeta: f32) -> FloatTensor<Self> {
        let x = f32_tensor(x);
        let shape = x.meta.shape().clone();
        let n = shape[shape.num_dims() - 1];
        let rows = shape.num_elements() / n.max(1);
        let out = empty_like(&x, shape);
        if rows == 0 || n == 0 {
            return out;
        }
        let wg = ROW_WG;
        let (count, gx) = grid(rows.div_ceil(wg as usize));
        let meta = info(
            &x,
            &[
                rows as u32,
                n as u32,
                gamma.to_bits(),
                zeta.to_bits(),
                gx * wg,
            ],
        );
        let k = Wgsl {
            name: "clipped_softmax_fwd",
            source: include_str!("../../../shaders/clipped_softmax_fwd.wgsl"),
            vars: vars([("wg", &wg)]),
        };
        launch(
            &x,
            k,
            wg,
            count,
            vec![
                x.handle.clone().binding(),
                out.handle.clone().binding(),
                meta.binding(),
            ],
        );
        out
    }

    fn clipped_softmax_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        gamma: f32,
        zeta: f32,
    ) -> FloatTensor<Self> {
        let x = f32_tensor(x);
        let g = f32_tensor(grad);
        let shape = x.meta.shape().clone();
        let n = shape[shape.num_dims() - 1];
        let rows = shape.num_elements() / n.max(1);
        let out = empty_like(&x, shape);
        if rows == 0 || n == 0 {
            return out;
        }
        let wg = ROW_WG;
        let (count, gx) = grid(rows.div_ceil(wg as usize));
        let meta = info(
            &x,
            &[
                rows as u32,
                n as u32,
                gamma.to_bits(),
                zeta.to_bits(),
                gx * wg,
            ],
        );
        let k = Wgsl {
            name: "clipped_softmax_bwd",
            source: include_str!("../../../shaders/clipped_softmax_bwd.wgsl"),
            vars: vars([("wg", &wg)]),
        };
        launch(
            &x,
            k,
            wg,
            count,
            vec![
                x.handle.clone().binding(),
                g.handle.clone().binding(),
                out.handle.clone().binding(),
                meta.binding(),
            ],
        );
        out
    }

    fn fake_quant(
        x: FloatTensor<Self>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> FloatTensor<Self> {
        let x = f32_tensor(x);
        let shape = x.meta.shape().clone();
        let n = shape.num_elements();
        let out = empty_like(&x, shape);
        if n == 0 {
            return out;
        }
        let (width, ty) = lanes(n);
        let (count, threads, per) = elem_grid(n / width);
        let meta = info(
            &x,
            &[
                (n / width) as u32,
                scale.to_bits(),
                zero_point.to_bits(),
                qmin.to_bits(),
                qmax.to_bits(),
                threads,
            ],
        );
        let k = Wgsl {
            name: "fake_quant_fwd",
            source: include_str!("../../../shaders/fake_quant_fwd.wgsl"),
            vars: vars([("wg", &ELEM_WG), ("per", &per), ("ty", &ty)]),
        };
        launch(
            &x,
            k,
            ELEM_WG,
            count,
            vec![
                x.handle.clone().binding(),
                out.handle.clone().binding(),
                meta.binding(),
            ],
        );
        out
    }

    fn fake_quant_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> FloatTensor<Self> {
        let x = f32_tensor(x);
        let g = f32_tensor(grad);
        let shape = x.meta.shape().clone();
        let n = shape.num_elements();
        let out = empty_like(&x, shape);
        if n == 0 {
            return out;
        }
        let (width, ty) = lanes(n);
        let (count, threads, per) = elem_grid(n / width);
        let meta = info(
            &x,
            &[
                (n / width) as u32,
                scale.to_bits(),
                zero_point.to_bits(),
                qmin.to_bits(),
                qmax.to_bits(),
                threads,
            ],
        );
        let k = Wgsl {
            name: "fake_quant_bwd",
            source: include_str!("../../../shaders/fake_quant_bwd.wgsl"),
            vars: vars([("wg", &ELEM_WG), ("per", &per), ("ty", &ty)]),
        };
        launch(
            &x,
            k,
            ELEM_WG,
            count,
            vec![
                x.handle.clone().binding(),
                g.handle.clone().binding(),
                out.handle.clone().binding(),
                meta.binding(),
            ],
        );
        out
    }

    fn min_max(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let x = f32_tensor(x);
        let n = x.meta.shape().num_elements();
        let out = empty_like(&x, Shape::new([2]));
        let source = include_str!("../../../shaders/min_max.wgsl");
        let (width, ty) = lanes(n);
        let items = n / width;
        // Enough invocations to keep every core (or GPU lane) streaming; few enough that the
        // second pass, one invocation folding their pairs, is negligible.
        let threads = items.div_ceil(64).clamp(1, 4096);
        let partial = empty_like(&x, Shape::new([2 * threads]));
        let fold = if width == 4 {
            [
                "min(min(v.x, v.y), min(v.z, v.w))",
                "max(max(v.x, v.y), max(v.z, v.w))",
            ]
        } else {
            ["v", "v"]
        };
        let k = |ty: &str, [hmin, hmax]: [&str; 2]| Wgsl {
            name: "min_max",
            source,
            vars: vars([("wg", &64), ("ty", &ty), ("hmin", &hmin), ("hmax", &hmax)]),
        };
        let meta = info(&x, &[items as u32, 0, threads as u32]);
        launch(
            &x,
            k(ty, fold),
            64,
            CubeCount::Static(threads.div_ceil(64) as u32, 1, 1),
            vec![
                x.handle.clone().binding(),
                partial.handle.clone().binding(),
                meta.binding(),
            ],
        );
        let meta2 = info(&x, &[threads as u32, 1, 1]);
        launch(
            &x,
            k("f32", ["v", "v"]),
            64,
            CubeCount::Static(1, 1, 1),
            vec![
                partial.handle.clone().binding(),
                out.handle.clone().binding(),
                meta2.binding(),
            ],
        );
        out
    }

    fn seq_stats(x: FloatTensor<Self>, range: FloatTensor<Self>, bins: usize) -> FloatTensor<Self> {
        let x = f32_tensor(x);
        let range = f32_tensor(range);
        let shape = x.meta.shape().clone();
        let (b, n) = (shape[0], shape[1]);
        let out = empty_like(&x, super::ops::stats_shape(&shape, &bins));
        if b == 0 {
            return out;
        }
        let (count, gx) = grid(b);
        let wg = 256;
        let meta = info(&x, &[b as u32, n as u32, gx]);
        let k = Wgsl {
            name: "seq_stats",
            source: include_str!("../../../shaders/seq_stats.wgsl"),
            vars: vars([("wg", &wg), ("bins", &bins.max(1))]),
        };
        launch(
            &x,
            k,
            wg,
            count,
            vec![
                x.handle.clone().binding(),
                range.handle.clone().binding(),
                out.handle.clone().binding(),
                meta.binding(),
            ],
        );
        out
    }
}
