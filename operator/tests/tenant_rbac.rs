//! The chart's tenancy, on the real API server: what a customer bound to `<release>-tenant-edit` or
//! `<release>-tenant-view` in its own namespace may do (RBAC plus the billing-fields admission
//! policies), and how far the operator's and the billing bridge's ServiceAccounts reach (the bridge
//! changes only the Secrets it labelled as its own). Every refusal is shown both by `kubectl auth
//! can-i` and by an attempted write.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::{Output, Testbed, eventually, example_of, repo_root};
use serde_json::{Value, json};

const GROUP: &str = "mpanel.migrahosting.com";

/// The chart rendered with every controller and the bridge enabled and applied in `namespace` under
/// the release `namespace`; its cluster-scoped objects (roles, policies) are deleted on drop.
struct Release<'a> {
    tb: &'a Testbed,
    name: String,
}

impl<'a> Release<'a> {
    fn install(tb: &'a Testbed, namespace: &str) -> anyhow::Result<Self> {
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
            .args(["template", namespace, &chart.to_string_lossy(), "--namespace", namespace])
            .args(values.iter().flat_map(|v| ["--set", v]))
            .output()
            .context("running helm")?;
        if !out.status.success() {
            bail!("helm template failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let release = Self { tb, name: namespace.to_owned() };
        tb.kubectl_ok(&["apply", "-f", "-"], Some(&String::from_utf8(out.stdout)?))?;
        Ok(release)
    }

    fn operator(&self) -> String {
        format!("system:serviceaccount:{0}:{0}-operator", self.name)
    }

    fn bridge(&self) -> String {
        format!("system:serviceaccount:{0}:{0}-billing-bridge", self.name)
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let selector = format!("app.kubernetes.io/instance={}", self.name);
        let kinds = "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings";
        let _ = self.tb.kubectl(&["delete", kinds, "-l", &selector, "--wait=false"], None);
    }
}

/// `kubectl auth can-i` as `user`: whether it may.
fn can_i(tb: &Testbed, user: &str, verb: &str, resource: &str, namespace: &str) -> anyhow::Result<bool> {
    let out = tb.kubectl_as(user, &["auth", "can-i", verb, resource, "-n", namespace], None)?;
    match out.stdout.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => bail!("kubectl auth can-i {verb} {resource} -n {namespace} as {user}: {out:?}"),
    }
}

fn apply_as(tb: &Testbed, user: &str, object: &Value) -> anyhow::Result<Output> {
    tb.kubectl_as(user, &["create", "-f", "-"], Some(&object.to_string()))
}

fn patch_as(tb: &Testbed, user: &str, ns: &str, target: &str, patch: Value) -> anyhow::Result<Output> {
    tb.kubectl_as(user, &["patch", target, "-n", ns, "--type=merge", "-p", &patch.to_string()], None)
}

fn bind(tb: &Testbed, ns: &str, name: &str, cluster_role: &str, user: &str) -> anyhow::Result<()> {
    let role = format!("--clusterrole={cluster_role}");
    let user = format!("--user={user}");
    tb.kubectl_ok(&["create", "rolebinding", name, "-n", ns, &role, &user], None).map(drop)
}

fn object(kind: &str, ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": kind,
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn example_in(kind: &str, ns: &str) -> anyhow::Result<Value> {
    let mut object = example_of(kind)?;
    object["metadata"]["namespace"] = ns.into();
    Ok(object)
}

/// Waits until the policies are in force: `probe` (a request only a policy refuses) is refused
/// with a message containing `refusal`.
fn wait_policy(what: &str, refusal: &str, mut probe: impl FnMut() -> anyhow::Result<Output>) -> anyhow::Result<()> {
    let mut last = None;
    let active = eventually(Duration::from_secs(30), || {
        let out = probe()?;
        let refused = !out.success && out.stderr.contains(refusal);
        last = Some(out);
        Ok(refused)
    })?;
    if !active {
        bail!("the {what} policy never refused the probe: {last:?}");
    }
    Ok(())
}

#[track_caller]
fn assert_refused(out: &Output, says: &str) {
    assert!(!out.success, "expected a refusal saying {says:?}, it was allowed: {out:?}");
    assert!(out.stderr.contains(says), "expected a refusal saying {says:?}, got: {}", out.stderr);
}

#[track_caller]
fn assert_allowed(out: &Output) {
    assert!(out.success, "expected it to be allowed: {}", out.stderr);
}

#[test]
fn a_tenant_edits_its_own_namespace_but_no_billing_field_and_a_viewer_only_reads() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let home = tb.namespace("rbac-tenant")?;
    let release = Release::install(&tb, &home.name)?;
    let a = tb.namespace("customer-rbac-a")?;
    let b = tb.namespace("customer-rbac-b")?;
    let (tenant, viewer, support, billing) = ("tenant-a", "viewer-a", "support-a", "billing-a");
    bind(&tb, &a.name, "tenant-edit", &format!("{}-tenant-edit", release.name), tenant)?;
    bind(&tb, &a.name, "tenant-view", &format!("{}-tenant-view", release.name), viewer)?;
    // someone whose role allows updates but not billing's verb, and billing staff who hold it
    let role = |name: &str, verbs: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": name, "namespace": a.name},
               "rules": [{"apiGroups": [GROUP], "resources": ["cloudpods", "domains", "mailboxes", "subscriptions"],
                          "verbs": verbs.split(',').collect::<Vec<_>>()}]})
        .to_string()
    };
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&role("support", "get,list,update,patch,create")))?;
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&role("billing", "get,list,update,patch,create,set-billing-fields")))?;
    tb.kubectl_ok(
        &["create", "rolebinding", "support", "-n", &a.name, "--role=support", &format!("--user={support}")],
        None,
    )?;
    tb.kubectl_ok(
        &["create", "rolebinding", "billing", "-n", &a.name, "--role=billing", &format!("--user={billing}")],
        None,
    )?;
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&example_in("CloudPod", &a.name)?.to_string()))?;
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&example_in("Domain", &a.name)?.to_string()))?;
    let pod = format!("cloudpod/{}", example_of("CloudPod")?["metadata"]["name"].as_str().unwrap_or_default());
    let domain = format!("domain/{}", example_of("Domain")?["metadata"]["name"].as_str().unwrap_or_default());

    wait_policy("CloudPod billing-fields", "spec.plan is set by billing", || {
        tb.kubectl_as(
            tenant,
            &[
                "patch",
                &pod,
                "-n",
                &a.name,
                "--dry-run=server",
                "--type=merge",
                "-p",
                r#"{"spec":{"plan":"enterprise"}}"#,
            ],
            None,
        )
    })?;

    // RBAC, as kubectl auth can-i says it
    for resource in ["dnszones", "certificates", "mailboxes", "secrets"] {
        let resource = if resource == "secrets" { resource.to_owned() } else { format!("{resource}.{GROUP}") };
        assert!(can_i(&tb, tenant, "create", &resource, &a.name)?, "tenant-edit may create {resource}");
        assert!(!can_i(&tb, tenant, "create", &resource, &b.name)?, "not in another namespace: {resource}");
    }
    for resource in ["domains", "subscriptions", "cloudpods"] {
        let resource = format!("{resource}.{GROUP}");
        assert!(!can_i(&tb, tenant, "create", &resource, &a.name)?, "tenant-edit may not create {resource}");
        assert!(can_i(&tb, tenant, "get", &resource, &a.name)?, "tenant-edit reads {resource}");
    }
    assert!(can_i(&tb, tenant, "patch", &format!("cloudpods.{GROUP}"), &a.name)?);
    assert!(!can_i(&tb, tenant, "delete", &format!("cloudpods.{GROUP}"), &a.name)?);
    assert!(!can_i(&tb, tenant, "patch", &format!("domains.{GROUP}"), &a.name)?);
    assert!(!can_i(&tb, tenant, "set-billing-fields", &format!("cloudpods.{GROUP}"), &a.name)?);
    assert!(!can_i(&tb, tenant, "get", "secrets", &b.name)?);
    assert!(can_i(&tb, billing, "set-billing-fields", &format!("domains.{GROUP}"), &a.name)?);

    // what a customer manages itself
    let zone = |ns: &str| {
        object(
            "DnsZone",
            ns,
            "zone",
            json!({"zone": format!("{ns}.example."), "nameservers": ["ns1.example.net."],
                                              "records": [{"name": "www", "type": "A", "values": ["192.0.2.1"]}]}),
        )
    };
    let cert = |ns: &str| {
        object(
            "Certificate",
            ns,
            "www",
            json!({"dnsNames": [format!("www.{ns}.example")], "secretName": "www-tls",
                                                 "issuer": "letsencrypt"}),
        )
    };
    let mailbox = |ns: &str, suspended: bool| {
        object(
            "Mailbox",
            ns,
            if suspended { "held" } else { "box" },
            json!({"address": format!("box@{ns}.example"), "quotaMiB": 100, "suspended": suspended,
                      "passwordSecretRef": {"name": "box-password", "key": "password"}}),
        )
    };
    let secret = |ns: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "box-password", "namespace": ns},
               "stringData": {"password": "Tenant-2026"}})
    };
    for make in [&zone as &dyn Fn(&str) -> Value, &cert, &|ns: &str| mailbox(ns, false), &secret] {
        assert_allowed(&apply_as(&tb, tenant, &make(&a.name))?);
        assert_refused(&apply_as(&tb, tenant, &make(&b.name))?, "forbidden");
    }
    assert_refused(&apply_as(&tb, tenant, &mailbox(&a.name, true))?, "spec.suspended is set by billing");
    assert_allowed(&patch_as(&tb, tenant, &a.name, "mailbox/box", json!({"spec": {"quotaMiB": 200}}))?);
    assert_refused(
        &patch_as(&tb, tenant, &a.name, "mailbox/box", json!({"spec": {"suspended": true}}))?,
        "spec.suspended is set by billing",
    );
    let mode = |value: &str| json!({"metadata": {"annotations": {"mpanel.migrahosting.com/reconcile-mode": value}}});
    assert_refused(
        &patch_as(&tb, tenant, &a.name, "mailbox/box", mode("Paused"))?,
        "mpanel.migrahosting.com/reconcile-mode] is set by support",
    );

    // what billing owns
    let mut bought = example_in("Domain", &a.name)?;
    bought["metadata"]["name"] = "another".into();
    assert_refused(&apply_as(&tb, tenant, &bought)?, "forbidden");
    let subscription = object(
        "Subscription",
        &a.name,
        "plan",
        json!({
        "customer": {"id": "a", "email": "a@example.net"}, "product": "web", "billing": {"state": "Paid"}}),
    );
    assert_refused(&apply_as(&tb, tenant, &subscription)?, "forbidden");
    assert_refused(
        &patch_as(
            &tb,
            tenant,
            &a.name,
            &pod,
            json!({"spec": {"resources": {"cores": 8, "memoryMiB": 8192, "diskGiB": 200}}}),
        )?,
        "spec.resources is set by billing; ask support to change your plan",
    );
    assert_refused(
        &patch_as(&tb, tenant, &a.name, &pod, json!({"spec": {"plan": "enterprise"}}))?,
        "spec.plan is set by billing; ask support to change your plan",
    );
    assert_refused(
        &patch_as(&tb, tenant, &a.name, &pod, json!({"spec": {"suspended": true}}))?,
        "spec.suspended is set by billing",
    );
    assert_refused(
        &patch_as(&tb, tenant, &a.name, &pod, json!({"spec": {"hostname": "other"}}))?,
        "spec.hostname is set by support",
    );
    assert_refused(
        &patch_as(&tb, tenant, &a.name, &pod, mode("ObserveOnly"))?,
        "mpanel.migrahosting.com/reconcile-mode] is set by support",
    );
    assert_allowed(&patch_as(&tb, tenant, &a.name, &pod, json!({"spec": {"powerState": "Stopped"}}))?);
    let power = tb.kubectl_ok(&["get", &pod, "-n", &a.name, "-o", "jsonpath={.spec.powerState} {.spec.plan}"], None)?;
    let plan = example_of("CloudPod")?["spec"]["plan"].as_str().unwrap_or_default().to_owned();
    assert_eq!(power, format!("Stopped {plan}"));
    assert_refused(
        &patch_as(&tb, tenant, &a.name, &domain, json!({"spec": {"paidUntil": "2099-01-01"}}))?,
        "forbidden",
    );

    // the policies hold where a role allows the update; billing's verb lifts them
    let paid = json!({"spec": {"paidUntil": "2099-01-01"}});
    assert_refused(&patch_as(&tb, support, &a.name, &domain, paid.clone())?, "spec.paidUntil is set by billing");
    assert_refused(
        &patch_as(
            &tb,
            support,
            &a.name,
            &domain,
            json!({"metadata": {"annotations": {"mpanel.migrahosting.com/adopt-registration": "true"}}}),
        )?,
        "mpanel.migrahosting.com/adopt-registration] is granted by support only",
    );
    assert_refused(&patch_as(&tb, support, &a.name, &domain, mode("Paused"))?, "reconcile-mode] is set by support");
    assert_refused(&apply_as(&tb, support, &bought)?, "Domains are registered by billing");
    assert_refused(&apply_as(&tb, support, &subscription)?, "Subscriptions are created by billing");
    assert_refused(
        &patch_as(&tb, support, &a.name, &pod, json!({"spec": {"plan": "enterprise"}}))?,
        "spec.plan is set by billing",
    );
    assert_allowed(&patch_as(&tb, billing, &a.name, &domain, paid)?);
    assert_allowed(&patch_as(&tb, billing, &a.name, &pod, json!({"spec": {"plan": "enterprise"}}))?);
    assert_allowed(&apply_as(&tb, billing, &subscription)?);
    let paid_until = tb.kubectl_ok(&["get", &domain, "-n", &a.name, "-o", "jsonpath={.spec.paidUntil}"], None)?;
    assert_eq!(paid_until, "2099-01-01");

    // tenant-view reads and writes nothing
    for resource in ["cloudpods", "domains", "dnszones", "mailboxes", "certificates", "subscriptions"] {
        let resource = format!("{resource}.{GROUP}");
        assert!(can_i(&tb, viewer, "list", &resource, &a.name)?, "tenant-view lists {resource}");
        for verb in ["create", "patch", "delete"] {
            assert!(!can_i(&tb, viewer, verb, &resource, &a.name)?, "tenant-view may not {verb} {resource}");
        }
    }
    assert!(!can_i(&tb, viewer, "get", "secrets", &a.name)?);
    assert!(!can_i(&tb, viewer, "list", &format!("cloudpods.{GROUP}"), &b.name)?);
    assert_allowed(&tb.kubectl_as(viewer, &["get", &pod, "-n", &a.name], None)?);
    assert_refused(&tb.kubectl_as(viewer, &["get", "secret", "box-password", "-n", &a.name], None)?, "forbidden");
    let mut other_zone = zone(&a.name);
    other_zone["metadata"]["name"] = "viewer-zone".into();
    assert_refused(&apply_as(&tb, viewer, &other_zone)?, "forbidden");
    assert_refused(&patch_as(&tb, viewer, &a.name, &pod, json!({"spec": {"powerState": "Running"}}))?, "forbidden");
    Ok(())
}

