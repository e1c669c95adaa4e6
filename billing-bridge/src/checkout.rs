//! Checkout: a product (with its cycle, the customer's email, a domain and add-ons) becomes a
//! customer, an order, an issued invoice and a Stripe Checkout Session.
//!
//! Nothing is held across the Stripe call: the customer, the order (`opening`) and a draft invoice
//! are committed first, Stripe is asked with no connection taken from the pool, and a second short
//! transaction records the session and issues the invoice. The session's Stripe idempotency key is
//! the order id, so asking again for the same order (a retry with the same Idempotency-Key, also
//! after a crash between the two steps) gets the same session. A client's Idempotency-Key keeps
//! the answer it got, so a retry makes no second order; per-email and per-client-address limits
//! are counted before anything else is asked. An order whose session expires unpaid is `expired`
//! and its invoice void (`expire`).
//!
//! A purchase that registers or transfers a domain asks the registrar first, before anything is
//! written or a session made: a name that is taken (registration only) or already in the account is
//! refused, and so is every such purchase while the registrar cannot be asked.
//!
//! A purchase that transfers a domain is priced at its products' `transfer` price and must give
//! `authCode`, which is written into a Secret of the customer's namespace once the order exists and
//! before Stripe is asked (`auth_code`); it is never written to the ledger.
//!
//! The order's resources are its products' templates merged (`render::order_resources`): a
//! template's `boughtWith.<type>` resources are added when the order holds a product of that type.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use mpanel_crds::domain::RegistrationMode;
use mpanel_crds::subscription::ResourceTemplates;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth_code::{self, AuthCode, AuthCodeRefused, Destination};
use crate::ledger::checkout_requests::{self, KeyedRequest, Limit, Scope};
use crate::ledger::invoices::{self, NewLine, Purpose};
use crate::ledger::orders::{self, Item, Order};
use crate::ledger::payments::{self, Payment};
use crate::ledger::{Cycle, LedgerError, audit, catalog, customers};
use crate::money;
use crate::registrar::{Registrar, Standing};
use crate::render::{self, Part, Placeholders};
use crate::stripe::api::{CheckoutLine, CheckoutRequest, CheckoutSession, StripeClient, StripeError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Purchase {
    pub product: String,
    pub cycle: String,
    pub email: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub addons: Vec<String>,
    /// A cycle of its own for some of the products (by slug), where it differs from `cycle`: a
    /// monthly CloudPod with a domain sold yearly is `{"cycle": "monthly", "cycles": {"domain": "annual"}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cycles: BTreeMap<String, String>,
    /// The EPP auth code of a domain transfer (see `auth_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<AuthCode>,
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
    #[error(transparent)]
    Currency(#[from] CurrencyRefused),
    #[error(transparent)]
    AuthCode(#[from] AuthCodeRefused),
    /// Too many checkouts for this email or from this client address within the window.
    #[error("too many checkouts; try again in {} s", .retry_after.as_secs())]
    Limited { retry_after: Duration },
    #[error("this Idempotency-Key was used with another request; use a new key for a new checkout")]
    KeyReused,
    /// A request with the same Idempotency-Key is making this order's session right now.
    #[error("a checkout with this Idempotency-Key is in progress; try again shortly")]
    InProgress,
    /// The order of this Idempotency-Key ended (its session expired unpaid) before it was answered.
    #[error("the order of this Idempotency-Key is {0}; use a new key for a new checkout")]
    Ended(String),
}

impl CheckoutError {
    /// The stable code of the checkout's own refusals (the others carry theirs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::Stripe(e) => e.reason(),
            Self::Domain(e) => e.code(),
            Self::Currency(e) => e.code(),
            Self::AuthCode(e) => e.code(),
            Self::Limited { .. } => "checkout_rate_limited",
            Self::KeyReused => "idempotency_key_reused",
            Self::InProgress => "checkout_in_progress",
            Self::Ended(_) => "checkout_ended",
        }
    }
}

/// The HTTP status of a checkout whose Stripe call failed (kept with its Idempotency-Key).
pub const STRIPE_FAILED_STATUS: u16 = 502;

/// Why a purchase of a domain registration or transfer is refused before any money is asked for.
#[derive(Debug, thiserror::Error)]
pub enum DomainRefused {
    #[error("{0} is not available for registration")]
    Unavailable(String),
    #[error("{0} is already registered in our registrar account")]
    AlreadyRegistered(String),
    /// A transfer of a name no registrar holds: there is nothing to move.
    #[error("{0} is not registered anywhere: it can be registered, not transferred")]
    NotRegistered(String),
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
            Self::NotRegistered(_) => "domain_not_registered",
            Self::RegistrarUnavailable => "registrar_unavailable",
        }
    }
}

