// Batched matmul C[b] = A[b] · B[b] (A: M×K, B: K×N, any strides, so transposed operands need
// no copy), C contiguous [batch, M, N]. The reference twin is Burn's own `matmul`
// (`kernels::reference::matmul`).
//
// Why not Burn's matmul: on CPU-emulated GPUs (SwiftShader in the browser, lavapipe natively)
// its shared-memory tiled kernels spend most of their time in workgroup barriers; on
// SwiftShader they were 92 % of a training step. Here each invocation keeps a TM×4 tile of C in
// registers and streams K with no shared memory and no barriers. Neighbouring invocations
// take neighbouring column tiles, so their B loads are adjacent. Out-of-range rows and columns
// read a clamped (valid) index and are simply not written, which keeps the K loop branch-free.

const TM: u32 = {{ tm }}u;

@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
// [batch, M, N, K, a_sb, a_sm, a_sk, b_sb, b_sk, b_sn, invocations along x]
@group(0) @binding(3) var<storage, read> info: array<u32>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x + gid.y * info[10];
    let m = info[1];
    let n = info[2];
    let kk = info[3];
    let tiles_n = (n + 3u) / 4u;
    let tiles = ((m + TM - 1u) / TM) * tiles_n;
    if (id >= info[0] * tiles) { return; }
    let bi = id / tiles;
    let r = id % tiles;
    let m0 = (r / tiles_n) * TM;
    let n0 = (r % tiles_n) * 4u;
    let a_base = bi * info[4];
    let a_sm = info[5];
    let a_sk = info[6];
    let b_base = bi * info[7];
    let b_sk = info[8];
    let b_sn = info[9];

    // Clamped column offsets: always in bounds, so the loop needs no branches.
    let o0 = min(n0, n - 1u) * b_sn;
    let o1 = min(n0 + 1u, n - 1u) * b_sn;
    let o2 = min(n0 + 2u, n - 1u) * b_sn;
    let o3 = min(n0 + 3u, n - 1u) * b_sn;
    var rows: array<u32, TM>;
    for (var i = 0u; i < TM; i++) { rows[i] = a_base + min(m0 + i, m - 1u) * a_sm; }

    var acc: array<vec4<f32>, TM>;
    for (var k = 0u; k < kk; k++) {
        let bk = b_base + k * b_sk;
        let bv = vec4<f32>(b[bk + o0], b[bk + o1], b[bk + o2], b[bk + o3]);
        let ak = k * a_sk;
        for (var i = 0u; i < TM; i++) {
            acc[i] = fma(vec4<f32>(a[rows[i] + ak]), bv, acc[i]);
        }
    }

    for (var i = 0u; i < TM; i++) {
        let row = m0 + i;
        if (row < m) {
            let base = (bi * m + row) * n + n0;
            let v = acc[i];
            c[base] = v.x;
            if (n0 + 1u < n) { c[base + 1u] = v.y; }
            if (n0 + 2u < n) { c[base + 2u] = v.z; }
            if (n0 + 3u < n) { c[base + 3u] = v.w; }
        }
    }
}
