//! The testbed scripts themselves: `up` reuses what runs (Kubernetes, PostgreSQL, PowerDNS, pebble,
//! mail-core, fakepve, namesilo-double), and fails loudly when a component does not come up; and the real servers (and
//! the fake Proxmox VE) behave as the controllers' tests expect.

use std::io::BufReader;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, ensure};
use mpanel_tests::mail::{Imap, doveadm_auth, smtp_send};
use mpanel_tests::{Testbed, repo_root};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn script(name: &str) -> Command {
    Command::new(repo_root().join("tests/testbed").join(name))
}

#[test]
fn up_again_reuses_the_running_control_plane() -> anyhow::Result<()> {
    let before = Testbed::from_env()?;
    let out = script("up").output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for component in ["control plane", "PostgreSQL", "PowerDNS", "pebble", "mail-core", "fakepve", "namesilo-double"] {
        assert!(stderr.contains(&format!("{component} already running; reusing it")), "{stderr}");
    }
    let after = Testbed::from_env()?;
    for key in [
        "KUBECONFIG",
        "PG_URL",
        "PDNS_API_URL",
        "PDNS_API_KEY",
        "PDNS_DNS_ADDR",
        "ACME_DIRECTORY",
        "ACME_CA_BUNDLE",
        "ACME_ROOTS_URL",
        "ACME_LOG",
        "MAILCORE_DATABASE_URL",
        "DOVECOT_CONF",
        "IMAP_ADDR",
        "SMTP_ADDR",
        "MAILCORE_VMAIL_DIR",
        "PROXMOX_URL",
        "PROXMOX_TOKEN",
        "PROXMOX_CA",
        "PROXMOX_CTL_URL",
        "NAMESILO_URL",
        "NAMESILO_KEY",
        "NAMESILO_CTL_URL",
    ] {
        assert_eq!(before.get(key)?, after.get(key)?, "{key} changed");
    }
    let kubeconfig = std::fs::read_to_string(after.get("KUBECONFIG")?)?;
    after.kubectl_ok(&["get", "crd", "cloudpods.mpanel.migrahosting.com"], None)?;
    assert!(kubeconfig.contains("https://127.0.0.1:"), "{kubeconfig}");
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[test]
fn up_fails_at_once_with_the_log_tail_when_the_apiserver_dies() -> anyhow::Result<()> {
    let real = Testbed::from_env()?;
    let real_bin = Path::new(real.get("KUBECTL")?).canonicalize()?;
    let real_bin = real_bin.parent().unwrap_or(Path::new("/"));
    let real_helm = Path::new(real.get("HELM")?).canonicalize()?;

    // binaries where kube-apiserver refuses to start; everything else is the real thing
    let scratch = std::env::temp_dir().join(format!("mpanel-testbed-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin)?;
    for tool in ["etcd", "kubectl", "kube-controller-manager"] {
        std::os::unix::fs::symlink(real_bin.join(tool), bin.join(tool))?;
    }
    write_executable(
        &bin.join("kube-apiserver"),
        "#!/bin/sh\necho 'E1123 invalid flag: the testbed broke me' >&2\nexit 1\n",
    )?;
    let run = |name: &str| {
        script(name)
            .env("MPANEL_K8S_BIN", &bin)
            .env("MPANEL_HELM_DIR", real_helm.parent().unwrap_or(Path::new("/")))
            .env("TESTBED_DIR", scratch.join("testbed"))
            .output()
    };

    let started = std::time::Instant::now();
    let out = run("up")?;
    // stop the etcd it started, by pid, before asserting anything
    let down = run("down")?;
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert!(!out.status.success(), "up succeeded with a broken kube-apiserver:\n{stderr}");
    assert!(stderr.contains("kube-apiserver exited while waiting for kube-apiserver /readyz"), "{stderr}");
    assert!(stderr.contains("E1123 invalid flag: the testbed broke me"), "the log tail is missing:\n{stderr}");
    assert!(started.elapsed().as_secs() < 60, "up took {:?} to notice", started.elapsed());
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!scratch.join("testbed/etcd.pid").exists(), "down left etcd running");
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

#[test]
fn up_works_inside_a_directory_other_users_cannot_enter() -> anyhow::Result<()> {
    // a checkout in `mktemp -d` is mode 0700: PostgreSQL, which runs as its own user, must still start
    let outer = std::env::temp_dir().join(format!("mpanel-testbed-private-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&outer);
    std::fs::create_dir_all(&outer)?;
    std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o700))?;
    let testbed = outer.join("testbed");
    let run = |name: &str| script(name).env("TESTBED_DIR", &testbed).output();

    let up = run("up")?;
    let env = std::fs::read_to_string(testbed.join("env")).unwrap_or_default();
    let down = run("down")?;
    let leftover: Vec<_> = std::fs::read_dir(&testbed)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .collect();
    let _ = std::fs::remove_dir_all(&outer);

    assert!(up.status.success(), "up failed in a 0700 directory:\n{}", String::from_utf8_lossy(&up.stderr));
    for key in
        ["PG_URL=", "PDNS_API_URL=", "ACME_DIRECTORY=", "IMAP_ADDR=", "SMTP_ADDR=", "PROXMOX_URL=", "NAMESILO_URL="]
    {
        assert!(env.contains(key), "{env}");
    }
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(leftover.is_empty(), "down left {leftover:?}");
    Ok(())
}

/// curl with `ca` as the only trust; the body, or an error with curl's message.
fn curl_trusting(ca: &str, url: &str) -> anyhow::Result<String> {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "10", "--cacert", ca, url])
        .output()
        .context("running curl")?;
    ensure!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn pebble_serves_its_directory_and_issuing_root_to_a_client_trusting_only_the_ca_bundle() -> anyhow::Result<()> {
    let testbed = Testbed::from_env()?;
    let ca = testbed.get("ACME_CA_BUNDLE")?;
    let directory_url = testbed.get("ACME_DIRECTORY")?;

    let directory: serde_json::Value = serde_json::from_str(&curl_trusting(ca, directory_url)?)?;
    let new_order = directory["newOrder"].as_str().with_context(|| format!("no newOrder in {directory}"))?;
    assert!(new_order.starts_with("https://127.0.0.1:"), "{directory}");
    let root = curl_trusting(ca, testbed.get("ACME_ROOTS_URL")?)?;
    assert!(
        root.starts_with("-----BEGIN CERTIFICATE-----") && root.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{root}"
    );
    // the bundle is what makes it work: the system's trust store does not know this CA
    let untrusted = Command::new("curl").args(["-fsS", "--max-time", "10", directory_url]).output()?;
    assert!(!untrusted.status.success(), "pebble's HTTPS verified without the CA bundle");

    // rustls (the operator's TLS) refuses a serving certificate that is a CA: shake hands as it would
    rustls_handshake(ca, directory_url)
}

/// A TLS handshake with the server of `url` (`https://host:port/...`) as rustls, the operator's TLS,
/// makes it, trusting only the PEM file `ca`.
fn rustls_handshake(ca: &str, url: &str) -> anyhow::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_reader_iter(BufReader::new(std::fs::File::open(ca)?)) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("{url:?} is not https://host:port/..."))?;
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let mut tls = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(host.to_owned())?)?;
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).with_context(|| format!("rustls handshake with {addr}"))?;
    }
    Ok(())
}

