// elementwise — out[i] = f(a[i], b[i]) over flat tensors: add, mul, scale.
// Invocations are laid out in 2D (x: up to 65,535 workgroups of 256, y: rows of those), so a
// tensor of any length is covered without exceeding max_compute_workgroups_per_dimension.
// Host side: src/gpu/elementwise.rs. CPU twin: src/cpu/elementwise.rs.

struct ElementwiseParams {
    n: u32,          // elements in this dispatch
    row_stride: u32, // invocations per grid row = groups.x * 256
    alpha: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// out = a + b
@compute @workgroup_size(256, 1, 1)
fn add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out[i] = a[i] + b[i];
    }
}

// out = a * b
@compute @workgroup_size(256, 1, 1)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out[i] = a[i] * b[i];
    }
}

// out = alpha * a
@compute @workgroup_size(256, 1, 1)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out[i] = p.alpha * a[i];
    }
}
