//! Staff move a running subscription to another plan of the same type (a CloudPod plan to
//! another, say). An upgrade (a higher price for the subscription's cycle) is billed at once for
//! the days left of the current period: the new plan's price for those days, less the old plan's
//! for the same days, each rounded to the currency's minor unit; the subscription moves to the new
//! plan (and its resource is resized) when that invoice is paid. A downgrade (a lower or equal
//! price) is not refunded: the next renewal is priced at the new plan, and the subscription moves
//! to it when that renewal is paid. A CloudPod's disk never shrinks: after a downgrade the
//! resource keeps asking for the disk it has (`keep_disks`), with the smaller plan's cores and memory.
//! The plan is priced in its own cycle and period: with mixed cycles (an annual plan with monthly
//! add-ons) an upgrade prorates the plan's year, and a downgrade waits for the renewal that bills it.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::catalog::{self, Product};
use crate::ledger::invoices::{self, Invoice, NewLine, Purpose};
use crate::ledger::plan_changes::{self, PlanChange};
use crate::ledger::{Cycle, LedgerError, audit, notifications, orders, subscriptions};
use crate::money;
use crate::periods;

/// Why a plan change was refused; `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum PlanChangeError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("subscription {id} is {status}: only a running subscription changes plan")]
    NotRunning { id: Uuid, status: String },
    #[error("the subscription is on {0} already")]
    SamePlan(String),
    #[error("{to} is a {to_kind} product; the subscription's plan {from} is a {from_kind}")]
    OtherType { from: String, from_kind: String, to: String, to_kind: String },
    #[error("{0} is not sold (inactive)")]
    NotSold(String),
    #[error("{product} has no {cycle} price in {currency}")]
    NoPrice { product: String, cycle: String, currency: String },
    #[error("the current period ends today: change the plan once it is renewed")]
    PeriodEnding,
}

impl PlanChangeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::NotRunning { .. } => "SubscriptionNotRunning",
            Self::SamePlan(_) => "SamePlan",
            Self::OtherType { .. } => "PlanTypeDiffers",
            Self::NotSold(_) => "ProductNotSold",
            Self::NoPrice { .. } => "NoPrice",
            Self::PeriodEnding => "PeriodEnding",
        }
    }
}

/// A change recorded, with the upgrade's invoice.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Requested {
    pub change: PlanChange,
    pub invoice: Option<Invoice>,
}

/// The part of a period's price for `days_left` of its `period_days`, in the currency's minor unit.
pub fn prorated(price: Decimal, days_left: i64, period_days: i64, currency: &str) -> Decimal {
    (price * Decimal::from(days_left) / Decimal::from(period_days.max(1)))
        .round_dp_with_strategy(money::minor_unit_digits(currency), RoundingStrategy::MidpointAwayFromZero)
}

