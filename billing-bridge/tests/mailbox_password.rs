//! Customers set their mailbox password in the portal, as a customer does it: an Email Basic
//! purchase makes the credentials Secret with a generated password no mail carries; the customer
//! signs in with the mailed link and sets a password of their own, which lands in the Secret the
//! Mailbox takes its password from; a weak one, another customer's session, an admin token and a
//! subscription without mailbox credentials change nothing. The bridge runs with nothing but the
//! chart's ServiceAccount (its RBAC and admission policies applied to the testbed's API server).
//! Real bridge, PostgreSQL, stripe-mock, kube-apiserver and Postfix.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_tests::{TestNamespace, Testbed, repo_root};
use serde_json::{Value, json};
use support::capture::Capture;
use support::{
    Bridge, Ledger, Namespaces, PORTAL_URL, admin_token, email, eventually, session_completed, subscription_of_order,
};
use tokio::runtime::Runtime;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(40);

/// The chart rendered with the bridge enabled and applied under the release named as its
/// namespace, and a kubeconfig holding a token of the bridge's ServiceAccount; the cluster-scoped
/// objects (roles, policies) are deleted on drop.
struct Release<'a> {
    tb: &'a Testbed,
    home: TestNamespace<'a>,
    kubeconfig: PathBuf,
}

impl<'a> Release<'a> {
    fn install(tb: &'a Testbed) -> anyhow::Result<Self> {
        let home = tb.namespace("mbox-pw")?;
        let chart = repo_root().join("charts/mpanel");
        let values = [
            "config.powerdns.apiUrl=http://127.0.0.1:1",
            "config.powerdns.apiKeySecret.name=powerdns-api",
            "config.powerdns.dnsAddress=127.0.0.1:1",
            "config.acme.issuers.test.directoryUrl=https://127.0.0.1:1/dir",
            "config.mailcore.databaseUrlSecret.name=mailcore-db",
            "config.proxmox.url=https://127.0.0.1:1",
            "config.proxmox.tokenSecret.name=proxmox-token",
            "config.proxmox.vmidRange.first=100",
            "config.proxmox.vmidRange.last=199",
            "config.namesilo.apiKeySecret.name=namesilo-api",
            "config.namesilo.nameservers={ns1.example.net}",
            "bridge.enabled=true",
        ];
        let out = Command::new(tb.get("HELM")?)
            .args(["template", &home.name, &chart.to_string_lossy(), "--namespace", &home.name])
            .args(values.iter().flat_map(|v| ["--set", v]))
            .output()
            .context("running helm")?;
        if !out.status.success() {
            bail!("helm template failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let kubeconfig = std::env::temp_dir().join(format!("{}.bridge.kubeconfig", home.name));
        let release = Self { tb, home, kubeconfig };
        tb.kubectl_ok(&["apply", "-f", "-"], Some(&String::from_utf8(out.stdout)?))?;

        let account = format!("{}-billing-bridge", release.home.name);
        let token = tb.kubectl_ok(&["create", "token", &account, "-n", &release.home.name], None)?;
        let admin = std::fs::read_to_string(tb.get("KUBECONFIG")?)?;
        let server = admin.lines().find_map(|l| l.split("server: \"").nth(1)).and_then(|s| s.split('"').next());
        let ca =
            admin.lines().find_map(|l| l.split("certificate-authority: \"").nth(1)).and_then(|s| s.split('"').next());
        let (Some(server), Some(ca)) = (server, ca) else { bail!("cannot read the testbed kubeconfig:\n{admin}") };
        std::fs::write(
            &release.kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}}}]\n\
                 users: [{{name: sa, user: {{token: \"{}\"}}}}]\ncontexts: [{{name: t, context: {{cluster: t, user: sa}}}}]\ncurrent-context: t\n",
                token.trim()
            ),
        )?;
        Ok(release)
    }

    /// The bridge's user name, as the API server knows it.
    fn bridge(&self) -> String {
        format!("system:serviceaccount:{0}:{0}-billing-bridge", self.home.name)
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let selector = format!("app.kubernetes.io/instance={}", self.home.name);
        let kinds = "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings";
        let _ = self.tb.kubectl(&["delete", kinds, "-l", &selector, "--wait=false"], None);
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// Waits until the chart's RBAC and policies are in force for the bridge: it may create Secrets in
/// customer namespaces and change only those labelled as its own.
fn wait_in_force(tb: &Testbed, release: &Release<'_>, namespace: &str) -> anyhow::Result<()> {
    let probe = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "probe", "namespace": namespace},
                       "stringData": {"k": "v"}});
    tb.kubectl_ok(&["create", "-f", "-"], Some(&probe.to_string()))?;
    let mut last = None;
    let active = eventually(WAIT, || {
        // a server-side apply: a patch, without the read `kubectl patch` makes first
        let args =
            ["apply", "--server-side", "--force-conflicts", "--field-manager=billing-bridge", "--dry-run=server"];
        let change = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "probe", "namespace": namespace},
                            "stringData": {"k": "w"}});
        let out = tb.kubectl_as(&release.bridge(), &[&args[..], &["-f", "-"]].concat(), Some(&change.to_string()))?;
        let refused = !out.success && out.stderr.contains("changes only Secrets labelled");
        last = Some(out);
        Ok(refused)
    })?;
    if !active {
        bail!("the bridge-owned-secrets policy is not in force: {last:?}");
    }
    Ok(())
}

