// LayerNorm backward w.r.t. gamma and beta: column sums over every row,
//   dgamma[j] = sum_r g[r, j] * xhat[r, j],   dbeta[j] = sum_r g[r, j],
// written as one [2, row_len] tensor (dgamma, then dbeta). One invocation per column;
// neighbouring invocations read neighbouring columns of the same row, so loads stay together.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
// [rows, 2]: mean, rstd (layer_norm_stats.wgsl)
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
// [2, row_len]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// [rows, row_len]
@group(0) @binding(4) var<storage, read> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let rows = info[0];
    let n = info[1];
    if (j >= n) { return; }
    var dg = 0.0;
    var db = 0.0;
    for (var r = 0u; r < rows; r++) {
        let gv = g[r * n + j];
        dg += gv * (x[r * n + j] - stats[2u * r]) * stats[2u * r + 1u];
        db += gv;
    }
    out[j] = dg;
    out[n + j] = db;
}
