//! The mPanel billing bridge: a Postgres ledger of products, orders, invoices, payments and
//! subscriptions; Stripe checkout and webhooks; the materializer that turns a paid invoice into a
//! Subscription resource; and the activation gate that marks a subscription active only once that
//! resource is Ready.

pub mod activation;
pub mod auth_code;
pub mod cancellation;
pub mod checkout;
pub mod config;
pub mod db;
pub mod fulfilment;
pub mod http;
pub mod invoice_pdf;
pub mod lanes;
pub mod ledger;
pub mod ledger_gauges;
pub mod lifecycle;
pub mod mailbox_password;
pub mod metrics;
pub mod money;
pub mod money_follows;
pub mod notify;
pub mod outbox_worker;
pub mod pay_links;
pub mod periods;
pub mod plan_change;
pub mod portal;
pub mod recent_events;
pub mod refunds;
pub mod registrar;
pub mod render;
pub mod renewal_charges;
pub mod stripe;
pub mod stripe_events;
pub mod wakeup;
pub mod workers;
