// Straight-through backward of fake quantization: the rounding passes the gradient unchanged,
// the clamp blocks it where round(x / scale) + zp falls outside [qmin, qmax] (inclusive at the
// edges, like the reference's clamp). T, PER and the grid as in the forward kernel.

alias T = {{ ty }};
const PER: u32 = {{ per }}u;

@group(0) @binding(0) var<storage, read_write> x: array<T>;
@group(0) @binding(1) var<storage, read_write> g: array<T>;
@group(0) @binding(2) var<storage, read_write> dx: array<T>;
// [groups of T, scale bits, zero point bits, qmin bits, qmax bits, invocations]
@group(0) @binding(3) var<storage, read> info: array<u32>;

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
            let q = round(x[i] / scale) + zp;
            dx[i] = select(T(0.0), g[i], (q >= lo) & (q <= hi));
        }
    }
}
