//! A client's Idempotency-Key (the same request gets the same answer, another is refused) and the
//! per-email and per-client-address limits, counted before anything else is asked.

use super::*;

/// The SHA-256 of the request as parsed, so that spacing and key order do not make it another. An
/// auth code counts only as given or not (`AuthCode` serializes so).
pub(super) fn request_digest(purchase: &Purchase) -> Vec<u8> {
    let canonical = serde_json::to_vec(purchase).unwrap_or_default();
    Sha256::digest(&canonical).to_vec()
}

/// A request with a key seen before: the same request gets the answer kept for it, or resumes its
/// order while it has none; another request is refused.
pub(super) async fn again(
    shop: &Shop<'_>,
    purchase: &Purchase,
    earlier: &KeyedRequest,
    digest: &[u8],
) -> Result<Answer, CheckoutError> {
    if earlier.request_sha256 != digest {
        return Err(CheckoutError::KeyReused);
    }
    if let Some(answer) = kept_answer(earlier) {
        return Ok(answer);
    }
    let order = orders::get(shop.pool, earlier.order_id).await?;
    if order.status != "opening" {
        // answered since it was read
        return answer_of_ended(shop, &order).await;
    }
    tracing::info!(order = %order.id, product = %purchase.product, "checkout retried: asking Stripe again for the order's session");
    let opened = reopen(shop, &order).await?;
    keep_auth_code(shop, purchase, &opened, true).await?;
    let mut answer = ask_stripe(shop, &opened, true).await?;
    answer.replayed = true;
    Ok(answer)
}

pub(super) fn kept_answer(request: &KeyedRequest) -> Option<Answer> {
    match (request.status, &request.response) {
        (Some(status), Some(body)) => Some(Answer { status: status as u16, body: body.0.clone(), replayed: true }),
        _ => None,
    }
}

/// Counts the attempt against the email's and the client address's limits (retries of one
/// Idempotency-Key once); refused with how long to wait when either is reached, and then nothing
/// is counted.
pub(super) async fn count_attempt(
    shop: &Shop<'_>,
    limits: &Limits,
    attempt: &Attempt<'_>,
) -> Result<(), CheckoutError> {
    let counted = [
        Limit { scope: Scope::Email, key: email_key(&attempt.purchase.email), max: limits.per_email },
        Limit { scope: Scope::Address, key: attempt.client.to_owned(), max: limits.per_address },
    ];
    let mut tx = shop.pool.begin().await.map_err(LedgerError::from)?;
    match checkout_requests::count_attempt(&mut tx, shop.tenant, &counted, limits.window, attempt.idempotency_key)
        .await?
    {
        None => {
            tx.commit().await.map_err(LedgerError::from)?;
            Ok(())
        }
        Some(retry_after) => Err(CheckoutError::Limited { retry_after }),
    }
}

/// An email as the limits count it: normalised as customers are, and hashed (the ledger keeps no
/// address of someone who only tried).
pub(super) fn email_key(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
