//! An in-memory Kubernetes API the real `kube::Client` talks to, for the reconcilers' unit tests.
//!
//! It serves what the controllers send: GET (one object or a list, with `labelSelector` and
//! `fieldSelector`), POST, PUT, PATCH (server-side apply, JSON merge, JSON patch, strategic merge)
//! and DELETE, on namespaced and cluster-scoped paths of any group, with the `status` subresource
//! for the mpanel kinds. The server owns `uid`, `resourceVersion` (one counter, bumped on every
//! write that changes something), `generation` (bumped when anything but metadata and status
//! changes) and `creationTimestamp`; a deletion waits for the finalizers, as on a real cluster.
//! Errors are Kubernetes `Status` bodies, so `get_opt` gives `None` and `kube::Error::Api` carries
//! the code, reason and message a real server would send.

mod patches;
mod paths;
mod replies;
mod selectors;
mod store;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use axum::http::{Method, Request, Response, StatusCode, header};
use kube::Resource;
use kube::client::Body;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use paths::{parse_path, query_params, target_of};
use replies::{Reply, bad_request, failure, not_found, reason_of};
use store::{Fault, State, Stored, meta_mut, normalize, now, spec_of};

/// An in-memory Kubernetes API; clones share one store, so a test keeps a handle while the
/// controller's client talks to it.
#[derive(Clone, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

/// An Event a controller recorded (`events.k8s.io/v1` or core `v1`).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// The Event's reason, e.g. `ProviderUnavailable`.
    pub reason: String,
    /// The note (`message` for a core Event).
    pub note: String,
    /// The action (empty for a core Event without one).
    pub action: String,
    /// The name of the object the Event is about.
    pub regarding: String,
    /// The namespace the Event was written to.
    pub namespace: String,
    /// How many times it was seen (1, or the series count of a repeated Event).
    pub count: i64,
}

impl FakeApiServer {
    /// An empty API.
    pub fn new() -> Self {
        Self::default()
    }

    /// A kube client (default namespace `default`) whose requests this server answers; call it
    /// inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// Stores `obj` as a user's write would leave it, status and `deletionTimestamp` included as
    /// given: uid and creationTimestamp are assigned when new, the resourceVersion is bumped, the
    /// generation is the object's own or 1 (bumped when the spec of a stored object changes).
    /// The namespace is `metadata.namespace` (none: cluster-scoped). Not counted as a request.
    pub fn put<K: Resource<DynamicType = ()> + Serialize>(&self, obj: &K) {
        let mut value = serde_json::to_value(obj).expect("the object serializes");
        let name = obj.meta().name.clone().expect("a stored object has a name");
        let target = target_of::<K>(obj.meta().namespace.as_deref().unwrap_or_default());
        let key = target.key(&name);
        let mut state = self.lock();
        let now = now();
        let uid = state.next_uid();
        let rv = state.next_resource_version();
        let previous = state.objects.get(&key).map(|s| s.object.clone());
        let meta = meta_mut(&mut value);
        meta.insert("name".into(), json!(name));
        if !target.namespace.is_empty() {
            meta.insert("namespace".into(), json!(target.namespace));
        }
        meta.remove("managedFields");
        let kept = |field: &str| previous.as_ref().and_then(|p| p["metadata"].get(field).cloned());
        meta.insert("uid".into(), kept("uid").unwrap_or(json!(uid)));
        meta.insert("creationTimestamp".into(), kept("creationTimestamp").unwrap_or(json!(now)));
        meta.insert("resourceVersion".into(), json!(rv));
        if target.has_generation() && !meta.contains_key("generation") {
            let generation = match &previous {
                Some(p) => p["metadata"]["generation"].as_i64().unwrap_or(1) + i64::from(spec_of(p) != spec_of(&value)),
                None => 1,
            };
            meta_mut(&mut value).insert("generation".into(), json!(generation));
        }
        normalize(&mut value);
        let seq = state.counter;
        let applied = state.objects.remove(&key).map(|s| s.applied).unwrap_or_default();
        state.objects.insert(key, Stored { object: value, applied, seq });
    }

    /// The stored object `name` in namespace `ns` ("" for a cluster-scoped kind), if any.
    pub fn get<K: Resource<DynamicType = ()> + DeserializeOwned>(&self, ns: &str, name: &str) -> Option<K> {
        let key = target_of::<K>(ns).key(name);
        let value = self.lock().objects.get(&key)?.object.clone();
        Some(serde_json::from_value(value).expect("the stored object deserializes as this kind"))
    }

