//! Stripe webhook events into the ledger. Each event is recorded in `stripe_events` in the same
//! transaction as its effects, so a redelivered event changes nothing; effects fold into payment
//! rows (see `ledger::payments`), so the order events arrive in does not matter either.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::checkout::{self, Expiry};
use crate::ledger::customers::{self, MethodSaved};
use crate::ledger::pay_links as ledger_pay_links;
use crate::ledger::payments::{self, Outcome, Payment, Report};
use crate::ledger::stripe_events as recorded;
use crate::ledger::{LedgerError, audit, invoices, orders};
use crate::money;
use crate::money_follows::{self, Dispute, Followed};
use crate::pay_links;

/// The parts of a Stripe event the ledger reads.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub created: i64,
    pub object: Value,
    pub raw: Value,
}

impl Event {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let raw: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let field = |name: &str| raw.get(name).and_then(Value::as_str).map(str::to_owned);
        let id = field("id").filter(|id| id.starts_with("evt_")).ok_or("the event has no id evt_…")?;
        let kind = field("type").ok_or("the event has no type")?;
        let created = raw.get("created").and_then(Value::as_i64).ok_or("the event has no created time")?;
        let object =
            raw.pointer("/data/object").cloned().filter(Value::is_object).ok_or("the event has no data.object")?;
        Ok(Self { id, kind, created, object, raw })
    }

    /// When Stripe created the event (its `created`, in seconds).
    fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.created, 0).unwrap_or_default()
    }

    fn str(&self, pointer: &str) -> Option<&str> {
        self.object.pointer(pointer).and_then(Value::as_str)
    }

    /// An amount as Stripe counts it, in the currency's minor unit.
    fn minor(&self, pointer: &str) -> Option<i64> {
        self.object.pointer(pointer).and_then(Value::as_i64)
    }

    /// Our invoice, named in the metadata the checkout session (and its payment intent) carries.
    fn invoice_id(&self) -> Option<Uuid> {
        self.str("/metadata/invoice_id").and_then(|s| Uuid::parse_str(s).ok())
    }

    /// The currency the event's amounts are in (lower case), if it says.
    fn currency(&self) -> Option<String> {
        self.str("/currency").map(str::to_ascii_lowercase)
    }
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Its effects are in the ledger now.
    Recorded,
    /// Recorded, and the payment it reports kept money on a void invoice: that money goes back
    /// (`refunds::stray_payments`).
    RecordedOnVoidInvoice,
    /// It was seen before; nothing changed.
    Duplicate,
    /// Recorded, but it names nothing in the ledger (or is a type the ledger does not follow).
    Ignored,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recorded | Self::RecordedOnVoidInvoice => "recorded",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
        }
    }
}

/// Applies the event to the ledger, once.
pub async fn apply(pool: &PgPool, event: &Event) -> Result<Applied, LedgerError> {
    // most deliveries are redeliveries: one read answers them, without a transaction
    if recorded::seen(pool, &event.id).await? {
        return Ok(Applied::Duplicate);
    }
    let mut tx = pool.begin().await?;
    if !recorded::record(&mut *tx, &event.id, &event.kind, event.created, &event.raw).await? {
        return Ok(Applied::Duplicate);
    }
    let applied = if let Some((stripe_customer, method)) = saved_method(event) {
        keep_saved_method(&mut tx, event, stripe_customer, method).await?
    } else if event.kind == "checkout.session.expired" {
        expire_session(&mut tx, event).await?
    } else if let Some(dispute) = dispute_of(event) {
        follow_dispute(&mut tx, event, dispute).await?
    } else {
        follow_payment(&mut tx, event).await?
    };
    tx.commit().await?;
    Ok(applied)
}

/// An event about a payment: recorded on its payment row and its invoice settled. One that names
/// no invoice we know, or money in another currency than the invoice's, changes nothing else.
async fn follow_payment(tx: &mut sqlx::PgConnection, event: &Event) -> Result<Applied, LedgerError> {
    // an invoice we do not know: keep the event (and a refund's payment), change nothing else
    let invoice = match event.invoice_id() {
        Some(id) => invoices::get(&mut *tx, id).await.ok(),
        None => None,
    };
    // an event that names no currency is in its invoice's
    let currency = event.currency().or_else(|| invoice.as_ref().map(|i| i.currency.to_ascii_lowercase()));
    let Some(report) = report_of(event, currency.as_deref().unwrap_or("usd")) else { return Ok(Applied::Ignored) };
    // money in another currency than the invoice's does not pay it (nor is it summed toward it):
    // refused into an audit row for staff to follow up
    if let Some(i) = invoice.as_ref().filter(|i| !i.currency.eq_ignore_ascii_case(&report.currency)) {
        let detail = serde_json::json!({
            "event": event.id, "type": event.kind, "invoice": i.id, "invoiceNumber": i.number,
            "invoiceCurrency": i.currency, "paymentCurrency": report.currency, "amount": report.amount,
        });
        audit::record(&mut *tx, "stripe", "payment.currency_mismatch", "payment", &report.reference, detail).await?;
        return Ok(Applied::Ignored);
    }
    let linked = Report { invoice: invoice.as_ref().map(|i| i.id), ..report };
    if linked.invoice.is_none() && !matches!(linked.outcome, Outcome::Refunded(_)) {
        let detail = serde_json::json!({"type": event.kind});
        audit::record(&mut *tx, "stripe", "event.unmatched", "stripe_event", &event.id, detail).await?;
        return Ok(Applied::Ignored);
    }
    let payment = payments::record(&mut *tx, &linked).await?;
    let on_void = match payment.invoice_id {
        Some(invoice_id) => settle(tx, event, invoice_id, &payment).await?,
        None => false,
    };
    let detail = serde_json::json!({"event": event.id, "status": payment.status, "invoice": payment.invoice_id});
    audit::record(&mut *tx, "stripe", &event.kind, "payment", &payment.reference, detail).await?;
    Ok(if on_void { Applied::RecordedOnVoidInvoice } else { Applied::Recorded })
}

