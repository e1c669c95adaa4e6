//! The Mailbox controller end to end: a real kube-apiserver, the operator binary, mail-core's
//! tables on the real PostgreSQL, and the real Dovecot (IMAP, LMTP) and Postfix (SMTP) reading them.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::mail::{Imap, doveadm_auth, mailcore_sql, smtp_send};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{Operator, condition, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// A namespace of its own with the mail domain `<namespace>.test`, mail-core's database URL in a
/// Secret there, and an operator config that reconciles only that namespace.
struct Harness<'a> {
    tb: &'a Testbed,
    ns: TestNamespace<'a>,
    config: PathBuf,
}

impl<'a> Harness<'a> {
    fn new(tb: &'a Testbed, label: &str) -> anyhow::Result<Self> {
        let ns = tb.namespace(label)?;
        let url = format!("--from-literal=url={}", tb.get("MAILCORE_DATABASE_URL")?);
        tb.kubectl_ok(&["create", "secret", "generic", "mailcore-db", "-n", &ns.name, &url], None)?;
        let config = std::env::temp_dir().join(format!("{}.operator.yaml", ns.name));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 3s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 mailcore:\n  databaseUrlSecretRef: {{namespace: {ns}, name: mailcore-db, key: url}}\n  maildirRoot: {vmail}\n",
                ns = ns.name,
                vmail = tb.get("MAILCORE_VMAIL_DIR")?,
            ),
        )?;
        Ok(Self { tb, ns, config })
    }

    fn operator(&self) -> anyhow::Result<Operator> {
        Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)
    }

    fn domain(&self) -> String {
        format!("{}.test", self.ns.name)
    }

    fn password_secret(&self, name: &str, password: &str) -> anyhow::Result<()> {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": self.ns.name},
                            "stringData": {"password": password}});
        self.tb.kubectl_ok(&["apply", "-f", "-"], Some(&secret.to_string())).map(drop)
    }

    fn apply(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, &self.ns.name, "Mailbox", name, spec)
    }

    fn get(&self, name: &str) -> anyhow::Result<Value> {
        support::get_object(self.tb, &self.ns.name, "mailbox", name)
    }

    fn wait_condition(&self, name: &str, type_: &str, status: &str, reason: Option<&str>) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, &self.ns.name, "mailbox", name, (type_, status, reason), WAIT)
    }

    /// One row of mail-core's database, `|`-separated, or None.
    fn sql(&self, query: &str) -> anyhow::Result<Option<String>> {
        mailcore_sql(self.tb, query)
    }

    /// Grants the mail domain to this namespace in the operator config (`mailcore.domainGrants`),
    /// for a domain row made outside the operator; before the operator starts.
    fn grant_own_domain(&self) -> anyhow::Result<()> {
        let mut config = std::fs::read_to_string(&self.config)?;
        config.push_str(&format!("  domainGrants: {{{}: {}}}\n", self.domain(), self.ns.name));
        Ok(std::fs::write(&self.config, config)?)
    }

    /// Waits until `check` holds; fails saying `what`.
    fn wait(&self, what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
        if !eventually(WAIT, &mut check)? {
            bail!("never: {what}");
        }
        Ok(())
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn spec(address: &str, quota_mib: u32, aliases: &[String]) -> Value {
    json!({"address": address, "displayName": "Test Box", "quotaMiB": quota_mib,
           "passwordSecretRef": {"name": "box-password", "key": "password"}, "aliases": aliases})
}

#[test]
fn a_mailbox_logs_in_shows_its_quota_receives_mail_and_its_alias_delivers() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "mbox-mail")?;
    let _op = h.operator()?;
    let (address, alias) = (format!("info@{}", h.domain()), format!("hello@{}", h.domain()));
    let password = "Sesame-open-2026";
    h.password_secret("box-password", password)?;
    h.apply("box", spec(&address, 64, std::slice::from_ref(&alias)))?;
    let ready = h.wait_condition("box", "Ready", "True", None)?;
    assert_eq!(ready["status"]["phase"], "Active");
    assert_eq!(ready["status"]["quotaMiB"], 64);
    assert_eq!(condition(&ready, "PasswordSynced")["status"], "True");
    assert!(ready["status"]["lastPasswordSync"].is_string());
    assert!(condition(&ready, "DomainReady")["message"].as_str().unwrap_or_default().contains("no DnsZone for"));

    assert!(doveadm_auth(&tb, &address, password)?, "doveadm auth test accepts the Secret's password");
    assert!(!doveadm_auth(&tb, &address, "wrong")?, "and refuses another");
    let imap_addr = tb.get("IMAP_ADDR")?;
    let mut imap = Imap::login(imap_addr, &address, password)?.context("IMAP LOGIN refused")?;
    assert_eq!(imap.quota_kib()?, Some(64 * 1024), "GETQUOTAROOT shows the quota");

    let smtp = tb.get("SMTP_ADDR")?;
    let sent = smtp_send(smtp, "sender@example.net", &address, "to the mailbox")?;
    assert_eq!((sent.rcpt, sent.data), (250, 250), "Postfix accepts and queues a message to the address");
    h.wait("the message is in INBOX", || Ok(imap.inbox_count()? >= 1))?;
    let via_alias = smtp_send(smtp, "sender@example.net", &alias, "to the alias")?;
    assert_eq!(via_alias.rcpt, 250, "the alias is a valid recipient");
    h.wait("the alias delivered to the mailbox", || Ok(imap.inbox_count()? >= 2))?;
    assert_eq!(imap.subject(1)?.as_deref(), Some("to the mailbox"), "the message reads back over IMAP");
    assert_eq!(imap.subject(2)?.as_deref(), Some("to the alias"));
    let unknown = smtp_send(smtp, "sender@example.net", &format!("nobody@{}", h.domain()), "x")?;
    assert_eq!(unknown.rcpt / 100, 5, "an unknown address in the domain is refused");

    // the stored row: a Dovecot hash, never the password; the operator's marker
    let row = h
        .sql(&format!("SELECT password, quota, active, owner FROM mailbox WHERE username = '{address}'"))?
        .context("no mailbox row")?;
    assert!(row.starts_with("{BLF-CRYPT}$2y$"), "{row}");
    assert!(row.contains(&format!("|{}|1|{}/box/", 64 * 1024 * 1024, h.ns.name)), "{row}");
    let everything = format!(
        "{}{}",
        tb.kubectl_ok(&["get", "mailbox", "box", "-n", &h.ns.name, "-o", "yaml"], None)?,
        tb.kubectl_ok(&["get", "events", "-n", &h.ns.name, "-o", "yaml"], None)?
    );
    assert!(!everything.contains(password), "the password is in neither the status nor Events");

    // a quota change applies at once
    h.apply("box", spec(&address, 128, std::slice::from_ref(&alias)))?;
    h.wait_condition("box", "Ready", "True", None)?;
    let mut imap = Imap::login(imap_addr, &address, password)?.context("IMAP LOGIN refused")?;
    assert_eq!(imap.quota_kib()?, Some(128 * 1024));
    Ok(())
}

