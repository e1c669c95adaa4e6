//! What costs money stays billing's, attacked from a customer namespace. The attacker acts as a
//! user bound to the chart's `tenant-edit` role in its own namespace, with the chart's
//! billing-fields admission policies in force; billing's writes are stood in for by the testbed's
//! admin. Every attack is refused by the API server with a message that says why, and neither the
//! victim's objects nor the attacker's own are changed. No operator runs: these are refusals at
//! admission, before anything reaches a provider.

mod support;

use std::time::Duration;

use anyhow::bail;
use mpanel_tests::{Output, Testbed, eventually, example_of};
use serde_json::{Value, json};
use support::get_object;
use support::tenants::{Customer, TenantRoles, assert_refused};

const NETWORK_IS_BILLINGS: &str = "spec.network is set by billing; ask support to change your addresses";
const SUSPENSION_IS_BILLINGS: &str = "spec.suspended is set by billing; pay the open invoice, or ask support";
const ADOPT: &str = "mpanel.migrahosting.com/adopt-registration";

/// Writes the object as billing does (a subject holding `set-billing-fields`: the admin here).
fn billing_applies(tb: &Testbed, customer: &Customer, kind: &str, name: &str, spec: Value) -> anyhow::Result<()> {
    tb.kubectl_ok(&["apply", "-f", "-"], Some(&customer.object(kind, name, spec).to_string())).map(drop)
}

/// The object as the admin reads it: spec, metadata and resourceVersion, to compare before and after.
fn snapshot(tb: &Testbed, customer: &Customer, kind: &str, name: &str) -> anyhow::Result<Value> {
    get_object(tb, customer.name(), kind, name)
}

/// Whether the object exists, as the admin sees it.
fn exists(tb: &Testbed, customer: &Customer, kind: &str, name: &str) -> anyhow::Result<bool> {
    Ok(tb.kubectl(&["get", kind, name, "-n", customer.name()], None)?.success)
}

/// Waits until the API server enforces the billing-fields policies: a server-side dry run of
/// `patch` on `target` by `customer` is refused saying `says`.
fn wait_enforced(customer: &Customer, target: &str, patch: &Value, says: &str) -> anyhow::Result<()> {
    let mut last: Option<Output> = None;
    let probe = || {
        let out = customer.kubectl(&["patch", target, "--dry-run=server", "--type=merge", "-p", &patch.to_string()])?;
        let refused = !out.success && out.stderr.contains(says);
        last = Some(out);
        Ok(refused)
    };
    if !eventually(Duration::from_secs(30), probe)? {
        bail!("the billing-fields policies were never enforced on {target}: {last:?}");
    }
    Ok(())
}

#[track_caller]
fn assert_names_no_victim(out: &Output, victim: &Customer) {
    assert!(!out.stderr.contains(victim.name()), "the refusal names the victim's namespace: {}", out.stderr);
}

/// A CloudPod as billing sells it (the example's), with the static address `address`.
fn cloudpod(address: &str) -> anyhow::Result<Value> {
    let mut spec = example_of("CloudPod")?["spec"].clone();
    spec["network"]["ipv4"]["address"] = address.into();
    Ok(spec)
}

/// A Domain registration as billing sells it (the example's), for `name`, paid until `paid_until`.
fn domain(name: &str, paid_until: &str) -> anyhow::Result<Value> {
    let mut spec = example_of("Domain")?["spec"].clone();
    spec["name"] = name.into();
    spec["paidUntil"] = paid_until.into();
    Ok(spec)
}

/// The CloudPods anywhere in the cluster that hold `address`, as `namespace/name`.
fn holders_of(tb: &Testbed, address: &str) -> anyhow::Result<Vec<String>> {
    let pods: Value = serde_json::from_str(&tb.kubectl_ok(&["get", "cloudpods", "-A", "-o", "json"], None)?)?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["spec"]["network"]["ipv4"]["address"] == address)
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                p["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect())
}