fn start(rt: &Runtime, tb: &Testbed, ledger: &Ledger, kubeconfig: &Path) -> anyhow::Result<Bridge> {
    let env = [("NOTIFY_SMTP_ADDR", tb.get("NOTIFY_SMTP_ADDR")?.to_owned())];
    Bridge::start_with_env(rt, tb, ledger, kubeconfig, &env)
}

/// A session of the customer with `address`, through the sign-in link mailed to them.
fn sign_in(rt: &Runtime, bridge: &Bridge, capture: &Capture, address: &str) -> anyhow::Result<String> {
    let seen: Vec<_> = capture.to(address)?.into_iter().map(|m| m.file).collect();
    let (status, body) = bridge.post(rt, "/v1/portal/sign-in", &json!({"email": address}), None)?;
    assert_eq!(status, 202, "{body}");
    let prefix = format!("{PORTAL_URL}/sign-in?token=");
    let mut link = None;
    let arrived = eventually(WAIT, || {
        let fresh = capture.to(address)?.into_iter().filter(|m| !seen.contains(&m.file));
        link = fresh.filter(|m| m.header("subject").contains("sign-in link")).find_map(|m| {
            let at = m.text.find(&prefix)? + prefix.len();
            Some(m.text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
        });
        Ok(link.is_some())
    })?;
    assert!(arrived, "no sign-in mail reached {address}: {}", bridge.log_tail(30));
    let (status, body) = bridge.post(rt, "/v1/portal/sessions", &json!({"token": link}), None)?;
    assert_eq!(status, 201, "{body}");
    Ok(body["token"].as_str().context("no session token")?.to_owned())
}

/// A paid order of `product` for the customer `email`: its subscription.
fn buy(rt: &Runtime, ledger: &Ledger, bridge: &Bridge, product: &str, email: &str) -> anyhow::Result<Uuid> {
    let domain = format!("mbox-pw-{}.example", Uuid::new_v4().simple());
    let placed =
        bridge.checkout(rt, &json!({"product": product, "cycle": "monthly", "email": email, "domain": domain}))?;
    let intent = format!("pi_{}", Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(rt, &session_completed(&placed, &intent))?, 200);
    subscription_of_order(rt, ledger, &placed)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The mailbox password in the Secret, read as the testbed's admin (the bridge cannot read it).
fn secret_password(tb: &Testbed, namespace: &str, secret: &str) -> anyhow::Result<Option<String>> {
    let template = r#"go-template={{index .data "mailbox-password" | base64decode}}"#;
    let out = tb.kubectl(&["get", "secret", secret, "-n", namespace, "-o", template], None)?;
    Ok(out.success.then(|| out.stdout.trim().to_owned()))
}

#[test]
fn a_customer_sets_their_mailbox_password_in_the_portal_and_no_one_else_can() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let release = Release::install(&tb)?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let capture = Capture::new(&tb)?;
    let customer = email("mbox-pw");
    let other = email("mbox-pw-other");
    // the probe namespace is a customer's: the policy applies there
    let probe = tb.namespace("customer-mbox-pw-probe")?;
    wait_in_force(&tb, &release, &probe.name)?;
    let bridge = start(&rt, &tb, &ledger, &release.kubeconfig)?;

    let sub = buy(&rt, &ledger, &bridge, "email-basic", &customer)?;
    let (namespace, resource) = rt.block_on(
        sqlx::query_as::<_, (String, String)>("SELECT namespace, resource_name FROM subscriptions WHERE id = $1")
            .bind(sub)
            .fetch_one(&ledger.pool),
    )?;
    let _cleanup = Namespaces { tb: &tb, names: vec![namespace.clone()] };
    let secret = format!("{resource}-credentials");
    let mut generated = String::new();
    let made = eventually(WAIT, || {
        generated = secret_password(&tb, &namespace, &secret)?.unwrap_or_default();
        Ok(generated.starts_with("Mp-"))
    })?;
    assert!(made, "the bridge made no credentials Secret {namespace}/{secret}: {}", bridge.log_tail(30));
    let labels =
        tb.kubectl_ok(&["get", "secret", &secret, "-n", &namespace, "-o", "jsonpath={.metadata.labels}"], None)?;
    assert!(labels.contains(r#""app.kubernetes.io/managed-by":"billing-bridge""#), "{labels}");

    // the receipt says where the password is set
    capture.wait_for(&customer, 1, &bridge)?;
    let receipt = capture.to(&customer)?.into_iter().find(|m| m.header("subject").contains("receipt"));
    let receipt = receipt.context("no receipt")?;
    assert!(
        receipt.text.contains(&format!("set it in the customer portal at {PORTAL_URL}")),
        "the receipt does not name the portal: {}",
        receipt.text
    );
    assert!(receipt.text.contains("never sent by email"), "{}", receipt.text);

    let session = sign_in(&rt, &bridge, &capture, &customer)?;
    let path = format!("/v1/portal/subscriptions/{sub}/mailbox-password");

    // weak passwords change nothing
    for (weak, refused) in [
        ("short-Pw-1", "PasswordTooShort"),
        ("my-Postmaster-2026-box", "PasswordContainsName"),
        (&*format!("{}-Pass-2026", customer.split('@').next().unwrap_or_default()), "PasswordContainsName"),
        (&*"x".repeat(129), "PasswordTooLong"),
        ("tab\tinside-a-long-password", "PasswordControlCharacter"),
    ] {
        let (status, body) = bridge.post(&rt, &path, &json!({"password": weak}), Some(&session))?;
        assert_eq!((status, code(&body)), (422, refused), "{weak:?}: {body}");
    }
    let (status, body) = bridge.post(&rt, &path, &json!({"pass": "Correct-Horse-Battery-42"}), Some(&session))?;
    assert_eq!((status, code(&body)), (422, "InvalidRequest"), "{body}");
    assert_eq!(secret_password(&tb, &namespace, &secret)?.as_deref(), Some(generated.as_str()));

    // another customer's session, an admin token, no token: as if it did not exist, or refused
    let billing = admin_token(&rt, &ledger, Role::Billing)?;
    let (status, body) = bridge.post(&rt, "/v1/admin/customers", &json!({"email": other}), Some(&billing))?;
    assert_eq!(status, 201, "{body}");
    let stranger = sign_in(&rt, &bridge, &capture, &other)?;
    let chosen = "Correct-Horse-Battery-42";
    let (status, body) = bridge.post(&rt, &path, &json!({"password": "Strangers-Choice-2026"}), Some(&stranger))?;
    assert_eq!((status, code(&body)), (404, "NotFound"), "{body}");
    let (status, body) = bridge.post(&rt, &path, &json!({"password": chosen}), Some(&billing))?;
    assert_eq!(status, 401, "an admin token is no portal session: {body}");
    let (status, body) = bridge.post(&rt, &path, &json!({"password": chosen}), None)?;
    assert_eq!(status, 401, "{body}");
    let unknown = format!("/v1/portal/subscriptions/{}/mailbox-password", Uuid::new_v4());
    let (status, body) = bridge.post(&rt, &unknown, &json!({"password": chosen}), Some(&session))?;
    assert_eq!((status, code(&body)), (404, "NotFound"), "{body}");
    assert_eq!(secret_password(&tb, &namespace, &secret)?.as_deref(), Some(generated.as_str()));
    let audited = |actor: &str| {
        ledger.count(
            &rt,
            &format!(
                "SELECT count(*) FROM audit_log WHERE action = 'mailbox.password_set' AND entity = 'subscription' \
                   AND entity_id = '{sub}' AND actor = '{actor}'"
            ),
        )
    };
    assert_eq!(ledger.count(&rt, "SELECT count(*) FROM audit_log WHERE action = 'mailbox.password_set'")?, 0);

    // the customer's own: 204, and the Secret holds the password, set by the bridge's own identity
    let (status, body) = bridge.post(&rt, &path, &json!({"password": chosen}), Some(&session))?;
    assert_eq!(status, 204, "{body} {}", bridge.log_tail(20));
    assert_eq!(secret_password(&tb, &namespace, &secret)?.as_deref(), Some(chosen));
    assert_eq!(audited(&customer)?, 1);
    let leaked = ledger.count(
        &rt,
        &format!(
            "SELECT (SELECT count(*) FROM audit_log WHERE detail::text LIKE '%{chosen}%' OR actor LIKE '%{chosen}%') \
                  + (SELECT count(*) FROM notifications WHERE facts::text LIKE '%{chosen}%')"
        ),
    )?;
    assert_eq!(leaked, 0, "a ledger row holds the password");

    // a subscription without mailbox credentials, and one no longer in service
    let pod = buy(&rt, &ledger, &bridge, "cloudpod-mini", &customer)?;
    let pod_path = format!("/v1/portal/subscriptions/{pod}/mailbox-password");
    let (status, body) = bridge.post(&rt, &pod_path, &json!({"password": "Another-Password-2026"}), Some(&session))?;
    assert_eq!((status, code(&body)), (409, "NoMailboxCredentials"), "{body}");
    let (status, body) = bridge.post(
        &rt,
        &format!("/v1/admin/subscriptions/{sub}/cancel"),
        &json!({"atPeriodEnd": false}),
        Some(&billing),
    )?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = bridge.post(&rt, &path, &json!({"password": "After-The-End-2026"}), Some(&session))?;
    assert_eq!((status, code(&body)), (409, "SubscriptionNotInService"), "{body}");
    assert_eq!(secret_password(&tb, &namespace, &secret)?.as_deref(), Some(chosen));
    assert_eq!(audited(&customer)?, 1);

    // no mail to either customer, and no line the bridge logged, carries a password
    std::thread::sleep(Duration::from_secs(2));
    let mut mails = capture.to(&customer)?;
    mails.extend(capture.to(&other)?);
    assert!(mails.len() >= 3, "receipts and sign-in mails: {mails:?}");
    for mail in &mails {
        let text = mail.decoded()?;
        for password in [generated.as_str(), &generated[3..], chosen] {
            assert!(!text.contains(password), "a mail carries a mailbox password: {mail:?}");
        }
    }
    let log = bridge.log_tail(100_000);
    assert!(!log.contains(chosen) && !log.contains(&generated[3..]), "the bridge logged a password");
    capture.forget(&customer)?;
    capture.forget(&other)?;
    drop(bridge);
    ledger.drop_database(&rt);
    Ok(())
}
