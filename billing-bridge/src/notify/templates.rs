//! The mails: a subject, a plain text and an HTML body for each kind of notification, from the
//! facts written with it and the tenant's branding. Every value from the ledger is escaped in the
//! HTML. No mail carries a credential: where a mailbox password was generated, the mail says it is
//! set in the portal or by staff.

use serde_json::Value;

use crate::ledger::notifications::{Branding, Kind};

/// A mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What a mail says, before it is put into text and HTML.
#[derive(Debug, Default)]
struct Content {
    title: String,
    paragraphs: Vec<String>,
    /// Invoice lines (description, amount) and the total, for a receipt.
    lines: Vec<(String, String)>,
    total: Option<String>,
    /// Where the customer pays the open invoice (`payUrl`), after the lines.
    pay: Option<(String, String)>,
}

pub fn render(kind: Kind, facts: &Value, brand: &Branding) -> Rendered {
    let content = content(kind, &Facts(facts), brand);
    Rendered {
        // one line, whatever a ledger value holds
        subject: format!("{}: {}", brand.name, content.title).replace(['\r', '\n'], " "),
        text: text(&content, brand),
        html: html(&content, brand),
    }
}

struct Facts<'a>(&'a Value);

impl Facts<'_> {
    fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    fn or<'a>(&'a self, key: &str, fallback: &'a str) -> &'a str {
        self.str(key).unwrap_or(fallback)
    }

    fn flag(&self, key: &str) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The product, and the domain it is for when there is one.
    fn service(&self) -> String {
        let product = self.or("product", "service");
        match self.str("domain") {
            Some(domain) => format!("{product} for {domain}"),
            None => product.to_owned(),
        }
    }

    fn money(&self, key: &str) -> Option<String> {
        let amount = self.str(key)?;
        Some(format!("{amount} {}", self.or("currency", "").to_uppercase()).trim_end().to_owned())
    }
}

/// The invoice's lines (description, amount in its currency), as the facts carry them.
fn lines(facts: &Facts<'_>) -> Vec<(String, String)> {
    let Some(lines) = facts.0.get("lines").and_then(Value::as_array) else { return Vec::new() };
    lines
        .iter()
        .map(|l| {
            let line = Facts(l);
            (line.or("description", "").to_owned(), format_money(line.or("amount", ""), facts))
        })
        .collect()
}

fn receipt(c: &mut Content, facts: &Facts<'_>, invoice: &str, service: &str) {
    c.title = format!("receipt for invoice {invoice}");
    let what = if facts.flag("renewal") { "renewal of your" } else { "order of" };
    c.paragraphs.push(format!("Thank you: we received your payment for the {what} {service}."));
    c.lines = lines(facts);
    c.total = facts.money("total");
    if facts.flag("mailboxPassword") && !facts.flag("renewal") {
        let portal = facts.str("portalUrl").map(|url| format!(" at {url}")).unwrap_or_default();
        c.paragraphs.push(format!(
            "Your mailbox password is never sent by email: set it in the customer portal{portal} \
             (sign in with this email address, open the subscription and choose a mailbox password), \
             or ask our staff to set it for you."
        ));
    }
}

fn payment_failed(c: &mut Content, facts: &Facts<'_>, invoice: &str) {
    c.title = format!("your payment for invoice {invoice} failed");
    let amount = facts.money("amount").map(|a| format!(" of {a}")).unwrap_or_default();
    c.paragraphs.push(format!("Your payment{amount} for invoice {invoice} did not go through."));
    if let Some(message) = facts.str("message") {
        c.paragraphs.push(format!("The payment provider said: {message}"));
    }
    if facts.str("payUrl").is_none() {
        c.paragraphs.push("Please pay the invoice again with another payment method.".to_owned());
    }
    c.pay = pay(facts, "Pay the invoice here, with this or another card");
}

/// Why a service is suspended, in the customer's words.
fn why_suspended(facts: &Facts<'_>) -> String {
    match facts.str("reason") {
        Some("Overdue") => "an invoice is unpaid past its due date".to_owned(),
        Some("Dispute") => "a payment of yours is disputed with your bank".to_owned(),
        Some("Abuse") => "it was used against our terms of service".to_owned(),
        Some("Manual") => "our staff suspended it; please contact support".to_owned(),
        Some(other) => other.to_owned(),
        None => "of a billing matter".to_owned(),
    }
}