/// A duplicate address written by staff or billing, who may set `spec.network`, passes admission
/// and is refused by the operator instead (`AddressInUse`, in operator/tests/cloudpod.rs).
#[test]
fn a_tenant_can_neither_give_its_cloudpod_another_namespaces_static_address_nor_create_a_cloudpod() -> anyhow::Result<()>
{
    let tb = Testbed::from_env()?;
    let roles = TenantRoles::apply_with_billing_policies(&tb)?;
    let victim = Customer::new(&roles, "billing-pod-victim")?;
    let attacker = Customer::new(&roles, "billing-pod-attacker")?;
    // addresses no other test's CloudPod uses: operators of other tests index addresses cluster-wide
    let (theirs, mine) = ("192.0.2.77/24", "192.0.2.78/24");
    billing_applies(&tb, &victim, "CloudPod", "web", cloudpod(theirs)?)?;
    billing_applies(&tb, &attacker, "CloudPod", "own", cloudpod(mine)?)?;
    let take = json!({"spec": {"network": {"ipv4": {"address": theirs}}}});
    wait_enforced(&attacker, "cloudpod/own", &take, NETWORK_IS_BILLINGS)?;
    let victim_before = snapshot(&tb, &victim, "cloudpod", "web")?;
    let attacker_before = snapshot(&tb, &attacker, "cloudpod", "own")?;

    let patched = attacker.try_patch("cloudpod/own", take)?;
    assert_refused(&patched, NETWORK_IS_BILLINGS);
    assert_names_no_victim(&patched, &victim);
    let applied = attacker.try_apply("CloudPod", "own", cloudpod(theirs)?)?;
    assert_refused(&applied, NETWORK_IS_BILLINGS);
    let created = attacker.try_apply("CloudPod", "twin", cloudpod(theirs)?)?;
    assert_refused(&created, r#"cannot create resource "cloudpods""#);
    assert_names_no_victim(&created, &victim);

    assert_eq!(snapshot(&tb, &victim, "cloudpod", "web")?, victim_before, "the victim's CloudPod is unchanged");
    assert_eq!(snapshot(&tb, &attacker, "cloudpod", "own")?, attacker_before, "the attacker's CloudPod is unchanged");
    assert!(!exists(&tb, &attacker, "cloudpod", "twin")?, "no CloudPod twin was made");
    let victims_pod = format!("{}/web", victim.name());
    assert_eq!(holders_of(&tb, theirs)?, [victims_pod], "only the victim's CloudPod holds {theirs}");
    Ok(())
}

#[test]
fn a_tenant_can_neither_adopt_a_registration_nor_extend_one_without_paying() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let roles = TenantRoles::apply_with_billing_policies(&tb)?;
    let victim = Customer::new(&roles, "billing-domain-victim")?;
    let attacker = Customer::new(&roles, "billing-domain-attacker")?;
    let tail = attacker.name().rsplit('-').take(2).collect::<Vec<_>>().join("-");
    let (paid, own) = (format!("paid-{tail}.test"), format!("own-{tail}.test"));
    billing_applies(&tb, &victim, "Domain", "paid", domain(&paid, "2030-01-01")?)?;
    billing_applies(&tb, &attacker, "Domain", "own", domain(&own, "2027-01-01")?)?;
    let victim_before = snapshot(&tb, &victim, "domain", "paid")?;
    let attacker_before = snapshot(&tb, &attacker, "domain", "own")?;

    // the victim's registration (in the account, orphaned once its Domain is deleted), claimed with
    // the annotation that hands a registration to a Domain
    let mut adopt = attacker.object("Domain", "adopted", domain(&paid, "2030-01-01")?);
    adopt["metadata"]["annotations"] = json!({ADOPT: "true"});
    let created = attacker.try_apply_object(&adopt)?;
    assert_refused(&created, r#"cannot create resource "domains""#);
    assert_names_no_victim(&created, &victim);
    // its own, unpaid registration: adopted, or paid for ten more years
    let annotated = attacker.kubectl(&["annotate", "domain/own", &format!("{ADOPT}=true")])?;
    assert_refused(&annotated, r#"cannot patch resource "domains""#);
    let extended = attacker.try_patch("domain/own", json!({"spec": {"paidUntil": "2037-01-01"}}))?;
    assert_refused(&extended, r#"cannot patch resource "domains""#);
    let mut replaced = attacker.get("domain", "own")?;
    replaced["spec"]["paidUntil"] = "2037-01-01".into();
    let replaced = attacker.tb.kubectl_as(&attacker.user, &["replace", "-f", "-"], Some(&replaced.to_string()))?;
    assert_refused(&replaced, r#"cannot update resource "domains""#);

    assert!(!exists(&tb, &attacker, "domain", "adopted")?, "no Domain adopted was made");
    assert_eq!(snapshot(&tb, &victim, "domain", "paid")?, victim_before, "the victim's Domain is unchanged");
    let after = snapshot(&tb, &attacker, "domain", "own")?;
    assert_eq!(after, attacker_before, "the attacker's Domain is unchanged");
    assert_eq!(after["spec"]["paidUntil"], "2027-01-01");
    assert!(after["metadata"]["annotations"].get(ADOPT).is_none(), "{:#}", after["metadata"]);
    Ok(())
}

#[test]
fn a_tenant_cannot_lift_the_suspension_billing_put_on_its_mailbox() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let roles = TenantRoles::apply_with_billing_policies(&tb)?;
    let attacker = Customer::new(&roles, "billing-mail-attacker")?;
    let mut spec = example_of("Mailbox")?["spec"].clone();
    spec["address"] = format!("info@{}.test", attacker.name()).into();
    spec["suspended"] = true.into();
    billing_applies(&tb, &attacker, "Mailbox", "info", spec.clone())?;
    let lift = json!({"spec": {"suspended": false}});
    wait_enforced(&attacker, "mailbox/info", &lift, SUSPENSION_IS_BILLINGS)?;
    let before = snapshot(&tb, &attacker, "mailbox", "info")?;

    assert_refused(&attacker.try_patch("mailbox/info", lift)?, SUSPENSION_IS_BILLINGS);
    let removed = attacker.try_patch("mailbox/info", json!({"spec": {"suspended": null}}))?;
    assert_refused(&removed, SUSPENSION_IS_BILLINGS);
    // the whole Mailbox applied unsuspended, alongside a change the customer may make (its quota)
    spec["suspended"] = false.into();
    spec["quotaMiB"] = 4096.into();
    assert_refused(&attacker.try_apply("Mailbox", "info", spec)?, SUSPENSION_IS_BILLINGS);

    let after = snapshot(&tb, &attacker, "mailbox", "info")?;
    assert_eq!(after, before, "the Mailbox is unchanged");
    assert_eq!(after["spec"]["suspended"], true);
    Ok(())
}
