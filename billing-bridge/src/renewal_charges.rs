//! Collecting renewals: a renewal invoice of a customer with a saved payment method is charged
//! off-session on its due date and again on each day of its product's dunning schedule until it is
//! paid. Stripe's answer is recorded on the attempt; the payment itself is recorded, and the
//! invoice paid, from its webhook as every other payment is (so a charge Stripe accepted but whose
//! answer was lost still pays the invoice once). An Overdue suspension in between is lifted by that
//! payment as today.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::ledger::LedgerError;
use crate::ledger::charge_attempts::{self, Answer, Taken};
use crate::metrics::Metrics;
use crate::money;
use crate::pay_links;
use crate::stripe::api::{OffSessionCharge, StripeClient, StripeError};

/// What one pass did: attempts made, by what Stripe answered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    pub accepted: usize,
    pub requires_action: usize,
    pub declined: usize,
    pub failed: usize,
}

impl Charged {
    /// Counts `answer`; its name in the metric and the log.
    fn count(&mut self, answer: &Answer) -> &'static str {
        let (counter, outcome) = match answer {
            Answer::Accepted { .. } => (&mut self.accepted, "accepted"),
            Answer::RequiresAction { .. } => (&mut self.requires_action, "requires_action"),
            Answer::Declined { .. } => (&mut self.declined, "declined"),
            Answer::Failed { .. } => (&mut self.failed, "failed"),
        };
        *counter += 1;
        outcome
    }
}

/// Makes every attempt due as of `now`, one at a time: taken in a short transaction, Stripe asked
/// with no lock held, the answer recorded.
pub async fn pass(
    pool: &PgPool,
    stripe: &StripeClient,
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
) -> Result<Charged, LedgerError> {
    let mut charged = Charged::default();
    loop {
        let mut tx = pool.begin().await?;
        let Some(taken) = charge_attempts::take_due(&mut tx, now).await? else { return Ok(charged) };
        tx.commit().await?;
        let answer = ask(stripe, &taken).await;
        charge_attempts::answer(pool, &taken, &answer).await?;
        if let Answer::RequiresAction { payment_intent: Some(intent), message } = &answer {
            pay_links::customer_must_act(pool, &taken, intent, message).await?;
        }
        let outcome = charged.count(&answer);
        if let Some(metrics) = metrics {
            metrics.renewal_charge(outcome);
        }
        tracing::info!(invoice = %taken.invoice_id, attempt = taken.attempt, outcome, "renewal charged off-session");
    }
}

async fn ask(stripe: &StripeClient, taken: &Taken) -> Answer {
    let Some(amount_minor) = money::to_minor(taken.amount, &taken.currency) else {
        return Answer::Failed {
            message: format!("{} {} has no amount Stripe can take", taken.amount, taken.currency),
        };
    };
    let (invoice_id, key) = (taken.invoice_id.to_string(), taken.idempotency_key());
    let charge = OffSessionCharge {
        customer: &taken.stripe_customer,
        payment_method: &taken.payment_method,
        amount_minor,
        currency: &taken.currency,
        invoice_id: &invoice_id,
        idempotency_key: &key,
    };
    match stripe.charge_off_session(&charge).await {
        Ok((payment_intent, status)) => match status.as_str() {
            "succeeded" => Answer::Accepted { outcome: "succeeded", payment_intent },
            "processing" => Answer::Accepted { outcome: "processing", payment_intent },
            "requires_action" => Answer::RequiresAction {
                payment_intent: Some(payment_intent),
                message: "the customer must confirm the payment".to_owned(),
            },
            other => Answer::Failed { message: format!("Stripe left the payment {other}") },
        },
        Err(StripeError::Rejected { error_type, code, decline_code, message, .. }) if error_type == "card_error" => {
            if code.as_deref() == Some("authentication_required") {
                Answer::RequiresAction { payment_intent: None, message }
            } else {
                Answer::Declined { decline_code: decline_code.map(String::from).or(code), message }
            }
        }
        Err(e) => Answer::Failed { message: e.to_string() },
    }
}

/// Runs until the process ends: a pass every `every`.
pub async fn run(pool: PgPool, stripe: Arc<StripeClient>, every: Duration, metrics: Arc<Metrics>) {
    loop {
        if let Err(e) = pass(&pool, &stripe, Utc::now(), Some(&metrics)).await {
            tracing::warn!(error = %e, reason = e.reason(), "charging renewals: the ledger failed; will retry");
        }
        tokio::time::sleep(every).await;
    }
}
