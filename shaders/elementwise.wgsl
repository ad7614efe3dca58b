// elementwise — out[i] = f(a[i], b[i]) over flat tensors: add, add_relu (a residual sum with
// its ReLU), mul, scale; add and add_relu also on vec4s.
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

// out = max(a + b, 0): a residual sum with its ReLU fused (NaN passes, as in relu.wgsl).
@compute @workgroup_size(256, 1, 1)
fn add_relu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        let v = a[i] + b[i];
        out[i] = select(v, 0.0, v < 0.0);
    }
}

// add and add_relu on vec4s, for tensors of a multiple of 4 values (p.n counts vec4s): a
// quarter of the storage instructions, each a loop over SIMD lanes on lavapipe.
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn add_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out4[i] = a4[i] + b4[i];
    }
}

@compute @workgroup_size(256, 1, 1)
fn add_relu_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        let v = a4[i] + b4[i];
        out4[i] = select(v, vec4<f32>(0.0), v < vec4<f32>(0.0));
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
