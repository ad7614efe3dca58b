//! A training loop written by hand: forward, loss, backward, optimizer step, evaluation and a
//! checkpoint per epoch, with the model's step in its parts (no `Trainer`).
//!
//! Run: `cargo run --release --example custom_loop -- [TRAIN_IMAGES] [EPOCHS] [CHECKPOINT]`
//! (defaults 2000, 2, custom_loop.safetensors in the temporary folder)

use std::sync::Arc;

use wgtrain::checkpoint::{self, Progress};
use wgtrain::data::loader::{self, Augment};
use wgtrain::nn::{zoo, CrossEntropy, Mode, Model, Targets};
use wgtrain::train::evaluate;
use wgtrain::{data, Gpu, GpuOptions, Optimizer};

fn main() -> wgtrain::Result<()> {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (train_images, epochs) = (arg(1, 2000), arg(2, 2));
    let path = std::env::args().nth(3).map_or_else(|| std::env::temp_dir().join("custom_loop.safetensors"), Into::into);
    let seed = 1;

    let gpu = Gpu::new(&GpuOptions::default())?;
    let (train, test) = data::load(data::Source::Shapes, None, seed, train_images, 28)?;
    let splits = data::split(train, test, 0.1, seed)?;
    let train = Arc::new(splits.train.clone());
    let mut model = Model::from_spec(&gpu, &zoo::model("default", 10)?, &[1, 28, 28], seed)?;
    let optimizer = Optimizer::preset("momentum")?;
    let loss = CrossEntropy::new(0.05);
    model.reset_optimizer(&gpu, &optimizer)?;

    for epoch in 0..epochs {
        for b in loader::start(train.clone(), 64, seed, epoch as u64, Augment::default(), true, true)? {
            let batch = model.load_batch(&gpu, &b.x, Targets::Labels(&b.labels))?;
            model.forward(&gpu, batch, Mode::Train)?;
            model.loss(&gpu, batch, &loss)?;
            model.backward(&gpu, batch)?;
            model.update(&gpu, &optimizer, None)?;
        }
        let train_metrics = model.take_metrics(&gpu)?; // the only read-back of the epoch
        let val = evaluate(&gpu, &mut model, &splits.val, 256, false)?;
        println!(
            "epoch {}: train loss {:.4} acc {:.2}%, validation loss {:.4} acc {:.2}%",
            epoch + 1,
            train_metrics.loss,
            100.0 * train_metrics.accuracy,
            val.loss,
            100.0 * val.accuracy
        );
        let progress = Progress {
            epoch: epoch + 1,
            batch_in_epoch: 0,
            step: model.step,
            seed,
            best_val_loss: None,
            best_epoch: None,
            epochs_since_best: 0,
        };
        checkpoint::save(&gpu, &path, &model, &optimizer, &progress)?;
    }
    let test = evaluate(&gpu, &mut model, &splits.test, 256, false)?;
    println!("test accuracy {:.2}%; checkpoint in {}", 100.0 * test.accuracy, path.display());
    Ok(())
}
