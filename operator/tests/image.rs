//! The container images `images/build` makes: each OCI layout is whole (index, manifest, config and
//! layer verify by sha256 and size), the same binary gives the same digest, the image runs as 65532
//! with the binary as its entrypoint, and the chart's default images are the names and tag it
//! gives. Unpacked into a root filesystem and run from it (chroot) as 65532, with the image's
//! environment and nothing else from this machine, the operator becomes ready against the testbed's
//! kube-apiserver and stops on SIGTERM, and the billing bridge migrates a fresh ledger on the
//! testbed's PostgreSQL and serves /healthz.
//!
//! The images are built with `--profile debug`, from the binaries the test run already built, to
//! keep CI fast; the release images are the same script with its default profile (release).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use mpanel_tests::{Testbed, repo_root};
use serde_json::Value;
use support::http_status;

const NONROOT: u32 = 65532;

/// A directory of this test's own (layouts, root filesystem, logs), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> anyhow::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mpanel-image-{what}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Output of a command that must succeed.
fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let out = run_ok(Command::new("sha256sum").arg(path))?;
    out.split_whitespace().next().map(str::to_owned).context("sha256sum printed nothing")
}

/// The sha256 of the gunzipped `path` (a layer's diff_id).
fn sha256_gunzipped(path: &Path) -> anyhow::Result<String> {
    let mut gunzip = Command::new("gzip").arg("-dc").arg(path).stdout(Stdio::piped()).spawn()?;
    let stdout = gunzip.stdout.take().context("gzip's stdout")?;
    let out = Command::new("sha256sum").stdin(stdout).output()?;
    ensure!(gunzip.wait()?.success() && out.status.success(), "gunzipping {} failed", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .context("sha256sum printed nothing")
}

/// The directory cargo builds into, from where it put this test's operator binary.
fn target_dir() -> anyhow::Result<PathBuf> {
    let bin = Path::new(env!("CARGO_BIN_EXE_mpanel-operator"));
    bin.parent().and_then(Path::parent).map(Path::to_path_buf).context("the operator binary has no target directory")
}

/// A host program's path (the children run with the image's PATH, which has only /usr/local/bin).
fn host_tool(name: &str) -> anyhow::Result<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} is not installed"))
}

/// One built and checked image.
struct Image {
    name: &'static str,
    dir: PathBuf,
    reference: String,
    digest: String,
    config: Value,
    layer: PathBuf,
}

/// Runs `images/build --profile debug` for `name` into `out`.
fn build(name: &str, out: &Path, revision: &str) -> anyhow::Result<String> {
    run_ok(
        Command::new(repo_root().join("images/build"))
            .args(["--profile", "debug", "--revision", revision, "--out"])
            .arg(out)
            .arg(name)
            .env("CARGO_TARGET_DIR", target_dir()?)
            .env_remove("SOURCE_DATE_EPOCH"),
    )
}