#[test]
fn rotating_the_secret_changes_the_password() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "mbox-rotate")?;
    let _op = h.operator()?;
    let address = format!("rotate@{}", h.domain());
    h.password_secret("box-password", "first-Password-1")?;
    h.apply("box", spec(&address, 10, &[]))?;
    let first = h.wait_condition("box", "Ready", "True", None)?;
    assert!(doveadm_auth(&tb, &address, "first-Password-1")?);

    h.password_secret("box-password", "second-Password-2")?;
    h.wait("the new password works", || doveadm_auth(&tb, &address, "second-Password-2"))?;
    assert!(!doveadm_auth(&tb, &address, "first-Password-1")?, "the old password fails");
    let rotated = h.get("box")?;
    assert_ne!(rotated["status"]["passwordSecretVersion"], first["status"]["passwordSecretVersion"]);
    Ok(())
}

#[test]
fn suspend_blocks_login_resume_restores_it_and_delete_removes_row_and_maildir() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "mbox-life")?;
    let _op = h.operator()?;
    let address = format!("life@{}", h.domain());
    let password = "Life-cycle-2026";
    let imap = tb.get("IMAP_ADDR")?;
    h.password_secret("box-password", password)?;
    h.apply("box", spec(&address, 10, &[]))?;
    h.wait_condition("box", "Ready", "True", None)?;
    // a message, so that the maildir exists
    assert_eq!(smtp_send(tb.get("SMTP_ADDR")?, "a@example.net", &address, "keep")?.data, 250);
    let maildir = Path::new(tb.get("MAILCORE_VMAIL_DIR")?).join(h.domain()).join("life");
    h.wait("the maildir exists", || Ok(maildir.exists()))?;

    h.apply(
        "box",
        json!({"address": address, "quotaMiB": 10, "suspended": true,
                          "passwordSecretRef": {"name": "box-password", "key": "password"}}),
    )?;
    let suspended = h.wait_condition("box", "Ready", "True", Some("Suspended"))?;
    assert_eq!(suspended["status"]["phase"], "Suspended");
    assert!(Imap::login(imap, &address, password)?.is_none(), "a suspended mailbox cannot log in");
    assert!(maildir.exists(), "suspension keeps the mail");

    h.apply(
        "box",
        json!({"address": address, "quotaMiB": 10, "suspended": false,
                          "passwordSecretRef": {"name": "box-password", "key": "password"}}),
    )?;
    h.wait_condition("box", "Ready", "True", Some("Active"))?;
    let mut session = Imap::login(imap, &address, password)?.context("login after resume")?;
    assert_eq!(session.inbox_count()?, 1, "the mail is still there");

    tb.kubectl_ok(&["delete", "mailbox", "box", "-n", &h.ns.name, "--timeout=60s"], None)?;
    assert!(Imap::login(imap, &address, password)?.is_none(), "a deleted mailbox cannot log in");
    assert_eq!(h.sql(&format!("SELECT username FROM mailbox WHERE username = '{address}'"))?, None, "row gone");
    assert!(!maildir.exists(), "maildir gone");
    assert_eq!(
        h.sql(&format!("SELECT domain FROM domain WHERE domain = '{}'", h.domain()))?,
        None,
        "the domain row went with its last mailbox"
    );
    Ok(())
}

