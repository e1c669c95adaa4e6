//! The API as a person meets it through kubectl on a real kube-apiserver: the examples are accepted,
//! bad manifests are refused with a message naming the field, and `get`/`explain` show the columns
//! and descriptions.

use mpanel_tests::manifest::{edit, place};
use mpanel_tests::{Testbed, example_files, example_objects, repo_root};
use serde_json::{Value, json};

/// `small` is contained in `big`: every field of `small` is in `big` with the same value (the
/// server may add defaults, but must not drop or change anything).
fn contained_in(small: &Value, big: &Value) -> bool {
    match (small, big) {
        (Value::Object(s), Value::Object(b)) => s.iter().all(|(k, v)| b.get(k).is_some_and(|bv| contained_in(v, bv))),
        (Value::Array(s), Value::Array(b)) => s.len() == b.len() && s.iter().zip(b).all(|(x, y)| contained_in(x, y)),
        _ => small == big,
    }
}

fn is_mpanel(obj: &Value) -> bool {
    obj["apiVersion"].as_str().is_some_and(|v| v.starts_with("mpanel.migrahosting.com/"))
}

fn resource_of(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or_default().to_lowercase();
    format!("{kind}.mpanel.migrahosting.com/{}", obj["metadata"]["name"].as_str().unwrap_or_default())
}

/// Deletes the examples applied for real when the test ends, however it ends: the shared
/// apiserver is also other tests', and an example's static address would stand in their way.
struct AppliedExamples<'a>(&'a Testbed);

impl Drop for AppliedExamples<'_> {
    fn drop(&mut self) {
        for file in example_files().unwrap_or_default().iter().filter(|f| !f.ends_with("00-namespaces.yaml")) {
            let file = file.to_string_lossy();
            let _ = self.0.kubectl(&["delete", "--ignore-not-found", "--wait=false", "-f", &file], None);
        }
    }
}

#[test]
fn every_example_is_accepted_by_a_server_dry_run_and_by_a_real_apply() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let examples = repo_root().join("examples");
    // the dry run of a namespaced object needs its namespace to exist
    tb.kubectl_ok(&["apply", "-f", &examples.join("00-namespaces.yaml").to_string_lossy()], None)?;
    let _applied = AppliedExamples(&tb);

    for file in example_files()? {
        let file = file.to_string_lossy();
        let dry = tb.kubectl_ok(&["apply", "--dry-run=server", "-f", &file], None)?;
        assert!(!dry.trim().is_empty(), "{file}: the dry run printed nothing");
        for line in dry.lines() {
            assert!(line.ends_with("(server dry run)"), "{file}: unexpected dry-run output {line:?}");
        }
        tb.kubectl_ok(&["apply", "-f", &file], None)?;
    }
    // the GitOps entry point renders and is accepted as a whole
    let kustomized = tb.kubectl_ok(&["apply", "--dry-run=server", "-k", &examples.to_string_lossy()], None)?;
    assert!(kustomized.contains("subscription.mpanel.migrahosting.com/business-hosting"), "{kustomized}");

    // what was applied is what the API server stores (plus defaults)
    for obj in example_objects()?.into_iter().filter(is_mpanel) {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        let stored: Value =
            serde_json::from_str(&tb.kubectl_ok(&["get", &resource_of(&obj), "-n", ns, "-o", "json"], None)?)?;
        assert!(
            contained_in(&obj["spec"], &stored["spec"]),
            "{}: stored spec {} differs from {}",
            resource_of(&obj),
            stored["spec"],
            obj["spec"]
        );
    }
    Ok(())
}

/// One refused change: applied to the example of `kind`, it must be refused naming `field`.
struct Case {
    name: &'static str,
    kind: &'static str,
    change: Change,
    field: &'static str,
}