fn content(kind: Kind, facts: &Facts<'_>, brand: &Branding) -> Content {
    let service = facts.service();
    let invoice = facts.or("invoice", "your invoice");
    let support = format!("If you have a question, write to {}.", brand.support);
    let mut c = Content::default();
    match kind {
        Kind::Receipt => receipt(&mut c, facts, invoice, &service),
        Kind::PaymentFailed => payment_failed(&mut c, facts, invoice),
        Kind::Suspended => {
            c.title = format!("your {service} is suspended");
            c.paragraphs.push(format!("Your {service} is suspended because {}.", why_suspended(facts)));
            c.paragraphs
                .push("It runs again as soon as the matter is settled; your data is kept meanwhile.".to_owned());
        }
        Kind::Resumed => {
            c.title = format!("your {service} runs again");
            c.paragraphs.push(format!("The suspension of your {service} is lifted: it runs again."));
        }
        Kind::Cancelled => {
            c.title = format!("your {service} is cancelled");
            c.paragraphs.push(format!("Your {service} is cancelled and its resources are removed."));
            if let Some(why) = facts.str("reason") {
                c.paragraphs.push(format!("Reason: {why}."));
            }
        }
        Kind::InvoiceIssued => {
            c.title = format!("invoice {invoice} for your {service}");
            let due = facts.str("due").map(|d| format!(", due on {d}")).unwrap_or_default();
            c.paragraphs.push(format!("Invoice {invoice} for the renewal of your {service} is issued{due}."));
            c.lines = lines(facts);
            c.total = facts.money("total");
            c.pay = pay(facts, "Pay it online");
        }
        Kind::PastDue => {
            c.title = format!("invoice {invoice} is past due");
            let amount = facts.money("total").map(|a| format!(" of {a}")).unwrap_or_default();
            let due = facts.str("due").map(|d| format!(" was due on {d} and")).unwrap_or_default();
            c.paragraphs.push(format!("Invoice {invoice}{amount}{due} is not paid yet."));
            c.paragraphs.push(format!(
                "Please pay it soon: unpaid, your {service} is suspended after a few days, then cancelled."
            ));
            c.pay = pay(facts, "Pay it online");
        }
        Kind::SignInLink => {
            c.title = "your sign-in link".to_owned();
            let until = facts.str("expires").map(|e| format!(" until {e}")).unwrap_or_default();
            c.paragraphs.push(format!(
                "Open this link to sign in to your account: {}",
                facts.or("url", "(the link could not be made; please ask for another)")
            ));
            c.paragraphs.push(format!("It works once{until}. If you did not ask to sign in, ignore this mail."));
        }
        Kind::ProvisioningFailed => {
            c.title = format!("we could not set up your {service}");
            c.paragraphs.push(format!("We are sorry: your {service} could not be set up."));
            c.paragraphs.push(match facts.money("refund") {
                Some(amount) => format!("We have refunded {amount} to your payment method."),
                None => "Our staff will contact you about your payment.".to_owned(),
            });
        }
    }
    c.paragraphs.push(support);
    c
}

/// The invoice's pay address, if the facts carry one, with the words leading to it.
fn pay(facts: &Facts<'_>, words: &str) -> Option<(String, String)> {
    facts.str("payUrl").map(|url| (words.to_owned(), url.to_owned()))
}

fn format_money(amount: &str, facts: &Facts<'_>) -> String {
    format!("{amount} {}", facts.or("currency", "").to_uppercase()).trim_end().to_owned()
}

fn text(c: &Content, brand: &Branding) -> String {
    let mut out = format!("{}\n\n", brand.name);
    for p in c.paragraphs.iter().take(1) {
        out.push_str(&format!("{p}\n\n"));
    }
    for (description, amount) in &c.lines {
        out.push_str(&format!("  {description}: {amount}\n"));
    }
    if let Some(total) = &c.total {
        out.push_str(&format!("  Total: {total}\n\n"));
    }
    if let Some((words, url)) = &c.pay {
        out.push_str(&format!("{words}: {url}\n\n"));
    }
    for p in c.paragraphs.iter().skip(1) {
        out.push_str(&format!("{p}\n\n"));
    }
    out.push_str(&format!("-- \n{}\n{}\n", brand.name, brand.support));
    out
}

