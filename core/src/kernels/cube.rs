//! The WGSL kernels on Burn's CubeCL backend (wgpu natively, WebGPU in the browser).
//!
//! Design note, from measurements on lavapipe (`qtlab bench kernels`): the GPUs this app is
//! most often measured on are emulated on the CPU (lavapipe natively, SwiftShader in headless
//! Chromium), where a workgroup barrier costs more than a short row of work and 16-byte loads
//! matter. So the row kernels give each invocation a whole row and use no shared memory, and
//! the elementwise kernels load `vec4<f32>` where the length allows. Only the statistics
//! kernel, whose rows are whole sequences (thousands of values), reduces across a workgroup.

use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor, SourceKernel, into_contiguous};
use burn::cubecl::server::{BufferBinding, KernelArguments, MetadataBindingInfo};
use burn::cubecl::{CubeCount, CubeDim};
use burn::tensor::{DType, Shape};

use super::KernelOps;

use super::wgsl::*;

/// Burn's slice (a copy unless both ends are aligned), reached through the generic bound
/// because the concrete backend does not name its tensor-ops trait.
fn slice_copy<B: burn::backend::Backend>(
    t: FloatTensor<B>,
    off: usize,
    n: usize,
) -> FloatTensor<B> {
    B::float_slice(
        t,
        &[burn::tensor::Slice::new(
            off as isize,
            Some((off + n) as isize),
            1,
        )],
    )
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

/// A kernel's `info` words (sizes, scalars), passed the way CubeCL passes its own kernels'
/// metadata: a read-only binding after the buffers, staged once per distinct set of words and
/// reused from CubeCL's cache after that, instead of a new buffer and upload every launch.
fn info(words: &[u32]) -> MetadataBindingInfo {
    // CubeCL stages u64 words; two little-endian u32s per word read back as one array<u32>.
    let packed = words
        .chunks(2)
        .map(|c| c[0] as u64 | (c.get(1).copied().unwrap_or(0) as u64) << 32)
        .collect();
    MetadataBindingInfo::custom(packed)
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

fn launch(
    x: &CubeTensor,
    k: Wgsl,
    count: CubeCount,
    bufs: Vec<BufferBinding>,
    meta: MetadataBindingInfo,
) {
    let dim = CubeDim::new_1d(k.wg);
    x.client.launch(
        Box::new(SourceKernel::new(k, dim)),
        count,
        KernelArguments::new().with_buffers(bufs).with_info(meta),
    );
}

/// Rows and row length of a tensor normalised over its last axis.
fn rows_of(shape: &Shape) -> (usize, usize) {
    let n = shape[shape.num_dims() - 1];
    (shape.num_elements() / n.max(1), n)
}

/// One launch of a clipped-softmax kernel: the forward pass (`grad` = None) or the backward
/// pass, which reads the output gradient as a second input.
fn clipped_softmax_launch(
    x: FloatTensor<CubeBackend>,
    grad: Option<FloatTensor<CubeBackend>>,
    gamma: f32,
    zeta: f32,
) -> CubeTensor {
    let x = f32_tensor(x);
    let g = grad.map(f32_tensor);
    let shape = x.meta.shape().clone();
    let (rows, n) = rows_of(&shape);
    let out = empty_like(&x, shape);
    if rows == 0 || n == 0 {
        return out;
    }
    let (count, gx) = grid(rows.div_ceil(ROW_WG as usize));
    let meta = [
        rows as u32,
        n as u32,
        gamma.to_bits(),
        zeta.to_bits(),
        gx * ROW_WG,
    ];
    let meta = info(&meta);
    let forward = g.is_none();
    let mut bufs = vec![x.handle.clone().binding()];
    bufs.extend(g.map(|g| g.handle.clone().binding()));
    bufs.push(out.handle.clone().binding());
    launch(&x, k_clipped_softmax(forward), count, bufs, meta);
    out
}

/// One launch of a fake-quantization kernel: forward (`grad` = None) or straight-through
/// backward. `p` is `[scale, zero point, qmin, qmax]`.
fn fake_quant_launch(
    x: FloatTensor<CubeBackend>,
    grad: Option<FloatTensor<CubeBackend>>,
    p: [f32; 4],
) -> CubeTensor {
    let x = f32_tensor(x);
    let g = grad.map(f32_tensor);
    let shape = x.meta.shape().clone();
    let n = shape.num_elements();
    let out = empty_like(&x, shape);
    if n == 0 {
        return out;
    }
    let (width, ty) = lanes(n);
    let (count, threads, per) = elem_grid(n / width);
    let p = p.map(f32::to_bits);
    let meta = info(&[(n / width) as u32, p[0], p[1], p[2], p[3], threads]);
    let forward = g.is_none();
    let mut bufs = vec![x.handle.clone().binding()];
    bufs.extend(g.map(|g| g.handle.clone().binding()));
    bufs.push(out.handle.clone().binding());
    launch(&x, k_fake_quant(forward, ty, per), count, bufs, meta);
    out
}

/// One launch of a one-row-per-invocation LayerNorm kernel over `x`'s rows: `inputs` are bound
/// in order, then the output, then `[rows, n, extra…, invocations along x]`.
fn layer_norm_rows(
    which: &str,
    x: &CubeTensor,
    inputs: &[&CubeTensor],
    out: &CubeTensor,
    extra: &[u32],
) {
    let (rows, n) = rows_of(x.meta.shape());
    if rows == 0 || n == 0 {
        return;
    }
    let (count, gx) = grid(rows.div_ceil(ROW_WG as usize));
    let mut meta = vec![rows as u32, n as u32];
    meta.extend_from_slice(extra);
    meta.push(gx * ROW_WG);
    let meta = info(&meta);
    let mut bufs: Vec<BufferBinding> = inputs.iter().map(|t| t.handle.clone().binding()).collect();
    bufs.push(out.handle.clone().binding());
    launch(x, k_layer_norm(which), count, bufs, meta);
}

impl KernelOps for CubeBackend {
    fn ln_fwd(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        let (x, gamma, beta) = (f32_tensor(x), f32_tensor(gamma), f32_tensor(beta));
        let out = empty_like(&x, x.meta.shape().clone());
        layer_norm_rows("fwd", &x, &[&x, &gamma, &beta], &out, &[eps.to_bits()]);
        out
    }

    fn ln_stats(x: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let x = f32_tensor(x);
        let out = empty_like(&x, super::ops::row_pair_shape(x.meta.shape()));
        layer_norm_rows("stats", &x, &[&x], &out, &[eps.to_bits()]);
        out
    }

    fn ln_bwd(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (x, stats) = (f32_tensor(x), f32_tensor(stats));
        let (gamma, grad) = (f32_tensor(gamma), f32_tensor(grad));
        let out = empty_like(&x, x.meta.shape().clone());
        layer_norm_rows("bwd", &x, &[&x, &stats, &gamma, &grad], &out, &[]);
        out
    }

    fn ln_bwd_params(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (x, stats, grad) = (f32_tensor(x), f32_tensor(stats), f32_tensor(grad));
        let (rows, n) = rows_of(x.meta.shape());
        let out = empty_like(&x, super::ops::param_pair_shape(x.meta.shape()));
        if n == 0 {
            return out;
        }
        // rows = 0 still launches: the column loop is empty and writes zeros.
        let meta = info(&[rows as u32, n as u32]);
        let groups = n.div_ceil(ROW_WG as usize) as u32;
        let bufs = vec![
            x.handle.clone().binding(),
            stats.handle.clone().binding(),
            grad.handle.clone().binding(),
            out.handle.clone().binding(),
        ];
        launch(
            &x,
            k_layer_norm("bwd_params"),
            CubeCount::Static(groups, 1, 1),
            bufs,
            meta,
        );
        out
    }

    fn clipped_softmax(x: FloatTensor<Self>, gamma: f32, zeta: f32) -> FloatTensor<Self> {
        clipped_softmax_launch(x, None, gamma, zeta)
    }

    fn clipped_softmax_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        gamma: f32,
        zeta: f32,
    ) -> FloatTensor<Self> {
        clipped_softmax_launch(x, Some(grad), gamma, zeta)
    }

    fn fake_quant(
        x: FloatTensor<Self>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> FloatTensor<Self> {
        fake_quant_launch(x, None, [scale, zero_point, qmin, qmax])
    }

    fn fake_quant_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        zero_point: f32,
        qmin: f32,
        qmax: f32,
    ) -> FloatTensor<Self> {
        fake_quant_launch(x, Some(grad), [scale, zero_point, qmin, qmax])
    }

    fn matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        assert!(
            a.dtype == DType::F32 && b.dtype == DType::F32,
            "qtlab kernels are f32 only"
        );
        let (sa, sb) = (a.meta.shape().clone(), b.meta.shape().clone());
        let (batch, m, k, n) = (sa[0], sa[1], sa[2], sb[2]);
        assert!(
            sb[0] == batch && sb[1] == k,
            "matmul shapes {sa:?} · {sb:?}"
        );
        let out = empty_like(&a, Shape::new([batch, m, n]));
        if batch * m * n == 0 {
            return out;
        }
        if k % 4 == 0 && n % 4 == 0 {
            // The vec4 kernels want each operand packed, either way round: a backward pass's
            // transposed view (Aᵀ·dC, dC·Bᵀ, Q·Kᵀ) is read as stored; anything else costs one
            // copy, which in the browser is one more launch.
            let (layout, a, b) = match (is_swapped(&a) && m % 4 == 0, is_swapped(&b)) {
                (true, false) => ("tn", a, into_contiguous(b)),
                (false, true) => ("nt", into_contiguous(a), b),
                _ => ("nn", into_contiguous(a), into_contiguous(b)),
            };
            let tiles = batch * m.div_ceil(MATMUL_TM as usize) * (n / 4);
            let (count, gx) = grid(tiles.div_ceil(MATMUL_WG as usize));
            let meta = [batch, m, n, k].map(|v| v as u32);
            let meta = info(&[meta[0], meta[1], meta[2], meta[3], gx * MATMUL_WG]);
            let bufs = vec![
                a.handle.clone().binding(),
                b.handle.clone().binding(),
                out.handle.clone().binding(),
            ];
            launch(&a, k_matmul_vec4(layout), count, bufs, meta);
            return out;
        }
        // Any other shape: scalar loads through the operands' strides, read in place.
        let (ta, tb) = (a.meta.strides().to_vec(), b.meta.strides().to_vec());
        let tiles = batch * m.div_ceil(MATMUL_TM as usize) * n.div_ceil(4);
        let (count, gx) = grid(tiles.div_ceil(MATMUL_WG as usize));
        let words = [batch, m, n, k, ta[0], ta[1], ta[2], tb[0], tb[1], tb[2]].map(|v| v as u32);
        let mut meta = words.to_vec();
        meta.push(gx * MATMUL_WG);
        let meta = info(&meta);
        let bufs = vec![
            a.handle.clone().binding(),
            b.handle.clone().binding(),
            out.handle.clone().binding(),
        ];
        launch(&a, k_matmul(), count, bufs, meta);
        out
    }

    fn min_max(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let x = f32_tensor(x);
        let n = x.meta.shape().num_elements();
        let out = empty_like(&x, Shape::new([2]));
        let (width, _) = lanes(n);
        let items = n / width;
        // Teams of MINMAX_TEAM invocations each walk one block in about MINMAX_STEPS steps;
        // at most MINMAX_GROUPS workgroups, so the second pass (one invocation folding one pair
        // per first-pass invocation) stays negligible. Blocks are whole team spans, so every
        // step's span is aligned.
        let (wg, team) = (MINMAX_WG as usize, MINMAX_TEAM as usize);
        let groups = items.div_ceil(wg * MINMAX_STEPS).clamp(1, MINMAX_GROUPS);
        let per_team = items
            .div_ceil(groups * (wg / team))
            .next_multiple_of(team)
            .max(team);
        let groups = items.div_ceil(per_team * (wg / team)).max(1);
        let pairs = groups * wg;
        let partial = empty_like(&x, Shape::new([2 * pairs]));
        let meta = info(&[items as u32, 0, per_team as u32, MINMAX_TEAM, MINMAX_WG]);
        let bufs = vec![x.handle.clone().binding(), partial.handle.clone().binding()];
        launch(
            &x,
            k_min_max(width == 4),
            CubeCount::Static(groups as u32, 1, 1),
            bufs,
            meta,
        );
        let meta = info(&[pairs as u32, 1, pairs as u32, 1, 1]);
        let bufs = vec![
            partial.handle.clone().binding(),
            out.handle.clone().binding(),
        ];
        launch(&x, k_min_max(false), CubeCount::Static(1, 1, 1), bufs, meta);
        out
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
        let mut dst = f32_tensor(dst);
        // In place is only safe when this is the buffer's sole owner (the optimizer's fresh
        // buffer always is); otherwise write into a copy, as Burn's in-place ops do.
        if !dst.can_mut() {
            dst = dst.copy();
        }
        let inputs: Vec<CubeTensor> = [a, b, c, d, e, f]
            .into_iter()
            .take(used.clamp(1, PACK_MAX))
            .map(f32_tensor)
            .collect();
        let total = dst.meta.shape().num_elements();
        let mut meta = vec![0u32];
        let (mut off, mut widest, mut bound) = (start, 0, Vec::new());
        for x in inputs {
            let len = x.meta.shape().num_elements();
            let padded = super::packed_len([len], align);
            assert!(
                off + padded <= total,
                "pack: segment {off}+{padded} past the buffer's {total} values"
            );
            // An empty input has an empty segment, and an empty buffer cannot be bound.
            if len > 0 {
                meta.extend([off as u32, len as u32, padded as u32]);
                widest = widest.max(padded);
                bound.push(x);
            }
            off += padded;
        }
        let inputs = bound;
        if inputs.is_empty() {
            return dst;
        }
        // One workgroup row per input; past WebGPU's group limit the invocations stride.
        let groups = widest.div_ceil(PACK_WG as usize).min(MAX_GROUPS as usize) as u32;
        meta[0] = groups * PACK_WG;
        let meta = info(&meta);
        let mut bufs: Vec<BufferBinding> =
            inputs.iter().map(|t| t.handle.clone().binding()).collect();
        bufs.push(dst.handle.clone().binding());
        launch(
            &dst,
            k_pack(inputs.len()),
            CubeCount::Static(groups, inputs.len() as u32, 1),
            bufs,
            meta,
        );
        dst
    }

    fn segment(flat: FloatTensor<Self>, off: usize, n: usize) -> FloatTensor<Self> {
        let flat = f32_tensor(flat);
        let total = flat.meta.shape().num_elements();
        assert!(off + n <= total, "segment {off}+{n} past {total} values");
        let size = flat.dtype.size();
        let align = flat.client.properties().memory.alignment as usize;
        // Burn's own slice also wants the end aligned, which would copy every parameter whose
        // size is not a multiple of 64; WebGPU only needs the start aligned and the size a
        // multiple of 4 bytes.
        if n == 0 || !(off * size).is_multiple_of(align) {
            return slice_copy::<CubeBackend>(flat, off, n);
        }
        let handle = flat
            .handle
            .clone()
            .offset_start((off * size) as u64)
            .offset_end(((total - off - n) * size) as u64);
        CubeTensor::new_contiguous(
            flat.client.clone(),
            flat.device.clone(),
            Shape::new([n]),
            handle,
            flat.dtype,
        )
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
        let meta = info(&[b as u32, n as u32, gx]);
        let bufs = vec![
            x.handle.clone().binding(),
            range.handle.clone().binding(),
            out.handle.clone().binding(),
        ];
        launch(&x, k_seq_stats(bins), count, bufs, meta);
        out
    }
}
