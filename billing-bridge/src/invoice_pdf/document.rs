//! What an issued invoice's PDF says, read from the ledger: the invoice with its lines and totals,
//! the tenant as seller and the customer as buyer.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::ledger::LedgerError;
use crate::ledger::invoices::{self, Line};

/// An issued invoice as its document shows it.
#[derive(Debug, Clone)]
pub struct InvoiceDocument {
    pub id: Uuid,
    pub number: String,
    pub status: Status,
    /// Lower-case ISO 4217, as the ledger keeps it.
    pub currency: String,
    pub issued_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    /// The period a renewal invoice bills.
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub seller: Party,
    pub buyer: Party,
    /// Items, discounts (negative) and taxes, in their order on the invoice.
    pub lines: Vec<Line>,
    pub subtotal: Decimal,
    pub discount_total: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
}

/// The seller (the tenant: its name and support address) or the buyer (the customer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub name: Option<String>,
    pub email: String,
}

/// Where an issued invoice stands; a draft has no document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Issued,
    Paid,
    Void,
    Refunded,
}

impl Status {
    fn parse(status: &str) -> Option<Self> {
        match status {
            "issued" => Some(Self::Issued),
            "paid" => Some(Self::Paid),
            "void" => Some(Self::Void),
            "refunded" => Some(Self::Refunded),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Paid => "paid",
            Self::Void => "void",
            Self::Refunded => "refunded",
        }
    }

    /// The word stamped across the invoice; an open invoice has none.
    pub fn stamp(self) -> Option<&'static str> {
        match self {
            Self::Issued => None,
            Self::Paid => Some("PAID"),
            Self::Void => Some("VOID"),
            Self::Refunded => Some("REFUNDED"),
        }
    }
}

/// Why an invoice has no PDF; `reason()` is stable (the admin API's code).
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("invoice {0} is a draft: it has a PDF once it is issued")]
    Draft(Uuid),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl PdfError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Draft(_) => "InvoiceNotIssued",
            Self::Ledger(e) => e.reason(),
        }
    }
}

/// The document of `tenant`'s invoice `key` (its id or number).
pub async fn load(conn: &mut sqlx::PgConnection, tenant: Uuid, key: &str) -> Result<InvoiceDocument, PdfError> {
    let invoice = invoices::find(&mut *conn, tenant, key).await?;
    let (Some(number), Some(status), Some(issued_at)) =
        (invoice.number, Status::parse(&invoice.status), invoice.issued_at)
    else {
        return Err(PdfError::Draft(invoice.id));
    };
    let parties = invoices::parties(&mut *conn, invoice.id).await?;
    let lines = invoices::lines(&mut *conn, invoice.id).await?;
    Ok(InvoiceDocument {
        id: invoice.id,
        number,
        status,
        currency: invoice.currency,
        issued_at,
        due_at: invoice.due_at,
        period: invoice.period_start.zip(invoice.period_end),
        seller: Party { name: Some(parties.seller_name), email: parties.seller_email },
        buyer: Party { name: parties.buyer_name, email: parties.buyer_email },
        lines,
        subtotal: invoice.subtotal,
        discount_total: invoice.discount_total,
        tax_total: invoice.tax_total,
        total: invoice.total,
    })
}

/// The document of the invoice a notification is about (its event is `invoice:<id>`), if it is
/// about one that is issued.
pub async fn of_notification(
    conn: &mut sqlx::PgConnection,
    notification: i64,
) -> Result<Option<InvoiceDocument>, LedgerError> {
    let about = invoices::of_notification(&mut *conn, notification).await?;
    let Some((tenant, invoice)) = about else { return Ok(None) };
    match load(conn, tenant, &invoice.to_string()).await {
        Ok(document) => Ok(Some(document)),
        Err(PdfError::Draft(_)) => Ok(None),
        Err(PdfError::Ledger(e)) => Err(e),
    }
}
