//! Times `Network::forward` on an MLP of equal-width linear layers with relu between them.
//!
//! `cargo run --release -p modeltool-net --example forward_bench -- [width] [layers] [batch] [repeats]`
//! prints one line of JSON: `{"width":..,"layers":..,"batch":..,"best_s":..,"median_s":..}`.
//! `benches/run_vs_numpy.py` runs it next to the same computation in numpy.

use std::time::Instant;

use modeltool_net::{Activation, NetError, Network, sequential_architecture};

fn main() -> Result<(), NetError> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are positive integers"))
        .collect();
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let (width, layers, batch, repeats) = (arg(0, 1024), arg(1, 3), arg(2, 8192), arg(3, 10));

    let names: Vec<String> = (0..layers)
        .flat_map(|l| [format!("{}.weight", 2 * l), format!("{}.bias", 2 * l)])
        .collect();
    let arch = sequential_architecture(&names, Activation::Relu)?;
    // Small deterministic values; the timing does not depend on them.
    let mut state = 1u32;
    let mut next = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let scale = 1.0 / (width as f32).sqrt();
    let net = Network::build(&arch, |name| {
        if name.ends_with("weight") {
            let values: Vec<f32> = (0..width * width).map(|_| next() * scale).collect();
            Some((vec![width, width], values))
        } else {
            Some((
                vec![width],
                (0..width).map(|_| next()).collect::<Vec<f32>>(),
            ))
        }
    })?;
    let input: Vec<f32> = (0..batch * width).map(|i| (i % 97) as f32 / 97.0).collect();

    let _warm_up = net.forward(&input, batch)?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let out = net.forward(&input, batch)?;
        times.push(start.elapsed().as_secs_f64());
        std::hint::black_box(out);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"width\":{width},\"layers\":{layers},\"batch\":{batch},\"best_s\":{:.6},\"median_s\":{:.6}}}",
        times[0],
        times[times.len() / 2]
    );
    Ok(())
}
