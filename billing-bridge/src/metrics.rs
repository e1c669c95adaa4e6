//! Prometheus metrics of the bridge, served at `/metrics` with the prefix `mpanel_bridge_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::ledger::outbox::Action;
use crate::ledger::work_attempts::Worker;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub event_type: String,
    /// recorded, duplicate, ignored, rejected or error
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvoiceLabels {
    pub status: String,
    pub currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CurrencyLabels {
    pub currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub worker: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkFailureLabels {
    pub worker: &'static str,
    /// the error's stable code
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub kind: &'static str,
    /// sent, retry (tried again later) or refused (for good)
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub webhook_events: Family<WebhookLabels, Counter>,
    pub checkouts: Family<OutcomeLabels, Counter>,
    pub outbox_applied: Family<ActionLabels, Counter>,
    pub outbox_pending: Gauge,
    pub activation_errors: Counter,
    pub work_failures: Family<WorkFailureLabels, Counter>,
    pub work_in_backoff: Family<WorkerLabels, Gauge>,
    pub subscriptions: Family<StatusLabels, Gauge>,
    pub invoices: Family<InvoiceLabels, Gauge>,
    pub outstanding: Family<CurrencyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub notifications: Family<NotificationLabels, Counter>,
    pub renewal_charges: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mpanel_bridge");
        let webhook_events = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_events",
            "Stripe webhook deliveries, by event type and outcome",
            webhook_events.clone(),
        );
        let checkouts = Family::<OutcomeLabels, Counter>::default();
        registry.register("checkouts", "Checkouts, by outcome (placed, refused, error)", checkouts.clone());
        let outbox_applied = Family::<ActionLabels, Counter>::default();
        registry.register(
            "outbox_applied",
            "Outbox entries carried out on Kubernetes, by action",
            outbox_applied.clone(),
        );
        let outbox_pending = Gauge::default();
        registry.register("outbox_pending", "Outbox entries not yet carried out", outbox_pending.clone());
        let activation_errors = Counter::default();
        registry.register(
            "activation_errors",
            "Subscription status changes the ledger could not take",
            activation_errors.clone(),
        );
        let work_failures = Family::<WorkFailureLabels, Counter>::default();
        registry.register(
            "work_failures",
            "Failed attempts at a worker's item (outbox entry, invoice, subscription), by worker and reason",
            work_failures.clone(),
        );
        let work_in_backoff = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "work_in_backoff",
            "Failing items a worker leaves alone until their next attempt, by worker",
            work_in_backoff.clone(),
        );
        let subscriptions = Family::<StatusLabels, Gauge>::default();
        registry.register("subscriptions", "Subscriptions in the ledger, by status", subscriptions.clone());
        let invoices = Family::<InvoiceLabels, Gauge>::default();
        registry.register("invoices", "Invoices in the ledger, by status and currency", invoices.clone());
        let outstanding = Family::<CurrencyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "invoices_outstanding",
            "What is still to be paid on issued invoices, in major units of the currency",
            outstanding.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Customer notifications offered to the SMTP server, by kind and outcome (sent, retry, refused)",
            notifications.clone(),
        );
        let renewal_charges = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "renewal_charges",
            "Off-session charges of renewal invoices, by Stripe's answer (accepted, requires_action, declined, failed)",
            renewal_charges.clone(),
        );
        Self {
            registry,
            notifications,
            renewal_charges,
            subscriptions,
            invoices,
            outstanding,
            webhook_events,
            checkouts,
            outbox_applied,
            outbox_pending,
            activation_errors,
            work_failures,
            work_in_backoff,
        }
    }
}

impl Metrics {
    pub fn outbox_applied(&self, action: Action) {
        self.outbox_applied.get_or_create(&ActionLabels { action: action.as_str() }).inc();
    }

    pub fn work_failed(&self, worker: Worker, reason: &'static str) {
        self.work_failures.get_or_create(&WorkFailureLabels { worker: worker.as_str(), reason }).inc();
    }

    pub fn notification(&self, kind: &'static str, outcome: &'static str) {
        self.notifications.get_or_create(&NotificationLabels { kind, outcome }).inc();
    }

    pub fn renewal_charge(&self, outcome: &'static str) {
        self.renewal_charges.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn set_work_in_backoff(&self, worker: Worker, items: i64) {
        self.work_in_backoff.get_or_create(&WorkerLabels { worker: worker.as_str() }).set(items);
    }

    /// The ledger gauges as `tallies` says; a status or currency no longer there is dropped.
    pub fn set_tallies(&self, tallies: &crate::ledger::tallies::Tallies) {
        self.subscriptions.clear();
        for (status, count) in &tallies.subscriptions {
            self.subscriptions.get_or_create(&StatusLabels { status: status.clone() }).set(*count);
        }
        self.invoices.clear();
        self.outstanding.clear();
        for t in &tallies.invoices {
            let labels = InvoiceLabels { status: t.status.clone(), currency: t.currency.clone() };
            self.invoices.get_or_create(&labels).set(t.count);
            if t.status == "issued" {
                self.outstanding.get_or_create(&CurrencyLabels { currency: t.currency.clone() }).set(t.outstanding);
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
