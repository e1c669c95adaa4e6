//! The ledger in PostgreSQL: one module per table family. Functions take an executor (a pool or a
//! transaction), so a caller composes them into one unit of work.

/// A query text assembled from constant pieces (column lists), never from input: values are bound.
macro_rules! sql {
    ($($t:tt)*) => {
        sqlx::AssertSqlSafe(format!($($t)*))
    };
}
pub(crate) use sql;

/// The work queues' claim: a query per pass (`FROM` and `ORDER BY` pieces filled into `query`),
/// by turns first when `order` says so, the first row found claimed.
pub(crate) async fn claim_first<T>(
    tx: &mut sqlx::PgConnection,
    order: crate::lanes::Order,
    turns: (&str, &str),
    oldest: (&str, &str),
    query: impl Fn(&str, &str) -> String,
) -> Result<Option<T>, LedgerError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let passes: &[(&str, &str)] = if order == crate::lanes::Order::Turns { &[turns, oldest] } else { &[oldest] };
    for (from, order_by) in passes {
        let found = sqlx::query_as(sqlx::AssertSqlSafe(query(from, order_by))).fetch_optional(&mut *tx).await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Whether the ledger answers at all (the health check).
pub async fn answers(db: impl sqlx::PgExecutor<'_>) -> Result<(), LedgerError> {
    sqlx::query("SELECT 1").execute(db).await?;
    Ok(())
}

pub mod audit;
pub mod catalog;
pub mod charge_attempts;
pub mod checkout_requests;
pub mod customers;
pub mod invoices;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod pay_links;
pub mod payments;
pub mod plan_changes;
pub mod portal;
pub mod roles;
pub mod stripe_events;
pub mod subscriptions;
pub mod tallies;
pub mod tokens;
pub mod work_attempts;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};

/// What went wrong with a ledger operation; `reason()` is stable (API error codes, metrics).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// A rule of the database refused the change; its message is kept verbatim.
    #[error("{0}")]
    Refused(String),
    #[error("database: {0}")]
    Database(#[source] sqlx::Error),
}

impl LedgerError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NotFound",
            Self::Invalid(_) => "InvalidRequest",
            Self::Conflict(_) => "Conflict",
            Self::Refused(_) => "RefusedByLedger",
            Self::Database(_) => "DatabaseError",
        }
    }
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            match db.code().as_deref() {
                // check_violation and raise_exception: the ledger's own rules
                Some("23514") | Some("P0001") => return Self::Refused(db.message().to_owned()),
                Some("23505") => return Self::Conflict(db.message().to_owned()),
                _ => {}
            }
        }
        Self::Database(e)
    }
}

/// How often a subscription is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cycle {
    Monthly,
    Quarterly,
    Annual,
    Biennial,
}

impl Cycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Quarterly => "quarterly",
            Self::Annual => "annual",
            Self::Biennial => "biennial",
        }
    }

    fn months(self) -> u32 {
        match self {
            Self::Monthly => 1,
            Self::Quarterly => 3,
            Self::Annual => 12,
            Self::Biennial => 24,
        }
    }

    /// The end of a period of this cycle that starts at `start`.
    pub fn after(self, start: DateTime<Utc>) -> DateTime<Utc> {
        start.checked_add_months(Months::new(self.months())).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cycle {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "monthly" => Self::Monthly,
            "quarterly" => Self::Quarterly,
            "annual" => Self::Annual,
            "biennial" => Self::Biennial,
            other => {
                return Err(LedgerError::Invalid(format!(
                    "unknown billing cycle {other:?}: monthly, quarterly, annual or biennial"
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_month_after_the_31st_ends_on_the_last_day_of_the_next_month() {
        let start = Utc.with_ymd_and_hms(2027, 1, 31, 12, 0, 0).single().unwrap_or_default();
        assert_eq!(Cycle::Monthly.after(start).to_rfc3339(), "2027-02-28T12:00:00+00:00");
        assert_eq!(Cycle::Annual.after(start).to_rfc3339(), "2028-01-31T12:00:00+00:00");
    }
}
