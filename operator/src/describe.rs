//! `mpanel-operator describe <kind>/<name>`: what support staff look at first. An object's Ready
//! condition and its newest Event; for a Subscription, the same for each of its children, as a
//! tree.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::controllers::subscription::children::{self, ChildKind};

/// Why a describe could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("{0:?} is not <kind>/<name> for one of subscription, cloudpod, domain, dnszone, mailbox, certificate")]
    NotAnObject(String),
    #[error("{kind} {name} does not exist in namespace {namespace}")]
    NotFound { kind: &'static str, name: String, namespace: String },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// The kind a `kubectl`-style word names (`subscription`, `subscriptions`, `Subscription`, ...).
fn kind_of(word: &str) -> Option<Kind> {
    let word = word.to_ascii_lowercase();
    let word = word.trim_end_matches('s');
    if word == "subscription" {
        return Some(Kind::Subscription);
    }
    ChildKind::ALL.into_iter().find(|k| k.name().to_ascii_lowercase() == word).map(Kind::Child)
}

#[derive(Clone, Copy)]
enum Kind {
    Subscription,
    Child(ChildKind),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Subscription => "Subscription",
            Self::Child(k) => k.name(),
        }
    }

    fn api_resource(self) -> ApiResource {
        match self {
            Self::Subscription => ApiResource::erase::<mpanel_crds::subscription::Subscription>(&()),
            Self::Child(k) => k.api_resource(),
        }
    }
}

/// The text `describe` prints for `target` (`<kind>/<name>`) in `namespace`.
pub async fn describe(client: &Client, namespace: &str, target: &str) -> Result<String, DescribeError> {
    let (word, name) = target.split_once('/').ok_or_else(|| DescribeError::NotAnObject(target.to_owned()))?;
    let kind = kind_of(word).ok_or_else(|| DescribeError::NotAnObject(target.to_owned()))?;
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &kind.api_resource());
    let object = api.get_opt(name).await?.ok_or_else(|| DescribeError::NotFound {
        kind: kind.name(),
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    })?;
    let events = Api::<Event>::namespaced(client.clone(), namespace).list(&ListParams::default()).await?.items;
    let mut out = String::new();
    line(&mut out, "", kind.name(), &object, &events);
    if let Kind::Subscription = kind {
        let uid = object.uid().unwrap_or_default();
        let children = children::controlled(client, namespace, &object.name_any(), &uid).await?;
        let count = children.len();
        for (i, (child_kind, child)) in children.iter().enumerate() {
            let branch = if i + 1 == count { "└─ " } else { "├─ " };
            line(&mut out, branch, child_kind.name(), child, &events);
        }
        if count == 0 {
            out.push_str("└─ (no children)\n");
        }
    }
    Ok(out)
}

/// One object: kind/name, phase, Ready status and reason, Ready's message, and its newest Event.
fn line(out: &mut String, branch: &str, kind: &str, object: &DynamicObject, events: &[Event]) {
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    let phase = status["phase"].as_str().unwrap_or("-");
    let ready = status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready");
    let text = |c: Option<&Value>, key: &str| c.and_then(|c| c[key].as_str()).unwrap_or("").to_owned();
    let (ready_status, reason, message) = (text(ready, "status"), text(ready, "reason"), text(ready, "message"));
    let ready_status = if ready_status.is_empty() { "Unknown".to_owned() } else { ready_status };
    let indent = if branch.is_empty() { "  " } else { "   │  " };
    let _ = writeln!(out, "{branch}{kind}/{}  phase={phase}  Ready={ready_status}  {reason}", object.name_any());
    if !message.is_empty() {
        let _ = writeln!(out, "{indent}{message}");
    }
    if let Some(event) = newest_event(events, kind, &object.name_any()) {
        let _ = writeln!(
            out,
            "{indent}last Event: {} {}: {}",
            event.type_.as_deref().unwrap_or("Normal"),
            event.reason.as_deref().unwrap_or(""),
            event.message.as_deref().unwrap_or("")
        );
    }
}

/// The newest Event about `kind`/`name`.
fn newest_event<'a>(events: &'a [Event], kind: &str, name: &str) -> Option<&'a Event> {
    let when = |e: &Event| {
        let series = e.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).map(|t| t.0);
        let at = e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0));
        series.or(at).or(e.first_timestamp.as_ref().map(|t| t.0)).or(e
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0))
    };
    events
        .iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some(kind) && e.involved_object.name.as_deref() == Some(name))
        .max_by_key(|e| when(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_as_kubectl_users_type_them() {
        for word in ["subscription", "subscriptions", "Subscription"] {
            assert!(matches!(kind_of(word), Some(Kind::Subscription)), "{word}");
        }
        assert_eq!(kind_of("dnszones").map(Kind::name), Some("DnsZone"));
        assert_eq!(kind_of("CloudPod").map(Kind::name), Some("CloudPod"));
        assert!(kind_of("pods").is_none());
    }
}
