// Straight-through backward of fake quantization: the rounding passes the gradient unchanged,
// the clamp blocks it where round(x / scale + zp) falls outside [qmin, qmax] (inclusive at the
// edges, like the reference's clamp).

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
// [len, scale bits, zero point bits, qmin bits, qmax bits, threads along x]
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * info[5];
    if (i >= info[0]) { return; }
    let q = round(x[i] / bitcast<f32>(info[1]) + bitcast<f32>(info[2]));
    let inside = q >= bitcast<f32>(info[3]) && q <= bitcast<f32>(info[4]);
    dx[i] = select(0.0, g[i], inside);
}