fn html(c: &Content, brand: &Branding) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n");
    if let Some(logo) = &brand.logo_url {
        out.push_str(&format!("<p><img src=\"{}\" alt=\"{}\" height=\"40\"></p>\n", escape(logo), escape(&brand.name)));
    }
    out.push_str(&format!("<h2>{}</h2>\n", escape(&c.title)));
    for p in c.paragraphs.iter().take(1) {
        out.push_str(&format!("<p>{}</p>\n", escape(p)));
    }
    if !c.lines.is_empty() || c.total.is_some() {
        out.push_str("<table>\n");
        for (description, amount) in &c.lines {
            out.push_str(&format!(
                "<tr><td>{}</td><td align=\"right\">{}</td></tr>\n",
                escape(description),
                escape(amount)
            ));
        }
        if let Some(total) = &c.total {
            out.push_str(&format!(
                "<tr><th align=\"left\">Total</th><th align=\"right\">{}</th></tr>\n",
                escape(total)
            ));
        }
        out.push_str("</table>\n");
    }
    if let Some((words, url)) = &c.pay {
        out.push_str(&format!("<p><a href=\"{}\">{}</a></p>\n", escape(url), escape(words)));
    }
    for p in c.paragraphs.iter().skip(1) {
        out.push_str(&format!("<p>{}</p>\n", escape(p)));
    }
    out.push_str(&format!(
        "<p style=\"color: #666\">{} &middot; <a href=\"mailto:{}\">{}</a></p>\n</body></html>\n",
        escape(&brand.name),
        escape(&brand.support),
        escape(&brand.support)
    ));
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn brand() -> Branding {
        Branding {
            name: "MigraHosting".into(),
            sender: "billing@migrahosting.com".into(),
            support: "support@migrahosting.com".into(),
            logo_url: Some("https://migrahosting.com/logo.png".into()),
        }
    }

    #[test]
    fn a_receipt_lists_the_lines_and_the_total_in_text_and_html() {
        let facts = json!({"invoice": "INV-2026-000007", "total": "12.94", "currency": "usd", "product": "Email Basic",
                           "domain": "shop.example", "mailboxPassword": true, "renewal": false,
                           "lines": [{"description": "Email Basic (monthly)", "amount": "2.99"}]});
        let mail = render(Kind::Receipt, &facts, &brand());
        assert_eq!(mail.subject, "MigraHosting: receipt for invoice INV-2026-000007");
        assert!(mail.text.contains("Email Basic (monthly): 2.99 USD"), "{}", mail.text);
        assert!(mail.text.contains("Total: 12.94 USD"), "{}", mail.text);
        assert!(mail.text.contains("set it in the customer portal (sign in"), "{}", mail.text);
        let mut facts = facts;
        facts["portalUrl"] = json!("https://panel.example");
        let mail = render(Kind::Receipt, &facts, &brand());
        assert!(mail.text.contains("set it in the customer portal at https://panel.example (sign in"), "{}", mail.text);
        assert!(mail.html.contains("<img src=\"https://migrahosting.com/logo.png\""), "{}", mail.html);
        assert!(mail.html.contains("support@migrahosting.com"), "{}", mail.html);
    }

    #[test]
    fn a_renewal_invoice_says_what_is_due_and_when_and_past_due_what_follows() {
        let facts = json!({"invoice": "INV-2027-000012", "total": "19.99", "currency": "usd", "due": "2027-01-31",
                           "product": "CloudPod Pro", "lines": [{"description": "CloudPod Pro (monthly)", "amount": "19.99"}]});
        let issued = render(Kind::InvoiceIssued, &facts, &brand());
        assert_eq!(issued.subject, "MigraHosting: invoice INV-2027-000012 for your CloudPod Pro");
        assert!(issued.text.contains("due on 2027-01-31"), "{}", issued.text);
        assert!(issued.text.contains("CloudPod Pro (monthly): 19.99 USD"), "{}", issued.text);
        let late = render(Kind::PastDue, &facts, &brand());
        assert_eq!(late.subject, "MigraHosting: invoice INV-2027-000012 is past due");
        assert!(late.text.contains("of 19.99 USD was due on 2027-01-31 and is not paid yet"), "{}", late.text);
        assert!(late.text.contains("suspended"), "{}", late.text);
    }

    #[test]
    fn an_open_invoice_mail_carries_its_pay_link_and_one_without_says_nothing_of_it() {
        let url = "https://billing.migrahosting.com/v1/pay/0a1b";
        let facts = json!({"invoice": "INV-2027-000012", "total": "19.99", "currency": "usd", "product": "CloudPod Pro",
                           "amount": "19.99", "payUrl": url});
        for kind in [Kind::InvoiceIssued, Kind::PastDue, Kind::PaymentFailed] {
            let mail = render(kind, &facts, &brand());
            assert!(mail.text.contains(&format!(": {url}\n")), "{kind:?}: {}", mail.text);
            assert!(mail.html.contains(&format!("<a href=\"{url}\">")), "{kind:?}: {}", mail.html);
        }
        let failed = render(Kind::PaymentFailed, &json!({"invoice": "INV-1", "amount": "5.00"}), &brand());
        assert!(!failed.text.contains("/v1/pay/"), "{}", failed.text);
        assert!(failed.text.contains("with another payment method"), "{}", failed.text);
    }

    #[test]
    fn ledger_values_are_escaped_in_the_html() {
        let facts = json!({"product": "<b>Pod</b>", "reason": "Overdue"});
        let mail = render(Kind::Suspended, &facts, &brand());
        assert!(mail.html.contains("&lt;b&gt;Pod&lt;/b&gt;"), "{}", mail.html);
        assert!(!mail.html.contains("<b>Pod"), "{}", mail.html);
        assert!(mail.text.contains("unpaid past its due date"), "{}", mail.text);
    }

    #[test]
    fn a_staff_suspension_says_why_in_words() {
        let abuse = render(Kind::Suspended, &json!({"product": "CloudPod Mini", "reason": "Abuse"}), &brand());
        assert!(abuse.text.contains("because it was used against our terms of service"), "{}", abuse.text);
        let manual = render(Kind::Suspended, &json!({"product": "CloudPod Mini", "reason": "Manual"}), &brand());
        assert!(manual.text.contains("because our staff suspended it; please contact support"), "{}", manual.text);
    }

    #[test]
    fn a_failed_provisioning_says_what_was_refunded() {
        let facts = json!({"product": "CloudPod Mini", "refund": "9.99", "currency": "usd"});
        let mail = render(Kind::ProvisioningFailed, &facts, &brand());
        assert_eq!(mail.subject, "MigraHosting: we could not set up your CloudPod Mini");
        assert!(mail.text.contains("We have refunded 9.99 USD"), "{}", mail.text);
    }
}
