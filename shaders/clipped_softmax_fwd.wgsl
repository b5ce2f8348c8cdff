// Clipped softmax forward over the last axis, fused: y = clip((zeta - gamma) * softmax(x) + gamma, 0, 1).
// gamma = 0, zeta = 1 is plain softmax. One workgroup per row; the reference twin is
// `kernels::reference::clipped_softmax` (core/src/kernels/mod.rs).
//
// No early return: `info` lives in read_write storage, which WGSL's uniformity analysis treats
// as non-uniform, so every barrier must be reached by the whole workgroup. Rows past the end
// (2-D dispatch padding) compute on nothing and write nothing.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
// [rows, row_len, gamma bits, zeta bits, workgroups along x]
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ wg }}u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * info[4];
    let n = info[1];
    let valid = row < info[0];
    let base = row * n;
    let gamma = bitcast<f32>(info[2]);
    let zeta = bitcast<f32>(info[3]);

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

    if (valid) {
        for (var i = lid; i < n; i += WG) {
            let p = exp(x[base + i] - mx) * inv;
            y[base + i] = clamp((zeta - gamma) * p + gamma, 0.0, 1.0);
        }
    }
}