/// Days from `now`'s date to the period's end date, and the period's days (UTC calendar days).
pub fn days_left(start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> (i64, i64) {
    let left = (end.date_naive() - now.date_naive()).num_days();
    (left, (end.date_naive() - start.date_naive()).num_days())
}

/// Moves subscription `id` to the product `to` (a slug of the tenant), as `actor` asks at `now`.
pub async fn request(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
    to: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Requested, PlanChangeError> {
    let mut tx = pool.begin().await.map_err(LedgerError::from)?;
    let sub = subscriptions::lock(&mut tx, id).await?;
    if sub.tenant_id != tenant {
        return Err(LedgerError::NotFound(format!("subscription {id}")).into());
    }
    let (Some(start), Some(end), "active" | "past_due" | "suspended") =
        (sub.current_period_start, sub.current_period_end, sub.status.as_str())
    else {
        return Err(PlanChangeError::NotRunning { id, status: sub.status.clone() });
    };
    let from = catalog::by_id(&mut *tx, sub.product_id).await?;
    let to = catalog::by_slug(&mut *tx, tenant, to).await?;
    check_target(&from, &to)?;
    let order = orders::get(&mut *tx, sub.order_id).await?;
    let plan = orders::items(&mut *tx, order.id).await?.into_iter().next();
    let quantity = plan.as_ref().map_or(1, |i| i.quantity);
    // the plan is billed in its own cycle, over its own period (longer than the subscription's
    // when the order mixed cycles)
    let cycle: Cycle = plan.as_ref().map_or(sub.cycle.as_str(), |i| i.cycle.as_str()).parse()?;
    let (start, end) = if cycle.as_str() == sub.cycle {
        (start, end)
    } else {
        periods::containing(sub.period_anchor().unwrap_or(start), cycle, now)
    };
    let old_price = price(&mut tx, &from, cycle, &order.currency).await?;
    let new_price = price(&mut tx, &to, cycle, &order.currency).await?;
    let invoice = if new_price > old_price {
        let (left, period_days) = days_left(start, end, now);
        if left <= 0 {
            return Err(PlanChangeError::PeriodEnding);
        }
        let span = format!("{} to {}, {left} of {period_days} days", now.format("%Y-%m-%d"), end.format("%Y-%m-%d"));
        let lines = [
            NewLine {
                kind: "item",
                description: format!("{} ({cycle}) {span}", to.name),
                product_id: Some(to.id),
                quantity,
                unit_amount: prorated(new_price, left, period_days, &order.currency),
            },
            NewLine {
                kind: "discount",
                description: format!("Unused {} ({cycle}) {span}", from.name),
                product_id: Some(from.id),
                quantity,
                unit_amount: -prorated(old_price, left, period_days, &order.currency),
            },
        ];
        let purpose = Purpose::PlanChange { subscription: id };
        let draft = invoices::create_draft(&mut tx, tenant, sub.customer_id, &order.currency, purpose, &lines).await?;
        let issued = invoices::issue(&mut *tx, draft, now).await?;
        notifications::invoice_issued(&mut *tx, &issued, id).await?;
        Some(issued)
    } else {
        None
    };
    let change = plan_changes::record(&mut tx, id, from.id, to.id, invoice.as_ref().map(|i| i.id), actor).await?;
    let detail = json!({"from": from.slug, "to": to.slug, "direction": change.direction,
                        "invoice": invoice.as_ref().and_then(|i| i.number.clone())});
    audit::record(&mut *tx, actor, "subscription.change_plan", "subscription", &id.to_string(), detail).await?;
    tx.commit().await.map_err(LedgerError::from)?;
    Ok(Requested { change, invoice })
}

/// The resources of the new plan with each CloudPod's disk kept at least as big as it is now (a disk
/// only grows: the Subscription's schema refuses a smaller one, and the operator never shrinks one).
pub fn keep_disks(mut new: serde_json::Value, current: &serde_json::Value) -> serde_json::Value {
    let disk_of = |name: &serde_json::Value| {
        current["cloudPods"].as_array()?.iter().find(|p| &p["name"] == name)?["spec"]["resources"]["diskGiB"].as_u64()
    };
    if let Some(pods) = new["cloudPods"].as_array_mut() {
        for pod in pods {
            let (Some(kept), Some(disk)) = (disk_of(&pod["name"]), pod["spec"]["resources"]["diskGiB"].as_u64()) else {
                continue;
            };
            if kept > disk {
                pod["spec"]["resources"]["diskGiB"] = kept.into();
            }
        }
    }
    new
}

fn check_target(from: &Product, to: &Product) -> Result<(), PlanChangeError> {
    if to.id == from.id {
        return Err(PlanChangeError::SamePlan(from.slug.clone()));
    }
    if to.kind != from.kind {
        return Err(PlanChangeError::OtherType {
            from: from.slug.clone(),
            from_kind: from.kind.clone(),
            to: to.slug.clone(),
            to_kind: to.kind.clone(),
        });
    }
    if !to.active {
        return Err(PlanChangeError::NotSold(to.slug.clone()));
    }
    Ok(())
}

/// The product's renewal price for `cycle`, which must be in the order's currency.
async fn price(
    tx: &mut sqlx::PgConnection,
    product: &Product,
    cycle: Cycle,
    currency: &str,
) -> Result<Decimal, PlanChangeError> {
    let no_price = || PlanChangeError::NoPrice {
        product: product.slug.clone(),
        cycle: cycle.to_string(),
        currency: currency.to_uppercase(),
    };
    let priced = catalog::priced(&mut *tx, product, cycle, "renewal").await.map_err(|e| match e {
        LedgerError::Invalid(_) => no_price(),
        other => other.into(),
    })?;
    if !priced.currency.eq_ignore_ascii_case(currency) {
        return Err(no_price());
    }
    Ok(money::from_minor(priced.amount_cents, currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_days_left_are_priced_to_the_minor_unit_half_away_from_zero() {
        // 19.99 for 21 of 31 days: 13.5416… → 13.54; 39.99: 27.0899… → 27.09
        assert_eq!(prorated(Decimal::new(1999, 2), 21, 31, "usd"), Decimal::new(1354, 2));
        assert_eq!(prorated(Decimal::new(3999, 2), 21, 31, "usd"), Decimal::new(2709, 2));
        // 1,000 yen for 1 of 2 days: 500, whole yen
        assert_eq!(prorated(Decimal::new(1001, 0), 1, 2, "jpy"), Decimal::new(501, 0));
        assert_eq!(prorated(Decimal::new(1999, 2), 31, 31, "usd"), Decimal::new(1999, 2));
    }

    #[test]
    fn a_smaller_plan_keeps_the_bigger_disk_and_a_bigger_one_grows_it() {
        let pod =
            |disk: u64| json!({"cloudPods": [{"name": "p", "spec": {"resources": {"cores": 1, "diskGiB": disk}}}]});
        assert_eq!(keep_disks(pod(20), &pod(50)), pod(50));
        assert_eq!(keep_disks(pod(100), &pod(50)), pod(100));
        // another pod's disk is not this one's
        let other = json!({"cloudPods": [{"name": "q", "spec": {"resources": {"diskGiB": 200}}}]});
        assert_eq!(keep_disks(pod(20), &other), pod(20));
    }

    #[test]
    fn days_are_counted_by_utc_date() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (left, period) =
            days_left(at("2026-12-01T10:00:00Z"), at("2027-01-01T10:00:00Z"), at("2026-12-11T23:59:00Z"));
        assert_eq!((left, period), (21, 31));
    }
}
