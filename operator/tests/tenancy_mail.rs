//! Mail domains belong to one namespace: attacks from one customer namespace on another's mail,
//! each namespace with its own operator process, against the real mail-core (PostgreSQL rows,
//! Dovecot logins, Postfix delivery). Every customer acts as a user bound to the chart's
//! `tenant-edit` role in its own namespace.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::Testbed;
use mpanel_tests::mail::{Imap, doveadm_auth, mailcore_sql, smtp_send};
use serde_json::{Value, json};
use support::tenants::{Customer, TenantRoles};
use support::{Operator, condition, eventually};

const WAIT: Duration = Duration::from_secs(60);
const REFUSED: &str = "MailDomainHeldElsewhere";

/// A customer (acting as its tenant-edit user) with mail-core's database URL in a Secret (put
/// there by the platform), a password Secret of its own, and an operator that reconciles only its
/// namespace.
struct Tenant<'a> {
    tb: &'a Testbed,
    // fields drop in this order: the operator stops before the namespace releases what it left
    operator: Option<Operator>,
    customer: Customer<'a>,
    config: PathBuf,
}

impl<'a> Tenant<'a> {
    fn new(roles: &TenantRoles<'a>, label: &str) -> anyhow::Result<Self> {
        let customer = Customer::new(roles, label)?;
        let tb = customer.tb;
        let ns = customer.name();
        let url = format!("--from-literal=url={}", tb.get("MAILCORE_DATABASE_URL")?);
        tb.kubectl_ok(&["create", "secret", "generic", "mailcore-db", "-n", ns, &url], None)?;
        let password = format!("--from-literal=password={}", password_of(ns));
        customer.kubectl_ok(&["create", "secret", "generic", "box-password", &password])?;
        let config = std::env::temp_dir().join(format!("{ns}.operator.yaml"));
        let mut tenant = Self { tb, customer, config, operator: None };
        tenant.start(&[])?;
        Ok(tenant)
    }

    /// (Re)starts this namespace's operator with `mailcore.domainGrants` as given.
    fn start(&mut self, grants: &[(&str, &str)]) -> anyhow::Result<()> {
        if let Some(op) = self.operator.take() {
            op.stop()?;
        }
        let grants: Vec<String> = grants.iter().map(|(d, ns)| format!("{d}: {ns}")).collect();
        std::fs::write(
            &self.config,
            format!(
                "resyncInterval: 3s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 mailcore:\n  databaseUrlSecretRef: {{namespace: {ns}, name: mailcore-db, key: url}}\n  \
                 maildirRoot: {vmail}\n  domainGrants: {{{grants}}}\n",
                ns = self.name(),
                vmail = self.tb.get("MAILCORE_VMAIL_DIR")?,
                grants = grants.join(", "),
            ),
        )?;
        self.operator = Some(Operator::start_ready(Path::new(self.tb.get("KUBECONFIG")?), &self.config)?);
        Ok(())
    }

    fn name(&self) -> &str {
        self.customer.name()
    }

    /// A mail domain of this test's own, `<label>-<pid>-<seq>.test`: the namespace's unique tail
    /// without its name, so that a name the attacker types does not carry the victim's namespace.
    fn domain(&self, label: &str) -> String {
        let tail: Vec<&str> = self.name().rsplit('-').take(2).collect();
        format!("{label}-{}-{}.test", tail[1], tail[0])
    }

    fn password(&self) -> String {
        password_of(self.name())
    }

    /// Applies the Mailbox as this customer's tenant-edit user.
    fn mailbox(&self, name: &str, address: &str, aliases: &[String]) -> anyhow::Result<()> {
        self.customer.apply(
            "Mailbox",
            name,
            json!({"address": address, "quotaMiB": 10, "aliases": aliases,
                   "passwordSecretRef": {"name": "box-password", "key": "password"}}),
        )
    }