#[test]
fn the_operator_writes_only_secrets_labelled_as_its_own() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let home = tb.namespace("rbac-operator")?;
    let release = Release::install(&tb, &home.name)?;
    let ns = tb.namespace("customer-rbac-op")?;
    let operator = release.operator();
    let secret = |name: &str, labelled: bool| {
        let labels =
            if labelled { json!({"mpanel.migrahosting.com/managed-by": "mpanel-operator"}) } else { json!({}) };
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns.name, "labels": labels},
               "stringData": {"k": "v"}})
        .to_string()
    };
    wait_policy("operator-owned-secrets", "writes only Secrets labelled", || {
        tb.kubectl_as(&operator, &["create", "--dry-run=server", "-f", "-"], Some(&secret("probe", false)))
    })?;

    // RBAC lets it (the certificate controller needs Secret writes); the policy confines it
    assert!(can_i(&tb, &operator, "create", "secrets", &ns.name)?);
    assert!(can_i(&tb, &operator, "get", "secrets", &ns.name)?);
    assert!(can_i(&tb, &operator, "set-billing-fields", &format!("cloudpods.{GROUP}"), &ns.name)?);
    let create =
        |name: &str, labelled: bool| tb.kubectl_as(&operator, &["create", "-f", "-"], Some(&secret(name, labelled)));
    assert_refused(
        &create("plain", false)?,
        "writes only Secrets labelled mpanel.migrahosting.com/managed-by=mpanel-operator",
    );
    assert_allowed(&create("owned", true)?);

    tb.kubectl_ok(&["create", "-f", "-"], Some(&secret("customers", false)))?;
    let data = json!({"stringData": {"k": "overwritten"}});
    let label = json!({"metadata": {"labels": {"mpanel.migrahosting.com/managed-by": "mpanel-operator"}}});
    let unlabel = json!({"metadata": {"labels": {"mpanel.migrahosting.com/managed-by": null}}});
    assert_refused(
        &patch_as(&tb, &operator, &ns.name, "secret/customers", data.clone())?,
        "changes only Secrets labelled",
    );
    assert_refused(&patch_as(&tb, &operator, &ns.name, "secret/customers", label)?, "changes only Secrets labelled");
    assert_refused(
        &tb.kubectl_as(&operator, &["delete", "secret/customers", "-n", &ns.name], None)?,
        "changes only Secrets labelled",
    );
    let kept = tb.kubectl_ok(&["get", "secret/customers", "-n", &ns.name, "-o", "jsonpath={.data.k}"], None)?;
    assert_eq!(kept, "dg==", "the customer's Secret is unchanged");

    assert_allowed(&patch_as(&tb, &operator, &ns.name, "secret/owned", data)?);
    assert_refused(&patch_as(&tb, &operator, &ns.name, "secret/owned", unlabel)?, "writes only Secrets labelled");
    assert_allowed(&tb.kubectl_as(&operator, &["delete", "secret/owned", "-n", &ns.name], None)?);
    Ok(())
}

