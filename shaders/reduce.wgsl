// reduce — sum (or sum of squares) of a flat tensor in two passes:
//   pass 1: workgroup g sums x[g*chunk .. min((g+1)*chunk, n)] into partial[g]
//   pass 2: one workgroup sums the partials into out[0]
// `sum_squares` squares the values in pass 1 (pass 2 is then a plain `sum`).
// Each invocation first adds a strided run of `chunk / 256` values sequentially, then the
// workgroup combines its 256 running sums by a tree in workgroup memory.
// Host side: src/gpu/reduce.rs (also fixes `chunk`). CPU twin: src/cpu/reduce.rs.

struct ReduceParams {
    n: u32,
    chunk: u32,
    groups: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> scratch: array<f32, 256>;

// Adds this workgroup's 256 running sums and writes the total to out[g].
fn finish(lid: u32, g: u32, acc: f32) {
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u && g < p.groups) {
        out[g] = scratch[0];
    }
}

@compute @workgroup_size(256, 1, 1)
fn sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let start = wid.x * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + lid.x; i < end; i += 256u) {
        acc += x[i];
    }
    finish(lid.x, wid.x, acc);
}

@compute @workgroup_size(256, 1, 1)
fn sum_squares(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let start = wid.x * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + lid.x; i < end; i += 256u) {
        acc = fma(x[i], x[i], acc);
    }
    finish(lid.x, wid.x, acc);
}
