//! Checkout: a product (with its cycle, the customer's email, a domain and add-ons) becomes a
//! customer, an order, an issued invoice and a Stripe Checkout Session, all or nothing.
//!
//! A purchase that registers or transfers a domain asks the registrar first, before anything is
//! written or a session made: a name that is taken (registration only) or already in the account is
//! refused, and so is every such purchase while the registrar cannot be asked.

use std::collections::BTreeMap;

use chrono::Utc;
use mpanel_crds::domain::RegistrationMode;
use mpanel_crds::subscription::ResourceTemplates;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::invoices::{self, NewLine, Purpose};
use crate::ledger::orders::{self, Item};
use crate::ledger::{Cycle, LedgerError, audit, catalog, customers};
use crate::money;
use crate::registrar::{Registrar, Standing};
use crate::render::{self, Placeholders};
use crate::stripe::api::{CheckoutLine, CheckoutRequest, StripeClient, StripeError};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Purchase {
    pub product: String,
    pub cycle: String,
    pub email: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub addons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub invoice_id: Uuid,
    pub invoice_number: String,
    pub total: Decimal,
    pub currency: String,
    pub checkout_session_id: String,
    pub checkout_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Domain(#[from] DomainRefused),
}

/// Why a purchase of a domain registration or transfer is refused before any money is asked for.
#[derive(Debug, thiserror::Error)]
pub enum DomainRefused {
    #[error("{0} is not available for registration")]
    Unavailable(String),
    #[error("{0} is already registered in our registrar account")]
    AlreadyRegistered(String),
    /// The registrar could not be asked (or the bridge has no registrar settings): the cause is
    /// logged, not shown.
    #[error("domain availability cannot be checked right now; please try again later")]
    RegistrarUnavailable,
}

impl DomainRefused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "domain_unavailable",
            Self::AlreadyRegistered(_) => "domain_already_registered",
            Self::RegistrarUnavailable => "registrar_unavailable",
        }
    }
}

/// Where Stripe sends the buyer afterwards.
#[derive(Debug, Clone)]
pub struct ReturnUrls {
    pub success: String,
    pub cancel: String,
}

pub async fn place(
    pool: &PgPool,
    tenant: Uuid,
    stripe: &StripeClient,
    registrar: Option<&Registrar>,
    urls: &ReturnUrls,
    purchase: &Purchase,
) -> Result<Placed, CheckoutError> {
    let cycle: Cycle = purchase.cycle.parse()?;
    let domain = purchase.domain.as_deref().map(valid_domain).transpose()?;
    // what is bought, read before anything is written
    let mut items = Vec::new();
    let mut registrations = Vec::new();
    let slugs = std::iter::once(&purchase.product).chain(&purchase.addons);
    for (index, slug) in slugs.enumerate() {
        let product = match catalog::by_slug(pool, tenant, slug).await {
            Ok(p) if p.active => p,
            Ok(_) | Err(LedgerError::NotFound(_)) => {
                return Err(LedgerError::Invalid(format!("product {slug:?} is not for sale")).into());
            }
            Err(e) => return Err(e.into()),
        };
        // the templates must make resources for this purchase before anyone pays for them
        let sample = Placeholders {
            subscription: "sub-check".into(),
            customer: "check".into(),
            email: purchase.email.clone(),
            domain: domain.clone(),
        };
        let filled = render::fill(&product.template.0, &sample)
            .map_err(|e| LedgerError::Invalid(format!("product {slug:?}: {e}")))?;
        registrations.extend(
            registrations_in(filled).map_err(|e| LedgerError::Invalid(format!("product {slug:?}: template: {e}")))?,
        );
        let unit_cents = catalog::price_cents(pool, &product, cycle, "new").await?;
        let description = match &domain {
            Some(d) => format!("{} ({cycle}) for {d}", product.name),
            None => format!("{} ({cycle})", product.name),
        };
        items.push(Item {
            position: index as i32 + 1,
            product_id: product.id,
            purpose: "new".into(),
            quantity: 1,
            unit_cents,
            description,
        });
    }
    check_registrations(registrar, &registrations).await?;

    let mut tx = pool.begin().await.map_err(LedgerError::from)?;
    let currency = "usd";
    let customer = customers::find_or_create(&mut *tx, tenant, &purchase.email).await?;
    let order =
        orders::create(&mut tx, tenant, customer.id, cycle.as_str(), currency, domain.as_deref(), &items).await?;
    let lines: Vec<NewLine> = items
        .iter()
        .map(|item| NewLine {
            kind: "item",
            description: item.description.clone(),
            product_id: Some(item.product_id),
            quantity: item.quantity,
            unit_amount: money::from_cents(item.unit_cents),
        })
        .collect();
    let invoice_id =
        invoices::create_draft(&mut tx, tenant, customer.id, currency, Purpose::Order(order.id), &lines).await?;
    let session = stripe
        .create_checkout_session(&CheckoutRequest {
            idempotency_key: order.id.to_string(),
            customer_email: customer.email.clone(),
            stripe_customer: customer.stripe_customer_id.clone(),
            currency: currency.to_owned(),
            lines: items
                .iter()
                .map(|i| CheckoutLine {
                    description: i.description.clone(),
                    unit_amount_cents: i.unit_cents,
                    quantity: i.quantity as u32,
                })
                .collect(),
            success_url: urls.success.clone(),
            cancel_url: urls.cancel.clone(),
            client_reference_id: order.id.to_string(),
            metadata: BTreeMap::from([
                ("order_id".to_owned(), order.id.to_string()),
                ("invoice_id".to_owned(), invoice_id.to_string()),
            ]),
        })
        .await?;
    orders::set_checkout_session(&mut *tx, order.id, &session.id, session.url.as_deref()).await?;
    // numbered last, so the counter row is held only for the end of this transaction
    let invoice = invoices::issue(&mut *tx, invoice_id, Utc::now()).await?;
    audit::record(
        &mut *tx,
        &customer.email,
        "checkout",
        "order",
        &order.id.to_string(),
        serde_json::json!({"product": purchase.product, "addons": purchase.addons, "cycle": cycle, "domain": domain}),
    )
    .await?;
    tx.commit().await.map_err(LedgerError::from)?;
    Ok(Placed {
        order_id: order.id,
        customer_id: customer.id,
        invoice_id,
        invoice_number: invoice.number.unwrap_or_default(),
        total: invoice.total,
        currency: currency.to_owned(),
        checkout_session_id: session.id,
        checkout_url: session.url,
    })
}

