//! The delivery worker: lanes that each claim the unsent notification due the longest (`FOR UPDATE
//! SKIP LOCKED`: bridge replicas on one ledger send each once), render it, send it over SMTP and
//! record the outcome in the same transaction: `sent_at`, or the error with the next attempt
//! (backoff doubling from 1 s to 5 min) while the server is down or answers a transient error, so
//! nothing is lost; a permanent refusal (5xx) is kept as failed and not tried again. Woken by the
//! database's `mpanel_notification` notification, when the first waiting notification is due, and
//! every `scan`.
//!
//! A mail the server accepted whose record is then lost (the ledger fails before the commit) is
//! sent again later: at least once, and the Message-ID (`notification-<uuid>@…`, kept on the row)
//! is the same.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentType, ContentTypeErr};
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::templates;
use crate::invoice_pdf::{self, InvoiceDocument};
use crate::lanes;
use crate::ledger::LedgerError;
use crate::ledger::notifications::{self, Kind, Pending};
use crate::metrics::Metrics;
use crate::portal::SignInLinks;
use crate::wakeup::Wakeup;

pub const CHANNEL: &str = "mpanel_notification";
/// Notifications sent at once per replica.
const PARALLEL: usize = 2;
/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a notification was not sent; `reason()` is stable (logs).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SMTP_ADDR {0:?} is not host:port")]
    BadServer(String),
    #[error("unknown notification kind {0:?}")]
    UnknownKind(String),
    #[error("address {address:?}: {error}")]
    Address { address: String, error: lettre::address::AddressError },
    #[error("building the message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("an attachment's content type: {0}")]
    AttachmentType(#[from] ContentTypeErr),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl NotifyError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadServer(_) => "BadSmtpServer",
            Self::UnknownKind(_) => "UnknownNotificationKind",
            Self::Address { .. } => "BadAddress",
            Self::Message(_) | Self::AttachmentType(_) => "MessageNotBuilt",
            Self::Smtp(e) if e.is_permanent() => "SmtpRefused",
            Self::Smtp(_) => "SmtpUnavailable",
        }
    }

    /// Trying again cannot help: the message or its addresses are wrong, or the server refused it
    /// for good.
    pub fn permanent(&self) -> bool {
        match self {
            Self::Smtp(e) => e.is_permanent(),
            Self::BadServer(_) => false,
            Self::UnknownKind(_) | Self::Address { .. } | Self::Message(_) | Self::AttachmentType(_) => true,
        }
    }
}

/// The SMTP server notifications go to (plain SMTP, no TLS: a relay on loopback or in the cluster).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// Signs the portal's sign-in links into their mails; without it those mails say no link could
    /// be made.
    sign_in: Option<SignInLinks>,
}

impl Mailer {
    /// A mailer for `addr` (`host:port`).
    pub fn new(addr: &str) -> Result<Self, NotifyError> {
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| NotifyError::BadServer(addr.to_owned()))?;
        let port: u16 = port.parse().map_err(|_| NotifyError::BadServer(addr.to_owned()))?;
        if host.is_empty() {
            return Err(NotifyError::BadServer(addr.to_owned()));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.trim_matches(['[', ']']))
            .port(port)
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self { transport, sign_in: None })
    }

    /// The mailer, putting the link `links` signs into each sign-in mail.
    pub fn with_sign_in_links(self, links: SignInLinks) -> Self {
        Self { sign_in: Some(links), ..self }
    }

    async fn send(&self, message: Message) -> Result<(), NotifyError> {
        self.transport.send(message).await?;
        Ok(())
    }
}

fn address(s: &str) -> Result<Address, NotifyError> {
    s.parse().map_err(|error| NotifyError::Address { address: s.to_owned(), error })
}

/// The notification as a multipart (plain text and HTML) message from its tenant, with the PDF of
/// `invoice` attached when given.
pub fn message(pending: &Pending, invoice: Option<&InvoiceDocument>) -> Result<Message, NotifyError> {
    let kind = Kind::parse(&pending.kind).ok_or_else(|| NotifyError::UnknownKind(pending.kind.clone()))?;
    let brand = &pending.branding;
    let mail = templates::render(kind, &pending.facts, brand);
    let sender = address(&brand.sender)?;
    let message_id = format!("<notification-{}@{}>", pending.message_id, sender.domain());
    let builder = Message::builder()
        .from(Mailbox::new(Some(brand.name.clone()), sender))
        .reply_to(Mailbox::new(Some(brand.name.clone()), address(&brand.support)?))
        .to(Mailbox::new(None, address(&pending.recipient)?))
        .subject(mail.subject)
        .message_id(Some(message_id));
    let body = MultiPart::alternative_plain_html(mail.text, mail.html);
    Ok(match invoice {
        None => builder.multipart(body)?,
        Some(invoice) => {
            let pdf = Attachment::new(invoice_pdf::file_name(invoice))
                .body(invoice_pdf::render(invoice), ContentType::parse("application/pdf")?);
            builder.multipart(MultiPart::mixed().multipart(body).singlepart(pdf))?
        }
    })
}