/// Reads `descriptor`'s blob after checking its size and digest.
fn blob(layout: &Path, descriptor: &Value, media_type: &str) -> anyhow::Result<PathBuf> {
    ensure!(descriptor["mediaType"] == media_type, "{descriptor} is not a {media_type}");
    let digest = descriptor["digest"].as_str().context("a descriptor without a digest")?;
    let hex = digest.strip_prefix("sha256:").with_context(|| format!("{digest} is not sha256"))?;
    let path = layout.join("blobs/sha256").join(hex);
    let size = std::fs::metadata(&path).with_context(|| format!("no blob {digest}"))?.len();
    ensure!(descriptor["size"].as_u64() == Some(size), "{digest}: {size} bytes, the descriptor says {descriptor}");
    ensure!(sha256_file(&path)? == hex, "the blob {digest} does not hash to its digest");
    Ok(path)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

/// The chart's appVersion, the tag its default images have.
fn chart_app_version() -> anyhow::Result<String> {
    let chart = std::fs::read_to_string(repo_root().join("charts/mpanel/Chart.yaml"))?;
    let line = chart.lines().find_map(|l| l.strip_prefix("appVersion:")).context("Chart.yaml has no appVersion")?;
    Ok(line.trim().trim_matches('"').to_owned())
}

/// Builds `name` twice (the digests must match) and checks the layout through to the layer.
fn build_and_check(name: &'static str, scratch: &Path) -> anyhow::Result<Image> {
    let revision =
        run_ok(Command::new("git").arg("-C").arg(repo_root()).args(["rev-parse", "HEAD"]))?.trim().to_owned();
    let dir = scratch.join("layout");
    let printed = build(name, &dir, &revision)?;

    ensure!(read_json(&dir.join("oci-layout"))? == serde_json::json!({"imageLayoutVersion": "1.0.0"}));
    let index = read_json(&dir.join("index.json"))?;
    ensure!(index["schemaVersion"] == 2 && index["mediaType"] == "application/vnd.oci.image.index.v1+json", "{index}");
    let [entry] = index["manifests"].as_array().map(Vec::as_slice).unwrap_or_default() else {
        bail!("the index does not list one manifest: {index}");
    };
    let tag = entry["annotations"]["org.opencontainers.image.ref.name"].as_str().context("no ref.name")?.to_owned();
    let reference = entry["annotations"]["io.containerd.image.name"].as_str().context("no image name")?.to_owned();
    let digest = entry["digest"].as_str().context("no manifest digest")?.to_owned();
    ensure!(printed.contains(&digest), "images/build did not print the manifest digest {digest}:\n{printed}");
    ensure!(printed.contains("MiB compressed"), "images/build did not print the compressed size:\n{printed}");

    let manifest = read_json(&blob(&dir, entry, "application/vnd.oci.image.manifest.v1+json")?)?;
    ensure!(manifest["schemaVersion"] == 2, "{manifest}");
    let config = read_json(&blob(&dir, &manifest["config"], "application/vnd.oci.image.config.v1+json")?)?;
    let [layer] = manifest["layers"].as_array().map(Vec::as_slice).unwrap_or_default() else {
        bail!("the manifest does not have one layer: {manifest}");
    };
    let layer = blob(&dir, layer, "application/vnd.oci.image.layer.v1.tar+gzip")?;
    let diff_id = format!("sha256:{}", sha256_gunzipped(&layer)?);
    ensure!(config["rootfs"]["diff_ids"] == serde_json::json!([diff_id]), "diff_ids {}", config["rootfs"]);

    let c = &config["config"];
    ensure!(c["User"] == "65532:65532", "User {}", c["User"]);
    ensure!(c["Entrypoint"] == serde_json::json!([format!("/usr/local/bin/{name}")]), "Entrypoint {}", c["Entrypoint"]);
    ensure!(config["os"] == "linux" && config["architecture"] == "amd64", "{config}");
    let labels = &c["Labels"];
    ensure!(labels["org.opencontainers.image.revision"] == revision.as_str(), "labels {labels}");
    ensure!(labels["org.opencontainers.image.version"] == tag.as_str(), "labels {labels}");
    ensure!(labels["org.opencontainers.image.source"].as_str().is_some_and(|s| s.starts_with("https://")), "{labels}");
    ensure!(
        !c["Env"].to_string().to_lowercase().contains("secret")
            && !c["Env"].to_string().to_lowercase().contains("password"),
        "Env {}",
        c["Env"]
    );

    // the tag is the crate's version, and the chart's default image is this one
    let crate_dir = if name == "mpanel-operator" { "operator" } else { "billing-bridge" };
    let cargo = std::fs::read_to_string(repo_root().join(crate_dir).join("Cargo.toml"))?;
    let version = cargo.lines().find_map(|l| l.strip_prefix("version = ")).context("Cargo.toml has no version")?;
    ensure!(tag == version.trim_matches('"'), "the tag {tag} is not the crate's version {version}");
    ensure!(tag == chart_app_version()?, "the tag {tag} is not the chart's appVersion");
    ensure!(reference == format!("ghcr.io/migrahosting/{name}:{tag}"), "{reference}");

    // the same binary again: the same bytes
    let again = scratch.join("layout-again");
    build(name, &again, &revision)?;
    let index_again = read_json(&again.join("index.json"))?;
    ensure!(index_again == index, "two builds of one binary differ: {index} and {index_again}");
    std::fs::remove_dir_all(&again)?;

    Ok(Image { name, dir, reference, digest, config, layer })
}

/// The images the chart renders by default (operator and bridge), as `image:` lines.
fn chart_images(tb: &Testbed) -> anyhow::Result<Vec<String>> {
    let chart = repo_root().join("charts/mpanel");
    let out = run_ok(
        Command::new(tb.get("HELM")?).args(["template", "t"]).arg(chart).args(["--set", "bridge.enabled=true"]),
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(|i| i.trim().trim_matches('"').to_owned())
        .collect())
}

/// How the image's processes are run: from the unpacked root with chroot, or (where chroot is not
/// allowed) with the root's own loader and libraries, the paths then being the root's seen from here.
enum Mode {
    Chroot,
    Loader { loader: PathBuf, library_path: String },
}

/// The unpacked image and how to run processes from it as its user.
struct Root {
    path: PathBuf,
    mode: Mode,
    config: Value,
}

impl Root {
    fn unpack(image: &Image, scratch: &Path) -> anyhow::Result<Self> {
        let path = scratch.join("rootfs");
        std::fs::create_dir(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        run_ok(Command::new("tar").arg("--numeric-owner").arg("-xzpf").arg(&image.layer).arg("-C").arg(&path))?;

        // what the layer holds, and whose it is
        use std::os::unix::fs::MetadataExt;
        let bin = path.join("usr/local/bin").join(image.name);
        let meta = std::fs::metadata(&bin)?;
        ensure!(meta.uid() == 0 && meta.gid() == 0 && meta.mode() & 0o777 == 0o755, "the binary is {meta:?}");
        let passwd = std::fs::read_to_string(path.join("etc/passwd"))?;
        ensure!(passwd.lines().any(|l| l.starts_with("nonroot:x:65532:65532:")), "{passwd}");
        let group = std::fs::read_to_string(path.join("etc/group"))?;
        ensure!(group.lines().any(|l| l.starts_with("nonroot:x:65532:")), "{group}");
        ensure!(std::fs::metadata(path.join("etc/ssl/certs/ca-certificates.crt"))?.len() > 0, "no CA certificates");
        ensure!(std::fs::metadata(path.join("tmp"))?.mode() & 0o7777 == 0o1777, "/tmp is not 1777");

        let config = image.config["config"].clone();
        let probe = Command::new(host_tool("chroot")?)
            .args(["--userspec=65532:65532", "--groups=65532"])
            .arg(&path)
            .arg(format!("/usr/local/bin/{}", image.name))
            .arg("--version")
            .env_clear()
            .output()?;
        let mode = if probe.status.success() {
            Mode::Chroot
        } else {
            eprintln!(
                "chroot is not allowed here ({}): running with the root's own loader and libraries instead",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            let mut libs = Vec::new();
            let mut loader = None;
            for dir in ["lib", "lib64", "usr/lib", "usr/lib64", "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"] {
                let Ok(entries) = std::fs::read_dir(path.join(dir)) else { continue };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with("ld-linux") {
                        loader = Some(e.path());
                    } else if name.contains(".so") && !libs.contains(&path.join(dir)) {
                        libs.push(path.join(dir));
                    }
                }
            }
            let library_path = libs.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(":");
            Mode::Loader { loader: loader.context("the image has no ld-linux loader")?, library_path }
        };
        Ok(Self { path, mode, config })
    }

    /// Where the process sees the image's absolute path `p`.
    fn seen(&self, p: &str) -> String {
        match self.mode {
            Mode::Chroot => p.to_owned(),
            Mode::Loader { .. } => self.path.join(p.trim_start_matches('/')).to_string_lossy().into_owned(),
        }
    }

    /// Puts `contents` at the image path `p`, readable by the image's user only.
    fn put(&self, p: &str, contents: &[u8]) -> anyhow::Result<()> {
        let host = self.path.join(p.trim_start_matches('/'));
        if let Some(dir) = host.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&host, contents)?;
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o600))?;
        std::os::unix::fs::chown(&host, Some(NONROOT), Some(NONROOT))?;
        Ok(())
    }

    /// The testbed's kubeconfig, with the files it names (the CA) copied into the root under
    /// /etc/mpanel; its path as the process sees it.
    fn kubeconfig(&self, tb: &Testbed) -> anyhow::Result<String> {
        let mut text = std::fs::read_to_string(tb.get("KUBECONFIG")?)?;
        let files: Vec<String> = text
            .split(|c: char| c.is_whitespace() || "\"',{}[]".contains(c))
            .filter(|w| w.starts_with('/') && Path::new(w).is_file())
            .map(str::to_owned)
            .collect();
        for (i, file) in files.iter().enumerate() {
            let base = Path::new(file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let inner = format!("/etc/mpanel/{i}-{base}");
            self.put(&inner, &std::fs::read(file)?)?;
            text = text.replace(file.as_str(), &self.seen(&inner));
        }
        self.put("/etc/mpanel/kubeconfig", text.as_bytes())?;
        Ok(self.seen("/etc/mpanel/kubeconfig"))
    }

    /// Starts the image's entrypoint with `args` as its user, with the image's environment plus
    /// `env` (nothing else), logging to `log`.
    fn start(&self, args: &[&str], env: &[(&str, String)], log: &Path) -> anyhow::Result<Process> {
        let entrypoint: Vec<String> = serde_json::from_value(self.config["Entrypoint"].clone())?;
        let image_env: Vec<String> = serde_json::from_value(self.config["Env"].clone())?;
        let user = self.config["User"].as_str().context("no User")?;
        let (uid, gid) = user.split_once(':').context("User is not uid:gid")?;
        let mut cmd = match &self.mode {
            Mode::Chroot => {
                let mut c = Command::new(host_tool("chroot")?);
                c.arg(format!("--userspec={uid}:{gid}")).arg(format!("--groups={gid}")).arg(&self.path);
                c.args(&entrypoint);
                c
            }
            Mode::Loader { loader, library_path } => {
                let mut c = Command::new(host_tool("setpriv")?);
                c.args(["--reuid", uid, "--regid", gid, "--clear-groups"]).arg(loader);
                c.args(["--library-path", library_path]).arg(self.seen(&entrypoint[0])).args(&entrypoint[1..]);
                c
            }
        };
        let log_file = std::fs::File::create(log)?;
        let child = cmd
            .args(args)
            .env_clear()
            .envs(image_env.iter().filter_map(|kv| kv.split_once('=')))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        Ok(Process { child: Some(child), log: log.to_path_buf() })
    }
}