/// The invoice a recorded payment is for, settled by what its payments now add up to (and its
/// order with it); the card a paid checkout saved is kept for later charges, and a refund is
/// followed to the service. Whether the payment kept money on a void invoice.
async fn settle(
    tx: &mut sqlx::PgConnection,
    event: &Event,
    invoice_id: Uuid,
    payment: &Payment,
) -> Result<bool, LedgerError> {
    let invoice = payments::settle_invoice(tx, invoice_id).await?;
    if let (Some(order), "paid" | "refunded") = (invoice.order_id, invoice.status.as_str()) {
        orders::set_status(&mut *tx, order, &invoice.status).await?;
    }
    if let Some(stripe_customer) = event.str("/customer") {
        customers::set_stripe_customer(&mut *tx, invoice.customer_id, stripe_customer).await?;
        // the card a paid checkout saved for later (off-session) charges
        if let (Some(method), "succeeded") = (event.str("/payment_method"), payment.status.as_str()) {
            let at = event.created_at();
            customers::save_payment_method(tx, stripe_customer, Some(invoice.customer_id), method, at).await?;
        }
    }
    let on_void = checkout::note_payment_on_void_invoice(tx, &invoice, payment, &event.id).await?;
    money_follows::after_refund(tx, &invoice, "stripe", &event.kind).await?;
    Ok(on_void)
}

/// The Stripe customer and the payment method an event says it keeps for later charges:
/// `setup_intent.succeeded` (a method set up without a payment) and `customer.updated` with a
/// default payment method (one changed in the Billing Portal, say).
fn saved_method(event: &Event) -> Option<(&str, &str)> {
    match event.kind.as_str() {
        "setup_intent.succeeded" => Some((event.str("/customer")?, event.str("/payment_method")?)),
        "customer.updated" => Some((event.str("/id")?, event.str("/invoice_settings/default_payment_method")?)),
        _ => None,
    }
}

/// Saves the customer's payment method, unless a later event saved another; an event about a
/// Stripe customer the ledger does not know is kept as unmatched.
async fn keep_saved_method(
    tx: &mut sqlx::PgConnection,
    event: &Event,
    stripe_customer: &str,
    method: &str,
) -> Result<Applied, LedgerError> {
    let saved = customers::save_payment_method(&mut *tx, stripe_customer, None, method, event.created_at()).await?;
    let (action, applied) = match saved {
        MethodSaved::Saved => ("payment_method.saved", Applied::Recorded),
        MethodSaved::Stale => return Ok(Applied::Ignored),
        MethodSaved::NoSuchCustomer => ("event.unmatched", Applied::Ignored),
    };
    let detail = serde_json::json!({"event": event.id, "type": event.kind, "paymentMethod": method});
    audit::record(&mut *tx, "stripe", action, "stripe_customer", stripe_customer, detail).await?;
    Ok(applied)
}

/// A Checkout Session that expired unpaid. A pay link's (known by its id, or by the invoice and
/// `seq` its metadata names) is marked expired, so the next request makes a new one; its invoice
/// stays open. Any other: its order is `expired` and its invoice void (`checkout::expire`); a
/// session the ledger does not know is kept as unmatched.
async fn expire_session(tx: &mut sqlx::PgConnection, event: &Event) -> Result<Applied, LedgerError> {
    if let Some(applied) = expire_pay_link(tx, event).await? {
        return Ok(applied);
    }
    let order = event
        .str("/metadata/order_id")
        .or_else(|| event.str("/client_reference_id"))
        .and_then(|s| Uuid::parse_str(s).ok());
    let expiry = match event.str("/id") {
        Some(session) => checkout::expire(&mut *tx, session, order, &event.id).await?,
        None => Expiry::Unknown,
    };
    Ok(match expiry {
        Expiry::Voided => Applied::Recorded,
        Expiry::Settled => Applied::Ignored,
        Expiry::Unknown => {
            let detail = serde_json::json!({"type": event.kind, "session": event.str("/id")});
            audit::record(&mut *tx, "stripe", "event.unmatched", "stripe_event", &event.id, detail).await?;
            Applied::Ignored
        }
    })
}

