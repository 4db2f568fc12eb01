//! Run a model on the samples in a CSV file, as `modeltool run MODEL --input DATA.csv` does:
//!
//! `cargo run -p modeltool-net --example run_csv -- fixtures/height.json fixtures/height_weight.csv`
//!
//! The input columns are picked by the names the model records (`training.inputs`); when the
//! file holds the target columns too, each prediction is shown beside its target with the
//! error. A file without those names must hold exactly the inputs, one sample a row.

use std::path::Path;

use modeltool_loader::{Model, OpenOptions};
use modeltool_net::Runner;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(csv)) = (args.next(), args.next()) else {
        return Err("usage: run_csv MODEL DATA.csv".into());
    };

    let model = Model::open(&model, OpenOptions::default())?;
    let runner = Runner::new(&model, None)?;
    let batch = runner.read_batch(Path::new(&csv), OpenOptions::default())?;
    let predictions = runner.run(&batch)?;
    predictions.write_human(&mut std::io::stdout().lock())?;
    Ok(())
}
