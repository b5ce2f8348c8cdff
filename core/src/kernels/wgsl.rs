//! The WGSL sources of the kernels: each shader file under `shaders/` with the constants a
//! launch fills in (workgroup sizes, element type, row layout), and the list of every variant
//! the launches use. The launches themselves are in `cube.rs`.

use burn::backend::wgpu::{CubeTensor, KernelSource, SourceTemplate};
use burn::cubecl::{ExecutionMode, prelude::KernelId};

/// Largest workgroup count per dispatch dimension WebGPU guarantees.
pub(super) const MAX_GROUPS: u32 = 65_535;
/// Invocations per workgroup of the one-row-per-invocation kernels.
pub(super) const ROW_WG: u32 = 64;
/// Invocations per workgroup of the elementwise kernels.
pub(super) const ELEM_WG: u32 = 256;
/// Invocations per workgroup of the min-max passes.
pub(super) const MINMAX_WG: u32 = 64;
/// Neighbouring invocations that walk one block together in the min-max first pass: one SIMD
/// batch of lavapipe on AVX2 (8 × f32), and 8 × 16 bytes, a 128-byte line, per step.
pub(super) const MINMAX_TEAM: u32 = 8;
/// Steps per invocation the min-max first pass aims for.
pub(super) const MINMAX_STEPS: usize = 64;
/// Most workgroups (so pairs ÷ 64) of the min-max first pass.
pub(super) const MINMAX_GROUPS: usize = 64;
/// Invocations per workgroup of the statistics kernel (one workgroup per sequence).
pub(super) const STATS_WG: u32 = 256;

/// One WGSL file with its `{{ … }}` placeholders filled; the id keys CubeCL's pipeline cache.
pub(super) struct Wgsl {
    name: &'static str,
    source: &'static str,
    vars: Vec<(&'static str, String)>,
    pub(super) wg: u32,
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        self.vars
            .iter()
            .fold(SourceTemplate::new(self.source), |t, (k, v)| {
                t.register(*k, v.clone())
            })
            .register("wg", self.wg.to_string())
    }
    fn id(&self) -> KernelId {
        // Unchecked: every loop in these shaders is bounded by construction, and checked mode
        // only adds wgpu's forced loop bound, a 64-bit counter per loop iteration that a
        // CPU-emulated GPU pays for in every lane (Burn launches its own kernels unchecked).
        // Bounds checks are off in both modes; the shaders test their indices themselves.
        KernelId::new::<Self>()
            .info((self.name, self.vars.clone(), self.wg))
            .mode(ExecutionMode::Unchecked)
    }
    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `("name", text of shaders/name.wgsl)`: the kernel's name and its source, spelled once.
macro_rules! shader {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../shaders/", $name, ".wgsl")),
        )
    };
}

