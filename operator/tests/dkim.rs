//! Signed mail end to end: a DnsZone asks for a DKIM key, the operator makes it (Secret
//! `dkim-<domain>`), PowerDNS serves its public half, and the testbed's Postfix (OpenDKIM as its
//! milter, keys read from mail-core's database) signs mail with it. Signatures are checked by
//! dkimpy (Debian's python3-dkim) with its key lookups sent to the testbed's PowerDNS. Each
//! customer has a namespace and an operator of its own; what it may use is the operator's decision
//! (the name and mail-domain rules), whoever applies its objects.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::mail::{mailcore_sql, smtp_send};
use mpanel_tests::{TestNamespace, Testbed};
use serde_json::{Value, json};
use support::{Operator, condition, eventually};

const WAIT: Duration = Duration::from_secs(90);

/// dkimpy's verification of the first DKIM-Signature of the message on stdin, every key looked up
/// at the DNS server `host:port` (argv[1]); prints `{"verified", "domain", "selector"}`.
const VERIFY: &str = r#"
import json, sys
import dkim, dns.message, dns.query
host, port = sys.argv[1].rsplit(":", 1)
def txt(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    answer = dns.query.udp(dns.message.make_query(name, "TXT"), host, port=int(port), timeout=timeout)
    for rrset in answer.answer:
        for rdata in rrset:
            return b"".join(rdata.strings)
    return None
message = sys.stdin.buffer.read()
d = dkim.DKIM(message)
try:
    verified = d.verify(dnsfunc=txt)
except dkim.DKIMException:
    verified = False
text = lambda v: v.decode() if isinstance(v, bytes) else v
print(json.dumps({"verified": bool(verified), "domain": text(getattr(d, "domain", None)),
                  "selector": text(getattr(d, "selector", None))}))
"#;

/// What dkimpy said about a message.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    verified: bool,
    domain: Option<String>,
    selector: Option<String>,
}

fn verify(tb: &Testbed, message: &[u8]) -> anyhow::Result<Verdict> {
    use std::io::Write;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", VERIFY, tb.get("PDNS_DNS_ADDR")?])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running dkimpy (Debian's python3-dkim; tests/testbed/install-deps installs it)")?;
    child.stdin.take().context("stdin")?.write_all(message)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("dkimpy failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(Verdict {
        verified: v["verified"] == true,
        domain: v["domain"].as_str().map(str::to_owned),
        selector: v["selector"].as_str().map(str::to_owned),
    })
}

/// A customer's namespace with the PowerDNS key and mail-core's database URL in Secrets (put there
/// by the platform), a password Secret of its own, and an operator running the DnsZone and Mailbox
/// controllers for this namespace only.
struct Tenant<'a> {
    tb: &'a Testbed,
    // fields drop in this order: the operator stops before the namespace releases what it left
    _operator: Operator,
    ns: TestNamespace<'a>,
    config: PathBuf,
}

impl<'a> Tenant<'a> {
    fn new(tb: &'a Testbed, label: &str) -> anyhow::Result<Self> {
        let namespace = tb.namespace(label)?;
        let ns = namespace.name.clone();
        let url = format!("--from-literal=url={}", tb.get("MAILCORE_DATABASE_URL")?);
        tb.kubectl_ok(&["create", "secret", "generic", "mailcore-db", "-n", &ns, &url], None)?;
        let key = format!("--from-literal=api-key={}", tb.get("PDNS_API_KEY")?);
        tb.kubectl_ok(&["create", "secret", "generic", "powerdns", "-n", &ns, &key], None)?;
        tb.kubectl_ok(
            &["create", "secret", "generic", "box-password", "-n", &ns, "--from-literal=password=Pw-dkim-1"],
            None,
        )?;
        let config = std::env::temp_dir().join(format!("{ns}.operator.yaml"));
        std::fs::write(
            &config,
            format!(
                "resyncInterval: 3s\nwatchNamespace: {ns}\nleaderElection: {{namespace: {ns}, leaseDurationSeconds: 4}}\n\
                 powerdns:\n  apiUrl: {url}\n  serverId: {sid}\n  apiKeySecretRef: {{namespace: {ns}, name: powerdns, key: api-key}}\n\
                 mailcore:\n  databaseUrlSecretRef: {{namespace: {ns}, name: mailcore-db, key: url}}\n",
                url = tb.get("PDNS_API_URL")?,
                sid = tb.get("PDNS_SERVER_ID")?,
            ),
        )?;
        let operator = Operator::start_ready(Path::new(tb.get("KUBECONFIG")?), &config)?;
        Ok(Self { tb, _operator: operator, ns: namespace, config })
    }