/// Claims the notification due the longest and sends it: whether there was one. A failed send is
/// recorded on the row, not returned; an `Err` is the ledger failing.
pub async fn send_next(
    pool: &PgPool,
    mailer: &Mailer,
    wakeup: &Wakeup,
    metrics: &Metrics,
) -> Result<bool, LedgerError> {
    let mut tx = pool.begin().await?;
    let Some(pending) = notifications::claim_due(&mut tx).await? else { return Ok(false) };
    wakeup.pass_on();
    let kind = Kind::parse(&pending.kind).map_or("unknown", Kind::as_str);
    let pending = with_portal_urls(pending, mailer.sign_in.as_ref());
    let invoice = match Kind::parse(&pending.kind) {
        Some(Kind::Receipt | Kind::InvoiceIssued) => invoice_pdf::of_notification(&mut tx, pending.id).await?,
        _ => None,
    };
    let sent = match message(&pending, invoice.as_ref()) {
        Ok(message) => mailer.send(message).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => {
            notifications::sent(&mut *tx, pending.id).await?;
            tx.commit().await?;
            metrics.notification(kind, "sent");
            tracing::info!(notification = pending.id, kind = %pending.kind, "notification sent");
        }
        Err(e) => {
            let words = e.to_string();
            let next = notifications::failed(&mut *tx, pending.id, &words, e.permanent()).await?;
            tx.commit().await?;
            metrics.notification(kind, if next.is_some() { "retry" } else { "refused" });
            tracing::warn!(
                notification = pending.id, kind = %pending.kind, attempts = pending.attempts + 1, retry_at = ?next,
                error = %words, reason = e.reason(), "notification not sent"
            );
        }
    }
    Ok(true)
}

/// A sign-in mail gets its link here, at sending, from the link's id: the ledger row holds none. A
/// receipt gets the portal's address (where the customer sets a mailbox password) when customers
/// can sign in there.
fn with_portal_urls(mut pending: Pending, links: Option<&SignInLinks>) -> Pending {
    let link = pending.facts.get("link").and_then(|v| v.as_str()).and_then(|s| uuid::Uuid::parse_str(s).ok());
    let kind = Kind::parse(&pending.kind);
    if let (Some(links), Some(facts)) = (links, pending.facts.as_object_mut()) {
        match (kind, link) {
            (Some(Kind::SignInLink), Some(link)) => {
                facts.insert("url".to_owned(), links.url(link).into());
            }
            (Some(Kind::Receipt), _) => {
                facts.insert("portalUrl".to_owned(), links.portal_url().into());
            }
            _ => {}
        }
    }
    pending
}

/// Runs until the process ends, `PARALLEL` lanes sending what is due (the one due the longest
/// first: a notification has no customer to take turns by).
pub async fn run(pool: PgPool, mailer: Mailer, scan: Duration, metrics: Arc<Metrics>) {
    let wakeup = Wakeup::relay(pool.clone(), CHANNEL, Arc::new(Notify::new()));
    let next_due = || async { notifications::next_due(&pool).await.ok().flatten() };
    lanes::run("notifications", PARALLEL, wakeup, scan, next_due, |_order, wakeup| {
        let (pool, mailer, metrics) = (&pool, &mailer, &metrics);
        async move { send_next(pool, mailer, &wakeup, metrics).await }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ledger::notifications::Branding;

    #[test]
    fn a_server_is_host_and_port() {
        assert!(Mailer::new("127.0.0.1:2525").is_ok());
        assert!(matches!(Mailer::new("127.0.0.1"), Err(NotifyError::BadServer(_))));
        assert!(matches!(Mailer::new(":25"), Err(NotifyError::BadServer(_))));
    }

    #[test]
    fn a_message_is_multipart_from_the_tenant_with_a_stable_id() -> anyhow::Result<()> {
        let pending = Pending {
            id: 42,
            message_id: uuid::Uuid::nil(),
            kind: "resumed".into(),
            recipient: "buyer@shop.example".into(),
            facts: json!({"product": "CloudPod Mini"}),
            attempts: 0,
            branding: Branding {
                name: "MigraHosting".into(),
                sender: "billing@migrahosting.com".into(),
                support: "support@migrahosting.com".into(),
                logo_url: None,
            },
        };
        let text = String::from_utf8(message(&pending, None)?.formatted())?;
        assert!(text.contains("From: MigraHosting <billing@migrahosting.com>"), "{text}");
        assert!(text.contains("To: buyer@shop.example"), "{text}");
        assert!(
            text.contains("Message-ID: <notification-00000000-0000-0000-0000-000000000000@migrahosting.com>"),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/html"), "{text}");
        Ok(())
    }
}
