//! Helpers for tests that run against the testbed (`tests/testbed/up`): the environment it wrote,
//! kubectl as a person runs it, throwaway namespaces, and the manifests under `examples/`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};
use serde_json::Value;

pub mod full_stack;
pub mod mail;
pub mod manifest;
pub mod namesilo;
pub mod prometheus;
pub mod stripe;

/// Polls `check` every 100 ms until it returns true or `within` passes; whether it did.
pub fn eventually(
    within: std::time::Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if check()? {
            return Ok(true);
        }
        if std::time::Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Sum of the Prometheus samples of `name` whose labels include every `label="value"` in `labels`.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The running testbed, as described by the env file `tests/testbed/up` writes.
pub struct Testbed {
    env: BTreeMap<String, String>,
}

/// What one kubectl call printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Testbed {
    /// Reads `$TESTBED_ENV`, or `target/testbed/env` of this checkout.
    pub fn from_env() -> anyhow::Result<Self> {
        let path = std::env::var_os("TESTBED_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/testbed/env"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}: start the testbed first with tests/testbed/up", path.display()))?;
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(Self { env })
    }

    /// A key of the env file.
    pub fn get(&self, key: &str) -> anyhow::Result<&str> {
        self.env.get(key).map(String::as_str).with_context(|| format!("the testbed env has no {key}"))
    }

    /// Runs kubectl against the testbed, optionally feeding `stdin`.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        let mut child = Command::new(self.get("KUBECTL")?)
            .args(args)
            .env("KUBECONFIG", self.get("KUBECONFIG")?)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kubectl")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).context("writing kubectl's stdin")?;
        }
        let out = child.wait_with_output().context("waiting for kubectl")?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs kubectl and fails with its stderr unless it succeeds.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let out = self.kubectl(args, stdin)?;
        if !out.success {
            bail!("kubectl {} failed: {}", args.join(" "), out.stderr.trim());
        }
        Ok(out.stdout)
    }

    /// Runs kubectl as `user` (impersonated with `--as`, e.g. `tenant-a` or
    /// `system:serviceaccount:<namespace>:<name>`), so RBAC and admission policies judge that user.
    pub fn kubectl_as(&self, user: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        let args: Vec<&str> = ["--as", user].iter().chain(args).copied().collect();
        self.kubectl(&args, stdin)
    }

    /// Asks the testbed's PowerDNS (`PDNS_DNS_ADDR`) directly, as `dig` would.
    pub fn dig(&self, name: &str, rtype: &str) -> anyhow::Result<DnsAnswer> {
        let addr = self.get("PDNS_DNS_ADDR")?;
        let (host, port) = addr.rsplit_once(':').with_context(|| format!("PDNS_DNS_ADDR {addr:?} is not host:port"))?;
        let out = Command::new("dig")
            .args([
                &format!("@{host}"),
                "-p",
                port,
                "+tries=1",
                "+time=3",
                "+noall",
                "+comments",
                "+answer",
                name,
                rtype,
            ])
            .output()
            .context("running dig")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let rcode = text
            .lines()
            .find_map(|l| l.split("status: ").nth(1))
            .and_then(|s| s.split(',').next())
            .with_context(|| format!("dig printed no status:\n{text}{}", String::from_utf8_lossy(&out.stderr)))?
            .to_owned();
        let answers = text
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.len() >= 5 && fields[3].eq_ignore_ascii_case(rtype)).then(|| fields[4..].join(" "))
            })
            .collect();
        Ok(DnsAnswer { rcode, answers })
    }

    /// Creates a namespace unique to this test process; it is deleted when the value is dropped.
    pub fn namespace(&self, prefix: &str) -> anyhow::Result<TestNamespace<'_>> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        self.kubectl_ok(&["create", "namespace", &name], None)?;
        Ok(TestNamespace { testbed: self, name })
    }
}

/// What a DNS server answered: the response code and the data of the answer records of the asked
/// type, in zone-file form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    pub rcode: String,
    pub answers: Vec<String>,
}

/// A namespace that is deleted (without waiting) when dropped.
pub struct TestNamespace<'a> {
    testbed: &'a Testbed,
    pub name: String,
}

impl Drop for TestNamespace<'_> {
    fn drop(&mut self) {
        let _ = self.testbed.kubectl(&["delete", "namespace", &self.name, "--wait=false"], None);
        // the test's operator is gone by now: release what it left finalized, so that the namespace
        // goes and its objects stop holding names and addresses on a testbed that outlives the test
        // (their external objects are left as they are)
        let Ok(out) = self.testbed.kubectl(&["get", "mpanel", "-n", &self.name, "-o", "name"], None) else { return };
        for object in out.stdout.lines().filter(|l| !l.is_empty()) {
            let release = r#"{"metadata":{"finalizers":null}}"#;
            let _ = self.testbed.kubectl(&["patch", object, "-n", &self.name, "--type=merge", "-p", release], None);
        }
    }
}

/// The files under `examples/` that hold Kubernetes objects (the kustomization is not one).
pub fn example_files() -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every object in the example files.
pub fn example_objects() -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for file in example_files()? {
        let text = std::fs::read_to_string(&file)?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).with_context(|| format!("parsing {}", file.display()))?;
        out.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    Ok(out)
}

/// The first example object of `kind`.
pub fn example_of(kind: &str) -> anyhow::Result<Value> {
    example_objects()?.into_iter().find(|o| o["kind"] == kind).with_context(|| format!("examples/ has no {kind}"))
}