    fn wait_condition(&self, name: &str, type_: &str, status: &str, reason: Option<&str>) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, self.name(), "mailbox", name, (type_, status, reason), WAIT)
    }

    /// Waits until the Mailbox is refused for its mail domain and checks how the refusal reads.
    fn wait_refused(&self, name: &str, domain: &str) -> anyhow::Result<Value> {
        let refused = self.wait_condition(name, "Ready", "False", Some(REFUSED))?;
        assert_eq!(refused["status"]["phase"], "Failed", "{:#}", refused["status"]);
        let message = condition(&refused, "Ready")["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(&format!("mail domain {domain}")), "the message names the domain: {message}");
        assert!(message.contains("nothing was written"), "{message}");
        assert_eq!(condition(&refused, "Conflict")["reason"], REFUSED);
        assert_eq!(condition(&refused, "DomainReady")["status"], "False");
        Ok(refused)
    }

    /// Warning Events with `reason` about the object `name`, as this customer reads them.
    fn warnings(&self, name: &str, reason: &str) -> anyhow::Result<Vec<Value>> {
        let events: Value =
            serde_json::from_str(&self.customer.kubectl_ok(&["get", "events.events.k8s.io", "-o", "json"])?)?;
        Ok(events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason && e["type"] == "Warning")
            .cloned()
            .collect())
    }

    /// Everything this customer reads about its Mailboxes: the objects and the Events.
    fn visible(&self) -> anyhow::Result<String> {
        Ok(format!(
            "{}{}",
            self.customer.kubectl_ok(&["get", "mailboxes", "-o", "yaml"])?,
            self.customer.kubectl_ok(&["get", "events", "-o", "yaml"])?
        ))
    }

    fn uid(&self, kind: &str, name: &str) -> anyhow::Result<String> {
        self.customer.uid(kind, name)
    }
}

impl Drop for Tenant<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn password_of(namespace: &str) -> String {
    format!("Pw-{namespace}")
}

/// Whether any row of mail-core's `table` matches `condition`.
fn any_row(tb: &Testbed, table: &str, condition: &str) -> anyhow::Result<bool> {
    Ok(mailcore_sql(tb, &format!("SELECT 1 FROM {table} WHERE {condition} LIMIT 1"))?.is_some())
}

/// What the attacker sees names neither the victim's namespace nor any of the victim's objects.
fn assert_no_leak(attacker: &Tenant, victim: &Tenant, victim_uids: &[String]) -> anyhow::Result<()> {
    let seen = attacker.visible()?;
    assert!(!seen.contains(victim.name()), "the victim's namespace is named in the attacker's view:\n{seen}");
    for uid in victim_uids {
        assert!(!seen.contains(uid.as_str()), "a victim uid ({uid}) is in the attacker's view:\n{seen}");
    }
    Ok(())
}

fn wait(what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    if !eventually(WAIT, &mut check)? {
        bail!("never: {what}");
    }
    Ok(())
}

