//! From the ledger to the Subscription resource: product templates filled in at purchase, and the
//! whole object the bridge applies for a ledger subscription.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::api::ObjectMeta;
use mpanel_crds::subscription::{
    Billing, BillingState, Customer, ResourceTemplates, Subscription, SubscriptionSpec, Suspension, SuspensionReason,
};
use serde_json::Value;

use crate::ledger::subscriptions::{self, PaidTerm};
use crate::ledger::{Cycle, LedgerError};
use crate::periods;

/// The label that ties a Subscription resource to its ledger subscription (its id).
pub const LEDGER_LABEL: &str = "billing.mpanel.migrahosting.com/subscription";
pub const FIELD_MANAGER: &str = "billing-bridge";
/// The key of the generated mailbox password in the `${credentialsSecret}` Secret.
pub const MAILBOX_PASSWORD_KEY: &str = "mailbox-password";

/// The values a template's `${...}` placeholders stand for.
#[derive(Debug, Clone)]
pub struct Placeholders {
    /// The Subscription resource's name.
    pub subscription: String,
    pub customer: String,
    pub email: String,
    pub domain: Option<String>,
}

impl Placeholders {
    /// The Secret the bridge creates with generated credentials (a mailbox password).
    pub fn credentials_secret(&self) -> String {
        credentials_secret(&self.subscription)
    }

    fn value(&self, key: &str) -> Result<String, String> {
        let domain = || self.domain.clone().ok_or_else(|| "it needs a domain: give one at checkout".to_owned());
        Ok(match key {
            "subscription" => self.subscription.clone(),
            "customer" => self.customer.clone(),
            "email" => self.email.clone(),
            "domain" => domain()?,
            "domainLabel" => domain()?.replace('.', "-"),
            "credentialsSecret" => self.credentials_secret(),
            other => return Err(format!("unknown placeholder ${{{other}}}")),
        })
    }
}

pub fn credentials_secret(subscription: &str) -> String {
    format!("{subscription}-credentials")
}

/// The template with every placeholder filled in.
pub fn fill(template: &Value, with: &Placeholders) -> Result<Value, String> {
    Ok(match template {
        Value::String(s) => Value::String(fill_str(s, with)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, with)).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| Ok((k.clone(), fill(v, with)?))).collect::<Result<_, String>>()?)
        }
        other => other.clone(),
    })
}

fn fill_str(s: &str, with: &Placeholders) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| format!("unclosed placeholder in {s:?}"))?;
        out.push_str(&with.value(&rest[start + 2..start + end])?);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Several filled templates as one `spec.resources`: the lists of each kind are joined.
pub fn merge(templates: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for template in templates {
        let Value::Object(map) = template else { continue };
        for (kind, list) in map {
            let entry = out.entry(kind.clone()).or_insert_with(|| Value::Array(Vec::new()));
            if let (Value::Array(acc), Value::Array(items)) = (entry, list) {
                acc.extend(items.iter().cloned());
            }
        }
    }
    Value::Object(out)
}

/// Whether a product template makes valid resources: filled with sample values, it must read as a
/// Subscription's `spec.resources`.
pub fn check_template(template: &Value) -> Result<(), String> {
    let sample = Placeholders {
        subscription: "sub-0123456789".into(),
        customer: "c0123456789".into(),
        email: "someone@example.com".into(),
        domain: Some("example.com".into()),
    };
    let filled = fill(template, &sample)?;
    serde_json::from_value::<ResourceTemplates>(filled).map(drop).map_err(|e| format!("template: {e}"))
}

/// The ledger's view of a subscription that its resource carries.
pub struct Billed<'a> {
    pub subscription: &'a subscriptions::Subscription,
    pub customer_handle: &'a str,
    pub customer_email: &'a str,
    pub product_slug: &'a str,
    /// The last paid invoice's number.
    pub invoice: Option<&'a str>,
    /// The end of the period paid for.
    pub paid_until: Option<DateTime<Utc>>,
}

