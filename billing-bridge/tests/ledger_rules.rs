//! Rules the ledger database itself enforces, whoever writes: gapless invoice numbers under
//! concurrent issuing, amounts fixed at issue, one-way subscription states. Real PostgreSQL.

mod support;

use mpanel_billing_bridge::ledger::invoices::{self, NewLine, Purpose};
use mpanel_billing_bridge::ledger::orders::{self, Item};
use mpanel_billing_bridge::ledger::{catalog, customers};
use mpanel_billing_bridge::money;
use mpanel_tests::Testbed;
use support::Ledger;
use uuid::Uuid;

/// A draft invoice for a new order of `cents`.
async fn draft(ledger: &Ledger, tenant: Uuid, cents: i64) -> anyhow::Result<Uuid> {
    let mut tx = ledger.pool.begin().await?;
    let customer = customers::find_or_create(&mut *tx, tenant, &support::email("rules")).await?;
    let product = catalog::by_slug(&mut *tx, tenant, "cloudpod-mini").await?;
    let item = Item {
        position: 1,
        product_id: product.id,
        purpose: "new".into(),
        quantity: 1,
        unit_cents: cents,
        description: "Mini".into(),
    };
    let order = orders::create(&mut tx, tenant, customer.id, "monthly", "usd", None, &[item]).await?;
    let lines = [
        NewLine {
            kind: "item",
            description: "CloudPod Mini".into(),
            product_id: Some(product.id),
            quantity: 1,
            unit_amount: money::from_cents(cents),
        },
        NewLine {
            kind: "discount",
            description: "Welcome".into(),
            product_id: None,
            quantity: 1,
            unit_amount: money::from_cents(-100),
        },
        NewLine {
            kind: "tax",
            description: "VAT".into(),
            product_id: None,
            quantity: 1,
            unit_amount: money::from_cents(150),
        },
    ];
    let id = invoices::create_draft(&mut tx, tenant, customer.id, "usd", Purpose::Order(order.id), &lines).await?;
    tx.commit().await?;
    Ok(id)
}

#[test]
fn invoice_numbers_are_gapless_and_sequential_under_concurrent_issuing() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let numbers: Vec<String> = rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let mut drafts = Vec::new();
        for i in 0..60 {
            drafts.push(draft(&ledger, tenant, 999 + i).await?);
        }
        // 60 issuers at once; every third one rolls back after taking its number
        let tasks = drafts.into_iter().enumerate().map(|(i, id)| {
            let pool = ledger.pool.clone();
            tokio::spawn(async move {
                let mut tx = pool.begin().await?;
                let issued = invoices::issue(&mut *tx, id, chrono::Utc::now()).await?;
                if i % 3 == 0 {
                    tx.rollback().await?;
                    return anyhow::Ok(None);
                }
                tx.commit().await?;
                Ok(issued.number)
            })
        });
        let mut numbers = Vec::new();
        for result in futures::future::join_all(tasks).await {
            numbers.extend(result??);
        }
        anyhow::Ok(numbers)
    })?;
    let year = chrono::Utc::now().format("%Y").to_string();
    let mut sequence: Vec<u32> = numbers
        .iter()
        .map(|n| {
            assert!(n.starts_with(&format!("INV-{year}-")) && n.len() == 15, "{n}");
            n[9..].parse().unwrap_or(0)
        })
        .collect();
    sequence.sort_unstable();
    assert_eq!(sequence, (1..=40).collect::<Vec<u32>>(), "numbers are not 1..40 without gaps");
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn an_issued_invoice_cannot_be_changed_by_anyone() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let id = rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let id = draft(&ledger, tenant, 999).await?;
        // a draft may change
        sqlx::query(
            "UPDATE invoice_lines SET description = 'CloudPod Mini (edited)' WHERE invoice_id = $1 AND position = 1",
        )
        .bind(id)
        .execute(&ledger.pool)
        .await?;
        let issued = invoices::issue(&ledger.pool, id, chrono::Utc::now()).await?;
        // 9.99 - 1.00 discount + 1.50 tax, summed by the database at issue
        assert_eq!(issued.total.to_string(), "10.49");
        assert_eq!(
            (issued.subtotal.to_string(), issued.discount_total.to_string(), issued.tax_total.to_string()),
            ("9.99".into(), "-1.00".into(), "1.50".into())
        );
        anyhow::Ok(id)
    })?;
    let refused = [
        format!("UPDATE invoices SET total = 1.00 WHERE id = '{id}'"),
        format!("UPDATE invoices SET subtotal = subtotal + 1, total = total + 1 WHERE id = '{id}'"),
        format!("UPDATE invoices SET number = 'INV-2000-000001' WHERE id = '{id}'"),
        format!("UPDATE invoice_lines SET unit_amount = 0.01, amount = 0.01 WHERE invoice_id = '{id}'"),
        format!(
            "INSERT INTO invoice_lines (invoice_id, position, kind, description, unit_amount, amount) VALUES ('{id}', 9, 'discount', 'sneaky', -5, -5)"
        ),
        format!("DELETE FROM invoice_lines WHERE invoice_id = '{id}'"),
        format!("DELETE FROM invoices WHERE id = '{id}'"),
        format!("UPDATE invoices SET status = 'draft' WHERE id = '{id}'"),
        format!("UPDATE invoices SET status = 'refunded' WHERE id = '{id}'"),
    ];
    for statement in &refused {
        let result = rt.block_on(sqlx::query(sqlx::AssertSqlSafe(statement.clone())).execute(&ledger.pool));
        let err = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("invoice"), "{statement} was not refused: {err:?}");
    }
    assert_eq!(
        ledger.text(&rt, &format!("SELECT total::text FROM invoices WHERE id = '{id}'"))?.as_deref(),
        Some("10.49")
    );
    // paying and voiding are state changes, allowed
    rt.block_on(
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE invoices SET status = 'paid' WHERE id = '{id}'")))
            .execute(&ledger.pool),
    )?;
    ledger.drop_database(&rt);
    Ok(())
}