#[test]
fn a_mailbox_or_alias_in_another_namespaces_mail_domain_is_refused_and_the_mail_still_reaches_the_victim()
-> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let roles = TenantRoles::apply(&tb)?;
    let victim = Tenant::new(&roles, "mail-victim")?;
    let attacker = Tenant::new(&roles, "mail-attacker")?;
    let victim_domain = victim.domain("corp");
    let ceo = format!("ceo@{victim_domain}");
    victim.mailbox("ceo", &ceo, &[])?;
    victim.wait_condition("ceo", "Ready", "True", None)?;
    assert!(doveadm_auth(&tb, &ceo, &victim.password())?);
    let victim_rows = |tb: &Testbed| {
        mailcore_sql(
            tb,
            &format!(
                "SELECT m.username, m.password, m.active, m.owner, d.owner FROM mailbox m JOIN domain d USING (domain) \
                 WHERE m.domain = '{victim_domain}' ORDER BY m.username"
            ),
        )
    };
    let before = victim_rows(&tb)?;
    assert!(before.is_some());

    // a mailbox in the victim's domain
    let intruder = format!("intruder@{victim_domain}");
    attacker.mailbox("intruder", &intruder, &[])?;
    attacker.wait_refused("intruder", &victim_domain)?;
    assert!(!any_row(&tb, "mailbox", &format!("username = '{intruder}'"))?, "no mailbox row for the intruder");
    assert!(!doveadm_auth(&tb, &intruder, &attacker.password())?);
    assert!(doveadm_auth(&tb, &ceo, &victim.password())?, "the victim's login still works");

    // aliases in the victim's domain on a mailbox of the attacker's own domain, which was Ready
    let me = format!("me@{}", attacker.domain("own"));
    attacker.mailbox("me", &me, &[])?;
    attacker.wait_condition("me", "Ready", "True", None)?;
    let attacker_rows =
        format!("SELECT username, password, active, owner FROM mailbox WHERE username = '{me}' ORDER BY username");
    let attacker_before = mailcore_sql(&tb, &attacker_rows)?;
    let aliases = [ceo.clone(), format!("sales@{victim_domain}")];
    attacker.mailbox("me", &me, &aliases)?;
    attacker.wait_refused("me", &victim_domain)?;
    assert!(!any_row(&tb, "alias", &format!("domain = '{victim_domain}'"))?, "no alias row in the victim's domain");
    assert!(!any_row(&tb, "alias", &format!("goto LIKE '%{me}%'"))?, "no alias row at all: not a partial set");
    assert_eq!(mailcore_sql(&tb, &attacker_rows)?, attacker_before, "the attacker's own row is as it was");

    // mail to the victim's address lands in the victim's mailbox only
    let smtp = tb.get("SMTP_ADDR")?;
    let imap = tb.get("IMAP_ADDR")?;
    let mut victim_inbox = Imap::login(imap, &ceo, &victim.password())?.context("victim's IMAP login")?;
    let mut attacker_inbox = Imap::login(imap, &me, &attacker.password())?.context("attacker's IMAP login")?;
    let victim_had = victim_inbox.inbox_count()?;
    let sent = smtp_send(smtp, "partner@example.net", &ceo, "for the ceo only")?;
    assert_eq!((sent.rcpt, sent.data), (250, 250));
    wait("the message is in the victim's INBOX", || Ok(victim_inbox.inbox_count()? > victim_had))?;
    assert_eq!(victim_inbox.subject(victim_had as u32 + 1)?.as_deref(), Some("for the ceo only"));
    assert_eq!(attacker_inbox.inbox_count()?, 0, "nothing reached the attacker's mailbox");
    let sales = smtp_send(smtp, "partner@example.net", &format!("sales@{victim_domain}"), "x")?;
    assert_eq!(sales.rcpt / 100, 5, "the alias the attacker asked for does not exist");

    // the refusal was announced once, and the victim's rows are untouched
    for name in ["intruder", "me"] {
        let events = attacker.warnings(name, REFUSED)?;
        assert_eq!(events.len(), 1, "one Warning Event for {name}: {events:#?}");
    }
    assert_eq!(victim_rows(&tb)?, before, "the victim's rows are unchanged");
    assert_no_leak(&attacker, &victim, &[victim.uid("mailbox", "ceo")?])?;

    // deleting the refused Mailboxes removes nothing of the victim's
    attacker.customer.kubectl_ok(&["delete", "mailbox", "intruder", "me", "--timeout=60s"])?;
    assert_eq!(victim_rows(&tb)?, before);
    assert!(doveadm_auth(&tb, &ceo, &victim.password())?);
    Ok(())
}