#[test]
fn the_billing_bridge_reads_no_secret_and_writes_only_in_customer_namespaces() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let home = tb.namespace("rbac-bridge")?;
    let release = Release::install(&tb, &home.name)?;
    let bridge = release.bridge();
    let customer = format!("customer-rbac-{}", std::process::id());
    let namespace = |name: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    wait_policy("bridge-customer-namespaces", "creates only namespaces named customer-*", || {
        tb.kubectl_as(&bridge, &["create", "--dry-run=server", "-f", "-"], Some(&namespace("rbac-probe").to_string()))
    })?;

    for ns in [home.name.as_str(), "default", "kube-system"] {
        for verb in ["get", "list", "watch"] {
            assert!(!can_i(&tb, &bridge, verb, "secrets", ns)?, "the bridge may not {verb} Secrets in {ns}");
        }
    }
    assert!(!can_i(&tb, &bridge, "get", "namespaces", "")?);
    let read = tb.kubectl_as(&bridge, &["get", "secret", "anything", "-n", &home.name], None)?;
    assert_refused(&read, "forbidden");
    assert_refused(&tb.kubectl_as(&bridge, &["get", "secrets", "-A"], None)?, "forbidden");

    let created = apply_as(&tb, &bridge, &namespace(&customer));
    let _cleanup = namespace_guard(&tb, &customer);
    assert_allowed(&created?);
    assert_refused(&apply_as(&tb, &bridge, &namespace(&customer))?, "AlreadyExists");
    assert_refused(
        &apply_as(&tb, &bridge, &namespace(&format!("rbac-{}", std::process::id())))?,
        "creates only namespaces named customer-*",
    );

    let credentials = |ns: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "credentials", "namespace": ns},
               "stringData": {"password": "Bridge-2026"}})
    };
    assert_allowed(&apply_as(&tb, &bridge, &credentials(&customer))?);
    // a second create finds it there without reading it: what the outbox relies on
    assert_refused(&apply_as(&tb, &bridge, &credentials(&customer))?, "AlreadyExists");
    assert_refused(&apply_as(&tb, &bridge, &credentials(&home.name))?, "writes only in namespaces named customer-*");

    let subscription = |ns: &str| {
        object(
            "Subscription",
            ns,
            "hosting",
            json!({
            "customer": {"id": "rbac", "email": "rbac@example.net"}, "product": "web", "billing": {"state": "Paid"}}),
        )
        .to_string()
    };
    let apply = |ns: &str| {
        tb.kubectl_as(
            &bridge,
            &["apply", "--server-side", "--field-manager=billing-bridge", "-f", "-"],
            Some(&subscription(ns)),
        )
    };
    assert_allowed(&apply(&customer)?);
    let billed =
        tb.kubectl_ok(&["get", "subscription/hosting", "-n", &customer, "-o", "jsonpath={.spec.billing.state}"], None)?;
    assert_eq!(billed, "Paid");
    assert_refused(&apply(&home.name)?, "writes only in namespaces named customer-*");
    assert_refused(&tb.kubectl_as(&bridge, &["create", "configmap", "x", "-n", &customer], None)?, "forbidden");
    Ok(())
}

