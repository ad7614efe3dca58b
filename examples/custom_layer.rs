//! A layer of your own: LeakyReLU, y = x for x > 0 and slope * x otherwise, with its own WGSL
//! kernel and its own CPU twin. The kernel is checked against the twin with the library's
//! tolerance rule on awkward sizes, then the layer trains in a model next to built-in ones.
//!
//! Run: `cargo run --release --example custom_layer -- [TRAIN_IMAGES] [EPOCHS]` (defaults 2000, 2)

use std::sync::OnceLock;

use wgtrain::backend::T;
use wgtrain::gpu::ElementwiseKernel;
use wgtrain::nn::{Backward, Build, Conv2d, Flatten, Forward, Layer, Linear, MaxPool2d, Mode, Model, Sequential};
use wgtrain::rng::Rng;
use wgtrain::train::{Printer, TrainConfig, Trainer};
use wgtrain::verify::Tolerance;
use wgtrain::{data, Backend, Cpu, Gpu, GpuOptions};

/// The kernel: two entry points in the layout every element-wise kernel uses (see
/// `wgtrain::gpu::custom`); the slope arrives as `p.alpha`.
const LEAKY_RELU_WGSL: &str = r#"
struct ElementwiseParams { n: u32, row_stride: u32, alpha: f32, _pad: u32 }
@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn leaky_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) { out[i] = select(p.alpha * x[i], x[i], x[i] > 0.0); }
}

@compute @workgroup_size(256, 1, 1)
fn leaky_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) { out[i] = select(p.alpha * dy[i], dy[i], x[i] > 0.0); }
}
"#;

/// The CPU twin: what "correct" means for the kernel.
fn leaky_forward(x: &[f32], slope: f32, y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = if x > 0.0 { x } else { slope * x };
    }
}

fn leaky_backward(x: &[f32], dy: &[f32], slope: f32, dx: &mut [f32]) {
    for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
        *dx = if x > 0.0 { dy } else { slope * dy };
    }
}

struct LeakyRelu {
    slope: f32,
    /// Compiled on first use on the GPU.
    kernels: OnceLock<(ElementwiseKernel, ElementwiseKernel)>,
}

impl LeakyRelu {
    fn new(slope: f32) -> Self {
        Self { slope, kernels: OnceLock::new() }
    }

    fn kernels(&self, gpu: &Gpu) -> wgtrain::Result<&(ElementwiseKernel, ElementwiseKernel)> {
        if self.kernels.get().is_none() {
            let f = gpu.elementwise_kernel("leaky_relu.wgsl", LEAKY_RELU_WGSL, "leaky_forward", 1)?;
            let b = gpu.elementwise_kernel("leaky_relu.wgsl", LEAKY_RELU_WGSL, "leaky_backward", 2)?;
            let _ = self.kernels.set((f, b));
        }
        Ok(self.kernels.get().expect("just set"))
    }
}

/// Shape and initialisation rules are the same on every backend.
fn build(input: &[usize]) -> wgtrain::Result<Vec<usize>> {
    Ok(input.to_vec())
}

impl Layer<Cpu> for LeakyRelu {
    fn kind(&self) -> &str {
        "leaky_relu"
    }
    fn build(&mut self, input: &[usize], _: &mut Build) -> wgtrain::Result<Vec<usize>> {
        build(input)
    }
    fn forward(&self, _: &Cpu, io: Forward<'_, Cpu>) -> wgtrain::Result<()> {
        leaky_forward(io.x.data(), self.slope, io.y.data_mut());
        Ok(())
    }
    fn backward(&self, _: &Cpu, io: Backward<'_, Cpu>) -> wgtrain::Result<()> {
        if let Some(dx) = io.dx {
            leaky_backward(io.x.data(), io.dy.data(), self.slope, dx.data_mut());
        }
        Ok(())
    }
    fn is_rectifier(&self) -> bool {
        true
    }
}

