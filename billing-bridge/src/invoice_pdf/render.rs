//! An invoice document laid out on A4 pages: the seller and the invoice's number and dates at the
//! top, the buyer, a stamp by status (PAID, VOID, REFUNDED), the lines with their amounts, the
//! totals, and on every page a footer with the support address. The bytes depend on the document
//! alone: no clock, the document id is the invoice's id and the creation date its issue time.

use chrono::{DateTime, Datelike, Timelike, Utc};
use pdf_writer::{Content, Date, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};

use super::document::{InvoiceDocument, Status};
use super::fonts::{self, Font};
use crate::money;

const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const LEFT: f32 = 50.0;
const RIGHT: f32 = 545.0;
/// Where a continued table starts on a later page.
const TOP: f32 = 780.0;
/// Nothing but the footer goes below this.
const BOTTOM: f32 = 80.0;
/// The table's columns: the description from `LEFT`, the numbers aligned on their right edges.
const DESCRIPTION_WIDTH: f32 = 270.0;
const QUANTITY_RIGHT: f32 = 360.0;
const UNIT_RIGHT: f32 = 450.0;
const ROW: f32 = 15.0;
const WRAPPED_ROW: f32 = 12.0;
const GRAY: f32 = 0.4;

const CATALOG: Ref = Ref::new(1);
const PAGE_TREE: Ref = Ref::new(2);
const INFO: Ref = Ref::new(3);
const FONTS: [Ref; 2] = [Ref::new(4), Ref::new(5)];
/// Page `i` is object `FIRST_PAGE + 2i`, its content `FIRST_PAGE + 2i + 1`.
const FIRST_PAGE: i32 = 10;

/// The invoice's PDF.
pub fn render(doc: &InvoiceDocument) -> Vec<u8> {
    let mut pages = Pages::new();
    header(&mut pages, doc);
    if let Some(word) = doc.status.stamp() {
        stamp(&mut pages.current, word, stamp_color(doc.status));
    }
    table(&mut pages, doc);
    totals(&mut pages, doc);
    let contents = pages.finish(doc);

    let mut pdf = Pdf::new();
    // the standard fonts need no widths of their own up to PDF 1.4
    pdf.set_version(1, 4);
    pdf.set_file_id(file_id(doc));
    pdf.catalog(CATALOG).pages(PAGE_TREE);
    let page_ids: Vec<Ref> = (0..contents.len()).map(|i| Ref::new(FIRST_PAGE + 2 * i as i32)).collect();
    pdf.pages(PAGE_TREE).kids(page_ids.iter().copied()).count(page_ids.len() as i32);
    for (page_id, content) in page_ids.iter().zip(contents) {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT)).parent(PAGE_TREE).contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        for (font, id) in Font::ALL.iter().zip(FONTS) {
            fonts.pair(font.resource(), id);
        }
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    for (font, id) in Font::ALL.iter().zip(FONTS) {
        pdf.type1_font(id).base_font(font.base_font()).encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    let title = format!("Invoice {}", doc.number);
    let seller = doc.seller.name.clone().unwrap_or_else(|| doc.seller.email.clone());
    pdf.document_info(INFO)
        .title(TextStr(&title))
        .author(TextStr(&seller))
        .creator(TextStr("mPanel billing bridge"))
        .creation_date(pdf_date(doc.issued_at));
    pdf.finish()
}