enum Change {
    /// Create an object with these edits.
    Create(Vec<(&'static str, Option<Value>)>),
    /// Create the valid example, then apply it again with these edits.
    Update(Vec<(&'static str, Option<Value>)>),
    /// Create the valid example, write this status, then try to write the second one.
    Status(Value, Value),
}

fn set(pointer: &'static str, value: Value) -> (&'static str, Option<Value>) {
    (pointer, Some(value))
}

fn unset(pointer: &'static str) -> (&'static str, Option<Value>) {
    (pointer, None)
}

fn cases() -> Vec<Case> {
    use Change::{Create, Status, Update};
    let case = |name, kind, change, field| Case { name, kind, change, field };
    vec![
        // CloudPod
        case(
            "cpod-cores-over-64",
            "CloudPod",
            Create(vec![set("/spec/resources/cores", json!(65))]),
            "spec.resources.cores",
        ),
        case(
            "cpod-cores-zero",
            "CloudPod",
            Create(vec![set("/spec/resources/cores", json!(0))]),
            "spec.resources.cores",
        ),
        case(
            "cpod-memory-too-small",
            "CloudPod",
            Create(vec![set("/spec/resources/memoryMiB", json!(128))]),
            "spec.resources.memoryMiB",
        ),
        case("cpod-unknown-type", "CloudPod", Create(vec![set("/spec/type", json!("kvm"))]), "spec.type"),
        case("cpod-bad-hostname", "CloudPod", Create(vec![set("/spec/hostname", json!("Web_1"))]), "spec.hostname"),
        case(
            "cpod-bad-address",
            "CloudPod",
            Create(vec![set("/spec/network/ipv4/address", json!("300.1.1.1/24"))]),
            "spec.network.ipv4.address",
        ),
        case(
            "cpod-address-without-prefix",
            "CloudPod",
            Create(vec![set("/spec/network/ipv4/address", json!("203.0.113.10"))]),
            "spec.network.ipv4.address",
        ),
        case(
            "cpod-address-and-pool",
            "CloudPod",
            Create(vec![set("/spec/network/ipv4/pool", json!("public-v4"))]),
            "spec.network.ipv4",
        ),
        case(
            "cpod-address-no-gateway",
            "CloudPod",
            Create(vec![unset("/spec/network/ipv4/gateway")]),
            "spec.network.ipv4.gateway",
        ),
        case(
            "cpod-vlan-out-of-range",
            "CloudPod",
            Create(vec![set("/spec/network/vlan", json!(5000))]),
            "spec.network.vlan",
        ),
        case(
            "cpod-custom-plan-without-resources",
            "CloudPod",
            Create(vec![unset("/spec/resources"), set("/spec/plan", json!("custom"))]),
            "spec.resources",
        ),
        case(
            "cpod-bad-ssh-key",
            "CloudPod",
            Create(vec![set("/spec/sshKeys", json!(["not a key"]))]),
            "spec.sshKeys[0]",
        ),
        case(
            "cpod-disk-shrinks",
            "CloudPod",
            Update(vec![set("/spec/resources/diskGiB", json!(40))]),
            "spec.resources.diskGiB",
        ),
        case("cpod-type-changes", "CloudPod", Update(vec![set("/spec/type", json!("qemu"))]), "spec.type"),
        case("cpod-template-changes", "CloudPod", Update(vec![set("/spec/template", json!("9000"))]), "spec.template"),
        case("cpod-vmid-changes", "CloudPod", Status(json!({"vmid": 120}), json!({"vmid": 121})), "status.vmid"),
        // Domain
        case("dom-uppercase-name", "Domain", Create(vec![set("/spec/name", json!("Example.COM"))]), "spec.name"),
        case(
            "dom-years-over-10",
            "Domain",
            Create(vec![set("/spec/registration/years", json!(11))]),
            "spec.registration.years",
        ),
        case(
            "dom-transfer-no-authcode",
            "Domain",
            Create(vec![set("/spec/registration/mode", json!("Transfer"))]),
            "spec.registration.authCodeSecretRef",
        ),
        case(
            "dom-unknown-mode",
            "Domain",
            Create(vec![set("/spec/registration/mode", json!("Steal"))]),
            "spec.registration.mode",
        ),
        case(
            "dom-bad-paid-until",
            "Domain",
            Create(vec![set("/spec/paidUntil", json!("2027-13-01"))]),
            "spec.paidUntil",
        ),
        case(
            "dom-one-nameserver",
            "Domain",
            Create(vec![set("/spec/nameservers", json!(["ns1.migrahosting.com"]))]),
            "spec.nameservers",
        ),
        case(
            "dom-bad-country",
            "Domain",
            Create(vec![set("/spec/registration/contact/country", json!("USA"))]),
            "spec.registration.contact.country",
        ),
        case("dom-name-changes", "Domain", Update(vec![set("/spec/name", json!("example.org"))]), "spec.name"),
        // DnsZone
        case("dz-bad-zone", "DnsZone", Create(vec![set("/spec/zone", json!("not a zone"))]), "spec.zone"),
        case(
            "dz-values-and-ref",
            "DnsZone",
            Create(vec![set("/spec/records/0/cloudPodRef", json!({"name": "web-1"}))]),
            "spec.records[0]",
        ),
        case("dz-neither-values-nor-ref", "DnsZone", Create(vec![unset("/spec/records/0/values")]), "spec.records[0]"),
        case(
            "dz-ref-on-cname",
            "DnsZone",
            Create(vec![unset("/spec/records/1/values"), set("/spec/records/1/cloudPodRef", json!({"name": "web-1"}))]),
            "spec.records[1].cloudPodRef",
        ),
        case(
            "dz-unknown-type",
            "DnsZone",
            Create(vec![set("/spec/records/0/type", json!("SPF"))]),
            "spec.records[0].type",
        ),
        case(
            "dz-duplicate-rrset",
            "DnsZone",
            Create(vec![set("/spec/records/3", json!({"name": "www", "type": "CNAME", "values": ["other.example."]}))]),
            "spec.records[3]",
        ),
        case("dz-ttl-zero", "DnsZone", Create(vec![set("/spec/records/0/ttl", json!(0))]), "spec.records[0].ttl"),
        case(
            "dz-bad-record-name",
            "DnsZone",
            Create(vec![set("/spec/records/0/name", json!("bad name"))]),
            "spec.records[0].name",
        ),
        case("dz-bad-spf", "DnsZone", Create(vec![set("/spec/mail/spf", json!("spf1 mx"))]), "spec.mail.spf"),
        case("dz-no-nameservers", "DnsZone", Create(vec![set("/spec/nameservers", json!([]))]), "spec.nameservers"),
        case("dz-zone-changes", "DnsZone", Update(vec![set("/spec/zone", json!("example.org."))]), "spec.zone"),
        // Mailbox
        case(
            "mbox-bad-address",
            "Mailbox",
            Create(vec![set("/spec/address", json!("not-an-address"))]),
            "spec.address",
        ),
        case("mbox-quota-zero", "Mailbox", Create(vec![set("/spec/quotaMiB", json!(0))]), "spec.quotaMiB"),
        case(
            "mbox-alias-is-self",
            "Mailbox",
            Create(vec![set("/spec/aliases", json!(["info@example.com"]))]),
            "spec.aliases",
        ),
        case("mbox-no-password", "Mailbox", Create(vec![unset("/spec/passwordSecretRef")]), "spec.passwordSecretRef"),
        case(
            "mbox-address-changes",
            "Mailbox",
            Update(vec![set("/spec/address", json!("sales@example.com"))]),
            "spec.address",
        ),
        // Certificate
        case("cert-no-names", "Certificate", Create(vec![set("/spec/dnsNames", json!([]))]), "spec.dnsNames"),
        case(
            "cert-double-wildcard",
            "Certificate",
            Create(vec![set("/spec/dnsNames", json!(["*.*.example.com"]))]),
            "spec.dnsNames[0]",
        ),
        case(
            "cert-bad-renew-before",
            "Certificate",
            Create(vec![set("/spec/renewBefore", json!("thirty days"))]),
            "spec.renewBefore",
        ),
        case(
            "cert-rsa-size-256",
            "Certificate",
            Create(vec![set("/spec/privateKey/algorithm", json!("RSA"))]),
            "spec.privateKey.size",
        ),
        case(
            "cert-unknown-algorithm",
            "Certificate",
            Create(vec![set("/spec/privateKey/algorithm", json!("DSA"))]),
            "spec.privateKey.algorithm",
        ),
        case("cert-no-secret-name", "Certificate", Create(vec![unset("/spec/secretName")]), "spec.secretName"),
        // Subscription
        case(
            "sub-unknown-billing-state",
            "Subscription",
            Create(vec![set("/spec/billing/state", json!("Maybe"))]),
            "spec.billing.state",
        ),
        case(
            "sub-bad-invoice",
            "Subscription",
            Create(vec![set("/spec/billing/invoice", json!("INV-1"))]),
            "spec.billing.invoice",
        ),
        case(
            "sub-suspended-no-reason",
            "Subscription",
            Create(vec![set("/spec/suspension", json!({"suspended": true}))]),
            "spec.suspension.reason",
        ),
        case(
            "sub-bad-email",
            "Subscription",
            Create(vec![set("/spec/customer/email", json!("nope"))]),
            "spec.customer.email",
        ),
        case(
            "sub-template-too-many-cores",
            "Subscription",
            Create(vec![set("/spec/resources/cloudPods/0/spec/resources/cores", json!(100))]),
            "spec.resources.cloudPods[0].spec.resources.cores",
        ),
        case(
            "sub-duplicate-child-name",
            "Subscription",
            Create(vec![set(
                "/spec/resources/mailboxes/1",
                json!({"name": "admin-example-net", "spec": {"address": "b@example.net", "quotaMiB": 1, "passwordSecretRef": {"name": "p", "key": "k"}}}),
            )]),
            "spec.resources.mailboxes[1]",
        ),
        case(
            "sub-customer-changes",
            "Subscription",
            Update(vec![set("/spec/customer/id", json!("initech"))]),
            "spec.customer.id",
        ),
        case(
            "sub-template-zone-changes",
            "Subscription",
            Update(vec![set("/spec/resources/dnsZones/0/spec/zone", json!("example.org."))]),
            "spec.resources.dnsZones[0].spec.zone",
        ),
    ]
}

fn edited(base: &Value, edits: &[(&'static str, Option<Value>)]) -> Value {
    let mut out = base.clone();
    for (pointer, value) in edits {
        edit(&mut out, pointer, value.clone());
    }
    out
}

/// Runs one case; returns what went wrong, if anything.
fn check(tb: &Testbed, ns: &str, case: &Case) -> anyhow::Result<Option<String>> {
    let plural = format!("{}.mpanel.migrahosting.com", case.kind.to_lowercase());
    let base = place(mpanel_tests::example_of(case.kind)?, ns, case.name);
    let resource = format!("{plural}/{}", case.name);
    let apply = |obj: &Value| tb.kubectl(&["apply", "-f", "-"], Some(&obj.to_string()));
    let stored = || -> anyhow::Result<Option<Value>> {
        let out = tb.kubectl(&["get", &resource, "-n", ns, "-o", "json"], None)?;
        Ok(if out.success { Some(serde_json::from_str(&out.stdout)?) } else { None })
    };

    let (refusal, survivor_ok) = match &case.change {
        Change::Create(edits) => {
            let bad = edited(&base, edits);
            let out = apply(&bad)?;
            (out, stored()?.is_none())
        }
        Change::Update(edits) => {
            tb.kubectl_ok(&["apply", "-f", "-"], Some(&base.to_string()))?;
            let bad = edited(&base, edits);
            let out = apply(&bad)?;
            let after = stored()?.unwrap_or_default();
            let unchanged = edits.iter().all(|(p, _)| after.pointer(p) == base.pointer(p));
            (out, unchanged)
        }
        Change::Status(first, second) => {
            tb.kubectl_ok(&["apply", "-f", "-"], Some(&base.to_string()))?;
            let patch = |status: &Value| {
                let body = json!({ "status": status }).to_string();
                tb.kubectl(&["patch", &resource, "-n", ns, "--subresource=status", "--type=merge", "-p", &body], None)
            };
            let first_out = patch(first)?;
            if !first_out.success {
                return Ok(Some(format!("the first status write was refused: {}", first_out.stderr.trim())));
            }
            let out = patch(second)?;
            let after = stored()?.unwrap_or_default();
            let unchanged = contained_in(first, &after["status"]);
            (out, unchanged)
        }
    };
    let message = refusal.stderr.trim();
    Ok(if refusal.success {
        Some(format!("was accepted: {}", refusal.stdout.trim()))
    } else if !message.contains("is invalid") {
        Some(format!("was refused for another reason: {message}"))
    } else if !message.contains(&format!("{}:", case.field)) && !message.contains(&format!("{}[", case.field)) {
        Some(format!("refusal does not name {}: {message}", case.field))
    } else if !survivor_ok {
        Some("the refused change was written anyway".to_owned())
    } else {
        None
    })
}

#[test]
fn invalid_manifests_are_refused_with_a_message_naming_the_field_and_nothing_is_written() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let ns = tb.namespace("invalid")?;
    let cases = cases();
    assert!(cases.len() >= 25);
    for kind in ["CloudPod", "Domain", "DnsZone", "Mailbox", "Certificate", "Subscription"] {
        assert!(cases.iter().any(|c| c.kind == kind), "no case for {kind}");
    }

    let mut problems = Vec::new();
    std::thread::scope(|scope| {
        let results: Vec<_> = cases
            .chunks(cases.len().div_ceil(6))
            .map(|chunk| scope.spawn(|| chunk.iter().map(|c| (c.name, check(&tb, &ns.name, c))).collect::<Vec<_>>()))
            .collect();
        for handle in results {
            for (name, result) in handle.join().unwrap_or_default() {
                match result {
                    Ok(None) => {}
                    Ok(Some(problem)) => problems.push(format!("{name}: {problem}")),
                    Err(e) => problems.push(format!("{name}: {e:#}")),
                }
            }
        }
    });
    assert!(problems.is_empty(), "{} of {} cases failed:\n{}", problems.len(), cases.len(), problems.join("\n"));
    Ok(())
}

#[test]
fn a_field_the_operator_would_not_act_on_is_refused_as_unknown() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let ns = tb.namespace("unknown-field")?;
    // one Proxmox cluster per operator: a CloudPod cannot name another one
    let mut pod = place(mpanel_tests::example_of("CloudPod")?, &ns.name, "elsewhere");
    pod["spec"]["placement"] = json!({"cluster": "other", "nodes": ["pve1"]});
    let out = tb.kubectl(&["apply", "-f", "-"], Some(&pod.to_string()))?;
    assert!(!out.success, "accepted: {}", out.stdout);
    assert!(out.stderr.contains("unknown field \"spec.placement.cluster\""), "{}", out.stderr);
    let stored = tb.kubectl(&["get", "cloudpod", "elsewhere", "-n", &ns.name], None)?;
    assert!(!stored.success, "the refused CloudPod was stored");
    Ok(())
}

#[test]
fn kubectl_get_mpanel_lists_every_kind_with_its_columns() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let ns = tb.namespace("columns")?;
    for obj in example_objects()?.into_iter().filter(|o| o["kind"] != "Namespace") {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        tb.kubectl_ok(&["apply", "-f", "-"], Some(&place(obj, &ns.name, &name).to_string()))?;
    }
    let out = tb.kubectl_ok(&["get", "mpanel", "-A"], None)?;
    let headers = [
        "NAMESPACE NAME PHASE READY PLAN VMID NODE IP AGE",
        "NAMESPACE NAME DOMAIN PHASE READY EXPIRES AGE",
        "NAMESPACE NAME ZONE PHASE READY RECORDS AGE",
        "NAMESPACE NAME ADDRESS PHASE READY QUOTA-MIB AGE",
        "NAMESPACE NAME PHASE READY SECRET NOT-AFTER AGE",
        "NAMESPACE NAME CUSTOMER PRODUCT BILLING PHASE READY AGE",
    ];
    let lines: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for header in headers {
        assert!(lines.iter().any(|l| l == header), "no header {header:?} in:\n{out}");
    }
    let rows = [
        ("cloudpod.mpanel.migrahosting.com/web-1", "pro"),
        ("domain.mpanel.migrahosting.com/example-com", "example.com"),
        ("dnszone.mpanel.migrahosting.com/example-com", "example.com."),
        ("mailbox.mpanel.migrahosting.com/info-example-com", "info@example.com 2048"),
        ("certificate.mpanel.migrahosting.com/example-com-tls", "example-com-tls"),
        ("subscription.mpanel.migrahosting.com/business-hosting", "globex business-hosting Paid"),
    ];
    for (name, shown) in rows {
        let prefix = format!("{} {name} ", ns.name);
        assert!(
            lines.iter().any(|l| l.starts_with(&prefix) && l.contains(shown)),
            "no row for {name} showing {shown:?} in:\n{out}"
        );
    }
    Ok(())
}

/// kubectl explain wraps descriptions at 80 columns: compare with runs of white space folded.
fn folded(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn kubectl_explain_prints_the_field_descriptions() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let explain = |path: &str| -> anyhow::Result<String> { Ok(folded(&tb.kubectl_ok(&["explain", path], None)?)) };
    let resources = explain("cloudpod.spec.resources")?;
    for wanted in [
        "CPU, memory and disk of the guest, overriding the plan's. Cores and memory may go up or down; the disk only grows.",
        "cores <integer> -required- Virtual CPU cores, 1–64.",
        "memoryMiB <integer> -required- Memory in MiB, 256–524288.",
        "diskGiB <integer> -required- Root disk in GiB, 1–16384. It can grow but never shrink.",
    ] {
        assert!(resources.contains(wanted), "`kubectl explain cloudpod.spec.resources` lacks {wanted:?}:\n{resources}");
    }
    let record_ref = explain("dnszone.spec.records.cloudPodRef")?;
    assert!(record_ref.contains("(A/AAAA only); follows it when it changes."), "{record_ref}");
    // short names work too
    let quota = explain("mbox.spec.quotaMiB")?;
    assert!(quota.contains("Storage quota in MiB, 1–1048576."), "{quota}");
    Ok(())
}
