//! The testbed's Prometheus (tests/testbed/prometheus.sh): scraping a test's process as a target
//! registered by a file_sd file, instant queries over its HTTP API, and the panel queries of the
//! Grafana dashboard in monitoring/.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{Testbed, eventually};

pub struct Prometheus {
    url: String,
    targets: PathBuf,
    /// What a bridge target must accept as a bearer token (a read-only admin API token).
    pub bridge_token: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// A registered target: scraped until this is dropped.
pub struct Target {
    pub address: String,
    file: PathBuf,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

impl Prometheus {
    pub fn from_testbed(tb: &Testbed) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Self {
            url: tb.get("PROMETHEUS_URL")?.to_owned(),
            targets: PathBuf::from(tb.get("PROMETHEUS_TARGETS")?),
            bridge_token: tb.get("PROMETHEUS_BRIDGE_TOKEN")?.to_owned(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        })
    }

    /// Has Prometheus scrape `address` (host:port) from now on, in the job the file name `name`
    /// starts with (`operator-` or `bridge-`).
    pub fn register(&self, name: &str, address: &str) -> anyhow::Result<Target> {
        let file = self.targets.join(format!("{name}.json"));
        // Prometheus may read the directory at any time: it must never see half a file
        let partial = self.targets.join(format!(".{name}.json.partial"));
        let group = serde_json::json!([{"targets": [address], "labels": {"testbed": name}}]);
        std::fs::write(&partial, group.to_string()).with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &file)?;
        Ok(Target { address: address.to_owned(), file })
    }

    /// Waits until Prometheus has scraped `target` successfully.
    pub fn wait_scraped(&self, target: &Target, within: Duration) -> anyhow::Result<()> {
        let up = format!("up{{instance=\"{}\"}} == 1", target.address);
        if !eventually(within, || Ok(!self.query(&up)?.is_empty()))? {
            bail!("Prometheus did not scrape {} within {within:?}: {:?}", target.address, self.target_health(target));
        }
        Ok(())
    }

    /// What /api/v1/targets says of `target` (its health and last error).
    fn target_health(&self, target: &Target) -> anyhow::Result<Value> {
        let body: Value = self
            .rt
            .block_on(async { self.http.get(format!("{}/api/v1/targets", self.url)).send().await?.json().await })?;
        Ok(body["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["labels"]["instance"] == target.address.as_str())
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// The series `expr` evaluates to now (instant query).
    pub fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), [("query", expr)])?;
        let body: Value = self.rt.block_on(async { self.http.get(url).send().await?.json().await })?;
        if body["status"] != "success" {
            bail!("Prometheus refused {expr}: {body}");
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The queries of `queries` that return no series within `within` (each asked until it does).
    pub fn without_series<'q>(
        &self,
        queries: &'q [PanelQuery],
        within: Duration,
    ) -> anyhow::Result<Vec<&'q PanelQuery>> {
        let mut left: Vec<&PanelQuery> = queries.iter().collect();
        eventually(within, || {
            let mut still = Vec::new();
            for q in left.drain(..) {
                if self.query(&q.expr)?.is_empty() {
                    still.push(q);
                }
            }
            left = still;
            Ok(left.is_empty())
        })?;
        Ok(left)
    }
}

/// The metric whose `instance` values the dashboard's variable `name` offers
/// (`label_values(<metric>, instance)`).
pub fn variable_metric(dashboard: &Value, name: &str) -> anyhow::Result<String> {
    let variable = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == name)
        .with_context(|| format!("the dashboard has no variable {name}"))?;
    let query = variable["query"].as_str().unwrap_or_default();
    let metric = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(", instance)"));
    Ok(metric.with_context(|| format!("the variable {name} asks {query:?}"))?.to_owned())
}

/// One query of a dashboard panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub expr: String,
}

/// monitoring/dashboard.json.
pub fn dashboard() -> anyhow::Result<Value> {
    let path = crate::repo_root().join("monitoring/dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path)?).with_context(|| format!("parsing {}", path.display()))
}

/// Every query of every panel of `dashboard`, those in rows included.
pub fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    fn walk(panels: &Value, out: &mut Vec<PanelQuery>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default().to_owned();
                out.push(PanelQuery { panel: panel["title"].as_str().unwrap_or_default().to_owned(), expr });
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The dashboard variable `$name` (or `${name}`) appears in `expr`.
pub fn uses_variable(expr: &str, name: &str) -> bool {
    let plain = format!("${name}");
    expr.contains(&format!("${{{name}}}"))
        || expr
            .match_indices(&plain)
            .any(|(at, _)| !expr[at + plain.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

/// `query` as Grafana sends it with the variable `name` set to the one value `instance`, and
/// `$__rate_interval` a minute.
pub fn with_instance(query: &PanelQuery, name: &str, instance: &str) -> PanelQuery {
    let pattern = instance.replace('.', "\\\\.");
    let expr = query
        .expr
        .replace(&format!("${{{name}}}"), &pattern)
        .replace(&format!("${name}"), &pattern)
        .replace("$__rate_interval", "1m");
    PanelQuery { panel: query.panel.clone(), expr }
}
