// Min and max of a tensor in two launches of this one shader, without shared memory or
// barriers (they dominate on CPU-emulated GPUs: a tree-reduction version was 5x slower than
// Burn's reductions on lavapipe). First `threads` invocations each reduce a grid-strided share
// of the values (neighbouring invocations read neighbouring memory) to a (min, max) pair; then
// one invocation folds those pairs into the final [min, max]. Calibration needs both numbers
// of every quantizer site each batch; this replaces two reductions and a concatenation.
//
// T is vec4<f32> when the values come in groups of 4 (16-byte loads), f32 otherwise (and for
// the second pass, which reads the pairs). HMIN/HMAX fold a T to one f32.

alias T = {{ ty }};

@group(0) @binding(0) var<storage, read_write> x: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// [items of T, pairs (0: x holds values, 1: x holds (min, max) pairs), threads]
@group(0) @binding(2) var<storage, read> info: array<u32>;

fn hmin(v: T) -> f32 { return {{ hmin }}; }
fn hmax(v: T) -> f32 { return {{ hmax }}; }

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let threads = info[2];
    if (t >= threads) { return; }
    let items = info[0];
    // ±f32::MAX by bit pattern: Tint refuses a decimal literal that rounds to it.
    var a = bitcast<f32>(0x7f7fffffu);
    var b = -a;
    if (info[1] == 1u) {
        for (var i = t; i < items; i += threads) {
            a = min(a, hmin(x[2u * i]));
            b = max(b, hmax(x[2u * i + 1u]));
        }
    } else {
        // Two independent chains, so each min/max does not wait on the previous one.
        var lo0 = T(a); var lo1 = T(a);
        var hi0 = T(b); var hi1 = T(b);
        var i = t;
        for (; i + threads < items; i += 2u * threads) {
            let v0 = x[i];
            let v1 = x[i + threads];
            lo0 = min(lo0, v0); hi0 = max(hi0, v0);
            lo1 = min(lo1, v1); hi1 = max(hi1, v1);
        }
        if (i < items) {
            lo0 = min(lo0, x[i]); hi0 = max(hi0, x[i]);
        }
        a = hmin(min(lo0, lo1));
        b = hmax(max(hi0, hi1));
    }
    out[2u * t] = a;
    out[2u * t + 1u] = b;
}