#[test]
fn a_row_the_operator_did_not_make_is_a_conflict_and_stays_unchanged() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "mbox-foreign")?;
    let domain = h.domain();
    let address = format!("legacy@{domain}");
    h.sql(&format!(
        "INSERT INTO domain (domain) VALUES ('{domain}'); \
         INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain) \
         VALUES ('{address}', '{{PLAIN}}legacy', 'Legacy', '{domain}/legacy/', 1000, 'legacy', '{domain}')"
    ))?;
    let query =
        format!("SELECT mailbox.*, domain.owner FROM mailbox JOIN domain USING (domain) WHERE username = '{address}'");
    let before = h.sql(&query)?;
    // the domain row is not the operator's: only a grant lets this namespace use it
    h.grant_own_domain()?;
    let _op = h.operator()?;
    h.password_secret("box-password", "Takeover-2026")?;
    h.apply("box", spec(&address, 10, &[]))?;
    let conflict = h.wait_condition("box", "Conflict", "True", None)?;
    assert_eq!(condition(&conflict, "Ready")["status"], "False");
    let message = condition(&conflict, "Conflict")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("not this object's"), "{message}");
    assert!(!message.contains("owner"), "the other row's marker is not repeated: {message}");
    assert_eq!(h.sql(&query)?, before, "the row is unchanged");
    assert!(doveadm_auth(&tb, &address, "legacy")?, "the legacy password still works");
    // deleting the Mailbox leaves the foreign row alone
    tb.kubectl_ok(&["delete", "mailbox", "box", "-n", &h.ns.name, "--timeout=60s"], None)?;
    assert_eq!(h.sql(&query)?, before);
    h.sql(&format!("DELETE FROM mailbox WHERE username = '{address}'; DELETE FROM domain WHERE domain = '{domain}'"))?;
    Ok(())
}

