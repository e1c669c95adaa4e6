//! A Checkout Session that ended unpaid (its order expired, its invoice void), and money that still
//! arrived on a void invoice.

use super::*;

/// What an expired Checkout Session did to the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Its order is `expired` now and its invoice void.
    Voided,
    /// Its order's invoice was no longer open (paid, refunded or void already): nothing changed.
    Settled,
    /// No order of the ledger has or names this session.
    Unknown,
}

/// `checkout.session.expired`: the order of the session (recorded, or named in its metadata when
/// the session was never recorded) becomes `expired` and its unpaid invoice void. A paid one is
/// left as it is.
pub async fn expire(
    tx: &mut sqlx::PgConnection,
    session: &str,
    named_order: Option<Uuid>,
    event: &str,
) -> Result<Expiry, LedgerError> {
    let order = match orders::by_checkout_session(&mut *tx, session).await? {
        Some(order) => order,
        None => match named_order {
            Some(id) => match orders::get(&mut *tx, id).await {
                Ok(order) if order.stripe_checkout_session_id.is_none() => order,
                Ok(_) | Err(LedgerError::NotFound(_)) => return Ok(Expiry::Unknown),
                Err(e) => return Err(e),
            },
            None => return Ok(Expiry::Unknown),
        },
    };
    let invoice = orders::first_invoice(&mut *tx, order.id).await?;
    let invoice = invoices::get(&mut *tx, invoice).await?;
    if !matches!(invoice.status.as_str(), "draft" | "issued") {
        return Ok(Expiry::Settled);
    }
    // the invoice, then the order: the payment events' order of locks
    let void = match invoices::void(&mut *tx, invoice.id).await {
        Ok(void) => void,
        // paid meanwhile: the payment stands
        Err(LedgerError::Conflict(_)) => return Ok(Expiry::Settled),
        Err(e) => return Err(e),
    };
    orders::transition(&mut *tx, order.id, &["opening", "pending"], "expired").await?;
    audit::record(
        &mut *tx,
        "stripe",
        "checkout.session.expired",
        "order",
        &order.id.to_string(),
        json!({"event": event, "session": session, "invoice": void.number.unwrap_or_else(|| void.id.to_string()), "invoiceStatus": void.status}),
    )
    .await?;
    Ok(Expiry::Voided)
}

/// A payment that landed on a void invoice (its session expired, or staff voided it) is kept as
/// it is; the audit log says so once per payment, for the money to be given back. Whether the
/// payment still keeps money there (to refund).
pub async fn note_payment_on_void_invoice(
    tx: &mut sqlx::PgConnection,
    invoice: &invoices::Invoice,
    payment: &Payment,
    event: &str,
) -> Result<bool, LedgerError> {
    if invoice.status != "void" || payment.status == "failed" || payment.amount <= payment.refunded_amount {
        return Ok(false);
    }
    if audit::recorded(&mut *tx, "payment.on_void_invoice", "payment", &payment.reference).await? {
        return Ok(true);
    }
    tracing::warn!(payment = %payment.reference, invoice = ?invoice.number, "a payment landed on a void invoice");
    audit::record(
        &mut *tx,
        "stripe",
        "payment.on_void_invoice",
        "payment",
        &payment.reference,
        json!({"event": event, "invoice": invoice.id, "invoiceNumber": invoice.number, "amount": payment.amount, "currency": payment.currency}),
    )
    .await?;
    Ok(true)
}
