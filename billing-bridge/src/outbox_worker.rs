//! Works off the outbox: applies each subscription's resource as the ledger now says (server-side
//! apply, field manager `billing-bridge`) or deletes it. An entry is done only once Kubernetes took
//! it, so an outage loses nothing: the entries wait, in order, and are applied when it is back.
//! Applying renders from the current ledger, so what lands is the intended state, once.
//!
//! Each entry is claimed (`FOR UPDATE SKIP LOCKED`) for as long as it is carried out, so bridge
//! replicas on one ledger never carry out one entry twice, and entries of different subscriptions
//! go on in parallel. One that fails waits for its next attempt (backoff) without holding back any
//! other subscription: a customer whose namespace is stuck terminating stalls only itself.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use mpanel_crds::subscription::Subscription;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::lanes::{self, Order};
use crate::ledger::outbox::{self, Action, Entry};
use crate::ledger::work_attempts::{self, Item, Worker};
use crate::ledger::{LedgerError, catalog, customers, invoices, subscriptions};
use crate::metrics::Metrics;
use crate::render::{self, Billed, FIELD_MANAGER, MAILBOX_PASSWORD_KEY};
use crate::wakeup::Wakeup;

pub const CHANNEL: &str = "mpanel_outbox";

/// Entries carried out at once (lanes), each holding its claim (a connection) while Kubernetes answers.
pub const PARALLEL: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("Kubernetes: {}", kube_words(.0))]
    Kubernetes(#[from] kube::Error),
    #[error("rendering the Subscription: {0}")]
    Render(String),
}

impl OutboxError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Ledger(e) => e.reason(),
            Self::Kubernetes(kube::Error::Api(status)) if terminating(status) => "NamespaceTerminating",
            Self::Kubernetes(kube::Error::Api(status)) if (400..500).contains(&status.code) => "KubernetesRefused",
            Self::Kubernetes(_) => "KubernetesUnavailable",
            Self::Render(_) => "RenderFailed",
        }
    }
}

/// The API server's own words for a refusal (not the whole status object), else the error.
fn kube_words(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({} {})", status.message, status.code, status.reason),
        other => other.to_string(),
    }
}

/// A write refused because the namespace is being deleted: it stays refused until the namespace is
/// gone, however often it is tried.
fn terminating(status: &kube::core::Status) -> bool {
    let cause = status.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"));
    cause || status.message.contains("because it is being terminated")
}

impl lanes::Reasoned for OutboxError {
    fn reason(&self) -> &'static str {
        OutboxError::reason(self)
    }
}

/// The namespaces this process has made sure of, so that an apply does not ask the apiserver to
/// create its namespace every time; one is forgotten when an apply into it fails (deleted meanwhile).
#[derive(Default)]
pub struct KnownNamespaces(Mutex<HashSet<String>>);

impl KnownNamespaces {
    fn contains(&self, name: &str) -> bool {
        self.0.lock().is_ok_and(|known| known.contains(name))
    }

    fn insert(&self, name: &str) {
        if let Ok(mut known) = self.0.lock() {
            known.insert(name.to_owned());
        }
    }

    fn forget(&self, name: &str) {
        if let Ok(mut known) = self.0.lock() {
            known.remove(name);
        }
    }
}

