//! The testbed scripts themselves: `up` reuses what runs (Kubernetes, PostgreSQL, PowerDNS, pebble,
//! mail-core), and fails loudly when a component does not come up; and the real servers behave as the
//! controllers' tests expect.

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
    for component in ["control plane", "PostgreSQL", "PowerDNS", "pebble", "mail-core"] {
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
    for key in ["PG_URL=", "PDNS_API_URL=", "ACME_DIRECTORY=", "IMAP_ADDR=", "SMTP_ADDR="] {
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
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_reader_iter(BufReader::new(std::fs::File::open(ca)?)) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = directory_url
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("ACME_DIRECTORY {directory_url:?} is not https://host:port/..."))?;
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let mut tls = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(host.to_owned())?)?;
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).context("rustls handshake with pebble")?;
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
