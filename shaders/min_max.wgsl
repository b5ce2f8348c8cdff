// Min and max of a tensor in two launches of this one shader: first every workgroup reduces a
// grid-strided share of the values to a (min, max) pair; then a single workgroup reduces those
// pairs (`pairs` = 1) to the final [min, max]. Calibration needs both numbers of every
// quantizer site each batch; this replaces two full reductions and a concatenation.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// [items, pairs (0: x holds values, 1: x holds (min, max) pairs), workgroups]
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ wg }}u;
var<workgroup> lo: array<f32, WG>;
var<workgroup> hi: array<f32, WG>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let items = info[0];
    let pairs = info[1] == 1u;
    let stride = info[2] * WG;
    var a = 3.4028235e38;
    var b = -3.4028235e38;
    for (var i = wid.x * WG + lid; i < items; i += stride) {
        if (pairs) {
            a = min(a, x[2u * i]);
            b = max(b, x[2u * i + 1u]);
        } else {
            a = min(a, x[i]);
            b = max(b, x[i]);
        }
    }
    lo[lid] = a;
    hi[lid] = b;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            lo[lid] = min(lo[lid], lo[lid + s]);
            hi[lid] = max(hi[lid], hi[lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[2u * wid.x] = lo[0];
        out[2u * wid.x + 1u] = hi[0];
    }
}