#[test]
fn a_domain_held_through_a_dnszone_is_refused_before_any_mail_row_exists() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let roles = TenantRoles::apply(&tb)?;
    let victim = Tenant::new(&roles, "mail-zone-victim")?;
    let attacker = Tenant::new(&roles, "mail-zone-attacker")?;
    let zone = victim.domain("zone");
    victim.customer.apply(
        "DnsZone",
        "zone",
        json!({"zone": format!("{zone}."), "nameservers": ["ns1.example.net.", "ns2.example.net."]}),
    )?;
    let zone_uid = victim.uid("dnszone", "zone")?;

    let address = format!("boss@{zone}");
    attacker.mailbox("boss", &address, &[])?;
    attacker.wait_refused("boss", &zone)?;
    assert!(!any_row(&tb, "domain", &format!("domain = '{zone}'"))?, "no domain row was made");
    assert!(!any_row(&tb, "mailbox", &format!("username = '{address}'"))?);
    // a name inside the zone is the victim's too
    let inner = format!("sub.{zone}");
    attacker.mailbox("inner", &format!("x@{inner}"), &[])?;
    attacker.wait_refused("inner", &inner)?;
    assert!(!any_row(&tb, "domain", &format!("domain = '{inner}'"))?);

    // the namespace holding the zone uses its mail domain
    let info = format!("info@{zone}");
    victim.mailbox("info", &info, &[])?;
    victim.wait_condition("info", "Ready", "True", None)?;
    assert!(doveadm_auth(&tb, &info, &victim.password())?);
    assert_eq!(
        mailcore_sql(&tb, &format!("SELECT owner FROM domain WHERE domain = '{zone}'"))?,
        Some(format!("namespace/{}", victim.name())),
        "the domain row is marked for the victim's namespace"
    );
    assert!(!any_row(&tb, "mailbox", &format!("username = '{address}'"))?, "the attacker's box still is not there");
    assert_no_leak(&attacker, &victim, &[zone_uid, victim.uid("mailbox", "info")?])?;
    Ok(())
}

#[test]
fn a_mail_domain_made_outside_the_operator_is_used_only_by_the_namespace_it_is_granted_to() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let roles = TenantRoles::apply(&tb)?;
    let mut tenant = Tenant::new(&roles, "mail-legacy")?;
    let other = Tenant::new(&roles, "mail-legacy-other")?;
    let legacy = tenant.domain("legacy");
    // made as another program would: no owner marker
    mailcore_sql(&tb, &format!("INSERT INTO domain (domain, description) VALUES ('{legacy}', 'hand-made')"))?;
    let domain_row = format!("SELECT domain, description, active, owner FROM domain WHERE domain = '{legacy}'");
    let row_before = mailcore_sql(&tb, &domain_row)?;

    let address = format!("old@{legacy}");
    tenant.mailbox("old", &address, &[])?;
    tenant.wait_refused("old", &legacy)?;
    assert!(!any_row(&tb, "mailbox", &format!("domain = '{legacy}'"))?);

    // granted to this namespace: accepted; the row stays as it was made
    let name = tenant.name().to_owned();
    tenant.start(&[(legacy.as_str(), name.as_str())])?;
    tenant.wait_condition("old", "Ready", "True", None)?;
    assert!(doveadm_auth(&tb, &address, &tenant.password())?);
    assert_eq!(mailcore_sql(&tb, &domain_row)?, row_before, "the hand-made domain row is unchanged");

    // the grant is for that namespace only: another one is refused, in an alias too
    other.mailbox("squat", &format!("me@{}", other.domain("own")), &[format!("postmaster@{legacy}")])?;
    other.wait_refused("squat", &legacy)?;
    assert!(!any_row(&tb, "alias", &format!("address = 'postmaster@{legacy}'"))?);
    assert_no_leak(&other, &tenant, &[tenant.uid("mailbox", "old")?])?;

    // the domain row was there before: deleting its last Mailbox leaves it
    tenant.customer.kubectl_ok(&["delete", "mailbox", "old", "--timeout=60s"])?;
    assert!(!any_row(&tb, "mailbox", &format!("username = '{address}'"))?);
    assert_eq!(mailcore_sql(&tb, &domain_row)?, row_before);
    mailcore_sql(&tb, &format!("DELETE FROM domain WHERE domain = '{legacy}'"))?;
    Ok(())
}