#[test]
fn a_second_mailbox_for_an_address_is_a_conflict_that_does_not_name_the_first() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "mbox-twin")?;
    let _op = h.operator()?;
    let address = format!("twin@{}", h.domain());
    h.password_secret("box-password", "Twin-2026")?;
    h.apply("first", spec(&address, 10, &[]))?;
    h.wait_condition("first", "Ready", "True", None)?;
    let first_uid = h.get("first")?["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let row = format!("SELECT password, quota, owner FROM mailbox WHERE username = '{address}'");
    let before = h.sql(&row)?;

    h.apply("second", spec(&address, 20, &[]))?;
    let conflict = h.wait_condition("second", "Conflict", "True", Some("RowOwnedElsewhere"))?;
    assert_eq!(conflict["status"]["phase"], "Failed");
    let message = condition(&conflict, "Ready")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(&format!("mailbox {address} exists on mail-core and is not this object's")), "{message}");
    assert!(!message.contains(&first_uid) && !message.contains("/first/"), "the owner is not repeated: {message}");
    assert_eq!(h.sql(&row)?, before, "the first Mailbox's row is unchanged");
    Ok(())
}

#[test]
fn a_missing_secret_is_a_clear_condition_and_the_mailbox_follows_once_it_exists() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "mbox-secret")?;
    let _op = h.operator()?;
    let address = format!("later@{}", h.domain());
    h.apply("box", spec(&address, 10, &[]))?;
    let waiting = h.wait_condition("box", "Ready", "False", Some("PasswordSecretMissing"))?;
    assert_eq!(condition(&waiting, "Ready")["message"], "Secret box-password does not exist");
    assert_eq!(h.sql(&format!("SELECT username FROM mailbox WHERE username = '{address}'"))?, None);

    h.password_secret("box-password", "Arrived-2026")?;
    h.wait_condition("box", "Ready", "True", None)?;
    assert!(doveadm_auth(&tb, &address, "Arrived-2026")?);

    // the API server refuses a bad address and an out-of-range quota before any reconcile
    let bad = tb.kubectl(
        &["apply", "-f", "-"],
        Some(
            &json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "Mailbox",
                     "metadata": {"name": "bad", "namespace": h.ns.name},
                     "spec": {"address": "not an address", "quotaMiB": 0,
                              "passwordSecretRef": {"name": "box-password", "key": "password"}}})
            .to_string(),
        ),
    )?;
    assert!(
        !bad.success && bad.stderr.contains("spec.address") && bad.stderr.contains("spec.quotaMiB"),
        "{}",
        bad.stderr
    );
    Ok(())
}

#[test]
fn an_out_of_band_change_is_repaired() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let h = Harness::new(&tb, "mbox-drift")?;
    let _op = h.operator()?;
    let address = format!("drift@{}", h.domain());
    h.password_secret("box-password", "Drift-2026")?;
    h.apply("box", spec(&address, 10, &[]))?;
    h.wait_condition("box", "Ready", "True", None)?;
    h.sql(&format!("UPDATE mailbox SET quota = 1, password = '{{PLAIN}}x' WHERE username = '{address}'"))?;
    h.wait("quota and password are restored within a resync", || {
        Ok(h.sql(&format!("SELECT quota FROM mailbox WHERE username = '{address}'"))?.as_deref() == Some("10485760")
            && doveadm_auth(&tb, &address, "Drift-2026")?)
    })?;
    Ok(())
}
