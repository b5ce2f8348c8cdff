// Per-row [mean, 1/sqrt(var + eps)] of a LayerNorm input, for its backward pass: both backward
// kernels read them instead of each recomputing the row moments (the column kernel would
// otherwise redo every row once per column). Same two-pass moments as layer_norm_fwd.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
// [rows, 2]
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
// [rows, row_len, eps bits, invocations along x]
@group(0) @binding(2) var<storage, read> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x + gid.y * info[3];
    if (row >= info[0]) { return; }
    let n = info[1];
    let base = row * n;
    let inv_n = 1.0 / f32(n);
    var s = 0.0;
    for (var i = 0u; i < n; i++) { s += x[base + i]; }
    let mean = s * inv_n;
    var v = 0.0;
    for (var i = 0u; i < n; i++) {
        let c = x[base + i] - mean;
        v += c * c;
    }
    stats[2u * row] = mean;
    stats[2u * row + 1u] = inverseSqrt(v * inv_n + bitcast<f32>(info[2]));
}
