//! Writes `docs/reasons.md`, the reference of every condition type and reason, from
//! `crds/src/reasons.rs`.
//! With `--check`, writes nothing and fails if the committed file differs from what it generates
//! (the test command runs this).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
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
    let path = args.out.unwrap_or_else(reasons::reference_path);
    let reference = reasons::reference();
    if args.check {
        if std::fs::read_to_string(&path).ok().as_deref() == Some(reference.as_str()) {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("out of date: {}", path.display());
        eprintln!(
            "the reference differs from crds/src/reasons.rs: run `cargo run -p mpanel-crds --bin reasongen` and commit the result"
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, reference).with_context(|| format!("writing {}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}
