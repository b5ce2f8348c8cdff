// Clipped softmax backward over the last axis, fused. With p = softmax(x), a = zeta - gamma and
// u_i = a * g_i where 0 <= a*p_i + gamma <= 1 (zero where the clip is active, as the
// reference's clamp passes gradient at equality): dx_i = p_i * (u_i - sum_j p_j u_j).
// p is recomputed from x rather than stored by the forward pass: one row read is cheaper than
// keeping a second [.., seq_k] tensor alive until backward.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
// [rows, row_len, gamma bits, zeta bits, workgroups along x]
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ wg }}u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * info[4];
    let n = info[1];
    let valid = row < info[0];
    let base = row * n;
    let gamma = bitcast<f32>(info[2]);
    let a = bitcast<f32>(info[3]) - gamma;

    var m = -3.4028235e38;
    if (valid) {
        for (var i = lid; i < n; i += WG) { m = max(m, x[base + i]); }
    }
    red[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
        workgroupBarrier();
    }
    let mx = red[0];
    workgroupBarrier();

    var acc = 0.0;
    if (valid) {
        for (var i = lid; i < n; i += WG) { acc += exp(x[base + i] - mx); }
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let inv = 1.0 / red[0];
    workgroupBarrier();

    var dot = 0.0;
    if (valid) {
        for (var i = lid; i < n; i += WG) {
            let p = exp(x[base + i] - mx) * inv;
            let pre = a * p + gamma;
            if (pre >= 0.0 && pre <= 1.0) { dot += p * a * g[base + i]; }
        }
    }
    red[lid] = dot;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let total = red[0];

    if (valid) {
        for (var i = lid; i < n; i += WG) {
            let p = exp(x[base + i] - mx) * inv;
            let pre = a * p + gamma;
            let u = select(0.0, a * g[base + i], pre >= 0.0 && pre <= 1.0);
            dx[base + i] = p * (u - total);
        }
    }
}