/// Why a purchase is refused for its prices' currencies: an order is paid in one currency, and its
/// amounts must fit the ledger's two decimal places.
#[derive(Debug, thiserror::Error)]
pub enum CurrencyRefused {
    #[error("{product:?} is priced in {currency}, but {first:?} in {first_currency}: an order is paid in one currency")]
    Mixed { first: String, first_currency: String, product: String, currency: String },
    #[error("the price of {product:?} ({amount} {currency}) has more decimal places than the ledger keeps (2)")]
    TooPrecise { product: String, amount: Decimal, currency: String },
}

impl CurrencyRefused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Mixed { .. } => "currency_mixed",
            Self::TooPrecise { .. } => "currency_amount_too_precise",
        }
    }
}

/// Where Stripe sends the buyer afterwards.
#[derive(Debug, Clone)]
pub struct ReturnUrls {
    pub success: String,
    pub cancel: String,
}

/// What a checkout works with.
pub struct Shop<'a> {
    pub pool: &'a PgPool,
    pub tenant: Uuid,
    pub stripe: &'a StripeClient,
    pub registrar: Option<&'a Registrar>,
    pub urls: &'a ReturnUrls,
    /// Where a transfer's auth code is written; without it transfers are refused.
    pub kube: Option<&'a kube::Client>,
}

/// How many checkouts one email and one client address may start per window; 0 is no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub per_email: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { per_email: 5, per_address: 20, window: Duration::from_secs(600) }
    }
}

/// One checkout request.
pub struct Attempt<'a> {
    pub purchase: &'a Purchase,
    /// The client's Idempotency-Key, checked already (1 to 255 visible characters).
    pub idempotency_key: Option<&'a str>,
    /// The client's address as the limits count it.
    pub client: &'a str,
}

/// What the checkout answers: a status and a JSON body, the same for every request with the same
/// Idempotency-Key once there is a final answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// Given before, to an earlier request with the same key (or its order resumed).
    pub replayed: bool,
}

/// A checkout: the answer kept for its Idempotency-Key, or else (within the limits) a new order and
/// its Checkout Session.
pub async fn checkout(shop: &Shop<'_>, limits: &Limits, attempt: &Attempt<'_>) -> Result<Answer, CheckoutError> {
    let digest = request_digest(attempt.purchase);
    if let Some(code) = &attempt.purchase.auth_code {
        code.check()?;
    }
    if let Some(key) = attempt.idempotency_key
        && let Some(earlier) = checkout_requests::find(shop.pool, shop.tenant, key).await?
    {
        return again(shop, attempt.purchase, &earlier, &digest).await;
    }
    count_attempt(shop, limits, attempt).await?;
    let bought = prepare(shop, attempt.purchase).await?;
    let keyed = attempt.idempotency_key.map(|key| (key, digest.as_slice()));
    let Some(opened) = open(shop, attempt.purchase, &bought, keyed).await? else {
        // a request with the same key wrote its order first: answer as that one
        let key = attempt.idempotency_key.unwrap_or_default();
        let earlier = checkout_requests::find(shop.pool, shop.tenant, key)
            .await?
            .ok_or_else(|| LedgerError::NotFound(format!("the checkout of Idempotency-Key {key:?}")))?;
        return again(shop, attempt.purchase, &earlier, &digest).await;
    };
    let resumable = attempt.idempotency_key.is_some();
    keep_auth_code(shop, attempt.purchase, &opened, resumable).await?;
    ask_stripe(shop, &opened, resumable).await
}

/// The SHA-256 of the request as parsed, so that spacing and key order do not make it another. An
/// auth code counts only as given or not (`AuthCode` serializes so).
fn request_digest(purchase: &Purchase) -> Vec<u8> {
    let canonical = serde_json::to_vec(purchase).unwrap_or_default();
    Sha256::digest(&canonical).to_vec()
}

