//! Opens any model (a `.safetensors` file, a `.json` model file, a sharded
//! checkpoint) and prints its report, as `modeltool inspect` does.
//!
//! ```text
//! cargo run -p modeltool-inspect --example report -- MODEL [--json]
//! ```

use modeltool_inspect::{InspectOptions, Report, screen_columns};
use modeltool_loader::{Model, OpenOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: report MODEL [--json]")?;
    let model = Model::open(&path, OpenOptions::default())?;
    let options = InspectOptions {
        columns: screen_columns(),
        ..InspectOptions::default()
    };
    let report = Report::from_model(&model, &options);
    let mut out = std::io::stdout().lock();
    if std::env::args().any(|a| a == "--json") {
        modeltool_format::text::write_json(&mut out, &report)?;
    } else {
        report.render_human(&mut out)?;
    }
    Ok(())
}