    fn name(&self) -> &str {
        &self.ns.name
    }

    fn apply(&self, kind: &str, name: &str, spec: Value) -> anyhow::Result<()> {
        support::apply_object(self.tb, self.name(), kind, name, spec)
    }

    /// A mail domain of this test's own: the namespace's name under `mpanel-e2e`.
    fn domain(&self) -> String {
        format!("{}.mpanel-e2e", self.name())
    }

    /// The DnsZone `zone` for `domain` with an MX and the DKIM settings `dkim`.
    fn zone(&self, domain: &str, dkim: Value) -> anyhow::Result<()> {
        self.apply(
            "DnsZone",
            "zone",
            json!({"zone": domain, "nameservers": ["ns1.mpanel-e2e.example"],
                   "mail": {"mx": [{"host": format!("mail.{domain}"), "priority": 10}], "dkim": dkim}}),
        )
    }

    fn mailbox(&self, name: &str, address: &str, aliases: &[String]) -> anyhow::Result<()> {
        self.apply(
            "Mailbox",
            name,
            json!({"address": address, "quotaMiB": 10, "aliases": aliases,
                   "passwordSecretRef": {"name": "box-password", "key": "password"}}),
        )
    }

    fn wait(&self, kind: &str, name: &str, type_: &str, status: &str, reason: Option<&str>) -> anyhow::Result<Value> {
        support::wait_condition(self.tb, self.name(), kind, name, (type_, status, reason), WAIT)
    }

    /// Waits until the Mailbox says its domain's mail is signed with `selector`.
    fn wait_signing(&self, mailbox: &str, selector: &str) -> anyhow::Result<()> {
        let says = format!("signed with selector {selector} ");
        let signing = || {
            let m = support::get_object(self.tb, self.name(), "mailbox", mailbox)?;
            let c = condition(&m, "DkimSigning");
            Ok(c["status"] == "True" && c["message"].as_str().is_some_and(|t| t.contains(&says)))
        };
        if !eventually(WAIT, signing)? {
            let m = support::get_object(self.tb, self.name(), "mailbox", mailbox)?;
            bail!("Mailbox {mailbox} never signed with {selector}: {:#}", m["status"]);
        }
        Ok(())
    }

    /// The key Secret of `domain`.
    fn key_secret(&self, domain: &str) -> anyhow::Result<Value> {
        let out =
            self.tb.kubectl_ok(&["get", "secret", &format!("dkim-{domain}"), "-n", self.name(), "-o", "json"], None)?;
        Ok(serde_json::from_str(&out)?)
    }
}

impl Drop for Tenant<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

/// What PowerDNS serves at `<selector>._domainkey.<domain>` (TXT strings joined), if anything.
fn served_key(tb: &Testbed, selector: &str, domain: &str) -> anyhow::Result<Option<String>> {
    let answer = tb.dig(&format!("{selector}._domainkey.{domain}."), "TXT")?;
    Ok(answer.answers.first().map(|a| a.split('"').skip(1).step_by(2).collect::<String>()))
}

fn wait_served(tb: &Testbed, selector: &str, domain: &str, present: bool) -> anyhow::Result<Option<String>> {
    let mut last = None;
    let ok = eventually(WAIT, || {
        last = served_key(tb, selector, domain)?;
        Ok(last.is_some() == present)
    })?;
    if !ok {
        bail!("{selector}._domainkey.{domain} never became {}: {last:?}", if present { "served" } else { "absent" });
    }
    Ok(last)
}

