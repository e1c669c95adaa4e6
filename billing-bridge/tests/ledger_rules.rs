//! Rules the ledger database itself enforces, whoever writes: gapless invoice numbers under
//! concurrent issuing, amounts and lines fixed at issue (also against a line written while the
//! invoice is issued), one-way invoice and subscription states, refunds within payments, and a
//! runtime role that cannot alter, truncate, drop or switch off any of it. Real PostgreSQL.

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
        cycle: "monthly".into(),
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

/// Runs `statement` on `db`; the database's words when it refused, None when it did it.
async fn refusal<'c>(db: impl sqlx::PgExecutor<'c>, statement: &str) -> Option<String> {
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(db).await.err().map(|e| e.to_string())
}

/// Asserts that `statement` is refused with words containing `expected`.
async fn assert_refused<'c>(db: impl sqlx::PgExecutor<'c>, statement: &str, expected: &str) {
    let words = refusal(db, statement).await;
    assert!(words.as_deref().is_some_and(|w| w.contains(expected)), "{statement}: {words:?}, expected {expected:?}");
}

#[test]
fn the_lines_of_an_issued_or_void_invoice_stay_on_it_and_none_moves_in() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let (issued, draft_a, draft_b, voided) = (
            draft(&ledger, tenant, 999).await?,
            draft(&ledger, tenant, 1999).await?,
            draft(&ledger, tenant, 2999).await?,
            draft(&ledger, tenant, 3999).await?,
        );
        invoices::issue(&ledger.pool, issued, chrono::Utc::now()).await?;
        invoices::void(&ledger.pool, voided).await?;
        // between two drafts a line may move
        sqlx::query("UPDATE invoice_lines SET invoice_id = $2, position = 10 WHERE invoice_id = $1 AND position = 3")
            .bind(draft_b)
            .bind(draft_a)
            .execute(&ledger.pool)
            .await?;
        for statement in [
            format!("UPDATE invoice_lines SET invoice_id = '{draft_a}', position = 11 WHERE invoice_id = '{issued}' AND position = 1"),
            format!("UPDATE invoice_lines SET invoice_id = '{issued}', position = 11 WHERE invoice_id = '{draft_a}' AND position = 1"),
            format!("UPDATE invoice_lines SET invoice_id = '{draft_a}', position = 12 WHERE invoice_id = '{voided}' AND position = 1"),
            format!("UPDATE invoice_lines SET invoice_id = '{voided}', position = 12 WHERE invoice_id = '{draft_a}' AND position = 2"),
        ] {
            assert_refused(&ledger.pool, &statement, "its lines cannot change").await;
        }
        let per_invoice: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT invoice_id, count(*) FROM invoice_lines WHERE invoice_id = ANY($1) GROUP BY invoice_id ORDER BY count(*)",
        )
        .bind(vec![issued, draft_a, draft_b, voided])
        .fetch_all(&ledger.pool)
        .await?;
        let counts: std::collections::HashMap<Uuid, i64> = per_invoice.into_iter().collect();
        assert_eq!(
            [counts.get(&issued), counts.get(&voided), counts.get(&draft_a), counts.get(&draft_b)],
            [Some(&3), Some(&3), Some(&4), Some(&2)]
        );
        let total: String = sqlx::query_scalar("SELECT total::text FROM invoices WHERE id = $1")
            .bind(issued)
            .fetch_one(&ledger.pool)
            .await?;
        assert_eq!(total, "10.49");
        anyhow::Ok(())
    })?;
    ledger.drop_database(&rt);
    Ok(())
}

/// Waits until the backend `pid` waits for a lock, or `task` is done (it did not wait at all).
async fn until_blocked<T>(ledger: &Ledger, pid: i32, task: &tokio::task::JoinHandle<T>) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: Option<String> = sqlx::query_scalar("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_optional(&ledger.pool)
            .await?
            .flatten();
        if waiting.as_deref() == Some("Lock") || task.is_finished() {
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "backend {pid} neither waited nor finished");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A connection of its own and its backend's pid.
async fn connection(ledger: &Ledger) -> anyhow::Result<(sqlx::PgConnection, i32)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&ledger.url).await?;
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await?;
    Ok((conn, pid))
}

/// The issue as another program would write it: plain SQL, no lock taken first.
const ISSUE: &str = "UPDATE invoices SET status = 'issued', due_at = now() WHERE id = $1 RETURNING total::text";