#[test]
fn the_billing_bridge_changes_only_secrets_labelled_as_its_own() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let home = tb.namespace("rbac-bridge-secrets")?;
    let release = Release::install(&tb, &home.name)?;
    let bridge = release.bridge();
    let ns = tb.namespace("customer-rbac-br")?;
    let secret = |ns: &str, name: &str, owner: Option<&str>, password: &str| {
        let labels = owner.map_or_else(|| json!({}), |o| json!({"app.kubernetes.io/managed-by": o}));
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": labels},
               "stringData": {"mailbox-password": password}})
    };
    // a patch as the bridge, by server-side apply (`kubectl patch` reads the object first, which the
    // bridge may not)
    let change = |object: Value, dry_run: bool| {
        let mut args = vec!["apply", "--server-side", "--force-conflicts", "--field-manager=billing-bridge"];
        if dry_run {
            args.push("--dry-run=server");
        }
        args.extend(["-f", "-"]);
        tb.kubectl_as(&bridge, &args, Some(&object.to_string()))
    };
    let value = |name: &str, ns: &str| {
        let template = r#"go-template={{index .data "mailbox-password" | base64decode}}"#;
        tb.kubectl_ok(&["get", "secret", name, "-n", ns, "-o", template], None)
    };
    // the customer's own Secret, and one labelled as the bridge's outside customer namespaces
    tb.kubectl_ok(&["create", "-f", "-"], Some(&secret(&ns.name, "customers", None, "Kept").to_string()))?;
    let outside = secret(&home.name, "outside", Some("billing-bridge"), "Kept");
    tb.kubectl_ok(&["create", "-f", "-"], Some(&outside.to_string()))?;
    wait_policy("bridge-owned-secrets", "changes only Secrets labelled", || {
        change(secret(&ns.name, "customers", None, "Set-by-the-bridge"), true)
    })?;

    // RBAC lets it patch Secrets (never read them); the policy confines it to its own
    assert!(can_i(&tb, &bridge, "patch", "secrets", &ns.name)?);
    assert!(!can_i(&tb, &bridge, "get", "secrets", &ns.name)?);
    assert!(!can_i(&tb, &bridge, "update", "secrets", &ns.name)?);
    assert_refused(
        &change(secret(&ns.name, "customers", None, "Set-by-the-bridge"), false)?,
        "changes only Secrets labelled",
    );
    assert_refused(
        &change(secret(&ns.name, "customers", Some("billing-bridge"), "Kept"), false)?,
        "changes only Secrets labelled",
    );
    assert_eq!(value("customers", &ns.name)?, "Kept", "the customer's Secret is unchanged");
    assert_refused(
        &change(secret(&home.name, "outside", Some("billing-bridge"), "Set-by-the-bridge"), false)?,
        "writes only in namespaces named customer-*",
    );
    assert_eq!(value("outside", &home.name)?, "Kept");

    // its own: the password changes, the label stays
    assert_allowed(&apply_as(&tb, &bridge, &secret(&ns.name, "owned", Some("billing-bridge"), "Generated"))?);
    assert_allowed(&change(secret(&ns.name, "owned", Some("billing-bridge"), "Set-by-the-bridge"), false)?);
    assert_eq!(value("owned", &ns.name)?, "Set-by-the-bridge");
    assert_refused(&change(secret(&ns.name, "owned", Some("someone-else"), "Again"), false)?, "keeps the label");
    assert_eq!(value("owned", &ns.name)?, "Set-by-the-bridge");
    assert_refused(&tb.kubectl_as(&bridge, &["delete", "secret/owned", "-n", &ns.name], None)?, "forbidden");
    Ok(())
}

/// Deletes the namespace `name` (made by the test, not through TestNamespace) when dropped.
fn namespace_guard<'a>(tb: &'a Testbed, name: &str) -> impl Drop + 'a {
    struct Guard<'a>(&'a Testbed, String);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let _ = self.0.kubectl(&["delete", "namespace", &self.1, "--wait=false"], None);
        }
    }
    Guard(tb, name.to_owned())
}
