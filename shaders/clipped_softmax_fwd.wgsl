// Clipped softmax forward over the last axis, fused: y = clip((zeta - gamma) * softmax(x) + gamma, 0, 1).
// gamma = 0, zeta = 1 is plain softmax. The reference twin is `kernels::reference::clipped_softmax`
// (core/src/kernels/mod.rs).
//
// One invocation per row, no shared memory and no barriers. Attention rows are short (the key
// length, at most a few hundred), and on the CPU-emulated GPUs this app is measured on
// (lavapipe, SwiftShader) a workgroup barrier costs more than a row: a workgroup-per-row
// version with tree reductions was 2x slower than Burn's own softmax at [32, 8, 128, 128].
// Neighbouring invocations take neighbouring rows, so the SIMD lanes of a CPU (or the threads
// of a GPU warp) each walk their own row.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
// [rows, row_len, gamma bits, zeta bits, invocations along x]
@group(0) @binding(2) var<storage, read> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x + gid.y * info[4];
    if (row >= info[0]) { return; }
    let n = info[1];
    let base = row * n;
    let gamma = bitcast<f32>(info[2]);
    let a = bitcast<f32>(info[3]) - gamma;
    var m = x[base];
    for (var i = 1u; i < n; i++) { m = max(m, x[base + i]); }
    var s = 0.0;
    for (var i = 0u; i < n; i++) { s += exp(x[base + i] - m); }
    let inv = 1.0 / s;
    for (var i = 0u; i < n; i++) {
        y[base + i] = clamp(a * (exp(x[base + i] - m) * inv) + gamma, 0.0, 1.0);
    }
}
