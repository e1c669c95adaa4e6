//! Invoices as PDF documents through the admin API (`GET /v1/admin/invoices/{key}/pdf`), read back
//! with poppler's `pdftotext` as a person's viewer would show them: the number, each line and the
//! total in the invoice's currency, a stamp by status, the same bytes for an unchanged invoice, and
//! the same document attached to the receipt mail. Real bridge, PostgreSQL, stripe-mock, the
//! testbed's kube-apiserver and Postfix.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_billing_bridge::ledger::invoices::{self, NewLine, Purpose};
use mpanel_billing_bridge::ledger::tokens::Role;
use mpanel_tests::Testbed;
use serde_json::{Value, json};
use support::{Bridge, Ledger, Namespaces, admin_token, email, eventually, session_completed, session_paid};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(40);

fn kubeconfig(tb: &Testbed) -> anyhow::Result<PathBuf> {
    Ok(tb.get("KUBECONFIG")?.into())
}

/// What the PDF route answered.
struct Fetched {
    status: u16,
    content_type: String,
    disposition: String,
    body: Vec<u8>,
}

impl Fetched {
    /// The JSON error's code, for an answer that is not a PDF.
    fn code(&self) -> Value {
        serde_json::from_slice::<Value>(&self.body).map(|v| v["error"]["code"].clone()).unwrap_or(Value::Null)
    }
}

