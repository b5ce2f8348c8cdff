// Outlier statistics of one tracked tensor in one launch: per sequence (one workgroup each)
// max |x|, the mean, the unbiased variance and the fourth central moment (kurtosis =
// m4 / (var^2 + 1e-6), the paper's definition), plus a histogram of BINS equal bins over
// [-range, range] (values beyond fall in the edge bins, NaNs in none). The host reads back
// (4 + BINS) floats per sequence instead of the activations.
// Output row: [max_abs, mean, var, m4, count_0 .. count_{BINS-1}].

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> range: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// [sequences, values per sequence, workgroups along x]
@group(0) @binding(3) var<storage, read> info: array<u32>;

const WG: u32 = {{ wg }}u;
const BINS: u32 = {{ bins }}u;
var<workgroup> ra: array<f32, WG>;
var<workgroup> rb: array<f32, WG>;
var<workgroup> hist: array<atomic<u32>, BINS>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * info[2];
    let n = info[1];
    let valid = row < info[0];
    let base = row * n;
    for (var k = lid; k < BINS; k += WG) { atomicStore(&hist[k], 0u); }

    var sum = 0.0;
    var amax = 0.0;
    if (valid) {
        for (var i = lid; i < n; i += WG) {
            let v = x[base + i];
            sum += v;
            amax = max(amax, abs(v));
        }
    }
    ra[lid] = sum;
    rb[lid] = amax;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            ra[lid] += ra[lid + s];
            rb[lid] = max(rb[lid], rb[lid + s]);
        }
        workgroupBarrier();
    }
    let mean = ra[0] / f32(max(n, 1u));
    let max_abs = rb[0];
    workgroupBarrier();

    let r = max(range[0], 1e-6);
    var m2 = 0.0;
    var m4 = 0.0;
    if (valid) {
        for (var i = lid; i < n; i += WG) {
            let v = x[base + i];
            let c = v - mean;
            let c2 = c * c;
            m2 += c2;
            m4 += c2 * c2;
            if (v == v) {
                let f = clamp(floor((v + r) / (2.0 * r) * f32(BINS)), 0.0, f32(BINS - 1u));
                atomicAdd(&hist[u32(f)], 1u);
            }
        }
    }
    ra[lid] = m2;
    rb[lid] = m4;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            ra[lid] += ra[lid + s];
            rb[lid] += rb[lid + s];
        }
        workgroupBarrier();
    }
    if (valid) {
        let o = row * (4u + BINS);
        if (lid == 0u) {
            out[o] = max_abs;
            out[o + 1u] = mean;
            out[o + 2u] = ra[0] / f32(max(n, 2u) - 1u);
            out[o + 3u] = rb[0] / f32(max(n, 1u));
        }
        for (var k = lid; k < BINS; k += WG) {
            out[o + 4u + k] = f32(atomicLoad(&hist[k]));
        }
    }
}
