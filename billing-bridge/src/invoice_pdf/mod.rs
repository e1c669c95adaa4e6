//! Issued invoices as PDF documents: `document` reads what an invoice says from the ledger (lines,
//! discounts, taxes and totals, the tenant as seller, the customer as buyer), `render` lays it out
//! with the standard Helvetica fonts, stamped PAID, VOID or REFUNDED by status. An unchanged
//! invoice renders to the same bytes every time.
//!
//! Written with `pdf-writer` (the Typst project's PDF object writer): it writes the standard fonts
//! without embedding any, has four small dependencies the bridge already builds, and adds nothing
//! of its own (no producer stamp, no clock, no random document id), so the output is reproducible.

mod document;
mod fonts;
mod render;

pub use document::{InvoiceDocument, Party, PdfError, Status, load, of_notification};
pub use render::{amount, render};

/// The name an invoice's PDF is offered under.
pub fn file_name(doc: &InvoiceDocument) -> String {
    format!("{}.pdf", doc.number)
}
