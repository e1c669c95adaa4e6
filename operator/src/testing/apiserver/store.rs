//! The objects the server holds and the writes that change them: the server-owned metadata (uid,
//! resourceVersion, generation, creationTimestamp), the status subresource, and deletion held by
//! finalizers.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::paths::Target;
use super::replies::{Reply, bad_request, details, failure, invalid, not_found};
use super::selectors::{field_term_matches, label_term_matches, split_terms};

#[derive(Default)]
pub(super) struct State {
    pub(super) objects: BTreeMap<Key, Stored>,
    resource_version: u64,
    pub(super) counter: u64,
    pub(super) requests: Vec<(String, String)>,
    pub(super) faults: Vec<Fault>,
}

/// Where an object lives: API group ("" for core), plural, namespace ("" when cluster-scoped), name.
pub(super) type Key = (String, String, String, String);

pub(super) struct Stored {
    pub(super) object: Value,
    /// The configuration each field manager last applied (server-side apply), by manager.
    pub(super) applied: BTreeMap<String, Value>,
    /// Order of creation, to list Events as they came.
    pub(super) seq: u64,
}

pub(super) struct Fault {
    pub(super) method: String,
    pub(super) path_contains: String,
    pub(super) code: u16,
    pub(super) message: String,
}

impl State {
    pub(super) fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    pub(super) fn next_uid(&mut self) -> String {
        self.counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.counter)
    }

    pub(super) fn list(&self, target: &Target, params: &BTreeMap<String, String>) -> Value {
        let labels = params.get("labelSelector").map(|s| split_terms(s)).unwrap_or_default();
        let fields = params.get("fieldSelector").map(|s| split_terms(s)).unwrap_or_default();
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((g, p, ns, _), _)| {
                *g == target.group && *p == target.plural && (target.namespace.is_empty() || *ns == target.namespace)
            })
            .map(|(_, s)| &s.object)
            .filter(|o| {
                labels.iter().all(|t| label_term_matches(o, t)) && fields.iter().all(|t| field_term_matches(o, t))
            })
            .cloned()
            .collect();
        json!({
            "apiVersion": target.api_version(),
            "kind": "List",
            "metadata": {"resourceVersion": self.resource_version.to_string()},
            "items": items,
        })
    }

    /// Creates `obj`; `applied` is the field manager and configuration when created by an apply.
    pub(super) fn create(&mut self, target: &Target, mut obj: Value, applied: Option<(String, Value)>) -> Reply {
        if !obj.is_object() {
            return bad_request("the body is not a JSON object");
        }
        let name = match obj["metadata"]["name"].as_str() {
            Some(name) => name.to_owned(),
            None => match obj["metadata"]["generateName"].as_str() {
                Some(prefix) => format!("{prefix}{:05x}", self.counter + 1),
                None => return invalid(target, "", "metadata.name: Required value: name or generateName is required"),
            },
        };
        let key = target.key(&name);
        if self.objects.contains_key(&key) {
            return failure(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", target.resource()),
                Some(details(target, &name)),
            );
        }
        let uid = self.next_uid();
        let rv = self.next_resource_version();
        let now = now();
        let meta = meta_mut(&mut obj);
        for owned in ["uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "managedFields"]
        {
            meta.remove(owned);
        }
        meta.insert("name".into(), json!(name));
        if !target.namespace.is_empty() {
            meta.insert("namespace".into(), json!(target.namespace));
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("creationTimestamp".into(), json!(now));
        if target.has_generation() {
            meta.insert("generation".into(), json!(1));
        }
        if target.has_status_subresource()
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        if obj.get("apiVersion").is_none() {
            obj["apiVersion"] = json!(target.api_version());
        }
        normalize(&mut obj);
        let seq = self.counter;
        self.objects.insert(key, Stored { object: obj.clone(), applied: applied.into_iter().collect(), seq });
        (StatusCode::CREATED, obj)
    }

    pub(super) fn replace(&mut self, target: &Target, name: &str, obj: Value) -> Reply {
        let Some(stored) = self.objects.get(&target.key(name)) else {
            return not_found(target, name);
        };
        if let Some(conflict) = stale(target, name, &stored.object, &obj) {
            return conflict;
        }
        self.commit(target, name, obj, target.status)
    }

    /// Stores `new` as the object `name` (which exists): the server's metadata stays, the status
    /// changes only through the status subresource, the generation follows the spec, the
    /// resourceVersion moves only when something changed, and an object being deleted whose last
    /// finalizer went is removed.
    pub(super) fn commit(&mut self, target: &Target, name: &str, mut new: Value, status_write: bool) -> Reply {
        let key = target.key(name);
        let old = self.objects[&key].object.clone();
        if !new.is_object() {
            return bad_request("the object is not a JSON object");
        }
        if target.has_status_subresource() {
            let (from, keep) = if status_write { (&new, old.clone()) } else { (&old, new.clone()) };
            let status = from.get("status").cloned();
            let mut merged = keep;
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    merged.as_object_mut().expect("an object").remove("status");
                }
            }
            new = merged;
        }
        let meta = meta_mut(&mut new);
        meta.remove("managedFields");
        meta.insert("name".into(), json!(name));
        if !target.namespace.is_empty() {
            meta.insert("namespace".into(), json!(target.namespace));
        }
        for owned in ["uid", "creationTimestamp", "deletionTimestamp", "generation", "resourceVersion"] {
            match old["metadata"].get(owned) {
                Some(v) => meta.insert(owned.into(), v.clone()),
                None => meta.remove(owned),
            };
        }
        normalize(&mut new);
        if new == old {
            return (StatusCode::OK, new);
        }
        if target.has_generation() && spec_of(&new) != spec_of(&old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        let rv = self.next_resource_version();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
        let finalized = new["metadata"].get("finalizers").is_none();
        if new["metadata"].get("deletionTimestamp").is_some() && finalized {
            self.objects.remove(&key);
        } else {
            self.objects.get_mut(&key).expect("looked up above").object = new.clone();
        }
        (StatusCode::OK, new)
    }

    pub(super) fn delete(&mut self, target: &Target, name: &str) -> Reply {
        let key = target.key(name);
        let Some(stored) = self.objects.get(&key) else {
            return not_found(target, name);
        };
        let mut obj = stored.object.clone();
        if obj["metadata"].get("finalizers").is_none() {
            self.objects.remove(&key);
            return (StatusCode::OK, obj);
        }
        if obj["metadata"].get("deletionTimestamp").is_none() {
            let rv = self.next_resource_version();
            let meta = meta_mut(&mut obj);
            meta.insert("deletionTimestamp".into(), json!(now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            meta.insert("resourceVersion".into(), json!(rv));
            self.objects.get_mut(&key).expect("looked up above").object = obj.clone();
        }
        (StatusCode::OK, obj)
    }
}

/// A 409 Conflict when `patch` carries a resourceVersion other than the stored one.
pub(super) fn stale(target: &Target, name: &str, stored: &Value, patch: &Value) -> Option<Reply> {
    let wanted = patch["metadata"].get("resourceVersion").and_then(Value::as_str)?;
    (Some(wanted) != stored["metadata"]["resourceVersion"].as_str()).then(|| {
        failure(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your \
                 changes to the latest version and try again",
                target.resource()
            ),
            Some(details(target, name)),
        )
    })
}

/// The object without metadata and status: what the generation follows.
pub(super) fn spec_of(obj: &Value) -> Value {
    let mut rest = obj.clone();
    if let Some(o) = rest.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    rest
}

pub(super) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// Drops what a real server never keeps: empty finalizer lists, label and annotation maps; a
/// Secret's `stringData` goes into `data`, base64-encoded.
pub(super) fn normalize(obj: &mut Value) {
    use base64::Engine;
    if obj["kind"] == "Secret"
        && let Some(Value::Object(plain)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (k, v) in plain {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
            obj["data"][k] = json!(encoded);
        }
    }
    let meta = meta_mut(obj);
    for field in ["finalizers", "labels", "annotations", "ownerReferences"] {
        let empty = match meta.get(field) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove(field);
        }
    }
}

pub(super) fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
