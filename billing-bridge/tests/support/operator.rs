//! The real operator behind the bridge: the `mpanel-operator` binary watching one customer's
//! namespace, with the testbed's PowerDNS, pebble (issuer `letsencrypt`, as the catalog's
//! certificates name it), mail-core, fakepve and the Namesilo double account the bridge checks
//! names with at checkout.
//!
//! The binary is another package's, so this test cannot name it with `CARGO_BIN_EXE_…`: it is
//! looked for next to the test executable (`target/debug/deps/<test>` → `target/debug/mpanel-operator`).
//! `cargo nextest run --workspace` builds it; `cargo nextest run -p mpanel-billing-bridge` alone
//! does not (a dev-dependency builds a package's library, not its binaries): run
//! `cargo build -p mpanel-operator` first.
//!
//! Each operator gets a namespace of its own for its provider Secrets, ACME account and Lease, a
//! VMID range and an address pool no other test file gives out, and watches only the customer's
//! namespace: nothing another test made is touched. When dropped it deletes the customer's
//! namespace while it still runs (so the children go with what they stand for: the guest at
//! fakepve, the zone at PowerDNS), then stops by pid.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mpanel_tests::namesilo::Account;
use mpanel_tests::{TestNamespace, Testbed, full_stack};
use serde_json::Value;

/// VMIDs the operators of these tests give out: 40 000 000 and up, ten per process. The operator's
/// own tests use 100 000 to about 30 000 000 (cloudpod, backups, chart, subscription, delivery,
/// bootstrap, rate_limit).
const VMID_BASE: u32 = 40_000_000;

/// The operator binary of this build, next to the test executable.
pub fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).context("the test executable has no target directory")?;
    let binary = profile_dir.join(format!("mpanel-operator{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "the operator binary {} is missing: these tests run the real operator behind the bridge; build it with \
             `cargo build -p mpanel-operator` (or run `cargo nextest run --workspace`, which builds it)",
            binary.display()
        );
    }
    Ok(binary)
}

/// An operator process watching one customer's namespace; see the module doc.
pub struct Operator<'a> {
    tb: &'a Testbed,
    child: Option<Child>,
    /// The customer's namespace it watches.
    pub watched: String,
    /// Its own namespace: provider Secrets, ACME account, Lease.
    pub own: TestNamespace<'a>,
    pub vmids: (u32, u32),
    /// The first three octets of its pool's addresses (`a.b.c`).
    pub network: String,
    pub log: PathBuf,
    config: PathBuf,
    health_addr: String,
}

impl<'a> Operator<'a> {
    /// Starts the operator for `customer_namespace`, calling the Namesilo double as `registrar`
    /// (the bridge's account), and waits until it is ready.
    pub fn start(tb: &'a Testbed, customer_namespace: &str, registrar: &Account) -> anyhow::Result<Self> {
        let binary = binary()?;
        let own = tb.namespace("bought-op")?;
        let ns = own.name.clone();
        full_stack::provider_secrets(tb, &ns, registrar.key())?;
        let pid = std::process::id();
        let first = VMID_BASE + (pid % 100_000) * 10;
        let vmids = (first, first + 9);
        // addresses no other test file gives out (they use 198.51.100/24, 198.18/16 and 100.64/16)
        let network = format!("100.72.{}", pid % 250);
        let config = std::env::temp_dir().join(format!("{ns}.operator.yaml"));
        let scope =
            full_stack::Scope { watch: customer_namespace, home: &ns, vmids, network: &network, hosts: (10, 19) };
        std::fs::write(&config, full_stack::config(tb, &scope)?)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let health_addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("{ns}.operator.log"));
        // a file, not a pipe nobody reads while it runs (a full pipe would stall the operator)
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&binary)
            .args(["run", "--health-addr", &health_addr, "--config", &config.to_string_lossy()])
            .env("KUBECONFIG", tb.get("KUBECONFIG")?)
            .env("RUST_LOG", "info")
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut op = Self {
            tb,
            child: Some(child),
            watched: customer_namespace.to_owned(),
            own,
            vmids,
            network,
            log,
            config,
            health_addr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http_status(&op.health_addr, "/readyz") == Some(200) {
                return Ok(op);
            }
            if let Some(child) = op.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("the operator exited ({status}): {}", op.log_tail(40));
            }
            if Instant::now() > deadline {
                bail!("the operator was not ready in 30 s: {}", op.log_tail(40));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` lines the operator logged.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!("operator log ({}):\n{}", self.log.display(), all[all.len().saturating_sub(lines)..].join("\n"))
    }

    /// Everything the operator logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// fakepve's guests in this operator's VMID range.
    pub fn guests(&self) -> anyhow::Result<Vec<Value>> {
        let out = Command::new("curl")
            .args(["-sS", "--cacert", self.tb.get("PROXMOX_CA")?])
            .args(["-H", &format!("Authorization: PVEAPIToken={}", self.tb.get("PROXMOX_TOKEN")?)])
            .arg(format!("{}/_ctl/guests", self.tb.get("PROXMOX_CTL_URL")?))
            .output()
            .context("running curl")?;
        let all: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("fakepve's guests: {}", String::from_utf8_lossy(&out.stdout)))?;
        Ok(all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["vmid"].as_u64().is_some_and(|id| (self.vmids.0..=self.vmids.1).contains(&(id as u32))))
            .cloned()
            .collect())
    }

    /// Stops the operator by pid (SIGTERM, then SIGKILL after 10 s).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Operator<'_> {
    fn drop(&mut self) {
        // the customer's namespace goes while the operator runs, so that its finalizers remove
        // what the children stand for; what is left after a minute is released as the operator's
        // own tests release theirs
        let ns = self.watched.clone();
        let _ = self.tb.kubectl(&["delete", "namespace", &ns, "--wait=false"], None);
        let gone = mpanel_tests::eventually(Duration::from_secs(60), || {
            Ok(!self.tb.kubectl(&["get", "namespace", &ns], None)?.success)
        });
        self.stop();
        if !gone.unwrap_or(false)
            && let Ok(out) = self.tb.kubectl(&["get", "mpanel", "-n", &ns, "-o", "name"], None)
        {
            for object in out.stdout.lines().filter(|l| !l.is_empty()) {
                let release = r#"{"metadata":{"finalizers":null}}"#;
                let _ = self.tb.kubectl(&["patch", object, "-n", &ns, "--type=merge", "-p", release], None);
            }
        }
        let _ = std::fs::remove_file(&self.config);
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Status code of `GET path` on `addr`, if the server answered.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// The status condition `type_` of `object` (null when absent).
pub fn condition(object: &Value, type_: &str) -> Value {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_default()
}
