// clip — global-norm gradient clipping, torch.nn.utils.clip_grad_norm_ semantics, without a
// read-back: the sum of squares of the whole gradient arena comes from reduce.wgsl's
// sum_squares (one element, on the device), and every invocation derives the coefficient:
//   g <- g * min(1, max_norm / (sqrt(sumsq) + 1e-6))
// Host side: src/gpu/optimizer.rs. CPU twin: src/cpu/optimizer.rs (clip_by_norm).

struct ElementwiseParams {
    n: u32,
    row_stride: u32,
    alpha: f32, // max_norm
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> sumsq: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn clip_by_norm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        let coef = min(p.alpha / (sqrt(sumsq[0]) + 1e-6), 1.0);
        g[i] *= coef;
    }
}
