// Packs up to six 1-D tensors into segments of one flat buffer, in place: input k goes to
// out[off_k ..], followed by zeros up to the segment's padded length. The optimizer keeps
// every parameter, gradient and moment in one flat buffer this way, so its norm and update are
// one launch each instead of one or two per parameter; in the browser a training step's time
// is mostly per-launch cost. Segments are padded to 256 bytes so that every parameter is later
// a zero-copy view into the updated buffer (WebGPU's storage-offset alignment).
//
// The inputs are declared read_write like every binding of CubeCL's kernels: CubeCL
// sub-allocates tensors from shared pages, so an input and the output may be ranges of one
// buffer, and WebGPU refuses read-only and writable uses of one buffer in a dispatch.
// Grid: x strides over a segment's values, y picks the input.

{{ inputs }}
@group(0) @binding({{ n }}) var<storage, read_write> out: array<f32>;
// [threads along x, then per input: offset in out, length, padded length]
@group(0) @binding({{ n_info }}) var<storage, read> info: array<u32>;

fn load(k: u32, i: u32) -> f32 {
    switch k {
{{ cases }}
        default: { return 0.0; }
    }
}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.y;
    let threads = info[0];
    let off = info[1u + 3u * k];
    let len = info[2u + 3u * k];
    let padded = info[3u + 3u * k];
    for (var i = gid.x; i < padded; i += threads) {
        var v = 0.0;
        if (i < len) { v = load(k, i); }
        out[off + i] = v;
    }
}
