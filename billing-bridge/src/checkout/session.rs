//! The order and its Stripe Checkout Session: opened in the ledger first, Stripe asked with no
//! connection held, the session recorded and the invoice issued in a second short transaction.

use super::*;

/// An order whose Checkout Session is to be asked of Stripe: what the request to Stripe is made of.
pub(super) struct Opened {
    pub(super) order: Uuid,
    pub(super) invoice: Uuid,
    pub(super) customer: Uuid,
    pub(super) email: String,
    pub(super) stripe_customer: Option<String>,
    pub(super) currency: String,
    pub(super) items: Vec<Item>,
    pub(super) customer_handle: String,
    pub(super) namespace: String,
}

/// The first step, committed before Stripe is asked: the customer, the order (`opening`) with its
/// items, a draft invoice and the Idempotency-Key. `None` when another request took the key first.
pub(super) async fn open(
    shop: &Shop<'_>,
    purchase: &Purchase,
    bought: &Bought,
    keyed: Option<(&str, &[u8])>,
) -> Result<Option<Opened>, CheckoutError> {
    let currency = bought.currency.as_str();
    let mut tx = shop.pool.begin().await.map_err(LedgerError::from)?;
    let customer = customers::find_or_create(&mut *tx, shop.tenant, &purchase.email).await?;
    let order = orders::create(
        &mut tx,
        shop.tenant,
        customer.id,
        bought.cycle.as_str(),
        currency,
        bought.domain.as_deref(),
        &bought.items,
    )
    .await?;
    if let Some((key, digest)) = keyed
        && !checkout_requests::claim(&mut *tx, shop.tenant, key, digest, order.id).await?
    {
        tx.rollback().await.map_err(LedgerError::from)?;
        return Ok(None);
    }
    let lines: Vec<NewLine> = bought
        .items
        .iter()
        .map(|item| NewLine {
            kind: "item",
            description: item.description.clone(),
            product_id: Some(item.product_id),
            quantity: item.quantity,
            unit_amount: money::from_minor(item.unit_cents, currency),
        })
        .collect();
    let invoice =
        invoices::create_draft(&mut tx, shop.tenant, customer.id, currency, Purpose::Order(order.id), &lines).await?;
    audit::record(
        &mut *tx,
        &customer.email,
        "checkout",
        "order",
        &order.id.to_string(),
        json!({"product": purchase.product, "addons": purchase.addons, "cycle": bought.cycle,
               "cycles": purchase.cycles, "domain": bought.domain}),
    )
    .await?;
    tx.commit().await.map_err(LedgerError::from)?;
    Ok(Some(Opened {
        order: order.id,
        invoice,
        customer: customer.id,
        namespace: customer.namespace(),
        customer_handle: customer.handle.clone(),
        email: customer.email,
        stripe_customer: customer.stripe_customer_id,
        currency: currency.to_owned(),
        items: bought.items.clone(),
    }))
}

/// An `opening` order as the first step left it, to ask Stripe again for its session.
pub(super) async fn reopen(shop: &Shop<'_>, order: &Order) -> Result<Opened, LedgerError> {
    let customer = customers::get(shop.pool, order.customer_id).await?;
    Ok(Opened {
        order: order.id,
        invoice: orders::first_invoice(shop.pool, order.id).await?,
        customer: customer.id,
        namespace: customer.namespace(),
        customer_handle: customer.handle.clone(),
        email: customer.email,
        stripe_customer: customer.stripe_customer_id,
        currency: order.currency.clone(),
        items: orders::items(shop.pool, order.id).await?,
    })
}

/// Writes the purchase's auth code, if any, into the order's Secret before a session is asked for.
/// When that fails a `resumable` order stays opening for the Idempotency-Key's retry; any other
/// order ends (`give_up`).
pub(super) async fn keep_auth_code(
    shop: &Shop<'_>,
    purchase: &Purchase,
    opened: &Opened,
    resumable: bool,
) -> Result<(), CheckoutError> {
    let Some(code) = &purchase.auth_code else { return Ok(()) };
    let destination =
        Destination { namespace: &opened.namespace, customer_handle: &opened.customer_handle, order: opened.order };
    let kept = match shop.kube {
        Some(client) => auth_code::keep(client, &destination, code).await,
        None => Err(AuthCodeRefused::NotKept),
    };
    if let Err(e) = kept {
        if !resumable {
            give_up(shop, opened, e.code(), &e.to_string(), AUTH_CODE_NOT_KEPT_STATUS).await?;
        }
        return Err(e.into());
    }
    Ok(())
}

/// The HTTP status of a checkout whose auth code could not be stored.
pub const AUTH_CODE_NOT_KEPT_STATUS: u16 = 503;