/// A request with a key seen before: the same request gets the answer kept for it, or resumes its
/// order while it has none; another request is refused.
async fn again(
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

fn kept_answer(request: &KeyedRequest) -> Option<Answer> {
    match (request.status, &request.response) {
        (Some(status), Some(body)) => Some(Answer { status: status as u16, body: body.0.clone(), replayed: true }),
        _ => None,
    }
}

/// Counts the attempt against the email's and the client address's limits (retries of one
/// Idempotency-Key once); refused with how long to wait when either is reached, and then nothing
/// is counted.
async fn count_attempt(shop: &Shop<'_>, limits: &Limits, attempt: &Attempt<'_>) -> Result<(), CheckoutError> {
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
fn email_key(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What is bought, read and checked before anything is written.
struct Bought {
    cycle: Cycle,
    /// Every item's price is in this currency (lower case).
    currency: String,
    domain: Option<String>,
    items: Vec<Item>,
}

async fn prepare(shop: &Shop<'_>, purchase: &Purchase) -> Result<Bought, CheckoutError> {
    let (pool, tenant) = (shop.pool, shop.tenant);
    let cycle: Cycle = purchase.cycle.parse()?;
    let domain = purchase.domain.as_deref().map(valid_domain).transpose()?;
    let slugs: Vec<&String> = std::iter::once(&purchase.product).chain(&purchase.addons).collect();
    let mut cycles = BTreeMap::new();
    for (slug, own) in &purchase.cycles {
        if !slugs.contains(&slug) {
            return Err(LedgerError::Invalid(format!("cycles names {slug:?}, which is not in this purchase")).into());
        }
        cycles.insert(slug.as_str(), own.parse::<Cycle>()?);
    }
    let mut products = Vec::new();
    for slug in slugs {
        match catalog::by_slug(pool, tenant, slug).await {
            Ok(p) if p.active => products.push(p),
            Ok(_) | Err(LedgerError::NotFound(_)) => {
                return Err(LedgerError::Invalid(format!("product {slug:?} is not for sale")).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    // the templates must make resources for this purchase before anyone pays for them
    let sample = Placeholders {
        subscription: "sub-check".into(),
        customer: "check".into(),
        email: purchase.email.clone(),
        domain: domain.clone(),
    };
    let parts: Vec<Part<'_>> =
        products.iter().map(|p| Part { slug: &p.slug, kind: &p.kind, template: &p.template.0 }).collect();
    let resources = render::order_resources(&parts, &sample)
        .map_err(|e| LedgerError::Invalid(format!("product {:?}: {}", e.product, e.error)))?;
    let resources: ResourceTemplates = serde_json::from_value(resources)
        .map_err(|e| LedgerError::Invalid(format!("the products' templates together: {e}")))?;
    check_auth_code(shop, purchase, &resources, &sample)?;
    let registrations = registrations_in(&resources);

    let mut items = Vec::new();
    let mut currency: Option<(String, String)> = None;
    for (index, product) in products.iter().enumerate() {
        let slug = &product.slug;
        let purpose = purpose_of(product, &sample)?;
        let cycle = cycles.get(slug.as_str()).copied().unwrap_or(cycle);
        let price = catalog::priced(pool, product, cycle, purpose).await.map_err(|e| match e {
            LedgerError::Invalid(words) => {
                LedgerError::Invalid(format!("{words}; a product sold in another cycle takes its own in `cycles`"))
            }
            other => other,
        })?;
        let price_currency = price.currency.to_ascii_lowercase();
        match &currency {
            Some((first, first_currency)) if *first_currency != price_currency => {
                return Err(CurrencyRefused::Mixed {
                    first: first.clone(),
                    first_currency: first_currency.clone(),
                    product: slug.clone(),
                    currency: price_currency,
                }
                .into());
            }
            Some(_) => {}
            None => currency = Some((slug.clone(), price_currency.clone())),
        }
        let amount = money::from_minor(price.amount_cents, &price_currency);
        if money::to_cents(amount).is_none() {
            return Err(CurrencyRefused::TooPrecise { product: slug.clone(), amount, currency: price_currency }.into());
        }
        let unit_cents = price.amount_cents;
        let description = match &domain {
            Some(d) => format!("{} ({cycle}) for {d}", product.name),
            None => format!("{} ({cycle})", product.name),
        };
        items.push(Item {
            position: index as i32 + 1,
            product_id: product.id,
            purpose: purpose.into(),
            cycle: cycle.as_str().into(),
            quantity: 1,
            unit_cents,
            description,
        });
    }
    check_registrations(shop.registrar, &registrations).await?;
    let currency = currency.map(|(_, c)| c).unwrap_or_else(|| "usd".to_owned());
    Ok(Bought { cycle, currency, domain, items })
}

/// What a product is priced for: `transfer` when its own template transfers a domain in, else `new`.
fn purpose_of(product: &catalog::Product, sample: &Placeholders) -> Result<&'static str, LedgerError> {
    let invalid = |e: String| LedgerError::Invalid(format!("product {:?}: {e}", product.slug));
    let own = render::fill(&render::base(&product.template.0), sample).map_err(invalid)?;
    let own: ResourceTemplates = serde_json::from_value(own).map_err(|e| invalid(format!("template: {e}")))?;
    Ok(if render::transfers_domain(&own) { "transfer" } else { "new" })
}

/// A purchase that transfers a domain gives a valid auth code, and one that does not gives none;
/// the code can only go where the template's Domain looks for it (`${authCodeSecret}`, key
/// `auth_code::KEY`), and only with a Kubernetes client to write it.
fn check_auth_code(
    shop: &Shop<'_>,
    purchase: &Purchase,
    resources: &ResourceTemplates,
    sample: &Placeholders,
) -> Result<(), CheckoutError> {
    let refs: Vec<_> = resources
        .domains
        .iter()
        .filter(|d| d.spec.registration.mode == RegistrationMode::Transfer)
        .map(|d| d.spec.registration.auth_code_secret_ref.as_ref())
        .collect();
    match (refs.is_empty(), &purchase.auth_code) {
        (true, None) => return Ok(()),
        (true, Some(_)) => return Err(AuthCodeRefused::Unexpected.into()),
        (false, None) => return Err(AuthCodeRefused::Required.into()),
        (false, Some(code)) => code.check()?,
    }
    let expected = render::auth_code_secret(&sample.subscription);
    if !refs.iter().all(|r| r.is_some_and(|r| r.name == expected && r.key == auth_code::KEY)) {
        return Err(LedgerError::Invalid(format!(
            "a transfer's authCodeSecretRef must be {{name: ${{authCodeSecret}}, key: {}}}",
            auth_code::KEY
        ))
        .into());
    }
    if shop.kube.is_none() {
        tracing::warn!("a domain transfer was refused: the bridge has no Kubernetes client for its auth code");
        return Err(AuthCodeRefused::NotKept.into());
    }
    Ok(())
}

/// An order whose Checkout Session is to be asked of Stripe: what the request to Stripe is made of.
struct Opened {
    order: Uuid,
    invoice: Uuid,
    customer: Uuid,
    email: String,
    stripe_customer: Option<String>,
    currency: String,
    items: Vec<Item>,
    customer_handle: String,
    namespace: String,
}

/// The first step, committed before Stripe is asked: the customer, the order (`opening`) with its
/// items, a draft invoice and the Idempotency-Key. `None` when another request took the key first.
async fn open(
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
async fn reopen(shop: &Shop<'_>, order: &Order) -> Result<Opened, LedgerError> {
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
async fn keep_auth_code(
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
async fn ask_stripe(shop: &Shop<'_>, opened: &Opened, resumable: bool) -> Result<Answer, CheckoutError> {
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
async fn record(shop: &Shop<'_>, opened: &Opened, session: &CheckoutSession) -> Result<Answer, CheckoutError> {
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
async fn answer_of_ended(shop: &Shop<'_>, order: &Order) -> Result<Answer, CheckoutError> {
    match checkout_requests::of_order(shop.pool, order.id).await?.as_ref().and_then(kept_answer) {
        Some(answer) => Ok(answer),
        None => Err(CheckoutError::Ended(order.status.clone())),
    }
}

/// No session will be made for the order: it is `failed`, its draft invoice void, and the error
/// (`reason`, `message`, HTTP `status`) is the answer kept for its Idempotency-Key.
async fn give_up(
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

/// The names the resources register or transfer in.
fn registrations_in(resources: &ResourceTemplates) -> Vec<(String, RegistrationMode)> {
    resources
        .domains
        .iter()
        .map(|d| (d.spec.name.clone(), d.spec.registration.mode))
        .filter(|(_, mode)| *mode != RegistrationMode::External)
        .collect()
}

/// Refuses a registration of a name that is taken or already in the account, and a transfer of one
/// already in the account or registered nowhere, as the registrar says now. Without a registrar, nothing of the kind is
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
            (Standing::Available | Standing::Invalid, RegistrationMode::Transfer) => {
                return Err(DomainRefused::NotRegistered(name.clone()));
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
        let filled: ResourceTemplates = serde_json::from_value(filled).unwrap();
        let found = registrations_in(&filled);
        assert_eq!(
            found,
            [("a.com".to_owned(), RegistrationMode::Register), ("b.com".to_owned(), RegistrationMode::Transfer)]
        );
        assert!(registrations_in(&ResourceTemplates::default()).is_empty());
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
