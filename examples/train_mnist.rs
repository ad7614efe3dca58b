//! A CNN defined in Rust, trained on MNIST and evaluated through the library.
//!
//! Run: `cargo run --release --example train_mnist -- [DATA_DIR] [TRAIN_IMAGES] [EPOCHS] [TEST_IMAGES]`
//! (defaults: ../shared/data/mnist, all 60,000, 1 epoch, all 10,000). DATA_DIR holds the IDX
//! files, gzipped or not.

use wgtrain::nn::{BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Model, Relu, Sequential};
use wgtrain::train::{evaluate, Printer, TrainConfig, Trainer};
use wgtrain::{data, Gpu, GpuOptions, Optimizer};

fn arg(i: usize) -> Option<usize> {
    std::env::args().nth(i).and_then(|a| a.parse().ok())
}

fn main() -> wgtrain::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "../shared/data/mnist".into());
    let (train, test) = data::load(data::Source::Mnist, Some(dir.as_ref()), 1, 0, 28)?;
    let first = |d: &data::Dataset, n: Option<usize>| d.subset(&(0..n.unwrap_or(d.len()).min(d.len())).collect::<Vec<_>>());
    let splits = data::split(first(&train, arg(2)), first(&test, arg(4)), 0.1, 1)?;

    let gpu = Gpu::new(&GpuOptions::default())?;
    let net = Sequential::new()
        .push(Conv2d::new(16, 5).padding(2).no_bias())
        .push(BatchNorm2d::new())
        .push(Relu)
        .push(MaxPool2d::new(2, 2, 0))
        .push(Conv2d::new(32, 3).padding(1).no_bias())
        .push(BatchNorm2d::new())
        .push(Relu)
        .push(MaxPool2d::new(2, 2, 0))
        .push(Flatten)
        .push(Linear::new(128))
        .push(Relu)
        .push(Dropout::new(0.25))
        .push(Linear::new(10));
    let mut model = Model::new(&gpu, net, &[1, 28, 28], 1, "mnist-cnn")?;
    println!("{} parameters, training on {} images with {}", model.num_params(), splits.train.len(), gpu.adapter_name());

    let config = TrainConfig { epochs: arg(3).unwrap_or(1), optimizer: Optimizer::preset("adam")?, ..TrainConfig::default() };
    Trainer::new(config).callback(Printer::new()).fit(&gpu, &mut model, &splits)?;

    let result = evaluate(&gpu, &mut model, &splits.test, 256, false)?;
    println!("test loss {:.4}, accuracy {:.2}% on {} images", result.loss, 100.0 * result.accuracy, result.samples);
    for (digit, acc) in result.per_class.iter().enumerate() {
        println!("  digit {digit}: {:.2}%", 100.0 * acc);
    }
    Ok(())
}
