// relu — forward y = max(x, 0) and backward dx = dy * [x > 0] (PyTorch's choice at x == 0: 0).
// max(x, 0) is written select(x, 0, x < 0) here and wherever a ReLU is fused in: a NaN passes
// through (as in PyTorch) on every device, where WGSL leaves max(NaN, 0) to the implementation;
// a diverging run then shows in its loss.
// The *_in_place entries serve a ReLU fused into the node before it (src/nn/model.rs): y
// rectified where it lies, and dy masked where it lies by the rectified y (y > 0 exactly where
// the input was). Same 2D layout as elementwise.wgsl. Host side: src/gpu/relu.rs. CPU twin: src/cpu/relu.rs.

struct ElementwiseParams {
    n: u32,
    row_stride: u32,
    alpha: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// out = y = max(x, 0)
@compute @workgroup_size(256, 1, 1)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out[i] = select(x[i], 0.0, x[i] < 0.0);
    }
}

// out = dx = dy where x > 0, else 0
@compute @workgroup_size(256, 1, 1)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out[i] = select(0.0, dy[i], x[i] > 0.0);
    }
}

// out = max(out, 0), in place
@compute @workgroup_size(256, 1, 1)
fn relu_in_place(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out[i] = select(out[i], 0.0, out[i] < 0.0);
    }
}

// out = dy, in place: kept where x (the rectified output) > 0, else 0
@compute @workgroup_size(256, 1, 1)
fn relu_backward_in_place(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out[i] = select(0.0, out[i], x[i] > 0.0);
    }
}

// The same on vec4s, for tensors of a multiple of 4 values (the host checks it): a quarter
// of the storage instructions (each a loop over SIMD lanes on lavapipe). p.n counts vec4s.
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn relu_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out4[i] = select(x4[i], vec4<f32>(0.0), x4[i] < vec4<f32>(0.0));
    }
}

@compute @workgroup_size(256, 1, 1)
fn relu_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out4[i] = select(vec4<f32>(0.0), dy4[i], x4[i] > vec4<f32>(0.0));
    }
}

@compute @workgroup_size(256, 1, 1)
fn relu_in_place_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out4[i] = select(out4[i], vec4<f32>(0.0), out4[i] < vec4<f32>(0.0));
    }
}

@compute @workgroup_size(256, 1, 1)
fn relu_backward_in_place_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out4[i] = select(vec4<f32>(0.0), out4[i], x4[i] > vec4<f32>(0.0));
    }
}