/// Sends a message through the testbed's Postfix from `from` to `to` and returns it as delivered
/// into `to`'s maildir.
fn send_and_read(tb: &Testbed, from: &str, to: &str, subject: &str) -> anyhow::Result<Vec<u8>> {
    let sent = smtp_send(tb.get("SMTP_ADDR")?, from, to, subject)?;
    assert_eq!((sent.rcpt, sent.data), (250, 250), "Postfix took the message");
    let (local, domain) = to.split_once('@').context("an address")?;
    let new = Path::new(tb.get("MAILCORE_VMAIL_DIR")?).join(domain).join(local).join("new");
    let mut found = None;
    let delivered = eventually(Duration::from_secs(30), || {
        for entry in std::fs::read_dir(&new).into_iter().flatten().flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else { continue };
            if String::from_utf8_lossy(&bytes).contains(&format!("Subject: {subject}\r\n"))
                || String::from_utf8_lossy(&bytes).contains(&format!("Subject: {subject}\n"))
            {
                found = Some(bytes);
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    if !delivered {
        bail!("the message {subject:?} never reached {}", new.display());
    }
    found.context("delivered")
}

/// The public key (the `p=` tag) in a DKIM record's text.
fn p_tag(record: &str) -> Option<&str> {
    record.split(';').find_map(|t| t.trim().strip_prefix("p="))
}

#[test]
fn mail_is_signed_with_the_key_powerdns_serves_and_a_new_selector_rotates_it() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let t = Tenant::new(&tb, "dkim")?;
    let domain = t.domain();
    let (alice, bob) = (format!("alice@{domain}"), format!("bob@{domain}"));
    t.zone(&domain, json!({"selector": "s1"}))?;
    t.mailbox("alice", &alice, &[])?;
    t.mailbox("bob", &bob, &[])?;
    t.wait_signing("alice", "s1")?;
    t.wait_signing("bob", "s1")?;
    t.wait("dnszone", "zone", "Ready", "True", None)?;

    // the key: in the Secret with the operator's mark, 2048-bit RSA, its public half served
    let secret = t.key_secret(&domain)?;
    assert_eq!(secret["metadata"]["labels"]["mpanel.migrahosting.com/managed-by"], "mpanel-operator");
    let record = String::from_utf8(base64_decode(secret["data"]["s1.txt"].as_str().context("s1.txt")?)?)?;
    let served = wait_served(&tb, "s1", &domain, true)?.context("served")?;
    assert_eq!(p_tag(&served), p_tag(&record), "PowerDNS serves the public half of the key in the Secret");
    assert!(served.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"), "a 2048-bit RSA key: {served}");
    let row = mailcore_sql(&tb, &format!("SELECT selector FROM dkim_signing WHERE domain = '{domain}'"))?;
    assert_eq!(row.as_deref(), Some("s1"), "mail-core signs the domain's mail with selector s1");

    let message = send_and_read(&tb, &alice, &bob, "signed s1")?;
    assert!(String::from_utf8_lossy(&message).contains("DKIM-Signature:"), "the delivered message is signed");
    let verdict = verify(&tb, &message)?;
    assert_eq!(
        verdict,
        Verdict { verified: true, domain: Some(domain.clone()), selector: Some("s1".into()) },
        "the signature verifies against the key PowerDNS serves"
    );
    let tampered = String::from_utf8_lossy(&message).replace("Hello from", "Hullo from");
    assert!(!verify(&tb, tampered.as_bytes())?.verified, "a changed body does not verify");

    // a new selector: a new key signs, the old record stays published while it is listed
    t.zone(&domain, json!({"selector": "s2", "previousSelectors": ["s1"]}))?;
    t.wait_signing("alice", "s2")?;
    let s2 = wait_served(&tb, "s2", &domain, true)?.context("s2 served")?;
    assert_ne!(p_tag(&s2), p_tag(&served), "the new selector has a new key");
    assert_eq!(served_key(&tb, "s1", &domain)?, Some(served.clone()), "the old record stays published");
    let secret = t.key_secret(&domain)?;
    assert_eq!(
        String::from_utf8(base64_decode(secret["data"]["s1.txt"].as_str().context("s1.txt")?)?)?,
        record,
        "the old key is kept in the Secret"
    );
    let message = send_and_read(&tb, &alice, &bob, "signed s2")?;
    let verdict = verify(&tb, &message)?;
    assert_eq!(verdict, Verdict { verified: true, domain: Some(domain.clone()), selector: Some("s2".into()) });
    // mail signed before the rotation still verifies
    assert!(verify(&tb, &delivered(&tb, &bob, "signed s1")?)?.verified);

    // the old selector removed from the list: its record goes, the new one stays
    t.zone(&domain, json!({"selector": "s2"}))?;
    wait_served(&tb, "s1", &domain, false)?;
    assert_eq!(served_key(&tb, "s2", &domain)?, Some(s2));

    // DKIM no longer asked for: mail-core stops signing
    t.apply(
        "DnsZone",
        "zone",
        json!({"zone": domain, "nameservers": ["ns1.mpanel-e2e.example"],
               "mail": {"mx": [{"host": format!("mail.{domain}"), "priority": 10}]}}),
    )?;
    t.wait("mailbox", "alice", "DkimSigning", "False", Some("DkimNotRequested"))?;
    assert_eq!(mailcore_sql(&tb, &format!("SELECT selector FROM dkim_key WHERE domain = '{domain}'"))?, None);
    let message = send_and_read(&tb, &alice, &bob, "unsigned")?;
    assert!(!String::from_utf8_lossy(&message).contains("DKIM-Signature:"), "mail is no longer signed");
    Ok(())
}

/// The message with `subject` already delivered into `to`'s maildir.
fn delivered(tb: &Testbed, to: &str, subject: &str) -> anyhow::Result<Vec<u8>> {
    let (local, domain) = to.split_once('@').context("an address")?;
    let new = Path::new(tb.get("MAILCORE_VMAIL_DIR")?).join(domain).join(local).join("new");
    for entry in std::fs::read_dir(&new)?.flatten() {
        let bytes = std::fs::read(entry.path())?;
        if String::from_utf8_lossy(&bytes).contains(&format!("Subject: {subject}")) {
            return Ok(bytes);
        }
    }
    bail!("no message {subject:?} in {}", new.display())
}

#[test]
fn another_namespace_can_neither_sign_for_nor_publish_or_replace_the_key_of_a_domain_it_does_not_hold()
-> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let victim = Tenant::new(&tb, "dkim-victim")?;
    let attacker = Tenant::new(&tb, "dkim-attacker")?;
    let domain = victim.domain();
    let ceo = format!("ceo@{domain}");
    victim.zone(&domain, json!({"selector": "s1"}))?;
    victim.mailbox("ceo", &ceo, &[])?;
    victim.wait_signing("ceo", "s1")?;
    let key_row = format!("SELECT selector, md5(private_key), owner FROM dkim_key WHERE domain = '{domain}'");
    let before = mailcore_sql(&tb, &key_row)?.context("the victim's key row")?;
    let served = wait_served(&tb, "s1", &domain, true)?;
    let secret_before = victim.key_secret(&domain)?["data"].clone();

    // the attacker: a key Secret of its own for the victim's domain (with the operator's mark), a DnsZone for the domain asking for a
    // key under another selector, a mailbox in it, and an alias in it on a mailbox of its own
    let forged = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("dkim-{domain}"), "namespace": attacker.name(),
                     "labels": {"mpanel.migrahosting.com/managed-by": "mpanel-operator"}},
        "stringData": {"evil.key": "not a key", "s1.key": "not a key either"}});
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&forged.to_string()))?;
    attacker.zone(&domain, json!({"selector": "evil"}))?;
    attacker.mailbox("intruder", &format!("intruder@{domain}"), &[])?;
    let own = attacker.domain();
    attacker.mailbox("me", &format!("me@{own}"), &[format!("sales@{domain}")])?;

    let zone = attacker.wait("dnszone", "zone", "Ready", "False", Some("NameHeldElsewhere"))?;
    assert_eq!(condition(&zone, "Programmed")["status"], "False");
    for name in ["intruder", "me"] {
        let refused = attacker.wait("mailbox", name, "Ready", "False", Some("MailDomainHeldElsewhere"))?;
        assert_ne!(condition(&refused, "DkimSigning")["status"], "True", "{name}: {:#}", refused["status"]);
    }

    // nothing of the victim's changed, and mail from its domain is still signed with its key
    assert_eq!(mailcore_sql(&tb, &key_row)?.as_deref(), Some(before.as_str()), "the victim's key row is unchanged");
    let attacker_marker = format!("namespace/{}", attacker.name());
    assert_eq!(
        mailcore_sql(&tb, &format!("SELECT domain FROM dkim_key WHERE owner = '{attacker_marker}'"))?,
        None,
        "no key row of the attacker"
    );
    assert_eq!(served_key(&tb, "evil", &domain)?, None, "the attacker's selector is not published");
    assert_eq!(served_key(&tb, "s1", &domain)?, served, "the victim's record is unchanged");
    assert_eq!(victim.key_secret(&domain)?["data"], secret_before, "the victim's key Secret is unchanged");
    let message = send_and_read(&tb, &ceo, &ceo, "still the victim's")?;
    assert_eq!(
        verify(&tb, &message)?,
        Verdict { verified: true, domain: Some(domain.clone()), selector: Some("s1".into()) }
    );
    Ok(())
}

fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}
