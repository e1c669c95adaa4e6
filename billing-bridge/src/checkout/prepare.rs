//! What is bought, read and checked before anything is written: the cycle, the products and their
//! prices in one currency, the domain, and an auth code where a transfer needs one.

use super::*;

/// What is bought, read and checked before anything is written.
pub(super) struct Bought {
    pub(super) cycle: Cycle,
    /// Every item's price is in this currency (lower case).
    pub(super) currency: String,
    pub(super) domain: Option<String>,
    pub(super) items: Vec<Item>,
}

pub(super) async fn prepare(shop: &Shop<'_>, purchase: &Purchase) -> Result<Bought, CheckoutError> {
    let cycle: Cycle = purchase.cycle.parse()?;
    let domain = purchase.domain.as_deref().map(valid_domain).transpose()?;
    let (products, cycles) = products_of(shop, purchase).await?;
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
    let (items, currency) = priced_items(shop, &products, &cycles, cycle, &sample).await?;
    check_registrations(shop.registrar, &registrations).await?;
    Ok(Bought { cycle, currency, domain, items })
}

/// The purchase's products (the plan first, then the add-ons), each for sale, and the cycles some
/// of them are bought in instead of the purchase's own.
async fn products_of(
    shop: &Shop<'_>,
    purchase: &Purchase,
) -> Result<(Vec<catalog::Product>, BTreeMap<String, Cycle>), CheckoutError> {
    let slugs: Vec<&String> = std::iter::once(&purchase.product).chain(&purchase.addons).collect();
    let mut cycles = BTreeMap::new();
    for (slug, own) in &purchase.cycles {
        if !slugs.contains(&slug) {
            return Err(LedgerError::Invalid(format!("cycles names {slug:?}, which is not in this purchase")).into());
        }
        cycles.insert(slug.clone(), own.parse::<Cycle>()?);
    }
    let mut products = Vec::new();
    for slug in slugs {
        match catalog::by_slug(shop.pool, shop.tenant, slug).await {
            Ok(p) if p.active => products.push(p),
            Ok(_) | Err(LedgerError::NotFound(_)) => {
                return Err(LedgerError::Invalid(format!("product {slug:?} is not for sale")).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((products, cycles))
}

/// The order's items at their prices, and the one currency they are all in (lower case); prices in
/// more than one currency, or finer than the currency's minor unit, are refused.
async fn priced_items(
    shop: &Shop<'_>,
    products: &[catalog::Product],
    cycles: &BTreeMap<String, Cycle>,
    cycle: Cycle,
    sample: &Placeholders,
) -> Result<(Vec<Item>, String), CheckoutError> {
    let mut items = Vec::new();
    let mut currency: Option<(String, String)> = None;
    for (index, product) in products.iter().enumerate() {
        let slug = &product.slug;
        let purpose = purpose_of(product, sample)?;
        let cycle = cycles.get(slug.as_str()).copied().unwrap_or(cycle);
        let price = catalog::priced(shop.pool, product, cycle, purpose).await.map_err(|e| match e {
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
        let description = match &sample.domain {
            Some(d) => format!("{} ({cycle}) for {d}", product.name),
            None => format!("{} ({cycle})", product.name),
        };
        items.push(Item {
            position: index as i32 + 1,
            product_id: product.id,
            purpose: purpose.into(),
            cycle: cycle.as_str().into(),
            quantity: 1,
            unit_cents: price.amount_cents,
            description,
        });
    }
    let currency = currency.map(|(_, c)| c).unwrap_or_else(|| "usd".to_owned());
    Ok((items, currency))
}

/// What a product is priced for: `transfer` when its own template transfers a domain in, else `new`.
pub(super) fn purpose_of(product: &catalog::Product, sample: &Placeholders) -> Result<&'static str, LedgerError> {
    let invalid = |e: String| LedgerError::Invalid(format!("product {:?}: {e}", product.slug));
    let own = render::fill(&render::base(&product.template.0), sample).map_err(invalid)?;
    let own: ResourceTemplates = serde_json::from_value(own).map_err(|e| invalid(format!("template: {e}")))?;
    Ok(if render::transfers_domain(&own) { "transfer" } else { "new" })
}

/// A purchase that transfers a domain gives a valid auth code, and one that does not gives none;
/// the code can only go where the template's Domain looks for it (`${authCodeSecret}`, key
/// `auth_code::KEY`), and only with a Kubernetes client to write it.
pub(super) fn check_auth_code(
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
