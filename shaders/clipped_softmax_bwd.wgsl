// Clipped softmax backward over the last axis, fused. With p = softmax(x), a = zeta - gamma and
// u_i = a * g_i where 0 <= a*p_i + gamma <= 1 (zero where the clip is active; the reference's
// clamp passes gradient at equality): dx_i = p_i * (u_i - sum_j p_j u_j).
// p is recomputed from x rather than stored by the forward pass: re-reading a short row is
// cheaper than keeping a second [.., seq_k] tensor alive until backward. One invocation per row,
// as in the forward kernel.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
// [rows, row_len, gamma bits, zeta bits, invocations along x]
@group(0) @binding(3) var<storage, read> info: array<u32>;

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
    var dot = 0.0;
    for (var i = 0u; i < n; i++) {
        let p = exp(x[base + i] - m) * inv;
        let pre = a * p + gamma;
        if (pre >= 0.0 && pre <= 1.0) { dot += p * a * g[base + i]; }
    }
    for (var i = 0u; i < n; i++) {
        let p = exp(x[base + i] - m) * inv;
        let pre = a * p + gamma;
        let u = select(0.0, a * g[base + i], pre >= 0.0 && pre <= 1.0);
        dx[base + i] = p * (u - dot);
    }
}