impl Layer<Gpu> for LeakyRelu {
    fn kind(&self) -> &str {
        "leaky_relu"
    }
    fn build(&mut self, input: &[usize], _: &mut Build) -> wgtrain::Result<Vec<usize>> {
        build(input)
    }
    fn forward(&self, gpu: &Gpu, io: Forward<'_, Gpu>) -> wgtrain::Result<()> {
        gpu.run_elementwise(&self.kernels(gpu)?.0, &[io.x], io.y, self.slope)
    }
    fn backward(&self, gpu: &Gpu, io: Backward<'_, Gpu>) -> wgtrain::Result<()> {
        match io.dx {
            Some(dx) => gpu.run_elementwise(&self.kernels(gpu)?.1, &[io.x, io.dy], dx, self.slope),
            None => Ok(()),
        }
    }
    fn is_rectifier(&self) -> bool {
        true
    }
}

/// Runs the layer's forward and backward on `be` for random inputs of `n` values.
fn run_layer<B: Backend>(be: &B, layer: &dyn Layer<B>, x: &[f32], dy: &[f32]) -> wgtrain::Result<Vec<f32>> {
    let n = x.len();
    let (xt, dyt) = (be.upload(&[n], x)?, be.upload(&[n], dy)?);
    let (mut y, mut dx) = (be.zeros(&[n])?, be.zeros(&[n])?);
    let none: &mut [T<B>] = &mut [];
    layer.forward(
        be,
        Forward {
            x: &xt,
            y: &mut y,
            params: &[],
            buffers: none,
            saved: &mut [],
            mode: wgtrain::nn::Mode::Train,
            seed: 0,
            step: 0,
            replicas: None,
            relu: false,
        },
    )?;
    layer.backward(
        be,
        Backward {
            x: &xt,
            y: &y,
            dy: &dyt,
            dx: Some(&mut dx),
            params: &[],
            grads: &mut [],
            buffers: &[],
            saved: &[],
            mode: Mode::Train,
            seed: 0,
            step: 0,
            replicas: None,
        },
    )?;
    Ok([be.download(&y)?, be.download(&dx)?].concat())
}

/// The GPU kernel against its CPU twin on sizes 1, a prime, a non-multiple of the workgroup
/// and a large one. Each output is one comparison and at most one f32 multiply: the results
/// must agree to the last ulp (`Tolerance::EXACT`).
fn verify(gpu: &Gpu) -> wgtrain::Result<bool> {
    let layer = LeakyRelu::new(0.1);
    let mut rng = Rng::new(7);
    let mut ok = true;
    for n in [1, 7, 257, 65_537, 1_000_003] {
        let (x, dy) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        let got = run_layer(gpu, &layer as &dyn Layer<Gpu>, &x, &dy)?;
        let want = run_layer(&Cpu, &layer as &dyn Layer<Cpu>, &x, &dy)?;
        let cmp = Tolerance::EXACT.compare(&got, &want);
        println!(
            "leaky_relu n {n:>9}: max abs err {:.3e} ({} bad): {}",
            cmp.max_abs,
            cmp.failures,
            if cmp.passed() { "pass" } else { "FAIL" }
        );
        ok &= cmp.passed();
    }
    Ok(ok)
}

fn main() -> wgtrain::Result<()> {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let gpu = Gpu::new(&GpuOptions::default())?;
    if !verify(&gpu)? {
        return Err(wgtrain::Error::Invalid("the leaky_relu kernel disagrees with its CPU twin".into()));
    }
    let (train, test) = data::load(data::Source::Shapes, None, 3, arg(1, 2000), 28)?;
    let splits = data::split(train, test, 0.1, 3)?;
    let net = Sequential::new()
        .push(Conv2d::new(16, 3).padding(1))
        .push(LeakyRelu::new(0.1))
        .push(MaxPool2d::new(2, 2, 0))
        .push(Conv2d::new(32, 3).padding(1))
        .push(LeakyRelu::new(0.1))
        .push(MaxPool2d::new(2, 2, 0))
        .push(Flatten)
        .push(Linear::new(10));
    let mut model = Model::new(&gpu, net, &[1, 28, 28], 3, "leaky-cnn")?;
    let config = TrainConfig { epochs: arg(2, 2), ..TrainConfig::default() };
    let report = Trainer::new(config).callback(Printer::new()).fit(&gpu, &mut model, &splits)?;
    println!("test accuracy with LeakyReLU: {:.2}%", 100.0 * report.test_accuracy);
    Ok(())
}
