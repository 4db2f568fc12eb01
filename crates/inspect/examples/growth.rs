//! Writes the default growth series into a directory, prints the table and
//! chart, and draws `growth.svg` there.
//!
//! ```text
//! cargo run --release -p modeltool-inspect --example growth -- /tmp/growth
//! ```

use std::path::PathBuf;
use std::time::Instant;

use modeltool_inspect::growth::{default_points, measure, render_table, write_svg};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .ok_or("usage: growth <directory>")?,
    );
    std::fs::create_dir_all(&dir)?;
    let start = Instant::now();
    let points = measure(&dir, &default_points())?;
    let elapsed = start.elapsed();
    render_table(&points, &mut std::io::stdout().lock())?;
    let svg = dir.join("growth.svg");
    write_svg(&points, &svg)?;
    println!("\nmeasured in {elapsed:.2?}; chart in {}", svg.display());
    Ok(())
}
