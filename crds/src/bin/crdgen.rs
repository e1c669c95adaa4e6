//! Writes the CustomResourceDefinitions to `crds/manifests/<plural>.yaml`, the Helm chart's
//! `charts/mpanel/crds/` (first installs) and, annotated `helm.sh/resource-policy: keep`, the
//! templates of the `charts/mpanel-crds` chart (upgraded with that release), one file per kind.
//! With `--check`, writes nothing and fails if any committed file differs from what the types
//! generate (the test command runs this).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use mpanel_crds::manifests;

/// The `charts/mpanel-crds` chart's templates: the CRDs as Helm-managed objects that Helm keeps
/// on uninstall.
fn crds_chart_templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/mpanel-crds/templates")
}

/// The CRD with `helm.sh/resource-policy: keep`, as the `mpanel-crds` chart's template has it.
fn kept(crd: &CustomResourceDefinition) -> CustomResourceDefinition {
    let mut crd = crd.clone();
    crd.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("helm.sh/resource-policy".into(), "keep".into());
    crd
}

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
    let chart_templates = args.out.is_none().then(crds_chart_templates);
    let dirs = args.out.map_or_else(|| manifests::committed_dirs().to_vec(), |d| vec![d]);
    if args.check {
        let mut drifted = Vec::new();
        for dir in &dirs {
            drifted.extend(manifests::drifted(dir)?);
        }
        if let Some(dir) = &chart_templates {
            for crd in mpanel_crds::crds() {
                let path = manifests::path_in(dir, &crd);
                if std::fs::read_to_string(&path).ok() != Some(manifests::render(&kept(&crd))?) {
                    drifted.push(path);
                }
            }
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
    if let Some(dir) = &chart_templates {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for crd in mpanel_crds::crds() {
            let path = manifests::path_in(dir, &crd);
            std::fs::write(&path, manifests::render(&kept(&crd))?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