/// The amount in the currency's minor unit (no decimals for yen, three for dinars), thousands
/// grouped, with the upper-case code: `1,234.50 USD`, `3,000 JPY`, `-5.00 EUR`.
pub fn amount(value: Decimal, currency: &str) -> String {
    let digits = money::minor_unit_digits(currency);
    let rounded = value.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{:.*}", digits as usize, rounded.abs());
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, format!(".{fraction}")),
        None => (text.as_str(), String::new()),
    };
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if rounded.is_sign_negative() && !rounded.is_zero() { "-" } else { "" };
    format!("{sign}{grouped}{fraction} {}", currency.to_uppercase())
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn pdf_date(at: DateTime<Utc>) -> Date {
    Date::new(at.year().clamp(0, 9999) as u16)
        .month(at.month() as u8)
        .day(at.day() as u8)
        .hour(at.hour() as u8)
        .minute(at.minute() as u8)
        .second(at.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

/// The same for every rendering of the invoice; the second part changes with its status, as a
/// new revision of the document.
fn file_id(doc: &InvoiceDocument) -> (Vec<u8>, Vec<u8>) {
    let revision = Sha256::new().chain_update(doc.id.as_bytes()).chain_update(doc.status.as_str()).finalize();
    (doc.id.as_bytes().to_vec(), revision[..16].to_vec())
}

/// One line of `text` starting at (`x`, `y`).
fn show(content: &mut Content, font: Font, size: f32, x: f32, y: f32, text: &str) {
    let encoded = fonts::encode(text);
    content.begin_text().set_font(font.resource(), size).next_line(x, y).show(Str(&encoded)).end_text();
}

/// The pages written so far and the one being written, with the place of the next line on it.
struct Pages {
    done: Vec<Content>,
    current: Content,
    y: f32,
}

impl Pages {
    fn new() -> Self {
        Self { done: Vec::new(), current: Content::new(), y: TOP }
    }

    fn text(&mut self, font: Font, size: f32, x: f32, y: f32, text: &str) {
        show(&mut self.current, font, size, x, y, text);
    }

    fn text_right(&mut self, font: Font, size: f32, right: f32, y: f32, text: &str) {
        show(&mut self.current, font, size, right - font.width(text, size), y, text);
    }

    fn gray_text(&mut self, font: Font, size: f32, x: f32, y: f32, text: &str) {
        self.current.set_fill_gray(GRAY);
        self.text(font, size, x, y, text);
        self.current.set_fill_gray(0.0);
    }

    fn rule(&mut self, y: f32) {
        self.current.set_stroke_gray(0.6).set_line_width(0.5).move_to(LEFT, y).line_to(RIGHT, y).stroke();
    }

    /// Room for `height` below the next line: on a new page when this one is full. Whether a new
    /// page was begun.
    fn room_for(&mut self, height: f32) -> bool {
        if self.y - height >= BOTTOM {
            return false;
        }
        self.done.push(std::mem::replace(&mut self.current, Content::new()));
        self.y = TOP;
        true
    }

    /// Every page, each with its footer.
    fn finish(mut self, doc: &InvoiceDocument) -> Vec<Content> {
        self.done.push(std::mem::replace(&mut self.current, Content::new()));
        let count = self.done.len();
        let seller = doc.seller.name.as_deref().unwrap_or(&doc.seller.email);
        let question = format!("Questions about this invoice: {seller}, {}", doc.seller.email);
        for (i, page) in self.done.iter_mut().enumerate() {
            page.set_fill_gray(GRAY);
            show(page, Font::Regular, 8.0, LEFT, 40.0, &question);
            let place = format!("{}, page {} of {count}", doc.number, i + 1);
            show(page, Font::Regular, 8.0, RIGHT - Font::Regular.width(&place, 8.0), 40.0, &place);
        }
        self.done
    }
}

fn header(pages: &mut Pages, doc: &InvoiceDocument) {
    let seller = doc.seller.name.as_deref().unwrap_or(&doc.seller.email);
    pages.text(Font::Bold, 16.0, LEFT, 780.0, seller);
    pages.gray_text(Font::Regular, 10.0, LEFT, 764.0, &doc.seller.email);
    pages.text_right(Font::Bold, 22.0, RIGHT, 778.0, "INVOICE");

    let mut details = vec![("Number", doc.number.clone()), ("Issued", day(doc.issued_at))];
    if let Some(due) = doc.due_at {
        details.push(("Due", day(due)));
    }
    if let Some((start, end)) = doc.period {
        details.push(("Period", format!("{} to {}", day(start), day(end))));
    }
    details.push(("Currency", doc.currency.to_uppercase()));
    let mut y = 752.0;
    for (label, value) in &details {
        pages.gray_text(Font::Regular, 9.0, 350.0, y, label);
        pages.text_right(Font::Regular, 10.0, RIGHT, y, value);
        y -= 14.0;
    }

    let mut y = 700.0;
    pages.text(Font::Bold, 10.0, LEFT, y, "Bill to");
    if let Some(name) = &doc.buyer.name {
        y -= 14.0;
        pages.text(Font::Regular, 10.0, LEFT, y, name);
    }
    y -= 14.0;
    pages.text(Font::Regular, 10.0, LEFT, y, &doc.buyer.email);
    pages.y = 600.0;
}

fn stamp_color(status: Status) -> (f32, f32, f32) {
    match status {
        Status::Paid => (0.1, 0.55, 0.2),
        Status::Void => (0.75, 0.1, 0.1),
        Status::Refunded | Status::Issued => (0.85, 0.45, 0.0),
    }
}

/// `word` in a frame, turned 15 degrees, right of the buyer.
fn stamp(content: &mut Content, word: &str, (r, g, b): (f32, f32, f32)) {
    // cos and sin of 15 degrees, written out: the same bytes on every platform
    const COS: f32 = 0.965_925_8;
    const SIN: f32 = 0.258_819;
    let size = 28.0;
    let width = Font::Bold.width(word, size);
    content.save_state();
    content.transform([COS, SIN, -SIN, COS, 380.0, 628.0]);
    content.set_stroke_rgb(r, g, b).set_fill_rgb(r, g, b).set_line_width(2.5);
    content.rect(-8.0, -8.0, width + 16.0, size + 4.0).stroke();
    show(content, Font::Bold, size, 0.0, 0.0, word);
    content.restore_state();
}

fn table_header(pages: &mut Pages) {
    let y = pages.y;
    pages.text(Font::Bold, 9.0, LEFT, y, "Description");
    pages.text_right(Font::Bold, 9.0, QUANTITY_RIGHT, y, "Qty");
    pages.text_right(Font::Bold, 9.0, UNIT_RIGHT, y, "Unit price");
    pages.text_right(Font::Bold, 9.0, RIGHT, y, "Amount");
    pages.rule(y - 6.0);
    pages.y = y - 6.0 - ROW;
}

fn table(pages: &mut Pages, doc: &InvoiceDocument) {
    table_header(pages);
    for line in &doc.lines {
        let described = wrap(&line.description, Font::Regular, 10.0, DESCRIPTION_WIDTH);
        let height = ROW + WRAPPED_ROW * (described.len().saturating_sub(1)) as f32;
        if pages.room_for(height) {
            table_header(pages);
        }
        let y = pages.y;
        for (i, part) in described.iter().enumerate() {
            pages.text(Font::Regular, 10.0, LEFT, y - WRAPPED_ROW * i as f32, part);
        }
        pages.text_right(Font::Regular, 10.0, QUANTITY_RIGHT, y, &line.quantity.to_string());
        pages.text_right(Font::Regular, 10.0, UNIT_RIGHT, y, &amount(line.unit_amount, &doc.currency));
        pages.text_right(Font::Regular, 10.0, RIGHT, y, &amount(line.amount, &doc.currency));
        pages.y -= height;
    }
}

fn totals(pages: &mut Pages, doc: &InvoiceDocument) {
    let mut rows = vec![("Subtotal", doc.subtotal)];
    if !doc.discount_total.is_zero() {
        rows.push(("Discounts", doc.discount_total));
    }
    if !doc.tax_total.is_zero() {
        rows.push(("Tax", doc.tax_total));
    }
    pages.room_for(ROW * (rows.len() + 3) as f32);
    let rule = pages.y + ROW - 6.0;
    pages.rule(rule);
    pages.y = rule - ROW;
    for (label, value) in rows {
        let y = pages.y;
        pages.text_right(Font::Regular, 10.0, UNIT_RIGHT, y, label);
        pages.text_right(Font::Regular, 10.0, RIGHT, y, &amount(value, &doc.currency));
        pages.y -= ROW;
    }
    let y = pages.y - 4.0;
    pages.text_right(Font::Bold, 12.0, UNIT_RIGHT, y, "Total");
    pages.text_right(Font::Bold, 12.0, RIGHT, y, &amount(doc.total, &doc.currency));
    pages.y = y - 2.0 * ROW;
    if doc.status == Status::Issued {
        let due = doc.due_at.map(|d| format!(", due on {}", day(d))).unwrap_or_default();
        let y = pages.y;
        pages.text(Font::Regular, 10.0, LEFT, y, &format!("Amount due: {}{due}.", amount(doc.total, &doc.currency)));
        pages.y -= ROW;
    }
}

/// `text` in lines no wider than `width`, broken between words (a word too long alone is cut).
fn wrap(text: &str, font: Font, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() { word.to_owned() } else { format!("{line} {word}") };
        if font.width(&candidate, size) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for ch in word.chars() {
            line.push(ch);
            if font.width(&line, size) > width {
                line.pop();
                lines.push(std::mem::replace(&mut line, ch.to_string()));
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;
    use crate::invoice_pdf::document::Party;
    use crate::ledger::invoices::Line;

    fn line(position: i32, kind: &str, description: &str, quantity: i32, unit: Decimal) -> Line {
        Line {
            position,
            kind: kind.into(),
            description: description.into(),
            product_id: None,
            quantity,
            unit_amount: unit,
            amount: unit * Decimal::from(quantity),
        }
    }

    fn document(status: Status) -> InvoiceDocument {
        InvoiceDocument {
            id: Uuid::from_u128(0x1234),
            number: "INV-2026-000042".into(),
            status,
            currency: "usd".into(),
            issued_at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap(),
            due_at: Some(Utc.with_ymd_and_hms(2026, 12, 15, 9, 30, 0).unwrap()),
            period: None,
            seller: Party { name: Some("MigraHosting".into()), email: "support@migrahosting.com".into() },
            buyer: Party { name: Some("Ada Lovelace".into()), email: "ada@shop.example".into() },
            lines: vec![
                line(1, "item", "CloudPod Pro (monthly)", 1, Decimal::new(1999, 2)),
                line(2, "discount", "Welcome discount", 1, Decimal::new(-500, 2)),
                line(3, "tax", "VAT 20%", 1, Decimal::new(300, 2)),
            ],
            subtotal: Decimal::new(1999, 2),
            discount_total: Decimal::new(-500, 2),
            tax_total: Decimal::new(300, 2),
            total: Decimal::new(1799, 2),
        }
    }

    #[test]
    fn an_unchanged_invoice_renders_the_same_bytes() {
        let first = render(&document(Status::Paid));
        assert!(first.starts_with(b"%PDF-1.4"));
        assert_eq!(first, render(&document(Status::Paid)));
        assert_ne!(first, render(&document(Status::Void)), "the stamp follows the status");
    }

    #[test]
    fn the_document_carries_no_clock_only_the_invoice_s_dates() {
        let pdf = String::from_utf8_lossy(&render(&document(Status::Issued))).into_owned();
        assert!(pdf.contains("/CreationDate (D:20261201093000Z"), "{pdf}");
        assert!(!pdf.contains("/ModDate"), "{pdf}");
        assert!(pdf.contains("/Title (Invoice INV-2026-000042)"), "{pdf}");
        assert!(pdf.contains("(INV-2026-000042) Tj"), "{pdf}");
        assert!(pdf.contains("(17.99 USD) Tj"), "{pdf}");
        assert!(pdf.contains("(-5.00 USD) Tj"), "{pdf}");
        assert!(!pdf.contains("(PAID) Tj"), "an open invoice has no stamp: {pdf}");
    }

    #[test]
    fn the_stamp_says_the_status() {
        for (status, word) in [(Status::Paid, "PAID"), (Status::Void, "VOID"), (Status::Refunded, "REFUNDED")] {
            let pdf = String::from_utf8_lossy(&render(&document(status))).into_owned();
            assert!(pdf.contains(&format!("({word}) Tj")), "{status:?}");
        }
    }

    #[test]
    fn a_name_beyond_ascii_is_set_in_the_fonts_encoding() {
        let mut doc = document(Status::Issued);
        doc.buyer.name = Some("Zoë Müller".into());
        let pdf = String::from_utf8_lossy(&render(&doc)).to_ascii_uppercase();
        // pdf-writer writes a string beyond ASCII in hex: ë and ü are 0xEB and 0xFC in WinAnsi
        assert!(pdf.contains("<5A6FEB204DFC6C6C6572> TJ"), "{pdf}");
    }

    #[test]
    fn many_lines_go_on_to_further_pages() {
        let mut doc = document(Status::Issued);
        doc.lines = (1..=80).map(|i| line(i, "item", &format!("Add-on number {i}"), 1, Decimal::ONE)).collect();
        let pdf = String::from_utf8_lossy(&render(&doc)).into_owned();
        assert!(pdf.contains("/Count 3"), "{pdf}");
        assert!(pdf.contains("(Add-on number 80) Tj"));
        assert!(pdf.contains("(INV-2026-000042, page 3 of 3) Tj"));
    }

    #[test]
    fn amounts_have_the_currency_s_minor_unit() {
        assert_eq!(amount(Decimal::new(300000, 2), "jpy"), "3,000 JPY");
        assert_eq!(amount(Decimal::new(1999, 2), "usd"), "19.99 USD");
        assert_eq!(amount(Decimal::new(5, 0), "usd"), "5.00 USD");
        assert_eq!(amount(Decimal::new(-500, 2), "eur"), "-5.00 EUR");
        assert_eq!(amount(Decimal::new(123456750, 2), "usd"), "1,234,567.50 USD");
        assert_eq!(amount(Decimal::new(12345, 3), "kwd"), "12.345 KWD");
        assert_eq!(amount(Decimal::ZERO, "usd"), "0.00 USD");
    }

    #[test]
    fn long_descriptions_wrap_between_words() {
        let text = "Domain registration for a-rather-long-name.example including privacy protection and DNS";
        let lines = wrap(text, Font::Regular, 10.0, DESCRIPTION_WIDTH);
        assert!(lines.len() > 1, "{lines:?}");
        assert!(lines.iter().all(|l| Font::Regular.width(l, 10.0) <= DESCRIPTION_WIDTH), "{lines:?}");
        assert_eq!(lines.join(" "), text);
    }
}
