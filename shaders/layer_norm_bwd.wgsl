// LayerNorm backward w.r.t. the input, one invocation per row. With xhat = (x - mean) * rstd and
// h = g * gamma (g the output gradient):
//   dx = rstd * (h - mean(h) - xhat * mean(h * xhat)),
// the usual closed form of the gradient through the mean and the variance.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
// [rows, 2]: mean, rstd (layer_norm_stats.wgsl)
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
// [rows, row_len, invocations along x]
@group(0) @binding(5) var<storage, read> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x + gid.y * info[2];
    if (row >= info[0]) { return; }
    let n = info[1];
    let base = row * n;
    let mean = stats[2u * row];
    let rstd = stats[2u * row + 1u];
    var sh = 0.0;
    var shx = 0.0;
    for (var i = 0u; i < n; i++) {
        let h = g[base + i] * gamma[i];
        sh += h;
        shx += h * (x[base + i] - mean) * rstd;
    }
    let inv_n = 1.0 / f32(n);
    let mh = sh * inv_n;
    let mhx = shx * inv_n;
    for (var i = 0u; i < n; i++) {
        let xhat = (x[base + i] - mean) * rstd;
        dx[base + i] = rstd * (g[base + i] * gamma[i] - mh - xhat * mhx);
    }
}
