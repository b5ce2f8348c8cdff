// matmul_vec4.wgsl with A transposed: A is stored [batch, K, M] (the view Aᵀ that a matmul's
// weight gradient Aᵀ·dC reads) and M, K, N are multiples of 4. Reading the stored layout
// directly saves the copy that packing the view would cost, one launch per use; per step of 4
// along K an invocation loads TM/4 vec4s from each of 4 rows of A and 4 vec4s of B.
// Out-of-range rows read a clamped (valid) group and are not written.

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
    let m4 = m / 4u;
    let n4 = info[2] / 4u;
    let k = info[3];
    let k4 = k / 4u;
    let tiles = ((m + TM - 1u) / TM) * n4;
    if (id >= info[0] * tiles) { return; }
    let bi = id / tiles;
    let r = id % tiles;
    let m0 = (r / n4) * TM;
    let tn = r % n4;

    // Column groups of A's stored rows: group g covers rows m0 + 4g .. m0 + 4g + 3 of C.
    var cols: array<u32, TM / 4u>;
    for (var g = 0u; g < TM / 4u; g++) { cols[g] = min(m0 / 4u + g, m4 - 1u); }
    let abase = bi * k * m4;
    let bcol = bi * k * n4 + tn;

    var acc: array<vec4<f32>, TM>;
    for (var kq = 0u; kq < k4; kq++) {
        let bk = bcol + 4u * kq * n4;
        let b0 = b[bk];
        let b1 = b[bk + n4];
        let b2 = b[bk + 2u * n4];
        let b3 = b[bk + 3u * n4];
        let ak = abase + 4u * kq * m4;
        for (var g = 0u; g < TM / 4u; g++) {
            // a_j holds A[m0 + 4g .. +3, 4kq + j]: the stored row 4kq + j.
            let a0 = a[ak + cols[g]];
            let a1 = a[ak + m4 + cols[g]];
            let a2 = a[ak + 2u * m4 + cols[g]];
            let a3 = a[ak + 3u * m4 + cols[g]];
            for (var i = 0u; i < 4u; i++) {
                let t = 4u * g + i;
                acc[t] = fma(vec4<f32>(a3[i]), b3, fma(vec4<f32>(a2[i]), b2,
                         fma(vec4<f32>(a1[i]), b1, fma(vec4<f32>(a0[i]), b0, acc[t]))));
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        if (m0 + i < m) { c[(bi * m + m0 + i) * n4 + tn] = acc[i]; }
    }
}
