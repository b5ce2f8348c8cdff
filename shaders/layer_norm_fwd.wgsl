// LayerNorm forward over the last axis, fused: y = (x - mean) / sqrt(var + eps) * gamma + beta,
// with the biased variance (PyTorch's and Burn's definition). The reference twin is
// `kernels::reference::layer_norm` (Burn's own `layer_norm`).
//
// One invocation per row and no barriers, as in the softmax kernels: rows are d_model long (a
// few hundred values), and Burn's decomposition (two reductions, then the normalisation, then
// the affine) costs three to four dispatches forward and a dozen backward, which is what a step
// pays for in the browser. Two passes for the moments (mean, then squared deviations) keep the
// variance exact for rows with a large mean, where E[x^2] - E[x]^2 cancels.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// [rows, row_len, eps bits, invocations along x]
@group(0) @binding(4) var<storage, read> info: array<u32>;

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
    let rstd = inverseSqrt(v * inv_n + bitcast<f32>(info[2]));
    for (var i = 0u; i < n; i++) {
        y[base + i] = (x[base + i] - mean) * rstd * gamma[i] + beta[i];
    }
}
