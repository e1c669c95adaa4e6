//! Works off the outbox: applies each subscription's resource as the ledger now says (server-side
//! apply, field manager `billing-bridge`) or deletes it. An entry is done only once Kubernetes took
//! it, so an outage loses nothing: the entries wait, in order, and are applied when it is back.
//! Applying renders from the current ledger, so what lands is the intended state, once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use mpanel_crds::subscription::Subscription;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::ledger::outbox::{self, Action, Entry};
use crate::ledger::{Cycle, LedgerError, catalog, customers, subscriptions};
use crate::metrics::Metrics;
use crate::render::{self, Billed, FIELD_MANAGER, MAILBOX_PASSWORD_KEY};
use crate::wakeup::Wakeup;

pub const CHANNEL: &str = "mpanel_outbox";

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("Kubernetes: {0}")]
    Kubernetes(#[from] kube::Error),
    #[error("rendering the Subscription: {0}")]
    Render(String),
}

impl OutboxError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::Kubernetes(_) => "KubernetesUnavailable",
            Self::Render(_) => "RenderFailed",
        }
    }
}

/// Works off every pending entry; stops at the first failure (the API is likely down) and says so.
pub async fn drain(pool: &PgPool, client: &Client, metrics: &Metrics) -> Result<usize, OutboxError> {
    let mut count = 0;
    loop {
        let mut tx = pool.begin().await.map_err(LedgerError::from)?;
        let Some(entry) = outbox::next(&mut tx).await? else { return Ok(count) };
        match carry_out(pool, client, &entry).await {
            Ok(()) => {
                outbox::done(&mut *tx, &entry).await?;
                tx.commit().await.map_err(LedgerError::from)?;
                metrics.outbox_applied(entry.action());
                count += 1;
            }
            Err(e) => {
                outbox::failed(&mut *tx, &entry, &e.to_string()).await?;
                tx.commit().await.map_err(LedgerError::from)?;
                return Err(e);
            }
        }
    }
}

async fn carry_out(pool: &PgPool, client: &Client, entry: &Entry) -> Result<(), OutboxError> {
    let sub = subscriptions::get(pool, entry.subscription_id).await?;
    let api: Api<Subscription> = Api::namespaced(client.clone(), &sub.namespace);
    match entry.action() {
        Action::Delete => match api.delete(&sub.resource_name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        },
        Action::Apply => {
            let customer = customers::get(pool, sub.customer_id).await?;
            let product = catalog::by_id(pool, sub.product_id).await?;
            let (invoice, paid_at): (Option<String>, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
                "SELECT number, paid_at FROM invoices WHERE (subscription_id = $1 OR order_id = $2) \
                 AND status = 'paid' ORDER BY paid_at DESC LIMIT 1",
            )
            .bind(sub.id)
            .bind(sub.order_id)
            .fetch_optional(pool)
            .await
            .map_err(LedgerError::from)?
            .unwrap_or((None, None));
            let cycle: Cycle = sub.cycle.parse()?;
            // before activation the period has not started: paid up to a cycle after payment
            let paid_until = sub.current_period_end.or_else(|| paid_at.map(|at| cycle.after(at)));
            let object = render::subscription(&Billed {
                subscription: &sub,
                customer_handle: &customer.handle,
                customer_email: &customer.email,
                product_slug: &product.slug,
                invoice: invoice.as_deref(),
                paid_until,
            })
            .map_err(OutboxError::Render)?;
            ensure_namespace(client, &sub.namespace, &customer.handle).await?;
            if sub.resources.0.to_string().contains(&render::credentials_secret(&sub.resource_name)) {
                ensure_credentials(client, &sub.namespace, &sub.resource_name).await?;
            }
            api.patch(&sub.resource_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object)).await?;
            Ok(())
        }
    }
}

async fn ensure_namespace(client: &Client, name: &str, customer: &str) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    create_unless_present(
        &api,
        &Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([
                    ("mpanel.migrahosting.com/customer".to_owned(), customer.to_owned()),
                    ("app.kubernetes.io/managed-by".to_owned(), FIELD_MANAGER.to_owned()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
}

/// The Secret with the generated credentials a template asked for; created once, never rewritten.
async fn ensure_credentials(client: &Client, namespace: &str, subscription: &str) -> Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = render::credentials_secret(subscription);
    create_unless_present(
        &api,
        &Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_owned(), FIELD_MANAGER.to_owned())])),
                ..Default::default()
            },
            string_data: Some(BTreeMap::from([(
                MAILBOX_PASSWORD_KEY.to_owned(),
                format!("Mp-{}", uuid::Uuid::new_v4().simple()),
            )])),
            ..Default::default()
        },
    )
    .await
}

/// Creates `object`; one that exists already (AlreadyExists) is left as it is, unread: the bridge
/// may create Secrets but not read them.
async fn create_unless_present<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs until the process ends: drains on every notification and kick, retries failures with a
/// growing pause (1 s to 30 s), and looks again every `scan`.
pub async fn run(pool: PgPool, client: Client, kick: Arc<Notify>, scan: Duration, metrics: Arc<Metrics>) {
    let mut wakeup = Wakeup::new(pool.clone(), CHANNEL, kick);
    let mut pause = Duration::from_secs(1);
    loop {
        let failed = match drain(&pool, &client, &metrics).await {
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, reason = e.reason(), retry_in = ?pause, "outbox entry not applied; will retry");
                true
            }
        };
        if let Ok(n) = outbox::pending(&pool).await {
            metrics.outbox_pending.set(n);
        }
        if failed {
            // a pause no notification cuts short: Kubernetes is likely down
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        } else {
            pause = Duration::from_secs(1);
            wakeup.wait(scan).await;
        }
    }
}