const EXTRA_LINE: &str = "INSERT INTO invoice_lines (invoice_id, position, kind, description, unit_amount, amount) \
                          VALUES ($1, 9, 'item', 'Extra disk', 5.00, 5.00)";

/// Every issued invoice's total is the sum of its lines.
async fn totals_match_lines(ledger: &Ledger, id: Uuid) -> anyhow::Result<(String, String, i64)> {
    Ok(sqlx::query_as(
        "SELECT i.status, i.total::text, (SELECT count(*) FROM invoice_lines l WHERE l.invoice_id = i.id) \
         FROM invoices i WHERE i.id = $1 AND (i.status = 'draft' OR i.total = \
           (SELECT sum(amount) FROM invoice_lines l WHERE l.invoice_id = i.id))",
    )
    .bind(id)
    .fetch_optional(&ledger.pool)
    .await?
    .unwrap_or_else(|| ("total differs from its lines".into(), String::new(), 0)))
}

#[test]
fn a_line_written_while_its_invoice_is_issued_is_in_the_total_or_refused() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let outcomes = rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let mut outcomes = Vec::new();

        // the line first: the issue waits for it and counts it
        let id = draft(&ledger, tenant, 999).await?;
        let (mut writer, _) = connection(&ledger).await?;
        let (mut issuer, issuer_pid) = connection(&ledger).await?;
        sqlx::raw_sql("BEGIN").execute(&mut writer).await?;
        sqlx::query(EXTRA_LINE).bind(id).execute(&mut writer).await?;
        let issue = tokio::spawn(async move {
            sqlx::query_scalar::<_, String>(ISSUE).bind(id).fetch_one(&mut issuer).await.map_err(|e| e.to_string())
        });
        until_blocked(&ledger, issuer_pid, &issue).await?;
        sqlx::raw_sql("COMMIT").execute(&mut writer).await?;
        assert_eq!(issue.await?.as_deref(), Ok("15.49"));
        outcomes.push(totals_match_lines(&ledger, id).await?);

        // the issue first: the line waits for it and is refused
        let id = draft(&ledger, tenant, 999).await?;
        let (mut writer, writer_pid) = connection(&ledger).await?;
        let (mut issuer, _) = connection(&ledger).await?;
        sqlx::raw_sql("BEGIN").execute(&mut issuer).await?;
        invoices::issue(&mut issuer, id, chrono::Utc::now()).await?;
        let write = tokio::spawn(async move {
            sqlx::query(EXTRA_LINE).bind(id).execute(&mut writer).await.map(|_| ()).map_err(|e| e.to_string())
        });
        until_blocked(&ledger, writer_pid, &write).await?;
        sqlx::raw_sql("COMMIT").execute(&mut issuer).await?;
        let written = write.await?;
        assert!(written.as_ref().is_err_and(|e| e.contains("its lines cannot change")), "{written:?}");
        outcomes.push(totals_match_lines(&ledger, id).await?);

        // an issuer in REPEATABLE READ whose snapshot predates the line: it cannot issue without it
        let id = draft(&ledger, tenant, 999).await?;
        let (mut writer, _) = connection(&ledger).await?;
        let (mut issuer, issuer_pid) = connection(&ledger).await?;
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1").execute(&mut issuer).await?;
        sqlx::raw_sql("BEGIN").execute(&mut writer).await?;
        sqlx::query(EXTRA_LINE).bind(id).execute(&mut writer).await?;
        let issue = tokio::spawn(async move {
            let issued = sqlx::query_scalar::<_, String>(ISSUE).bind(id).fetch_one(&mut issuer).await;
            let end = if issued.is_ok() { "COMMIT" } else { "ROLLBACK" };
            sqlx::raw_sql(end).execute(&mut issuer).await.map_err(|e| e.to_string())?;
            issued.map_err(|e| e.to_string())
        });
        until_blocked(&ledger, issuer_pid, &issue).await?;
        sqlx::raw_sql("COMMIT").execute(&mut writer).await?;
        let issued = issue.await?;
        assert!(
            issued.as_ref().is_err_and(|e| e.contains("could not serialize")) || issued.as_deref() == Ok("15.49"),
            "{issued:?}"
        );
        outcomes.push(totals_match_lines(&ledger, id).await?);
        anyhow::Ok(outcomes)
    })?;
    assert_eq!(outcomes[0], ("issued".to_owned(), "15.49".to_owned(), 4));
    assert_eq!(outcomes[1], ("issued".to_owned(), "10.49".to_owned(), 3));
    assert_eq!(outcomes[2].2, 4, "{:?}", outcomes[2]);
    ledger.drop_database(&rt);
    Ok(())
}

