// Batched matmul for the common case: A [batch, M, K] and B [batch, K, N] contiguous, K and N
// multiples of 4, C [batch, M, N]. Same contract as matmul.wgsl, with every load and store a
// 16-byte vec4: per step of 4 along K an invocation loads TM vec4s of A and 4 of B for
// 16·TM multiply-adds, with no shared memory and no barriers (see matmul.wgsl for why).
// Out-of-range rows read a clamped (valid) row and are not written.

const TM: u32 = {{ tm }}u;

@group(0) @binding(0) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
// [batch, M, N, K, invocations along x]
@group(0) @binding(3) var<storage, read> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x + gid.y * info[4];
    let m = info[1];
    let n4 = info[2] / 4u;
    let k4 = info[3] / 4u;
    let tiles = ((m + TM - 1u) / TM) * n4;
    if (id >= info[0] * tiles) { return; }
    let bi = id / tiles;
    let r = id % tiles;
    let m0 = (r / n4) * TM;
    let tn = r % n4;

    var rows: array<u32, TM>;
    for (var i = 0u; i < TM; i++) { rows[i] = (bi * m + min(m0 + i, m - 1u)) * k4; }
    let bcol = bi * info[3] * n4 + tn;

    var acc: array<vec4<f32>, TM>;
    for (var kq = 0u; kq < k4; kq++) {
        let bk = bcol + 4u * kq * n4;
        let b0 = b[bk];
        let b1 = b[bk + n4];
        let b2 = b[bk + 2u * n4];
        let b3 = b[bk + 3u * n4];
        for (var i = 0u; i < TM; i++) {
            let av = a[rows[i] + kq];
            acc[i] = fma(vec4<f32>(av.w), b3, fma(vec4<f32>(av.z), b2,
                     fma(vec4<f32>(av.y), b1, fma(vec4<f32>(av.x), b0, acc[i]))));
        }
    }
    for (var i = 0u; i < TM; i++) {
        if (m0 + i < m) { c[(bi * m + m0 + i) * n4 + tn] = acc[i]; }
    }
}