/// A process started from the image; killed (by pid) when dropped.
struct Process {
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> anyhow::Result<u32> {
        Ok(self.child.as_ref().context("already stopped")?.id())
    }

    /// Whether it is still running.
    fn running(&mut self) -> anyhow::Result<bool> {
        Ok(match self.child.as_mut() {
            Some(child) => child.try_wait()?.is_none(),
            None => false,
        })
    }

    /// Polls `GET path` on `addr` until it answers 200; fails with the logs when the process exits
    /// or `within` passes.
    fn wait_http_ok(&mut self, addr: &str, path: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while http_status(addr, path) != Some(200) {
            ensure!(self.running()?, "it exited before {path} answered 200:\n{}", self.logs());
            ensure!(Instant::now() < deadline, "{path} did not answer 200 within {within:?}:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The real, effective, saved and filesystem uids and gids, and the supplementary groups.
    fn credentials(&self) -> anyhow::Result<(String, String, String)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        Ok((field("Uid:"), field("Gid:"), field("Groups:")))
    }

    /// Waits for the process to exit by itself; whether it succeeded, and its logs.
    fn wait_exit(&mut self, within: Duration) -> anyhow::Result<(bool, String)> {
        let deadline = Instant::now() + within;
        let mut child = self.child.take().context("already stopped")?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status.success(), self.logs()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("still running after {within:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM by pid, then waits for the exit.
    fn terminate(&mut self, within: Duration) -> anyhow::Result<(bool, String)> {
        run_ok(Command::new("kill").args(["-TERM", &self.pid()?.to_string()]))?;
        self.wait_exit(within)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs as 65532:65532 and no other group.
fn assert_nonroot(process: &Process) -> anyhow::Result<()> {
    let (uid, gid, groups) = process.credentials()?;
    ensure!(uid == "65532 65532 65532 65532", "uids {uid}");
    ensure!(gid == "65532 65532 65532 65532", "gids {gid}");
    ensure!(groups.is_empty() || groups == "65532", "supplementary groups {groups}");
    Ok(())
}

fn free_addr() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()))
}

#[test]
fn operator_image_is_whole_and_runs_as_nonroot_against_the_api_server() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let scratch = Scratch::new("operator")?;
    let image = build_and_check("mpanel-operator", &scratch.0)?;
    let chart = chart_images(&tb)?;
    ensure!(chart.contains(&image.reference), "the chart's images {chart:?} lack {}", image.reference);
    eprintln!("{} {} ({})", image.reference, image.digest, image.dir.display());

    let root = Root::unpack(&image, &scratch.0)?;
    let kubeconfig = root.kubeconfig(&tb)?;
    // no controller: the operator only connects, checks the CRDs and serves its endpoints; it
    // watches (to release deleted objects) its own namespace only
    let ns = tb.namespace("image")?;
    root.put(
        "/etc/mpanel/operator.yaml",
        format!("watchNamespace: {}\nleaderElection: {{enabled: false}}\n", ns.name).as_bytes(),
    )?;
    let addr = free_addr()?;
    let config = root.seen("/etc/mpanel/operator.yaml");
    let mut operator = root.start(
        &["run", "--config", &config, "--health-addr", &addr],
        &[("KUBECONFIG", kubeconfig), ("RUST_LOG", "info".to_owned())],
        &scratch.0.join("operator.log"),
    )?;
    operator.wait_http_ok(&addr, "/readyz", Duration::from_secs(60))?;
    assert_eq!(http_status(&addr, "/healthz"), Some(200), "{}", operator.logs());
    assert_nonroot(&operator)?;
    let (success, logs) = operator.terminate(Duration::from_secs(15))?;
    assert!(success, "the operator failed after SIGTERM:\n{logs}");
    assert!(logs.contains("\"operator ready\""), "the log lacks the ready line:\n{logs}");
    Ok(())
}

/// A database of its own on the testbed's PostgreSQL; dropped with the test.
struct Database {
    rt: tokio::runtime::Runtime,
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    fn fresh(tb: &Testbed) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let admin_url = tb.get("PG_URL")?.to_owned();
        let name = format!("image_ledger_{}", std::process::id());
        let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).context("PG_URL has no database")?;
        rt.block_on(async {
            let admin = sqlx::PgPool::connect(&admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await?;
            admin.close().await;
            anyhow::Ok(())
        })?;
        Ok(Self { rt, url: format!("{base}/{name}"), admin_url, name })
    }

    fn count(&self, query: &str) -> anyhow::Result<i64> {
        self.rt.block_on(async {
            let pool = sqlx::PgPool::connect(&self.url).await?;
            let n = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(query.to_owned())).fetch_one(&pool).await?;
            pool.close().await;
            Ok(n)
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = self.rt.block_on(async {
            let admin = sqlx::PgPool::connect(&self.admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&admin)
                .await?;
            admin.close().await;
            anyhow::Ok(())
        });
    }
}

#[test]
fn billing_bridge_image_is_whole_and_runs_as_nonroot_against_postgres() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let scratch = Scratch::new("bridge")?;
    let image = build_and_check("mpanel-billing-bridge", &scratch.0)?;
    let chart = chart_images(&tb)?;
    ensure!(chart.contains(&image.reference), "the chart's images {chart:?} lack {}", image.reference);
    eprintln!("{} {} ({})", image.reference, image.digest, image.dir.display());

    let root = Root::unpack(&image, &scratch.0)?;
    let db = Database::fresh(&tb)?;
    let database = [("DATABASE_URL", db.url.clone()), ("RUST_LOG", "info".to_owned())];

    let mut migrate = root.start(&["migrate"], &database, &scratch.0.join("migrate.log"))?;
    let (success, logs) = migrate.wait_exit(Duration::from_secs(120))?;
    assert!(success && logs.contains("ledger schema is current"), "migrate failed:\n{logs}");
    let tables = db.count("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")?;
    assert!(tables > 0, "migrate made no tables");

    let addr = free_addr()?;
    let env: Vec<(&str, String)> = database
        .iter()
        .cloned()
        .chain([
            ("KUBECONFIG", root.kubeconfig(&tb)?),
            ("MPANEL_BRIDGE_LISTEN", addr.clone()),
            ("STRIPE_SECRET_KEY", tb.get("STRIPE_SECRET_KEY")?.to_owned()),
            ("STRIPE_API_BASE", tb.get("STRIPE_API_BASE")?.to_owned()),
            ("STRIPE_WEBHOOK_SECRET", tb.get("STRIPE_WEBHOOK_SECRET")?.to_owned()),
            ("MPANEL_BRIDGE_LIFECYCLE_SECONDS", "0".to_owned()),
        ])
        .collect();
    let mut bridge = root.start(&["serve"], &env, &scratch.0.join("serve.log"))?;
    bridge.wait_http_ok(&addr, "/healthz", Duration::from_secs(60))?;
    assert_nonroot(&bridge)?;
    let (success, logs) = bridge.terminate(Duration::from_secs(15))?;
    assert!(success, "the bridge failed after SIGTERM:\n{logs}");
    Ok(())
}