/// Asks Stripe for the order's session, holding nothing of the ledger meanwhile, then records it.
/// A failure Stripe may get over leaves a `resumable` order (one with an Idempotency-Key) opening,
/// for the key's retry; any other failure ends the order (nobody has a payment page for it).
pub(super) async fn ask_stripe(shop: &Shop<'_>, opened: &Opened, resumable: bool) -> Result<Answer, CheckoutError> {
    let request = CheckoutRequest {
        idempotency_key: stripe_idempotency_key(opened.order),
        customer_email: opened.email.clone(),
        stripe_customer: opened.stripe_customer.clone(),
        currency: opened.currency.clone(),
        lines: opened
            .items
            .iter()
            .map(|i| CheckoutLine {
                description: i.description.clone(),
                unit_amount_cents: i.unit_cents,
                quantity: i.quantity as u32,
            })
            .collect(),
        success_url: shop.urls.success.clone(),
        cancel_url: shop.urls.cancel.clone(),
        client_reference_id: opened.order.to_string(),
        metadata: BTreeMap::from([
            ("order_id".to_owned(), opened.order.to_string()),
            ("invoice_id".to_owned(), opened.invoice.to_string()),
        ]),
    };
    match shop.stripe.create_checkout_session(&request).await {
        Ok(session) => record(shop, opened, &session).await,
        // Stripe is still answering the same key for another request
        Err(StripeError::Rejected { status: 409, .. }) if resumable => Err(CheckoutError::InProgress),
        Err(e) if resumable && e.is_transient() => {
            tracing::warn!(order = %opened.order, error = %e, reason = e.reason(), "no Checkout Session yet; the order waits for a retry with its Idempotency-Key");
            Err(e.into())
        }
        Err(e) => {
            give_up(shop, opened, e.reason(), &e.to_string(), STRIPE_FAILED_STATUS).await?;
            Err(e.into())
        }
    }
}

/// The Stripe idempotency key of an order's Checkout Session: the order id, so that every request
/// for the order gets the same session.
pub fn stripe_idempotency_key(order: Uuid) -> String {
    order.to_string()
}

/// The second step: the session recorded, the order `pending` and its invoice issued (numbered
/// here, so the counter row is held only for this short transaction), and the answer kept for the
/// Idempotency-Key. An order another request recorded meanwhile gets that request's answer.
pub(super) async fn record(
    shop: &Shop<'_>,
    opened: &Opened,
    session: &CheckoutSession,
) -> Result<Answer, CheckoutError> {
    let mut tx = shop.pool.begin().await.map_err(LedgerError::from)?;
    let order = orders::lock(&mut tx, opened.order).await?;
    if order.status != "opening" {
        tx.rollback().await.map_err(LedgerError::from)?;
        return answer_of_ended(shop, &order).await;
    }
    orders::set_checkout_session(&mut *tx, order.id, &session.id, session.url.as_deref()).await?;
    orders::transition(&mut *tx, order.id, &["opening"], "pending").await?;
    let issued = invoices::issue(&mut *tx, opened.invoice, Utc::now()).await?;
    // a payment that came before the session was recorded (after a crash between the two steps)
    let settled = payments::settle_invoice(&mut tx, opened.invoice).await?;
    if settled.status == "paid" {
        orders::set_status(&mut *tx, order.id, "paid").await?;
    }
    let placed = Placed {
        order_id: order.id,
        customer_id: opened.customer,
        invoice_id: opened.invoice,
        invoice_number: issued.number.unwrap_or_default(),
        total: issued.total,
        currency: opened.currency.clone(),
        checkout_session_id: session.id.clone(),
        checkout_url: session.url.clone(),
    };
    let body = serde_json::to_value(&placed).unwrap_or_default();
    checkout_requests::answer(&mut *tx, order.id, 201, &body).await?;
    tx.commit().await.map_err(LedgerError::from)?;
    Ok(Answer { status: 201, body, replayed: false })
}

/// The answer for an order that is no longer opening when a request comes to record its session:
/// the one kept for its key, if any.
pub(super) async fn answer_of_ended(shop: &Shop<'_>, order: &Order) -> Result<Answer, CheckoutError> {
    match checkout_requests::of_order(shop.pool, order.id).await?.as_ref().and_then(kept_answer) {
        Some(answer) => Ok(answer),
        None => Err(CheckoutError::Ended(order.status.clone())),
    }
}

/// No session will be made for the order: it is `failed`, its draft invoice void, and the error
/// (`reason`, `message`, HTTP `status`) is the answer kept for its Idempotency-Key.
pub(super) async fn give_up(
    shop: &Shop<'_>,
    opened: &Opened,
    reason: &str,
    message: &str,
    status: u16,
) -> Result<(), LedgerError> {
    let mut tx = shop.pool.begin().await?;
    if !orders::transition(&mut *tx, opened.order, &["opening"], "failed").await? {
        return Ok(());
    }
    invoices::void(&mut *tx, opened.invoice).await?;
    audit::record(
        &mut *tx,
        "bridge",
        "checkout.failed",
        "order",
        &opened.order.to_string(),
        json!({"reason": reason, "error": message}),
    )
    .await?;
    // as the API writes errors (`http::ApiError`)
    let body = json!({"error": {"code": reason, "message": message}});
    checkout_requests::answer(&mut *tx, opened.order, status, &body).await?;
    tx.commit().await?;
    tracing::warn!(order = %opened.order, error = %message, reason, "no Checkout Session could be made; the order failed");
    Ok(())
}