    /// Deletes `name` as a user would: marked with a `deletionTimestamp` while finalizers remain,
    /// gone otherwise. Not counted as a request.
    pub fn delete<K: Resource<DynamicType = ()>>(&self, ns: &str, name: &str) {
        let target = target_of::<K>(ns);
        let _ = self.lock().delete(&target, name);
    }

    /// The Events recorded so far, oldest first.
    pub fn events(&self) -> Vec<RecordedEvent> {
        let state = self.lock();
        let mut events: Vec<&Stored> = state.objects.iter().filter(|(k, _)| k.1 == "events").map(|(_, s)| s).collect();
        events.sort_by_key(|s| s.seq);
        events.into_iter().map(|s| recorded_event(&s.object)).collect()
    }

    /// Every request the client sent, as (method, path without the query), in order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.lock().requests.clone()
    }

    /// How many requests wrote (anything but GET; Events not counted), failed ones included.
    pub fn writes(&self) -> usize {
        self.lock().requests.iter().filter(|(m, p)| m != "GET" && !p.contains("/events")).count()
    }

    /// Makes the next request with this method (`"PATCH"`, ...) whose path contains
    /// `path_contains` fail once with HTTP `code` and a Kubernetes Status carrying `message`.
    pub fn fail_next(&self, method: &str, path_contains: &str, code: u16, message: &str) {
        self.lock().faults.push(Fault {
            method: method.to_uppercase(),
            path_contains: path_contains.to_owned(),
            code,
            message: message.to_owned(),
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn handle(&self, method: &Method, path: &str, query: &str, content_type: &str, body: &[u8]) -> Reply {
        let mut state = self.lock();
        state.requests.push((method.as_str().to_owned(), path.to_owned()));
        if let Some(i) =
            state.faults.iter().position(|f| f.method == method.as_str() && path.contains(&f.path_contains))
        {
            let fault = state.faults.remove(i);
            let code = StatusCode::from_u16(fault.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return failure(code, reason_of(code), fault.message, None);
        }
        let Some(target) = parse_path(path) else {
            return failure(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource".into(),
                None,
            );
        };
        let params = query_params(query);
        let body: Option<Value> = if body.is_empty() { None } else { serde_json::from_slice(body).ok() };
        match (method.as_str(), target.name.clone()) {
            ("GET", Some(name)) => match state.objects.get(&target.key(&name)) {
                Some(s) => (StatusCode::OK, s.object.clone()),
                None => not_found(&target, &name),
            },
            ("GET", None) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "watches are not served by the in-memory API".into(),
                None,
            ),
            ("GET", None) => (StatusCode::OK, state.list(&target, &params)),
            ("POST", None) => match body {
                Some(obj) => state.create(&target, obj, None),
                None => bad_request("the body is not a JSON object"),
            },
            ("PUT", Some(name)) => match body {
                Some(obj) => state.replace(&target, &name, obj),
                None => bad_request("the body is not a JSON object"),
            },
            ("PATCH", Some(name)) => match body {
                Some(patch) => state.patch(&target, &name, content_type, patch, &params),
                None => bad_request("the patch is not JSON"),
            },
            ("DELETE", Some(name)) => state.delete(&target, &name),
            _ => failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} {path} is not served by the in-memory API"),
                None,
            ),
        }
    }
}

impl tower::Service<Request<Body>> for FakeApiServer {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let server = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.unwrap_or_default();
            let content_type =
                parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let (code, value) = server.handle(
                &parts.method,
                parts.uri.path(),
                parts.uri.query().unwrap_or_default(),
                &content_type,
                &body,
            );
            let body = serde_json::to_vec(&value).expect("a JSON body");
            Ok(Response::builder()
                .status(code)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .expect("a response"))
        })
    }
}

fn recorded_event(e: &Value) -> RecordedEvent {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let core = e.get("involvedObject").is_some();
    RecordedEvent {
        type_: text(&e["type"]),
        reason: text(&e["reason"]),
        note: if core { text(&e["message"]) } else { text(&e["note"]) },
        action: text(&e["action"]),
        regarding: if core { text(&e["involvedObject"]["name"]) } else { text(&e["regarding"]["name"]) },
        namespace: text(&e["metadata"]["namespace"]),
        count: e["series"]["count"].as_i64().or_else(|| e["count"].as_i64()).unwrap_or(1),
    }
}
