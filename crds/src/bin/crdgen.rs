//! Writes the CustomResourceDefinitions to `crds/manifests/<plural>.yaml`, the Helm chart's
//! `charts/mpanel/crds/` (first installs) and, annotated `helm.sh/resource-policy: keep`, the
//! templates of the `charts/mpanel-crds` chart (upgraded with that release), one file per kind.
//! With `--check`, writes nothing and fails if any committed file differs from what the types
//! generate (the test command runs this).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mpanel_crds::{generated, manifests};

#[derive(Parser)]
#[command(about = "Generate the mPanel CRD manifests")]
struct Args {
    /// Write to this directory only (default: crds/manifests, charts/mpanel/crds and
    /// charts/mpanel-crds/templates).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compare instead of writing; exit 1 when a file is missing or differs.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let mut files = Vec::new();
    match args.out {
        Some(dir) => files.extend(manifests::files_in(&dir, false)?),
        None => {
            for dir in manifests::committed_dirs() {
                files.extend(manifests::files_in(&dir, false)?);
            }
            files.extend(manifests::files_in(&manifests::crds_chart_templates(), true)?);
        }
    }
    generated::write_or_check(&files, args.check, "cargo run -p mpanel-crds --bin crdgen")
}