/// The expiry of a pay link's session; None when the session is no pay link's. One its metadata
/// says is a pay link's is never taken for an order's, even when the ledger does not know it.
async fn expire_pay_link(tx: &mut sqlx::PgConnection, event: &Event) -> Result<Option<Applied>, LedgerError> {
    let seq = event.str(&format!("/metadata/{}", pay_links::SEQ_METADATA)).and_then(|s| s.parse::<i32>().ok());
    let named = event.invoice_id().zip(seq);
    let expired = match event.str("/id") {
        Some(session) => ledger_pay_links::expire(&mut *tx, session, named).await?,
        None => Vec::new(),
    };
    let detail = serde_json::json!({"event": event.id, "session": event.str("/id")});
    match expired.first() {
        Some(row) => {
            let detail = serde_json::json!({"event": event.id, "session": event.str("/id"), "seq": row.seq});
            let invoice = row.invoice_id.to_string();
            audit::record(&mut *tx, "stripe", "pay_link.expired", "invoice", &invoice, detail).await?;
            Ok(Some(Applied::Recorded))
        }
        None if seq.is_some() => {
            audit::record(&mut *tx, "stripe", "event.unmatched", "stripe_event", &event.id, detail).await?;
            Ok(Some(Applied::Ignored))
        }
        None => Ok(None),
    }
}

/// Where a `charge.dispute.*` event says the dispute stands.
fn dispute_of(event: &Event) -> Option<Dispute> {
    match (event.kind.as_str(), event.str("/status")) {
        ("charge.dispute.created", _) => Some(Dispute::Opened),
        ("charge.dispute.closed", Some("won")) => Some(Dispute::Won),
        ("charge.dispute.closed", Some("lost")) => Some(Dispute::Lost),
        _ => None,
    }
}

/// A dispute of a payment the ledger knows, followed to its subscription (`money_follows`).
async fn follow_dispute(tx: &mut sqlx::PgConnection, event: &Event, dispute: Dispute) -> Result<Applied, LedgerError> {
    let (Some(intent), Some(id)) = (event.str("/payment_intent"), event.str("/id")) else {
        return Ok(Applied::Ignored);
    };
    let followed = money_follows::after_dispute(&mut *tx, intent, id, dispute).await?;
    let detail = serde_json::json!({"event": event.id, "dispute": id, "followed": format!("{followed:?}")});
    audit::record(&mut *tx, "stripe", &event.kind, "payment", intent, detail).await?;
    Ok(if followed == Followed::Unchanged { Applied::Ignored } else { Applied::Recorded })
}

/// What the event says of a payment, if anything. A payment is known by its PaymentIntent, so
/// the session, the intent and the charge of one purchase all land on one row.
/// Stripe's minor-unit amounts become ledger amounts in `currency`'s major unit.
fn report_of(event: &Event, currency: &str) -> Option<Report> {
    let own_id = event.str("/id").map(str::to_owned);
    let intent = event.str("/payment_intent").map(str::to_owned);
    let (reference, minor, outcome) = match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            if !matches!(event.str("/payment_status"), Some("paid" | "no_payment_required")) {
                return None;
            }
            (intent.or(own_id)?, event.minor("/amount_total")?, Outcome::Succeeded)
        }
        "payment_intent.succeeded" => {
            let minor = event.minor("/amount_received").or_else(|| event.minor("/amount"))?;
            (own_id?, minor, Outcome::Succeeded)
        }
        "payment_intent.payment_failed" => {
            let message = event.str("/last_payment_error/message").unwrap_or("the payment failed").to_owned();
            (own_id?, event.minor("/amount")?, Outcome::Failed(message))
        }
        "invoice.paid" => (intent.or(own_id)?, event.minor("/amount_paid")?, Outcome::Succeeded),
        "invoice.payment_failed" => {
            let attempt = event.object.get("attempt_count").and_then(Value::as_i64).unwrap_or(1);
            let message = format!("Stripe invoice payment failed (attempt {attempt})");
            (intent.or(own_id)?, event.minor("/amount_due")?, Outcome::Failed(message))
        }
        "charge.refunded" => {
            let refunded = money::from_minor(event.minor("/amount_refunded")?, currency);
            (intent.or(own_id)?, event.minor("/amount")?, Outcome::Refunded(refunded))
        }
        _ => return None,
    };
    Some(Report {
        provider: "stripe",
        reference,
        invoice: event.invoice_id(),
        amount: money::from_minor(minor, currency),
        currency: currency.to_owned(),
        outcome,
    })
}
