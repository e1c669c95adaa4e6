//! Writes the CustomResourceDefinitions to `crds/manifests/<plural>.yaml` and the Helm chart's
//! `charts/mpanel/crds/`, one file per kind.
//! With `--check`, writes nothing and fails if any committed file differs from what the types
//! generate (the test command runs this).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mpanel_crds::manifests;

#[derive(Parser)]
#[command(about = "Generate the mPanel CRD manifests")]
struct Args {
    /// Write to this directory only (default: crds/manifests and charts/mpanel/crds).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compare instead of writing; exit 1 when a file is missing or differs.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let dirs = args.out.map_or_else(|| manifests::committed_dirs().to_vec(), |d| vec![d]);
    if args.check {
        let mut drifted = Vec::new();
        for dir in &dirs {
            drifted.extend(manifests::drifted(dir)?);
        }
        for path in &drifted {
            eprintln!("out of date: {}", path.display());
        }
        if drifted.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "the CRD manifests differ from crds/src: run `cargo run -p mpanel-crds --bin crdgen` and commit the result"
        );
        return Ok(ExitCode::FAILURE);
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for crd in mpanel_crds::crds() {
            let path = manifests::path_in(dir, &crd);
            std::fs::write(&path, manifests::render(&crd)?).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