/// The Subscription's `billing.paidUntil`. A Domain renews at the registrar until its expiry
/// reaches this date, so for a subscription with domains it is the registration's expiry reached
/// by the years paid: the first invoice's registration years, then a year for every year of paid
/// renewals, counted from the order's date (the bridge does not see the registrar's expiry; a
/// name is registered on or after the day it was ordered, so this date never lies beyond what
/// was paid). Otherwise it is the end of the current period, or before activation a cycle after
/// `paid_at`, the last payment.
pub fn paid_until(
    sub: &subscriptions::Subscription,
    term: &PaidTerm,
    paid_at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, LedgerError> {
    let cycle: Cycle = sub.cycle.parse()?;
    let Some(registered_years) = registration_years(sub) else {
        return Ok(sub.current_period_end.or_else(|| paid_at.map(|at| cycle.after(at))));
    };
    let renewed_years = term.renewals_paid.saturating_mul(periods::months(cycle)) / 12;
    let years = u32::from(registered_years).saturating_add(renewed_years);
    Ok(Some(periods::months_after(term.ordered_at, years.saturating_mul(12))))
}

/// The years the subscription's Domains were registered or transferred for at purchase (the
/// fewest, when there are several); None when it has no Domain.
fn registration_years(sub: &subscriptions::Subscription) -> Option<u8> {
    let resources: ResourceTemplates = serde_json::from_value(sub.resources.0.clone()).ok()?;
    resources.domains.iter().map(|d| d.spec.registration.years).min()
}

/// The Subscription resource as the ledger says it should be.
pub fn subscription(billed: &Billed<'_>) -> Result<Subscription, String> {
    let sub = billed.subscription;
    let resources: ResourceTemplates =
        serde_json::from_value(sub.resources.0.clone()).map_err(|e| format!("resources of {}: {e}", sub.id))?;
    let state = match (sub.status.as_str(), sub.suspension_reason.as_deref()) {
        ("past_due", _) | ("suspended", Some("Overdue")) => BillingState::PastDue,
        ("cancelled" | "expired" | "provisioning_failed", _) => BillingState::Cancelled,
        _ => BillingState::Paid,
    };
    let suspension = sub.suspension_reason.as_deref().map(|reason| Suspension {
        suspended: true,
        reason: Some(match reason {
            "Overdue" => SuspensionReason::Overdue,
            "Abuse" => SuspensionReason::Abuse,
            "Dispute" => SuspensionReason::Dispute,
            _ => SuspensionReason::Manual,
        }),
    });
    let labels = BTreeMap::from([
        (LEDGER_LABEL.to_owned(), sub.id.to_string()),
        ("app.kubernetes.io/managed-by".to_owned(), FIELD_MANAGER.to_owned()),
    ]);
    let mut object = Subscription::new(
        &sub.resource_name,
        SubscriptionSpec {
            customer: Customer { id: billed.customer_handle.to_owned(), email: billed.customer_email.to_owned() },
            product: billed.product_slug.to_owned(),
            billing: Billing {
                state,
                paid_until: billed.paid_until.map(|t| t.format("%Y-%m-%d").to_string()),
                invoice: billed.invoice.map(str::to_owned),
            },
            suspension,
            resources,
            provisioning_timeout: "30m".to_owned(),
        },
    );
    object.metadata = ObjectMeta {
        name: Some(sub.resource_name.clone()),
        namespace: Some(sub.namespace.clone()),
        labels: Some(labels),
        ..Default::default()
    };
    Ok(object)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_domain(domain: Option<&str>) -> Placeholders {
        Placeholders {
            subscription: "sub-1".into(),
            customer: "c1".into(),
            email: "a@b.example".into(),
            domain: domain.map(str::to_owned),
        }
    }

    #[test]
    fn placeholders_are_filled_everywhere() {
        let template = json!({"certificates": [{"name": "${domainLabel}-tls", "spec": {"dnsNames": ["${domain}", "*.${domain}"]}}]});
        let filled = fill(&template, &with_domain(Some("example.net"))).unwrap_or_default();
        assert_eq!(
            filled,
            json!({"certificates": [{"name": "example-net-tls", "spec": {"dnsNames": ["example.net", "*.example.net"]}}]})
        );
    }

    #[test]
    fn a_template_that_needs_a_domain_says_so() {
        let err = fill(&json!({"a": "${domain}"}), &with_domain(None)).err().unwrap_or_default();
        assert!(err.contains("needs a domain"), "{err}");
        let err = fill(&json!({"a": "${nope}"}), &with_domain(None)).err().unwrap_or_default();
        assert_eq!(err, "unknown placeholder ${nope}");
    }

    #[test]
    fn merged_templates_join_their_lists() {
        let merged =
            merge(&[json!({"domains": [{"name": "a"}]}), json!({"domains": [{"name": "b"}], "mailboxes": []})]);
        assert_eq!(merged, json!({"domains": [{"name": "a"}, {"name": "b"}], "mailboxes": []}));
    }

    #[test]
    fn a_template_is_checked_against_the_resource_schema() {
        assert!(check_template(&json!({"cloudPods": [{"name": "x", "spec": {"bogus": 1}}]})).is_err());
        assert!(check_template(&json!({})).is_ok());
    }
}