/// Claims the next ready entry and carries it out: whether there was one. A failing entry is
/// recorded with its error and tried again after a backoff, while every other subscription's
/// entries go on; only the later entries of its own subscription wait behind it. An `Err` is the
/// ledger failing, not an entry.
pub async fn apply_next(
    pool: &PgPool,
    client: &Client,
    known: &KnownNamespaces,
    metrics: &Metrics,
    order: Order,
    wakeup: &Wakeup,
) -> Result<bool, OutboxError> {
    let mut tx = pool.begin().await.map_err(LedgerError::from)?;
    let Some(entry) = outbox::next(&mut tx, order).await? else {
        drop(tx);
        if let Ok(n) = outbox::pending(pool).await {
            metrics.outbox_pending.set(n);
        }
        return Ok(false);
    };
    wakeup.pass_on();
    let item = Item::outbox(entry.id, entry.subscription_id);
    match carry_out(&mut tx, client, known, &entry).await {
        Ok(()) => {
            outbox::done(&mut *tx, &entry).await?;
            // an entry never tried before has no failures to forget
            if entry.attempts > 0 {
                work_attempts::succeeded(&mut tx, &item).await?;
            }
            tx.commit().await.map_err(LedgerError::from)?;
            metrics.outbox_applied(entry.action());
        }
        Err(e) => {
            let words = e.to_string();
            outbox::failed(&mut *tx, &entry, &words).await?;
            let failure = work_attempts::failed(&mut tx, &item, e.reason(), &words).await?;
            tx.commit().await.map_err(LedgerError::from)?;
            metrics.work_failed(Worker::Outbox, e.reason());
            tracing::warn!(
                entry = entry.id, subscription = %entry.subscription_id, attempts = failure.attempts,
                retry_at = %failure.next_attempt_at, error = %words, reason = e.reason(),
                "outbox entry not applied; the others go on"
            );
        }
    }
    Ok(true)
}

/// Reads the ledger on the claim's own connection, so a lane needs one connection, not two.
async fn carry_out(
    db: &mut sqlx::PgConnection,
    client: &Client,
    known: &KnownNamespaces,
    entry: &Entry,
) -> Result<(), OutboxError> {
    let sub = subscriptions::get(&mut *db, entry.subscription_id).await?;
    let api: Api<Subscription> = Api::namespaced(client.clone(), &sub.namespace);
    // an ended subscription has no resource, whatever asked for it (a renewal paid after the end)
    let action = if sub.ended() { Action::Delete } else { entry.action() };
    match action {
        Action::Delete => match api.delete(&sub.resource_name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        },
        Action::Apply => {
            let customer = customers::get(&mut *db, sub.customer_id).await?;
            let product = catalog::by_id(&mut *db, sub.product_id).await?;
            let (invoice, paid_at) = invoices::last_paid(&mut *db, sub.id, sub.order_id).await?;
            let term = subscriptions::paid_term(&mut *db, &sub).await?;
            let paid_until = render::paid_until(&sub, &term, paid_at)?;
            let object = render::subscription(&Billed {
                subscription: &sub,
                customer_handle: &customer.handle,
                customer_email: &customer.email,
                product_slug: &product.slug,
                invoice: invoice.as_deref(),
                paid_until,
            })
            .map_err(OutboxError::Render)?;
            let applied = async {
                if !known.contains(&sub.namespace) {
                    ensure_namespace(client, &sub.namespace, &customer.handle).await?;
                    known.insert(&sub.namespace);
                }
                if render::credentials_of(&sub).is_some() {
                    ensure_credentials(client, &sub.namespace, &sub.resource_name).await?;
                }
                api.patch(&sub.resource_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object)).await
            };
            if let Err(e) = applied.await {
                known.forget(&sub.namespace);
                return Err(e.into());
            }
            Ok(())
        }
    }
}

pub(crate) async fn ensure_namespace(client: &Client, name: &str, customer: &str) -> Result<(), kube::Error> {
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
pub(crate) async fn create_unless_present<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs until the process ends, `PARALLEL` lanes: applies on every notification and `kick`, when
/// the first failing entry is due again, and every `scan`.
pub async fn run(pool: PgPool, client: Client, kick: Arc<Notify>, scan: Duration, metrics: Arc<Metrics>) {
    let wakeup = Wakeup::relay(pool.clone(), CHANNEL, kick);
    let known = KnownNamespaces::default();
    let next_due = || lanes::first_in_backoff(&pool, Worker::Outbox, &metrics);
    lanes::run("outbox", PARALLEL, wakeup, scan, next_due, |order, wakeup| {
        let (pool, client, known, metrics) = (&pool, &client, &known, &metrics);
        async move { apply_next(pool, client, known, metrics, order, &wakeup).await }
    })
    .await;
}