/// A pending subscription for the order of invoice `id`, made with plain SQL.
async fn subscription_for(ledger: &Ledger, id: Uuid) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO subscriptions (tenant_id, customer_id, product_id, order_id, cycle, namespace, resource_name, resources) \
         SELECT i.tenant_id, i.customer_id, oi.product_id, i.order_id, 'monthly', 'customer-rules', 'sub-' || left(i.id::text, 8), '{}' \
           FROM invoices i JOIN order_items oi ON oi.order_id = i.order_id WHERE i.id = $1 RETURNING id",
    )
    .bind(id)
    .fetch_one(&ledger.pool)
    .await?)
}

#[test]
fn an_issued_invoices_subscription_and_payment_time_are_set_once() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let (id, other) = (draft(&ledger, tenant, 999).await?, draft(&ledger, tenant, 1999).await?);
        let (sub, other_sub) = (subscription_for(&ledger, id).await?, subscription_for(&ledger, other).await?);
        invoices::issue(&ledger.pool, id, chrono::Utc::now()).await?;
        let pool = &ledger.pool;
        assert_refused(pool, &format!("UPDATE invoices SET paid_at = now() WHERE id = '{id}'"), "paid_at").await;
        // fulfilment links the invoice to the subscription it made: once
        sqlx::query("UPDATE invoices SET subscription_id = $2 WHERE id = $1").bind(id).bind(sub).execute(pool).await?;
        assert_refused(
            pool,
            &format!("UPDATE invoices SET subscription_id = '{other_sub}' WHERE id = '{id}'"),
            "its subscription cannot change",
        )
        .await;
        assert_refused(
            pool,
            &format!("UPDATE invoices SET subscription_id = NULL WHERE id = '{id}'"),
            "its subscription cannot change",
        )
        .await;
        sqlx::query("UPDATE invoices SET status = 'paid' WHERE id = $1").bind(id).execute(pool).await?;
        for statement in [
            format!("UPDATE invoices SET paid_at = paid_at - interval '1 day' WHERE id = '{id}'"),
            format!("UPDATE invoices SET paid_at = NULL WHERE id = '{id}'"),
            format!("UPDATE invoices SET status = 'refunded', paid_at = now() + interval '1 day' WHERE id = '{id}'"),
        ] {
            assert_refused(pool, &statement, "paid_at is set once").await;
        }
        let (linked, paid): (Option<Uuid>, bool) =
            sqlx::query_as("SELECT subscription_id, paid_at IS NOT NULL FROM invoices WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
        assert_eq!((linked, paid), (Some(sub), true));
        anyhow::Ok(())
    })?;
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_subscription_starts_pending_and_only_the_gate_makes_it_active() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let id = draft(&ledger, tenant, 999).await?;
        for (status, activated) in [("active", "NULL"), ("past_due", "NULL"), ("pending_activation", "now()")] {
            assert_refused(
                &ledger.pool,
                &format!(
                    "INSERT INTO subscriptions (tenant_id, customer_id, product_id, order_id, cycle, namespace, resource_name, resources, status, activated_at) \
                     SELECT i.tenant_id, i.customer_id, oi.product_id, i.order_id, 'monthly', 'customer-rules', 'sub-x', '{{}}', '{status}', {activated} \
                       FROM invoices i JOIN order_items oi ON oi.order_id = i.order_id WHERE i.id = '{id}'"
                ),
                "a subscription starts as pending_activation",
            )
            .await;
        }
        let sub = subscription_for(&ledger, id).await?;
        // the gate's own step
        let now = chrono::Utc::now();
        let active = mpanel_billing_bridge::ledger::subscriptions::activate(&ledger.pool, sub, now, now + chrono::Days::new(30))
            .await?;
        assert_eq!(active.map(|s| s.status).as_deref(), Some("active"));
        anyhow::Ok(())
    })?;
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn a_draft_can_be_voided_and_stays_void() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let id = draft(&ledger, tenant, 999).await?;
        let voided = invoices::void(&ledger.pool, id).await?;
        assert_eq!((voided.status.as_str(), voided.number.as_deref()), ("void", None));
        let voided_at: bool = sqlx::query_scalar("SELECT voided_at IS NOT NULL FROM invoices WHERE id = $1")
            .bind(id)
            .fetch_one(&ledger.pool)
            .await?;
        assert!(voided_at);
        for statement in [
            format!("UPDATE invoices SET status = 'draft' WHERE id = '{id}'"),
            format!("UPDATE invoices SET status = 'issued' WHERE id = '{id}'"),
            format!("DELETE FROM invoices WHERE id = '{id}'"),
            format!("UPDATE invoice_lines SET description = 'changed' WHERE invoice_id = '{id}'"),
        ] {
            assert_refused(&ledger.pool, &statement, "invoice").await;
        }
        // a number is given at issue only: a voided draft never gets one
        assert_refused(
            &ledger.pool,
            &format!("UPDATE invoices SET number = 'INV-2000-000001' WHERE id = '{id}'"),
            "invoice",
        )
        .await;
        anyhow::Ok(())
    })?;
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn refunds_never_exceed_what_a_payment_or_an_invoice_received() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    rt.block_on(async {
        let tenant = catalog::tenant_id(&ledger.pool, "migrahosting").await?;
        let id = draft(&ledger, tenant, 999).await?;
        invoices::issue(&ledger.pool, id, chrono::Utc::now()).await?;
        let pool = &ledger.pool;
        sqlx::query(
            "INSERT INTO payments (invoice_id, provider, reference, amount, currency, status) VALUES \
             ($1, 'stripe', 'pi_rules_1', 5.00, 'usd', 'succeeded'), ($1, 'manual', 'manual:rules', 5.49, 'usd', 'succeeded'), \
             ($1, 'stripe', 'pi_rules_2', 10.49, 'usd', 'failed')",
        )
        .bind(id)
        .execute(pool)
        .await?;
        for statement in [
            "UPDATE payments SET refunded_amount = 5.01 WHERE reference = 'pi_rules_1'".to_owned(),
            "UPDATE payments SET refunded_amount = -1 WHERE reference = 'pi_rules_1'".to_owned(),
            "UPDATE payments SET amount = 1.00, refunded_amount = 2.00 WHERE reference = 'manual:rules'".to_owned(),
            "UPDATE payments SET refunded_amount = 1.00 WHERE reference = 'pi_rules_2'".to_owned(),
            format!("UPDATE payments SET refunded_amount = amount + 0.01 WHERE invoice_id = '{id}' AND status = 'succeeded'"),
            format!(
                "INSERT INTO payments (invoice_id, provider, reference, amount, currency, status, refunded_amount) \
                 VALUES ('{id}', 'manual', 'manual:rules-2', 1.00, 'usd', 'refunded', 10.49)"
            ),
        ] {
            assert_refused(pool, &statement, "violates check constraint \"payments_").await;
        }
        // all that was received may go back
        sqlx::query("UPDATE payments SET refunded_amount = amount WHERE invoice_id = $1 AND status = 'succeeded'")
            .bind(id)
            .execute(pool)
            .await?;
        let (received, refunded): (String, String) = sqlx::query_as(
            "SELECT sum(amount) FILTER (WHERE status <> 'failed')::text, sum(refunded_amount)::text FROM payments WHERE invoice_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        assert_eq!((received.as_str(), refunded.as_str()), ("10.49", "10.49"));
        anyhow::Ok(())
    })?;
    ledger.drop_database(&rt);
    Ok(())
}

