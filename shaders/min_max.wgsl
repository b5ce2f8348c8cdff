// Min and max of a tensor in two launches of this one shader, without shared memory or
// barriers (they dominate on CPU-emulated GPUs: a tree-reduction version was 5x slower than
// Burn's reductions on lavapipe). First pass: the invocations work in teams of TEAM
// neighbours, and each team walks one contiguous block of the values, its members reading
// neighbouring items at every step. A team's step is one contiguous span (whole cache lines on
// a GPU, whose wider subgroups read several such spans at once), and on a CPU-emulated GPU,
// which runs TEAM invocations as one SIMD batch, each batch streams through memory in order,
// which is what caches and prefetchers want. Every invocation leaves a (min, max) pair.
// Second pass: one invocation folds those pairs into the final [min, max]. Calibration needs
// both numbers of every quantizer site each batch; this replaces two reductions and a
// concatenation.
//
// T is vec4<f32> when the values come in groups of 4 (16-byte loads), f32 otherwise (and for
// the second pass, which reads the pairs). HMIN/HMAX fold a T to one f32.

alias T = {{ ty }};

@group(0) @binding(0) var<storage, read_write> x: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// [items of T, pairs (0: x holds values, 1: x holds (min, max) pairs), items per team,
//  invocations per team, active invocations per workgroup]
@group(0) @binding(2) var<storage, read> info: array<u32>;

fn hmin(v: T) -> f32 { return {{ hmin }}; }
fn hmax(v: T) -> f32 { return {{ hmax }}; }

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let used = info[4];
    if (lid.x >= used) { return; }
    let team_size = info[3];
    let team = wid.x * (used / team_size) + lid.x / team_size;
    let start = team * info[2];
    let end = min(start + info[2], info[0]);
    let stride = team_size;
    // ±f32::MAX by bit pattern: Tint refuses a decimal literal that rounds to it.
    var a = bitcast<f32>(0x7f7fffffu);
    var b = -a;
    var i = start + lid.x % team_size;
    if (info[1] == 1u) {
        for (; i < end; i += stride) {
            a = min(a, hmin(x[2u * i]));
            b = max(b, hmax(x[2u * i + 1u]));
        }
    } else {
        // Two independent chains, so each min/max does not wait on the previous one.
        var lo0 = T(a); var lo1 = T(a);
        var hi0 = T(b); var hi1 = T(b);
        for (; i + stride < end; i += 2u * stride) {
            let v0 = x[i];
            let v1 = x[i + stride];
            lo0 = min(lo0, v0); hi0 = max(hi0, v0);
            lo1 = min(lo1, v1); hi1 = max(hi1, v1);
        }
        if (i < end) {
            lo0 = min(lo0, x[i]); hi0 = max(hi0, x[i]);
        }
        a = hmin(min(lo0, lo1));
        b = hmax(max(hi0, hi1));
    }
    let o = wid.x * used + lid.x;
    out[2u * o] = a;
    out[2u * o + 1u] = b;
}
