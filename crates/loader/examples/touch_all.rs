//! Another tool using modeltool-loader: open any model (a .safetensors file,
//! a .json model file, a sharded checkpoint), list its tensors and read every
//! one as f32, checking stored checksums on the way.
//!
//! ```sh
//! cargo run --release -p modeltool-loader --example touch_all -- model.safetensors [--no-mmap]
//! ```

use std::borrow::Cow;
use std::process::ExitCode;

use modeltool_format::text::Count;
use modeltool_loader::{Model, OpenOptions};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: touch_all MODEL [--no-mmap]");
        return ExitCode::from(2);
    };
    let options = OpenOptions {
        mmap: !args.any(|a| a == "--no-mmap"),
        ..OpenOptions::default()
    };
    if options.mmap {
        #[expect(unsafe_code, reason = "opting in to memory maps")]
        // SAFETY: this example reads model files it is pointed at and
        // assumes nobody truncates them meanwhile; if someone does, the
        // process dies of SIGBUS (it installs no handler).
        unsafe {
            modeltool_loader::allow_mmap()
        };
    }
    match touch_all(&path, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn touch_all(path: &str, options: OpenOptions) -> Result<(), modeltool_loader::LoadError> {
    let model = Model::open(path, options)?;
    let (mut borrowed, mut copied, mut sum) = (0usize, 0usize, 0f64);
    for entry in model.entries() {
        // Checks the stored sha256, if any, then hands out the bytes:
        // borrowed from the map, or read once when mapping is off.
        let bytes = model.bytes_checked(entry)?;
        let Some(values) = modeltool_loader::to_f32(bytes, entry.meta.dtype) else {
            continue;
        };
        match values {
            Cow::Borrowed(_) => borrowed += 1,
            Cow::Owned(_) => copied += 1,
        }
        sum += values.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    println!(
        "{path}: {} in {}, {}; f32 views: {borrowed} borrowed from the map, {copied} copied or converted; sum of values {sum}",
        Count(model.entries().len() as u64, "tensor"),
        Count(model.files().len() as u64, "file"),
        Count(
            u64::try_from(model.parameter_count()).unwrap_or(u64::MAX),
            "parameter"
        )
    );
    Ok(())
}