pub(super) fn wgsl(
    (name, source): (&'static str, &'static str),
    wg: u32,
    vars: &[(&'static str, String)],
) -> Wgsl {
    Wgsl {
        name,
        source,
        vars: vars.to_vec(),
        wg,
    }
}

/// The WGSL element type for `n` values: 16-byte `vec4<f32>` loads when `n` divides by 4.
pub(super) fn lanes(n: usize) -> (usize, &'static str) {
    if n % 4 == 0 {
        (4, "vec4<f32>")
    } else {
        (1, "f32")
    }
}

// One constructor per shader, shared by the launches and by [`instances`], so the shaders the
// browser test compiles are exactly the ones the code launches.

pub(super) fn k_clipped_softmax(forward: bool) -> Wgsl {
    if forward {
        wgsl(shader!("clipped_softmax_fwd"), ROW_WG, &[])
    } else {
        wgsl(shader!("clipped_softmax_bwd"), ROW_WG, &[])
    }
}

pub(super) fn k_fake_quant(forward: bool, ty: &str, per: u32) -> Wgsl {
    let vars = [("ty", ty.to_string()), ("per", per.to_string())];
    if forward {
        wgsl(shader!("fake_quant_fwd"), ELEM_WG, &vars)
    } else {
        wgsl(shader!("fake_quant_bwd"), ELEM_WG, &vars)
    }
}

pub(super) fn k_min_max(vec4: bool) -> Wgsl {
    let (ty, hmin, hmax) = if vec4 {
        (
            "vec4<f32>",
            "min(min(v.x, v.y), min(v.z, v.w))",
            "max(max(v.x, v.y), max(v.z, v.w))",
        )
    } else {
        ("f32", "v", "v")
    };
    wgsl(
        shader!("min_max"),
        MINMAX_WG,
        &[
            ("ty", ty.to_string()),
            ("hmin", hmin.to_string()),
            ("hmax", hmax.to_string()),
        ],
    )
}

/// The LayerNorm kernels: `fwd`, `stats`, `bwd` (input gradient), `bwd_params` (γ and β).
pub(super) fn k_layer_norm(which: &str) -> Wgsl {
    let shader = match which {
        "fwd" => shader!("layer_norm_fwd"),
        "stats" => shader!("layer_norm_stats"),
        "bwd" => shader!("layer_norm_bwd"),
        _ => shader!("layer_norm_bwd_params"),
    };
    wgsl(shader, ROW_WG, &[])
}

/// Rows of C per invocation (each invocation holds a TM×4 tile of C in registers).
pub(super) const MATMUL_TM: u32 = 8;
/// Invocations per workgroup of the matmul kernel.
pub(super) const MATMUL_WG: u32 = 64;

pub(super) fn k_matmul() -> Wgsl {
    wgsl(
        shader!("matmul"),
        MATMUL_WG,
        &[("tm", MATMUL_TM.to_string())],
    )
}

/// The vec4 matmul for operands stored as given (`nn`), with A stored transposed
/// (`tn`, `[batch, K, M]`) or with B stored transposed (`nt`, `[batch, N, K]`).
pub(super) fn k_matmul_vec4(layout: &str) -> Wgsl {
    let shader = match layout {
        "tn" => shader!("matmul_vec4_tn"),
        "nt" => shader!("matmul_vec4_nt"),
        _ => shader!("matmul_vec4"),
    };
    wgsl(shader, MATMUL_WG, &[("tm", MATMUL_TM.to_string())])
}

/// Whether `t` (`[batch, rows, cols]`) is the swapped view of a contiguous `[batch, cols, rows]`
/// tensor, which the transposed matmul kernels read in place.
pub(super) fn is_swapped(t: &CubeTensor) -> bool {
    let (sh, st) = (t.meta.shape(), t.meta.strides());
    let (batch, rows, cols) = (sh[0], sh[1], sh[2]);
    !t.is_contiguous() && st[1] == 1 && st[2] == rows && (batch == 1 || st[0] == rows * cols)
}

pub(super) fn k_seq_stats(bins: usize) -> Wgsl {
    wgsl(
        shader!("seq_stats"),
        STATS_WG,
        &[("bins", bins.max(1).to_string())],
    )
}

/// Inputs one pack launch takes: six, plus the output and the info buffer, is WebGPU's
/// guaranteed eight storage buffers per shader stage.
pub(crate) const PACK_MAX: usize = 6;
/// Invocations per workgroup of the pack kernel.
pub(super) const PACK_WG: u32 = 64;

/// The pack kernel for `n` inputs (bindings must match the launch exactly).
pub(super) fn k_pack(n: usize) -> Wgsl {
    let inputs: Vec<String> = (0..n)
        .map(|k| format!("@group(0) @binding({k}) var<storage, read_write> x{k}: array<f32>;"))
        .collect();
    let cases: Vec<String> = (0..n)
        .map(|k| format!("        case {k}u: {{ return x{k}[i]; }}"))
        .collect();
    wgsl(
        shader!("pack"),
        PACK_WG,
        &[
            ("n", n.to_string()),
            ("n_info", (n + 1).to_string()),
            ("inputs", inputs.join("\n")),
            ("cases", cases.join("\n")),
        ],
    )
}

/// Every shader variant the launches use (the histogram at 1 and `HIST_BINS` bins), as
/// `(file name, complete WGSL)`: what `qtlab shaders` writes for the browser's compile test.
pub fn instances() -> Vec<(String, String)> {
    let mut ks = vec![k_clipped_softmax(true), k_clipped_softmax(false)];
    for fwd in [true, false] {
        for ty in ["f32", "vec4<f32>"] {
            ks.push(k_fake_quant(fwd, ty, 4));
        }
    }
    ks.extend([k_min_max(false), k_min_max(true), k_matmul()]);
    ks.extend(["nn", "tn", "nt"].map(k_matmul_vec4));
    ks.extend(["fwd", "stats", "bwd", "bwd_params"].map(k_layer_norm));
    ks.extend([k_seq_stats(1), k_seq_stats(super::HIST_BINS)]);
    ks.extend((1..=PACK_MAX).map(k_pack));
    ks.into_iter()
        .map(|k| {
            let tag: String = k
                .vars
                .iter()
                .filter(|(n, _)| !["hmin", "hmax", "inputs", "cases", "n_info"].contains(n))
                .map(|(n, v)| format!("_{n}-{}", v.replace(['<', '>'], "")))
                .collect();
            (format!("{}{tag}.wgsl", k.name), k.source().complete())
        })
        .collect()
}
