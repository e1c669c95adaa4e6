//! From the ledger to the Subscription resource: the whole object the bridge applies for a ledger
//! subscription, and the names of the Secrets it comes with; product templates are filled in at
//! purchase (`templates`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::api::ObjectMeta;
use mpanel_crds::subscription::{
    Billing, BillingState, Customer, ResourceTemplates, Subscription, SubscriptionSpec, Suspension, SuspensionReason,
};

use crate::ledger::subscriptions::{self, PaidTerm};
use crate::ledger::{Cycle, LedgerError};
use crate::periods;

mod templates;

use templates::provisioning_timeout;
pub use templates::{
    BOUGHT_WITH, NotRendered, PRODUCT_TYPES, Part, Placeholders, base, check_template, fill, merge, order_resources,
    transfers_domain,
};

/// The label that ties a Subscription resource to its ledger subscription (its id).
pub const LEDGER_LABEL: &str = "billing.mpanel.migrahosting.com/subscription";
pub const FIELD_MANAGER: &str = "billing-bridge";
/// The key of the generated mailbox password in the `${credentialsSecret}` Secret.
pub const MAILBOX_PASSWORD_KEY: &str = "mailbox-password";
/// How long a Subscription may take to be Active: `DEFAULT_PROVISIONING_TIMEOUT`, or for one that
/// transfers a domain in `TRANSFER_PROVISIONING_TIMEOUT`, as a registry completes a transfer within
/// the losing registrar's five days (a Subscription that times out is refunded).
pub const DEFAULT_PROVISIONING_TIMEOUT: &str = "30m";
pub const TRANSFER_PROVISIONING_TIMEOUT: &str = "8d";

pub fn credentials_secret(subscription: &str) -> String {
    format!("{subscription}-credentials")
}

/// The name of the subscription's credentials Secret, if its resources use one (a product whose
/// template asks for `${credentialsSecret}`).
pub fn credentials_of(sub: &subscriptions::Subscription) -> Option<String> {
    let secret = credentials_secret(&sub.resource_name);
    sub.resources.0.to_string().contains(&secret).then_some(secret)
}

/// The Secret holding the EPP auth code of a domain transfer the subscription buys
/// (`${authCodeSecret}`), written at checkout; the ledger keeps only its name.
pub fn auth_code_secret(subscription: &str) -> String {
    format!("{subscription}-auth-code")
}

/// The Subscription resource's name (`${subscription}`) of an order.
pub fn resource_name(order: uuid::Uuid) -> String {
    format!("sub-{}", &order.simple().to_string()[..10])
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
/// renewals of the domains (in their own cycle), counted from the order's date (the bridge does not see the registrar's expiry; a
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
    let domain_cycle = term.domain_cycle.unwrap_or(cycle);
    let renewed_years = term.domain_renewals_paid.saturating_mul(periods::months(domain_cycle)) / 12;
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
            provisioning_timeout: provisioning_timeout(&resources).to_owned(),
            resources,
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