/// psql against mail-core's database as the operator logs in (`MAILCORE_DATABASE_URL`); what it printed.
fn mailcore_sql(tb: &Testbed, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([tb.get("MAILCORE_DATABASE_URL")?, "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .context("running psql")?;
    ensure!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Polls INBOX of `user` until it holds `want` messages; fails after 30 s with the last count.
fn wait_for_inbox(tb: &Testbed, user: &str, password: &str, want: u64) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut imap = Imap::login(tb.get("IMAP_ADDR")?, user, password)?.context("IMAP LOGIN refused")?;
    loop {
        let count = imap.inbox_count()?;
        if count == want {
            return Ok(());
        }
        ensure!(std::time::Instant::now() < deadline, "INBOX of {user} holds {count} messages, not {want}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What a Mailbox controller relies on: a row in postfixadmin's tables is a mailbox Dovecot
/// authenticates (scheme-prefixed hash), with the quota of `mailbox.quota`, that Postfix accepts mail
/// for and Dovecot delivers to; an alias row delivers there too; `active = 0` locks it.
fn mailcore_scenario(tb: &Testbed, domain: &str) -> anyhow::Result<()> {
    let imap_addr = tb.get("IMAP_ADDR")?;
    let smtp_addr = tb.get("SMTP_ADDR")?;
    let address = format!("box@{domain}");
    let alias = format!("alias@{domain}");
    let hash = Command::new("doveadm").args(["pw", "-s", "SHA512-CRYPT", "-p", "secret"]).output()?;
    ensure!(hash.status.success(), "doveadm pw: {}", String::from_utf8_lossy(&hash.stderr));
    let hash = String::from_utf8(hash.stdout)?.trim().to_owned();
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"), "{hash}");
    mailcore_sql(tb, &format!("INSERT INTO domain (domain, owner) VALUES ('{domain}', 'tests/mailcore/1')"))?;
    mailcore_sql(
        tb,
        &format!(
            "INSERT INTO mailbox (username, password, maildir, quota, local_part, domain, owner) \
             VALUES ('{address}', '{hash}', '{domain}/box/', 1048576, 'box', '{domain}', 'tests/mailcore/1')"
        ),
    )?;

    // Dovecot's passdb: the right password passes, a wrong one fails cleanly (77, not a tempfail)
    assert!(doveadm_auth(tb, &address, "secret")?, "doveadm auth test refused the right password");
    let wrong =
        Command::new("doveadm").args(["-c", tb.get("DOVECOT_CONF")?, "auth", "test", &address, "wrong"]).output()?;
    assert_eq!(wrong.status.code(), Some(77), "{}", String::from_utf8_lossy(&wrong.stdout));

    // IMAP: the quota is mailbox.quota, in KiB
    let mut imap = Imap::login(imap_addr, &address, "secret")?.context("IMAP LOGIN refused the right password")?;
    assert_eq!(imap.quota_kib()?, Some(1024), "GETQUOTAROOT INBOX");
    assert_eq!(imap.inbox_count()?, 0);
    assert!(Imap::login(imap_addr, &address, "wrong")?.is_none(), "IMAP LOGIN took a wrong password");

    // SMTP: accepted, delivered over LMTP; an unknown address of the domain is refused
    let sent = smtp_send(smtp_addr, "sender@example.org", &address, "to the mailbox")?;
    assert_eq!((sent.rcpt, sent.data), (250, 250), "{sent:?}");
    wait_for_inbox(tb, &address, "secret", 1)?;
    let unknown = smtp_send(smtp_addr, "sender@example.org", &format!("nobody@{domain}"), "to nobody")?;
    assert_eq!(unknown.rcpt / 100, 5, "{unknown:?}");
    // and nothing is relayed anywhere else
    let outside = smtp_send(smtp_addr, "sender@example.org", "someone@example.org", "outbound")?;
    assert_eq!(outside.rcpt / 100, 5, "{outside:?}");

    // an alias row delivers to the mailbox
    mailcore_sql(
        tb,
        &format!("INSERT INTO alias (address, goto, domain) VALUES ('{alias}', '{address}', '{domain}')"),
    )?;
    let via_alias = smtp_send(smtp_addr, "sender@example.org", &alias, "to the alias")?;
    assert_eq!((via_alias.rcpt, via_alias.data), (250, 250), "{via_alias:?}");
    wait_for_inbox(tb, &address, "secret", 2)?;
    let maildir = Path::new(tb.get("MAILCORE_VMAIL_DIR")?).join(domain).join("box");
    assert!(maildir.join("cur").is_dir() || maildir.join("new").is_dir(), "no maildir at {}", maildir.display());

    // suspended: active = 0 locks IMAP and doveadm out at once
    mailcore_sql(tb, &format!("UPDATE mailbox SET active = 0 WHERE username = '{address}'"))?;
    assert!(Imap::login(imap_addr, &address, "secret")?.is_none(), "IMAP LOGIN works with active = 0");
    assert!(!doveadm_auth(tb, &address, "secret")?, "doveadm auth test passes with active = 0");
    Ok(())
}

#[test]
fn mailcore_authenticates_delivers_and_suspends_mailboxes_from_the_sql_rows() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let domain = format!("mc-{}-{nanos}.test", std::process::id());
    let result = mailcore_scenario(&tb, &domain);
    // the rows go whatever happened; then the maildir
    let cleanup = ["alias", "mailbox", "domain"]
        .iter()
        .try_for_each(|table| mailcore_sql(&tb, &format!("DELETE FROM {table} WHERE domain = '{domain}'")).map(drop));
    let _ = std::fs::remove_dir_all(Path::new(tb.get("MAILCORE_VMAIL_DIR")?).join(&domain));
    result?;
    cleanup
}

/// What fakepve answered: the HTTP status and the JSON body (`Null` when there was none).
struct PveAnswer {
    status: u16,
    body: serde_json::Value,
}

/// curl against fakepve (`url` under `PROXMOX_URL` or `PROXMOX_CTL_URL`) with the testbed's token and
/// CA, sending `form` URL-encoded or `json`.
fn fakepve(
    tb: &Testbed,
    method: &str,
    url: &str,
    form: &[(&str, &str)],
    json: Option<serde_json::Value>,
) -> anyhow::Result<PveAnswer> {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--max-time", "10", "--cacert", tb.get("PROXMOX_CA")?, "-X", method, "-w", "\n%{http_code}"])
        .arg("-H")
        .arg(format!("Authorization: PVEAPIToken={}", tb.get("PROXMOX_TOKEN")?));
    for (key, value) in form {
        curl.arg("--data-urlencode").arg(format!("{key}={value}"));
    }
    if let Some(json) = json {
        curl.args(["-H", "Content-Type: application/json", "--data"]).arg(json.to_string());
    }
    let out = curl.arg(url).output().context("running curl")?;
    ensure!(out.status.success(), "curl {method} {url}: {}", String::from_utf8_lossy(&out.stderr).trim());
    let text = String::from_utf8(out.stdout)?;
    let (body, status) = text.rsplit_once('\n').with_context(|| format!("{method} {url}: no status in {text:?}"))?;
    let body = match body.trim() {
        "" => serde_json::Value::Null,
        body => serde_json::from_str(body).with_context(|| format!("{method} {url} answered {body:?}"))?,
    };
    Ok(PveAnswer { status: status.trim().parse()?, body })
}

/// The `data` of a 200 answer.
fn pve_ok(tb: &Testbed, method: &str, url: &str, form: &[(&str, &str)]) -> anyhow::Result<serde_json::Value> {
    let answer = fakepve(tb, method, url, form, None)?;
    ensure!(answer.status == 200, "{method} {url}: {} {}", answer.status, answer.body);
    Ok(answer.body["data"].clone())
}

/// Every guest as `GET /_ctl/guests` lists it, by vmid.
fn fakepve_guests(tb: &Testbed) -> anyhow::Result<std::collections::BTreeMap<u64, serde_json::Value>> {
    let answer = fakepve(tb, "GET", &format!("{}/_ctl/guests", tb.get("PROXMOX_CTL_URL")?), &[], None)?;
    ensure!(answer.status == 200, "GET /_ctl/guests: {} {}", answer.status, answer.body);
    let guests = answer.body.as_array().with_context(|| format!("/_ctl/guests is not a list: {}", answer.body))?;
    guests.iter().map(|g| Ok((g["vmid"].as_u64().with_context(|| format!("no vmid in {g}"))?, g.clone()))).collect()
}

/// Clones both templates (the container to pve2 on the shared storage, the VM on pve1), checks the
/// tasks and the clones, deletes them.
fn fakepve_clones(tb: &Testbed, api: &str, ct_id: u64, vm_id: u64) -> anyhow::Result<()> {
    let (ct_name, vm_name) = (format!("tb-ct-{ct_id}"), format!("tb-vm-{vm_id}"));
    let ct_task = pve_ok(
        tb,
        "POST",
        &format!("{api}/nodes/pve1/lxc/100/clone"),
        &[
            ("newid", &ct_id.to_string()),
            ("hostname", &ct_name),
            ("full", "1"),
            ("target", "pve2"),
            ("storage", "ceph-pool"),
        ],
    )?;
    let vm_task = pve_ok(
        tb,
        "POST",
        &format!("{api}/nodes/pve1/qemu/9000/clone"),
        &[("newid", &vm_id.to_string()), ("name", &vm_name), ("full", "1")],
    )?;
    for task in [&ct_task, &vm_task] {
        let upid = task.as_str().with_context(|| format!("a clone answered {task}, not a UPID"))?;
        // the task runs on the source's node, whatever the target
        assert!(upid.starts_with("UPID:pve1:"), "{upid}");
        let status = pve_ok(tb, "GET", &format!("{api}/nodes/pve1/tasks/{upid}/status"), &[])?;
        assert_eq!((&status["status"], &status["exitstatus"]), (&"stopped".into(), &"OK".into()), "{status}");
    }
    let guests = fakepve_guests(tb)?;
    let ct = guests.get(&ct_id).context("the cloned container is missing")?;
    assert_eq!(
        (&ct["type"], &ct["node"], &ct["name"], &ct["template"]),
        (&"lxc".into(), &"pve2".into(), &ct_name.clone().into(), &false.into()),
        "{ct}"
    );
    assert!(
        ct["config"]["rootfs"].as_str().is_some_and(|r| r.starts_with(&format!("ceph-pool:vm-{ct_id}-disk-0,"))),
        "{ct}"
    );
    let vm = guests.get(&vm_id).context("the cloned VM is missing")?;
    assert_eq!(
        (&vm["type"], &vm["node"], &vm["name"]),
        (&"qemu".into(), &"pve1".into(), &vm_name.clone().into()),
        "{vm}"
    );
    assert!(
        vm["config"]["scsi0"].as_str().is_some_and(|d| d.starts_with(&format!("local-lvm:vm-{vm_id}-disk-0,"))),
        "{vm}"
    );
    Ok(())
}

#[test]
fn fakepve_answers_the_pve_api_with_the_token_and_fails_as_told() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let ca = tb.get("PROXMOX_CA")?;
    let api = format!("{}/api2/json", tb.get("PROXMOX_URL")?);
    let ctl = format!("{}/_ctl", tb.get("PROXMOX_CTL_URL")?);

    // the token is needed; the CA is the only trust, for rustls too
    let anonymous = Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{api}/version"))
        .output()?;
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "401");
    rustls_handshake(ca, &api)?;

    // two nodes online; pve2 has more free memory
    let nodes = pve_ok(&tb, "GET", &format!("{api}/nodes"), &[])?;
    let free = |name: &str| -> anyhow::Result<u64> {
        let node = nodes
            .as_array()
            .and_then(|all| all.iter().find(|n| n["node"] == name))
            .with_context(|| format!("no node {name} in {nodes}"))?;
        ensure!(node["status"] == "online", "{node}");
        let (max, used) = (node["maxmem"].as_u64(), node["mem"].as_u64());
        max.zip(used).map(|(max, used)| max - used).with_context(|| format!("no maxmem/mem in {node}"))
    };
    assert!(free("pve2")? > free("pve1")?, "{nodes}");

    // the templates, as /_ctl/guests shows them
    let guests = fakepve_guests(&tb)?;
    let ct = guests.get(&100).context("no CT 100")?;
    assert_eq!(
        (&ct["type"], &ct["name"], &ct["node"], &ct["template"]),
        (&"lxc".into(), &"tmpl-debian".into(), &"pve1".into(), &true.into()),
        "{ct}"
    );
    assert_eq!(ct["config"]["rootfs"], "local-lvm:base-100-disk-0,size=8G", "{ct}");
    let vm = guests.get(&9000).context("no VM 9000")?;
    assert_eq!(
        (&vm["type"], &vm["name"], &vm["node"], &vm["template"]),
        (&"qemu".into(), &"tmpl-qemu".into(), &"pve1".into(), &true.into()),
        "{vm}"
    );
    assert!(vm["config"]["scsi0"].as_str().is_some_and(|d| d.starts_with("local-lvm:base-9000-disk-0,")), "{vm}");

    // both clone; the clones go again whatever happened
    let ct_id = 800_000 + u64::from(std::process::id() % 50_000) * 2;
    let vm_id = ct_id + 1;
    let cloned = fakepve_clones(&tb, &api, ct_id, vm_id);
    let _ = fakepve(&tb, "DELETE", &format!("{api}/nodes/pve2/lxc/{ct_id}?purge=1"), &[], None);
    let _ = fakepve(&tb, "DELETE", &format!("{api}/nodes/pve1/qemu/{vm_id}?purge=1"), &[], None);
    cloned?;
    let left = fakepve_guests(&tb)?;
    assert!(!left.contains_key(&ct_id) && !left.contains_key(&vm_id), "the clones were not deleted: {left:?}");

    // an injected failure answers once, as told; then the real answer again. Not on /version: `up`
    // asks that to see whether fakepve runs, and another test here runs `up` meanwhile
    let (method, suffix) = ("GET", "/nodes/pve2/lxc");
    let rule = serde_json::json!({"method": method, "suffix": suffix, "status": 503, "message": "injected by testbed.rs", "times": 1});
    let set = fakepve(&tb, "POST", &format!("{ctl}/fail"), &[], Some(rule))?;
    assert_eq!(set.status, 200, "{}", set.body);
    let failed = fakepve(&tb, method, &format!("{api}{suffix}"), &[], None);
    let next = fakepve(&tb, method, &format!("{api}{suffix}"), &[], None);
    // this rule only: other tests' failures stay
    let reset = fakepve(
        &tb,
        "POST",
        &format!("{ctl}/reset"),
        &[],
        Some(serde_json::json!({"method": method, "suffix": suffix})),
    )?;
    let failed = failed?;
    assert_eq!(failed.status, 503, "{}", failed.body);
    assert_eq!(failed.body, serde_json::json!({"data": null, "message": "injected by testbed.rs\n"}));
    let next = next?;
    assert_eq!(next.status, 200, "{}", next.body);
    assert!(next.body["data"].is_array(), "{}", next.body);
    assert_eq!(reset.status, 200, "{}", reset.body);
    Ok(())
}
