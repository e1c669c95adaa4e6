//! Files generated from this crate's types and committed beside them (the CRD manifests, the
//! reference of conditions and reasons). A generator writes them; with `--check` it compares
//! instead and fails on any file missing or out of date, so CI catches a change left unregenerated.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// One generated file: where it is committed and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub path: PathBuf,
    pub text: String,
}

/// The files that are missing or differ from what was generated.
pub fn out_of_date(files: &[Generated]) -> Vec<&Path> {
    files
        .iter()
        .filter(|f| std::fs::read_to_string(&f.path).ok().as_deref() != Some(f.text.as_str()))
        .map(|f| f.path.as_path())
        .collect()
}

/// Writes every file, making its directory first.
pub fn write(files: &[Generated]) -> anyhow::Result<()> {
    for file in files {
        if let Some(dir) = file.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&file.path, &file.text).with_context(|| format!("writing {}", file.path.display()))?;
    }
    Ok(())
}

/// A generator's work: with `check`, names each file out of date and how to regenerate them
/// (`regenerate`, a command) and fails; otherwise writes them.
pub fn write_or_check(files: &[Generated], check: bool, regenerate: &str) -> anyhow::Result<ExitCode> {
    if !check {
        write(files)?;
        return Ok(ExitCode::SUCCESS);
    }
    let stale = out_of_date(files);
    for path in &stale {
        eprintln!("out of date: {}", path.display());
    }
    if stale.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("generated from crds/src: run `{regenerate}` and commit the result");
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_missing_or_different_is_out_of_date_until_written() {
        let dir = std::env::temp_dir().join(format!("generated-{}", std::process::id()));
        let files = vec![
            Generated { path: dir.join("a/one.yaml"), text: "one\n".into() },
            Generated { path: dir.join("two.md"), text: "two\n".into() },
        ];
        assert_eq!(out_of_date(&files).len(), 2);
        assert_eq!(write_or_check(&files, true, "gen").unwrap(), ExitCode::FAILURE);
        write(&files).unwrap();
        assert!(out_of_date(&files).is_empty());
        std::fs::write(dir.join("two.md"), "edited by hand\n").unwrap();
        assert_eq!(out_of_date(&files), vec![dir.join("two.md").as_path()]);
        assert_eq!(write_or_check(&files, false, "gen").unwrap(), ExitCode::SUCCESS);
        assert!(out_of_date(&files).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