fn fetch_pdf(rt: &Runtime, bridge: &Bridge, key: &str, token: Option<&str>) -> anyhow::Result<Fetched> {
    rt.block_on(async {
        let mut request = bridge.http.get(format!("{}/v1/admin/invoices/{key}/pdf", bridge.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (content_type, disposition) = (header("content-type"), header("content-disposition"));
        let status = response.status().as_u16();
        Ok(Fetched { status, content_type, disposition, body: response.bytes().await?.to_vec() })
    })
}

/// The invoice's PDF, which must be served; its text as `pdftotext -layout` extracts it.
fn pdf_of(rt: &Runtime, bridge: &Bridge, key: &str, token: &str, number: &str) -> anyhow::Result<(Vec<u8>, String)> {
    let fetched = fetch_pdf(rt, bridge, key, Some(token))?;
    assert_eq!(fetched.status, 200, "{}", String::from_utf8_lossy(&fetched.body));
    assert_eq!(fetched.content_type, "application/pdf");
    assert_eq!(fetched.disposition, format!("inline; filename=\"{number}.pdf\""));
    let text = pdftotext(&fetched.body)?;
    Ok((fetched.body, text))
}

fn pdftotext(pdf: &[u8]) -> anyhow::Result<String> {
    let file = std::env::temp_dir().join(format!("invoice-{}.pdf", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, pdf)?;
    let out = Command::new("pdftotext").arg("-layout").arg(&file).arg("-").output();
    let _ = std::fs::remove_file(&file);
    let out = out.context("running pdftotext (Debian package poppler-utils)")?;
    if !out.status.success() {
        bail!("pdftotext failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn invoice_of(placed: &Value) -> String {
    placed["invoiceId"].as_str().unwrap_or_default().to_owned()
}

fn number_of(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<String> {
    ledger
        .text(rt, &format!("SELECT number FROM invoices WHERE id = '{invoice}'"))?
        .context("the invoice has no number")
}

/// The customer namespace a paid invoice's fulfilment makes, to delete after the test.
fn namespace_of(rt: &Runtime, ledger: &Ledger, invoice: &str) -> anyhow::Result<String> {
    let handle = ledger.text(
        rt,
        &format!("SELECT c.handle FROM customers c JOIN invoices i ON i.customer_id = c.id WHERE i.id = '{invoice}'"),
    )?;
    Ok(format!("customer-{}", handle.unwrap_or_default()))
}

fn wait_for_status(rt: &Runtime, ledger: &Ledger, bridge: &Bridge, invoice: &str, status: &str) -> anyhow::Result<()> {
    let reached = eventually(WAIT, || {
        Ok(ledger.text(rt, &format!("SELECT status FROM invoices WHERE id = '{invoice}'"))?.as_deref() == Some(status))
    })?;
    assert!(reached, "invoice {invoice} did not become {status}: {}", bridge.log_tail(30));
    Ok(())
}

#[test]
fn an_issued_invoice_is_a_pdf_with_its_number_lines_and_total_the_same_bytes_each_time() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let reader = admin_token(&rt, &ledger, Role::ReadOnly)?;
    let billing = admin_token(&rt, &ledger, Role::Billing)?;
    let order = json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("pdf"),
                       "domain": "pdf-lines.example", "addons": ["email-basic"]});
    let invoice = invoice_of(&bridge.checkout(&rt, &order)?);
    let number = number_of(&rt, &ledger, &invoice)?;

    let (first, text) = pdf_of(&rt, &bridge, &invoice, &reader, &number)?;
    assert!(text.contains(&number), "{text}");
    let descriptions: Vec<String> = rt.block_on(
        sqlx::query_scalar(
            "SELECT l.description FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id \
                            WHERE i.number = $1 ORDER BY l.position",
        )
        .bind(&number)
        .fetch_all(&ledger.pool),
    )?;
    assert_eq!(descriptions.len(), 2, "{descriptions:?}");
    for description in &descriptions {
        assert!(text.contains(description.as_str()), "{description:?} is not in {text}");
    }
    // CloudPod Mini 9.99 and Email Basic 2.99, monthly
    for amount in ["9.99 USD", "2.99 USD", "12.98 USD"] {
        assert!(text.contains(amount), "{amount} is not in {text}");
    }
    assert!(text.contains("Total") && text.contains("Amount due: 12.98 USD"), "{text}");
    for stamp in ["PAID", "VOID", "REFUNDED"] {
        assert!(!text.contains(stamp), "an open invoice is stamped {stamp}: {text}");
    }

    // by number as by id, and byte for byte the same
    let (again, _) = pdf_of(&rt, &bridge, &number, &reader, &number)?;
    assert!(first == again, "the same invoice rendered different bytes");

    // voided: stamped so, a new document, again the same on every fetch
    let (status, answer) =
        bridge.post(&rt, &format!("/v1/admin/invoices/{number}/void"), &json!({}), Some(&billing))?;
    assert_eq!(status, 200, "{answer}");
    let (voided, text) = pdf_of(&rt, &bridge, &invoice, &reader, &number)?;
    assert!(text.contains("VOID"), "{text}");
    assert!(!text.contains("Amount due"), "a void invoice is not due: {text}");
    assert!(voided != first, "voiding changed nothing in the PDF");
    assert!(pdf_of(&rt, &bridge, &invoice, &reader, &number)?.0 == voided);
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_draft_has_no_pdf_an_unknown_invoice_is_not_found_and_a_token_is_required() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let reader = admin_token(&rt, &ledger, Role::ReadOnly)?;
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-mini", "cycle": "monthly", "email": email("draft")}))?;
    let order: uuid::Uuid = placed["orderId"].as_str().unwrap_or_default().parse()?;

    // a second invoice of the order, left a draft
    let draft = rt.block_on(async {
        let (tenant, customer): (uuid::Uuid, uuid::Uuid) =
            sqlx::query_as("SELECT tenant_id, customer_id FROM orders WHERE id = $1")
                .bind(order)
                .fetch_one(&ledger.pool)
                .await?;
        let line = NewLine {
            kind: "item",
            description: "Extra disk".into(),
            product_id: None,
            quantity: 1,
            unit_amount: rust_decimal::Decimal::new(500, 2),
        };
        let mut tx = ledger.pool.begin().await?;
        let id = invoices::create_draft(&mut tx, tenant, customer, "usd", Purpose::Order(order), &[line]).await?;
        tx.commit().await?;
        anyhow::Ok(id)
    })?;
    let fetched = fetch_pdf(&rt, &bridge, &draft.to_string(), Some(&reader))?;
    assert_eq!((fetched.status, fetched.code()), (409, json!("InvoiceNotIssued")));

    let unknown = fetch_pdf(&rt, &bridge, "INV-2099-999999", Some(&reader))?;
    assert_eq!((unknown.status, unknown.code()), (404, json!("NotFound")));
    let anonymous = fetch_pdf(&rt, &bridge, &invoice_of(&placed), None)?;
    assert_eq!((anonymous.status, anonymous.code()), (401, json!("Unauthenticated")));
    ledger.drop_database(&rt);
    Ok(())
}

/// The receipt mail to `recipient` in the testbed's capture maildir, once it arrived.
fn receipt_to(capture: &Path, recipient: &str, bridge: &Bridge) -> anyhow::Result<String> {
    let mut found = None;
    let arrived = eventually(WAIT, || {
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(capture.join(sub)) else { continue };
            for entry in entries {
                // another test may have removed its mail since the listing
                let Ok(mail) = std::fs::read_to_string(entry?.path()) else { continue };
                let mail = mail.replace("\r\n", "\n");
                let head = mail.split("\n\n").next().unwrap_or_default().to_ascii_lowercase();
                if head.contains(&format!("delivered-to: {}", recipient.to_ascii_lowercase()))
                    && head.contains("receipt for invoice")
                {
                    found = Some(mail);
                }
            }
        }
        Ok(found.is_some())
    })?;
    assert!(arrived, "no receipt reached {recipient}: {}", bridge.log_tail(30));
    found.context("no receipt")
}

/// The attachment `file_name` of `mail`, decoded (lettre sends a PDF in base64).
fn attachment(mail: &str, file_name: &str) -> anyhow::Result<Vec<u8>> {
    let disposition = format!("filename=\"{file_name}\"");
    let start = mail.find(&disposition).with_context(|| format!("no attachment {file_name} in {mail}"))?;
    let part = &mail[start..];
    let body = part.split_once("\n\n").context("an attachment without a body")?.1;
    let encoded: String = body.lines().take_while(|l| !l.starts_with("--")).collect();
    let mut decoder = Command::new("base64").arg("-d").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    decoder.stdin.take().context("base64's stdin")?.write_all(encoded.as_bytes())?;
    let out = decoder.wait_with_output()?;
    if !out.status.success() {
        bail!("base64 -d refused the attachment");
    }
    Ok(out.stdout)
}

#[test]
fn a_paid_invoice_is_stamped_paid_and_its_receipt_carries_the_same_pdf() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let smtp = [("NOTIFY_SMTP_ADDR", tb.get("NOTIFY_SMTP_ADDR")?.to_owned())];
    let bridge = Bridge::start_with_env(&rt, &tb, &ledger, &kubeconfig(&tb)?, &smtp)?;
    let reader = admin_token(&rt, &ledger, Role::ReadOnly)?;
    let customer = email("pdf-paid");
    let placed = bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": customer}))?;
    let invoice = invoice_of(&placed);
    let number = number_of(&rt, &ledger, &invoice)?;
    let _namespaces = Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &invoice)?] };
    let intent = format!("pi_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(bridge.deliver(&rt, &session_completed(&placed, &intent))?, 200);
    wait_for_status(&rt, &ledger, &bridge, &invoice, "paid")?;

    let (paid, text) = pdf_of(&rt, &bridge, &invoice, &reader, &number)?;
    assert!(text.contains("PAID"), "{text}");
    assert!(text.contains(&number) && text.contains("CloudPod Pro") && text.contains("19.99 USD"), "{text}");
    assert!(!text.contains("Amount due"), "a paid invoice is not due: {text}");

    let mail = receipt_to(Path::new(tb.get("MAIL_CAPTURE_DIR")?), &customer, &bridge)?;
    assert!(mail.contains("Content-Type: application/pdf"), "{mail}");
    let attached = attachment(&mail, &format!("{number}.pdf"))?;
    assert!(
        attached == paid,
        "the receipt's PDF is not the invoice's ({} bytes, {} served)",
        attached.len(),
        paid.len()
    );
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_yen_invoice_shows_whole_yen() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    rt.block_on(
        sqlx::query(
            "UPDATE product_prices SET currency = 'jpy', amount_cents = 3000 \
             WHERE cycle = 'monthly' AND purpose = 'new' \
               AND product_id = (SELECT id FROM products WHERE slug = 'cloudpod-pro')",
        )
        .execute(&ledger.pool),
    )?;
    let bridge = Bridge::start(&rt, &tb, &ledger, &kubeconfig(&tb)?)?;
    let reader = admin_token(&rt, &ledger, Role::ReadOnly)?;
    let placed =
        bridge.checkout(&rt, &json!({"product": "cloudpod-pro", "cycle": "monthly", "email": email("yen")}))?;
    let invoice = invoice_of(&placed);
    let number = number_of(&rt, &ledger, &invoice)?;
    let _namespaces = Namespaces { tb: &tb, names: vec![namespace_of(&rt, &ledger, &invoice)?] };
    assert_eq!(bridge.deliver(&rt, &session_paid(&placed, "pi_pdf_yen", 3000, "jpy"))?, 200);
    wait_for_status(&rt, &ledger, &bridge, &invoice, "paid")?;

    let (_, text) = pdf_of(&rt, &bridge, &invoice, &reader, &number)?;
    assert!(text.contains("3,000 JPY"), "{text}");
    assert!(!text.contains("3,000.00") && !text.contains("3000.00"), "yen have no decimals: {text}");
    assert!(text.contains("PAID"), "{text}");
    ledger.drop_database(&rt);
    Ok(())
}
