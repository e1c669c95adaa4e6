//! Writes `docs/reasons.md`, the reference of every condition type and reason, from
//! `crds/src/reasons/`.
//! With `--check`, writes nothing and fails if the committed file differs from what it generates
//! (the test command runs this).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mpanel_crds::generated::{self, Generated};
use mpanel_crds::reasons;

#[derive(Parser)]
#[command(about = "Generate the reference of condition types and reasons")]
struct Args {
    /// Write to this file instead (default: docs/reasons.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compare instead of writing; exit 1 when the file is missing or differs.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let file = Generated { path: args.out.unwrap_or_else(reasons::reference_path), text: reasons::reference() };
    generated::write_or_check(&[file], args.check, "cargo run -p mpanel-crds --bin reasongen")
}
