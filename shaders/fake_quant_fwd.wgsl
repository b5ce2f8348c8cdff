// Fake quantization, fused: x_hat = scale * (clamp(round(x / scale) + zp, qmin, qmax) - zp),
// the paper's order (`round_ste_func(x / delta) + zero_float`). Same operation order as the
// reference (`kernels::reference::fake_quant`); WGSL's round() is half-to-even like Burn's.
//
// T is vec4<f32> when the length is a multiple of 4 (one 16-byte load per value group, what
// Burn's own fused kernels do) and f32 otherwise; every operation below is componentwise.
// Each invocation takes PER groups a grid apart, so at every step neighbouring invocations
// touch neighbouring memory while the invocation count, which CPU-emulated GPUs pay for,
// drops by PER.

alias T = {{ ty }};
const PER: u32 = {{ per }}u;

@group(0) @binding(0) var<storage, read_write> x: array<T>;
@group(0) @binding(1) var<storage, read_write> y: array<T>;
// [groups of T, scale bits, zero point bits, qmin bits, qmax bits, invocations]
@group(0) @binding(2) var<storage, read> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let threads = info[5];
    let n = info[0];
    let scale = T(bitcast<f32>(info[1]));
    let zp = T(bitcast<f32>(info[2]));
    let lo = T(bitcast<f32>(info[3]));
    let hi = T(bitcast<f32>(info[4]));
    for (var k = 0u; k < PER; k++) {
        let i = t + k * threads;
        if (i < n) {
            let q = clamp(round(x[i] / scale) + zp, lo, hi);
            y[i] = (q - zp) * scale;
        }
    }
}