/// `mpanel-billing-bridge migrate` with the owner's and the runtime role's settings.
fn migrate(env: &[(&str, String)]) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(env!("CARGO_BIN_EXE_mpanel-billing-bridge"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env_remove("MIGRATION_DATABASE_URL")
        .env_remove("MPANEL_BRIDGE_RUNTIME_ROLE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()?)
}

#[test]
fn the_runtime_role_uses_the_ledger_but_cannot_alter_truncate_drop_or_switch_off_its_rules() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let env = ledger.runtime_env(&rt, &tb)?;
    let out = migrate(&env)?;
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
    // the owner (or a superuser) is no runtime role
    let mut as_owner = env.clone();
    as_owner[2].1 = "postgres".into();
    let out = migrate(&as_owner)?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be an ordinary role"), "{out:?}");

    let runtime_url = env[0].1.clone();
    rt.block_on(async {
        let runtime = sqlx::PgPool::connect(&runtime_url).await?;
        let tenant = catalog::tenant_id(&runtime, "migrahosting").await?;
        // what the bridge does works: a draft, its issue, a payment
        let mut tx = runtime.begin().await?;
        let customer = customers::find_or_create(&mut *tx, tenant, &support::email("runtime")).await?;
        let product = catalog::by_slug(&mut *tx, tenant, "cloudpod-mini").await?;
        let item =
            Item {
            position: 1,
            product_id: product.id,
            purpose: "new".into(),
            cycle: "monthly".into(),
            quantity: 1,
            unit_cents: 999,
            description: "Mini".into(),
        };
        let order = orders::create(&mut tx, tenant, customer.id, "monthly", "usd", None, &[item]).await?;
        let line = NewLine {
            kind: "item",
            description: "CloudPod Mini".into(),
            product_id: Some(product.id),
            quantity: 1,
            unit_amount: money::from_cents(999),
        };
        let id = invoices::create_draft(&mut tx, tenant, customer.id, "usd", Purpose::Order(order.id), &[line]).await?;
        tx.commit().await?;
        let issued = invoices::issue(&runtime, id, chrono::Utc::now()).await?;
        assert_eq!(issued.total.to_string(), "9.99");

        for (statement, expected) in [
            ("TRUNCATE invoices", "permission denied for table invoices"),
            ("TRUNCATE audit_log", "permission denied for table audit_log"),
            ("ALTER TABLE invoices DISABLE TRIGGER ALL", "must be owner of table invoices"),
            ("ALTER TABLE invoices DISABLE TRIGGER invoice_guard", "must be owner of table invoices"),
            ("ALTER TABLE payments DROP CONSTRAINT payments_refunds_within_amount", "must be owner of table payments"),
            ("DROP TABLE invoices", "must be owner of table invoices"),
            ("DROP TRIGGER invoice_guard ON invoices", "must be owner of relation invoices"),
            (
                "CREATE OR REPLACE FUNCTION invoice_guard() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
                "permission denied for schema public",
            ),
            ("SET session_replication_role = replica", "permission denied to set parameter"),
            ("DELETE FROM invoices", "permission denied for table invoices"),
            ("DELETE FROM audit_log", "permission denied for table audit_log"),
            ("UPDATE audit_log SET actor = 'someone else'", "permission denied for table audit_log"),
            ("DELETE FROM _sqlx_migrations", "permission denied for table _sqlx_migrations"),
            ("SELECT grant_bridge_runtime('mpanel_bridge')", "permission denied for function grant_bridge_runtime"),
        ] {
            assert_refused(&runtime, statement, expected).await;
        }
        // and the rules bind it like anyone
        assert_refused(&runtime, &format!("UPDATE invoices SET total = 0.01 WHERE id = '{id}'"), "cannot change").await;
        runtime.close().await;
        anyhow::Ok(())
    })?;
    ledger.drop_database(&rt);
    Ok(())
}

#[test]
fn each_tenant_numbers_its_own_invoices_from_one() -> anyhow::Result<()> {
    let rt = support::runtime()?;
    let tb = Testbed::from_env()?;
    let ledger = Ledger::fresh(&rt, &tb)?;
    let numbers = rt.block_on(async {
        sqlx::raw_sql(
            "INSERT INTO tenants (slug, name) VALUES ('othershop', 'Other shop'); \
             INSERT INTO products (tenant_id, slug, name, type, template) \
               SELECT (SELECT id FROM tenants WHERE slug = 'othershop'), slug, name, type, template FROM products \
               WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'migrahosting') AND slug = 'cloudpod-mini'",
        )
        .execute(&ledger.pool)
        .await?;
        let mut numbers = Vec::new();
        for slug in ["migrahosting", "othershop"] {
            let tenant = catalog::tenant_id(&ledger.pool, slug).await?;
            let id = draft(&ledger, tenant, 1000).await?;
            let issued = invoices::issue(&ledger.pool, id, chrono::Utc::now()).await?;
            numbers.push((tenant, issued.number.unwrap_or_default()));
        }
        anyhow::Ok(numbers)
    })?;
    let year = chrono::Utc::now().format("%Y");
    for (_, number) in &numbers {
        assert_eq!(number, &format!("INV-{year}-000001"), "each shop starts at one: {numbers:?}");
    }
    // one tenant's number finds its own invoice, not the other shop's
    for (tenant, number) in &numbers {
        let found = rt.block_on(invoices::find(&ledger.pool, *tenant, number))?;
        let owner = ledger.text(&rt, &format!("SELECT tenant_id::text FROM invoices WHERE id = '{}'", found.id))?;
        assert_eq!(owner, Some(tenant.to_string()));
    }
    ledger.drop_database(&rt);
    Ok(())
}
