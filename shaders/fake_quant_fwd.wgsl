// Fake quantization, fused: x_hat = scale * (clamp(round(x / scale + zp), qmin, qmax) - zp).
// Same operation order as the reference (`kernels::reference::fake_quant`), so both round the
// same f32 value; WGSL's round() is half-to-even like Burn's.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
// [len, scale bits, zero point bits, qmin bits, qmax bits, threads along x]
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * info[5];
    if (i >= info[0]) { return; }
    let scale = bitcast<f32>(info[1]);
    let zp = bitcast<f32>(info[2]);
    let q = clamp(round(x[i] / scale + zp), bitcast<f32>(info[3]), bitcast<f32>(info[4]));
    y[i] = (q - zp) * scale;
}
