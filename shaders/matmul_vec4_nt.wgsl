// matmul_vec4.wgsl with B transposed: B is stored [batch, N, K] (the view Bᵀ that attention
// scores Q·Kᵀ and a matmul's input gradient dC·Bᵀ read) and K, N are multiples of 4. Reading
// the stored layout directly saves the copy that packing the view would cost, one launch per
// use; per step of 4 along K an invocation loads TM vec4s of A and 4 of B (one from each of its
// 4 output columns) and takes 4·TM dot products. Out-of-range rows read a clamped (valid) row
// and are not written.

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
    let n = info[2];
    let n4 = n / 4u;
    let k4 = info[3] / 4u;
    let tiles = ((m + TM - 1u) / TM) * n4;
    if (id >= info[0] * tiles) { return; }
    let bi = id / tiles;
    let r = id % tiles;
    let m0 = (r / n4) * TM;
    let tn = r % n4;

    var rows: array<u32, TM>;
    for (var i = 0u; i < TM; i++) { rows[i] = (bi * m + min(m0 + i, m - 1u)) * k4; }
    // The stored rows of B for output columns 4tn .. 4tn + 3.
    let brow = (bi * n + 4u * tn) * k4;

    var acc: array<vec4<f32>, TM>;
    for (var kq = 0u; kq < k4; kq++) {
        let b0 = b[brow + kq];
        let b1 = b[brow + k4 + kq];
        let b2 = b[brow + 2u * k4 + kq];
        let b3 = b[brow + 3u * k4 + kq];
        for (var i = 0u; i < TM; i++) {
            let av = a[rows[i] + kq];
            acc[i] += vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
        }
    }
    for (var i = 0u; i < TM; i++) {
        if (m0 + i < m) { c[(bi * m + m0 + i) * n4 + tn] = acc[i]; }
    }
}
