//! Customer notifications by email: the ledger keeps what is to be told (`ledger::notifications`,
//! written with the event that causes it); `worker` sends it over SMTP, `templates` words it.

pub mod templates;
pub mod worker;

pub use worker::{Mailer, NotifyError};