/// The names a filled-in template registers or transfers in.
fn registrations_in(filled: serde_json::Value) -> Result<Vec<(String, RegistrationMode)>, serde_json::Error> {
    let templates: ResourceTemplates = serde_json::from_value(filled)?;
    Ok(templates
        .domains
        .into_iter()
        .map(|d| (d.spec.name, d.spec.registration.mode))
        .filter(|(_, mode)| *mode != RegistrationMode::External)
        .collect())
}

/// Refuses a registration of a name that is taken or already in the account, and a transfer of one
/// already in the account, as the registrar says now. Without a registrar, nothing of the kind is
/// sold.
async fn check_registrations(
    registrar: Option<&Registrar>,
    registrations: &[(String, RegistrationMode)],
) -> Result<(), DomainRefused> {
    if registrations.is_empty() {
        return Ok(());
    }
    let Some(registrar) = registrar else {
        tracing::warn!("a domain purchase was refused: the bridge has no registrar settings");
        return Err(DomainRefused::RegistrarUnavailable);
    };
    for (name, mode) in registrations {
        let standing = registrar.standing(name).await.map_err(|e| {
            tracing::warn!(error = %e, reason = e.reason(), "the registrar could not be asked about a domain purchase");
            DomainRefused::RegistrarUnavailable
        })?;
        match (standing, mode) {
            (Standing::InAccount, _) => return Err(DomainRefused::AlreadyRegistered(name.clone())),
            (Standing::Taken | Standing::Invalid, RegistrationMode::Register) => {
                return Err(DomainRefused::Unavailable(name.clone()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A domain name as the Domain resource takes it: lowercase, no trailing dot.
fn valid_domain(name: &str) -> Result<String, LedgerError> {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let labels: Vec<&str> = name.split('.').collect();
    if name.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
        return Err(LedgerError::Invalid(format!("{name:?} is not a domain name")));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_and_transferred_names_are_found_in_templates() {
        let filled = serde_json::json!({"domains": [
            {"name": "a", "spec": {"name": "a.com", "registration": {"mode": "Register"}}},
            {"name": "b", "spec": {"name": "b.com", "registration": {"mode": "Transfer", "authCodeSecretRef": {"name": "s", "key": "k"}}}},
            {"name": "c", "spec": {"name": "c.com", "registration": {"mode": "External"}}}
        ]});
        let found = registrations_in(filled).unwrap();
        assert_eq!(
            found,
            [("a.com".to_owned(), RegistrationMode::Register), ("b.com".to_owned(), RegistrationMode::Transfer)]
        );
        assert!(registrations_in(serde_json::json!({})).unwrap().is_empty());
    }

    #[tokio::test]
    async fn without_a_registrar_domain_purchases_fail_closed() {
        let none = check_registrations(None, &[]).await;
        assert!(none.is_ok(), "nothing to register needs no registrar");
        let refused = check_registrations(None, &[("a.com".into(), RegistrationMode::Register)]).await;
        assert_eq!(refused.map_err(|e| e.code()).err(), Some("registrar_unavailable"));
    }

    #[test]
    fn domains_are_normalised_or_refused() {
        assert_eq!(valid_domain("Example.NET.").ok().as_deref(), Some("example.net"));
        assert!(valid_domain("localhost").is_err());
        assert!(valid_domain("-bad.example").is_err());
        assert!(valid_domain("a b.example").is_err());
    }
}
