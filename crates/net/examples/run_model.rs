//! Open any model, build its network, run it:
//!
//! `cargo run -p modeltool-net --example run_model -- fixtures/height.json 175,160`
//! prints one output row per input row (inputs comma-separated, one row each
//! `input width` values). Models without an architecture that are an
//! nn.Sequential stack of several linear layers run with relu between them.

use modeltool_loader::{Model, OpenOptions};
use modeltool_net::{Activation, NetError, Network};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: run_model MODEL [X,X,...]")?;
    let values: Vec<f32> = args
        .flat_map(|a| a.split(',').map(str::to_owned).collect::<Vec<_>>())
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()?;

    let model = Model::open(&path, OpenOptions::default())?;
    let net = match Network::from_model(&model, None) {
        Err(NetError::InModel { source, .. })
            if matches!(*source, NetError::NeedsActivation { .. }) =>
        {
            Network::from_model(&model, Some(Activation::Relu))?
        }
        built => built?,
    };
    let width = net.input_width();
    let output = net.forward(&values, values.len() / width.max(1))?;
    for row in output.chunks(net.output_width()) {
        println!("{row:?}");
    }
    Ok(())
}
