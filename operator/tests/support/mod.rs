//! Running the operator binary in a test: start it, wait for /readyz, read /metrics, stop it by pid;
//! and a harness for DnsZone tests against the testbed's PowerDNS.
//! `tenants`: customers acting as the user the chart's tenant-edit role binds in their namespace.
// each test binary uses a part of this module
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;
use mpanel_tests::Testbed;
use serde_json::Value;

pub mod tenants;

/// Status code and body of `GET path` on `addr`, if the server answered.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// Status code of `GET path` on `addr`, if the server answered.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    http_get(addr, path).map(|(status, _)| status)
}

#[allow(unused_imports)]
pub use mpanel_tests::metric_sum;

#[allow(unused_imports)]
pub use mpanel_tests::eventually;

/// An operator process; killed when dropped if `stop` was not called. Its output goes to a file
/// (a pipe read only at the end would fill and stop the operator mid-test); a dropped operator
/// prints the end of it, which the test runner shows when the test failed.
pub struct Operator {
    child: Option<Child>,
    pub health_addr: String,
    log: std::path::PathBuf,
}

/// How much of a dropped operator's log is printed.
const LOG_TAIL_LINES: usize = 300;

/// How an operator run ended.
pub struct Stopped {
    pub success: bool,
    pub logs: String,
    pub shutdown_took: Duration,
}

impl Operator {
    pub fn start(kubeconfig: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(kubeconfig, extra_args, &[])
    }

    /// Starts the operator with extra environment variables (e.g. a test-only fault point).
    pub fn start_with_env(kubeconfig: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let health_addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("mpanel-operator-{}-{port}.log", std::process::id()));
        let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_mpanel-operator"))
            .args(["run", "--health-addr", &health_addr])
            .args(extra_args)
            .env("KUBECONFIG", kubeconfig)
            .envs(env.iter().copied())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting mpanel-operator")?;
        Ok(Self { child: Some(child), health_addr, log })
    }

    /// Starts the operator with the configuration file `config` and waits until it is ready;
    /// fails with its logs when it is not.
    pub fn start_ready(kubeconfig: &Path, config: &Path) -> anyhow::Result<Self> {
        let mut op = Self::start(kubeconfig, &["--config", &config.to_string_lossy()])?;
        if !op.wait_ready(Duration::from_secs(30))? {
            anyhow::bail!("operator did not become ready: {}", op.stop()?.logs);
        }
        Ok(op)
    }

    /// Waits until the process exits by itself; its exit code, or None at the deadline.
    pub fn wait_exit(&mut self, within: Duration) -> anyhow::Result<Option<i32>> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Ok(Some(status.code().unwrap_or(-1)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(None)
    }

    /// Waits until /readyz answers 200; false when the deadline passes or the process exits.
    pub fn wait_ready(&mut self, within: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + within;
        loop {
            if http_status(&self.health_addr, "/readyz") == Some(200) {
                return Ok(true);
            }
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?.is_some(),
                None => true,
            };
            if exited || Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The current `/metrics` text.
    pub fn metrics(&self) -> anyhow::Result<String> {
        http_get(&self.health_addr, "/metrics").map(|(_, body)| body).context("/metrics did not answer")
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM by pid and collects the output.
    pub fn stop(mut self) -> anyhow::Result<Stopped> {
        let child = self.child.take().context("already stopped")?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let sent = Instant::now();
        let mut child = child;
        let status = child.wait()?;
        let shutdown_took = sent.elapsed();
        let logs = String::from_utf8_lossy(&std::fs::read(&self.log)?).into_owned();
        Ok(Stopped { success: status.success(), logs, shutdown_took })
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
            if let Ok(text) = std::fs::read(&self.log) {
                let text = String::from_utf8_lossy(&text);
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                eprintln!(
                    "--- the last {} lines of operator {} ---\n{}",
                    tail.len(),
                    self.health_addr,
                    tail.join("\n")
                );
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs a provider future from a synchronous test.
pub trait AwaitBlocking: std::future::Future + Sized {
    fn await_blocking(self) -> Self::Output {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(self),
            Err(e) => panic!("no tokio runtime: {e}"),
        }
    }
}
impl<F: std::future::Future> AwaitBlocking for F {}

/// Applies a `kind` object of the mPanel API with `spec` in namespace `ns`.
pub fn apply_object(tb: &Testbed, ns: &str, kind: &str, name: &str, spec: Value) -> anyhow::Result<()> {
    let obj = serde_json::json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": kind,
                                 "metadata": {"name": name, "namespace": ns}, "spec": spec});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&obj.to_string())).map(drop)
}

/// An object as `kubectl get -o json` prints it; `kind` as kubectl takes it (`dnszone`, `secret`).
pub fn get_object(tb: &Testbed, ns: &str, kind: &str, name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&tb.kubectl_ok(&["get", kind, name, "-n", ns, "-o", "json"], None)?)?)
}

/// Waits until `check` holds for the object; fails saying `what` with its last status.
pub fn wait_object(
    tb: &Testbed,
    ns: &str,
    kind: &str,
    name: &str,
    what: &str,
    within: Duration,
    mut check: impl FnMut(&Value) -> bool,
) -> anyhow::Result<Value> {
    let mut last = Value::Null;
    let met = eventually(within, || {
        last = get_object(tb, ns, kind, name)?;
        Ok(check(&last))
    })?;
    if !met {
        anyhow::bail!("{kind} {name} never {what}; status: {:#}", last["status"]);
    }
    Ok(last)
}

/// Waits until condition `type_` is `status` (with `reason`, if given) at the object's generation.
pub fn wait_condition(
    tb: &Testbed,
    ns: &str,
    kind: &str,
    name: &str,
    (type_, status, reason): (&str, &str, Option<&str>),
    within: Duration,
) -> anyhow::Result<Value> {
    wait_object(tb, ns, kind, name, &format!("had {type_}={status} ({reason:?})"), within, |obj| {
        let c = condition(obj, type_);
        c["status"] == status
            && c["observedGeneration"] == obj["metadata"]["generation"]
            && reason.is_none_or(|r| c["reason"] == r)
    })
}

/// The status condition `type_` of `obj` (null when absent).
pub fn condition(obj: &Value, type_: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_default()
}
