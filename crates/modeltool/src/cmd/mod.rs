//! One module per subcommand; each takes its clap arguments and a writer.

pub mod convert;
pub mod diff;
pub mod growth;
pub mod inspect;
pub mod rehash;
pub mod run;
pub mod stats;
pub mod train;
pub mod verify;

use modeltool_loader::Model;

use crate::InputArgs;

/// Opens the model an [`InputArgs`] names.
pub fn open(input: &InputArgs) -> anyhow::Result<Model> {
    Ok(Model::open(
        &input.input,
        input.pickle.open_options(!input.no_mmap),
    )?)
}

/// Lets go of a model whose command is done with it, without freeing it
/// piece by piece: the process exits soon after, and the kernel takes all
/// its memory back at once. A model of 100k small tensors is some 300k
/// allocations, whose freeing was a tenth of a conversion's time. (Files
/// and maps close at exit; a model holds nothing else to release.)
pub fn release(model: Model) {
    std::mem::forget(model);
}

/// A progress bar on stderr for `total` bytes, shown only when stderr is a
/// terminal and the job is big enough to be worth watching.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if total < (64 << 20) || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Prints a report as pretty JSON and a newline. Strings from a file stay
/// exact; the characters that could drive a terminal (controls, bidi
/// overrides) are written as `\uXXXX` escapes ([`modeltool_format::text::write_json`]).
pub fn print_json(
    out: &mut impl std::io::Write,
    report: &impl serde::Serialize,
) -> anyhow::Result<()> {
    modeltool_format::text::write_json(&mut *out, report)?;
    writeln!(out)?;
    Ok(())
}
