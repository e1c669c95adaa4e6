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

use std::collections::BTreeMap;
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
use serde_json::{Map, Value, json};

/// The API group whose kinds have a `status` subresource (every mpanel kind).
const STATUS_SUBRESOURCE_GROUP: &str = "mpanel.migrahosting.com";

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

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Stored>,
    resource_version: u64,
    counter: u64,
    requests: Vec<(String, String)>,
    faults: Vec<Fault>,
}

/// Where an object lives: API group ("" for core), plural, namespace ("" when cluster-scoped), name.
type Key = (String, String, String, String);

struct Stored {
    object: Value,
    /// The configuration each field manager last applied (server-side apply), by manager.
    applied: BTreeMap<String, Value>,
    /// Order of creation, to list Events as they came.
    seq: u64,
}

struct Fault {
    method: String,
    path_contains: String,
    code: u16,
    message: String,
}

/// A request path taken apart.
struct Target {
    group: String,
    version: String,
    plural: String,
    namespace: String,
    name: Option<String>,
    status: bool,
}

impl Target {
    fn key(&self, name: &str) -> Key {
        (self.group.clone(), self.plural.clone(), self.namespace.clone(), name.to_owned())
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural.group` as a real server names the resource in its messages.
    fn resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    fn has_status_subresource(&self) -> bool {
        self.group == STATUS_SUBRESOURCE_GROUP
    }

    /// Whether the server keeps `metadata.generation` for this kind (not Secrets, ConfigMaps, Events).
    fn has_generation(&self) -> bool {
        !self.group.is_empty() && self.group != "events.k8s.io"
    }
}

/// One answer: the HTTP code and the JSON body.
type Reply = (StatusCode, Value);

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

impl State {
    fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    fn next_uid(&mut self) -> String {
        self.counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.counter)
    }

    fn list(&self, target: &Target, params: &BTreeMap<String, String>) -> Value {
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
    fn create(&mut self, target: &Target, mut obj: Value, applied: Option<(String, Value)>) -> Reply {
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

    fn replace(&mut self, target: &Target, name: &str, obj: Value) -> Reply {
        let Some(stored) = self.objects.get(&target.key(name)) else {
            return not_found(target, name);
        };
        if let Some(conflict) = stale(target, name, &stored.object, &obj) {
            return conflict;
        }
        self.commit(target, name, obj, target.status)
    }

    fn patch(
        &mut self,
        target: &Target,
        name: &str,
        content_type: &str,
        mut patch: Value,
        params: &BTreeMap<String, String>,
    ) -> Reply {
        let key = target.key(name);
        let content_type = content_type.split(';').next().unwrap_or_default().trim();
        if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let Some(stored) = self.objects.get(&key) else {
            if content_type == "application/apply-patch+yaml" && !target.status {
                let manager = params.get("fieldManager").cloned().unwrap_or_default();
                let mut obj = patch.clone();
                obj["metadata"]["name"] = json!(name);
                return self.create(target, obj, Some((manager, patch)));
            }
            return not_found(target, name);
        };
        if let Some(conflict) = stale(target, name, &stored.object, &patch) {
            return conflict;
        }
        let mut new = stored.object.clone();
        match content_type {
            "application/apply-patch+yaml" => {
                let manager = params.get("fieldManager").cloned().unwrap_or_default();
                let manager = if target.status { format!("{manager}/status") } else { manager };
                let stored = self.objects.get_mut(&key).expect("looked up above");
                if let Some(before) = stored.applied.get(&manager) {
                    let others: Vec<&Value> =
                        stored.applied.iter().filter(|(m, _)| **m != manager).map(|(_, v)| v).collect();
                    drop_unapplied(&mut new, before, &patch, &others);
                }
                stored.applied.insert(manager, patch.clone());
                apply_merge(&mut new, &patch);
            }
            "application/json-patch+json" => {
                if let Err(why) = json_patch(&mut new, &patch) {
                    return invalid(target, name, &why);
                }
            }
            // JSON merge (RFC 7386); a strategic merge is taken as one
            _ => merge_patch(&mut new, &patch),
        }
        self.commit(target, name, new, target.status)
    }

    /// Stores `new` as the object `name` (which exists): the server's metadata stays, the status
    /// changes only through the status subresource, the generation follows the spec, the
    /// resourceVersion moves only when something changed, and an object being deleted whose last
    /// finalizer went is removed.
    fn commit(&mut self, target: &Target, name: &str, mut new: Value, status_write: bool) -> Reply {
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

    fn delete(&mut self, target: &Target, name: &str) -> Reply {
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

/// The storage target of kind `K` in namespace `ns` ("" for cluster-scoped).
fn target_of<K: Resource<DynamicType = ()>>(ns: &str) -> Target {
    let path = K::url_path(&(), (!ns.is_empty()).then_some(ns));
    parse_path(&path).expect("a kube resource path")
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (*ns, rest),
        _ => ("", rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(*name), false),
        [plural, name, "status"] => (*plural, Some(*name), true),
        _ => return None,
    };
    Some(Target {
        group: group.to_owned(),
        version: version.to_owned(),
        plural: plural.to_owned(),
        namespace: namespace.to_owned(),
        name: name.map(str::to_owned),
        status,
    })
}

fn query_params(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The terms of a selector: split at the commas outside parentheses.
fn split_terms(selector: &str) -> Vec<String> {
    let mut terms = vec![String::new()];
    let mut depth = 0;
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(String::new());
                continue;
            }
            _ => {}
        }
        terms.last_mut().expect("one term at least").push(c);
    }
    terms.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()
}

fn label_term_matches(obj: &Value, term: &str) -> bool {
    let label = |k: &str| obj["metadata"]["labels"].get(k.trim()).and_then(Value::as_str).map(str::to_owned);
    let set = |values: &str| -> Vec<String> {
        values.trim().trim_start_matches('(').trim_end_matches(')').split(',').map(|v| v.trim().to_owned()).collect()
    };
    if let Some((k, values)) = term.split_once(" notin ") {
        return label(k).is_none_or(|v| !set(values).contains(&v));
    }
    if let Some((k, values)) = term.split_once(" in ") {
        return label(k).is_some_and(|v| set(values).contains(&v));
    }
    if let Some(k) = term.strip_prefix('!') {
        return label(k).is_none();
    }
    if let Some((k, v)) = term.split_once("!=") {
        return label(k).is_none_or(|have| have != v.trim());
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return label(k).is_some_and(|have| have == v.trim());
    }
    label(term).is_some()
}

fn field_term_matches(obj: &Value, term: &str) -> bool {
    let field = |path: &str| {
        let value = path.trim().split('.').fold(obj, |v, k| &v[k]);
        value
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| if value.is_null() { String::new() } else { value.to_string() })
    };
    if let Some((k, v)) = term.split_once("!=") {
        return field(k) != v.trim();
    }
    match term.split_once("==").or_else(|| term.split_once('=')) {
        Some((k, v)) => field(k) == v.trim(),
        None => false,
    }
}

/// A 409 Conflict when `patch` carries a resourceVersion other than the stored one.
fn stale(target: &Target, name: &str, stored: &Value, patch: &Value) -> Option<Reply> {
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
fn spec_of(obj: &Value) -> Value {
    let mut rest = obj.clone();
    if let Some(o) = rest.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    rest
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// Drops what a real server never keeps: empty finalizer lists, label and annotation maps; a
/// Secret's `stringData` goes into `data`, base64-encoded.
fn normalize(obj: &mut Value) {
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

/// Server-side apply of `patch` onto `obj` as a deep merge: objects merge key by key, lists and
/// scalars are replaced, a null removes the field.
fn apply_merge(obj: &mut Value, patch: &Value) {
    merge_patch(obj, patch);
}

/// RFC 7386 JSON merge patch.
fn merge_patch(obj: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *obj = patch.clone();
        return;
    };
    if !obj.is_object() {
        *obj = json!({});
    }
    let target = obj.as_object_mut().expect("an object");
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Removes from `obj` the fields a manager applied `before` but no longer applies (`now`), unless
/// another manager's configuration (`others`) holds them too.
fn drop_unapplied(obj: &mut Value, before: &Value, now: &Value, others: &[&Value]) {
    let (Value::Object(fields), Value::Object(before)) = (obj, before) else { return };
    let empty = json!({});
    for (k, was) in before {
        let theirs: Vec<&Value> = others.iter().filter_map(|o| o.get(k)).collect();
        match now.get(k) {
            None if theirs.is_empty() => {
                fields.remove(k);
            }
            None if was.is_object() => {
                if let Some(slot) = fields.get_mut(k) {
                    drop_unapplied(slot, was, &empty, &theirs);
                }
            }
            Some(is) if was.is_object() && is.is_object() => {
                if let Some(slot) = fields.get_mut(k) {
                    drop_unapplied(slot, was, is, &theirs);
                }
            }
            _ => {}
        }
    }
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy, test.
fn json_patch(obj: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch.as_array().ok_or("a JSON patch is a list of operations")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("an operation without a path")?;
        let value = || op.get("value").cloned().ok_or_else(|| format!("{path}: the operation has no value"));
        match op["op"].as_str().unwrap_or_default() {
            "add" => pointer_add(obj, path, value()?)?,
            "remove" => drop(pointer_remove(obj, path)?),
            "replace" => {
                pointer_remove(obj, path)?;
                pointer_add(obj, path, value()?)?;
            }
            "move" => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let moved = pointer_remove(obj, from)?;
                pointer_add(obj, path, moved)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let copied = obj.pointer(from).cloned().ok_or_else(|| format!("{from}: no such path"))?;
                pointer_add(obj, path, copied)?;
            }
            "test" => {
                let have = obj.pointer(path).cloned().unwrap_or(Value::Null);
                if have != value()? {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| format!("{path}: not a JSON pointer"))?;
    Ok((parent.to_owned(), last.replace("~1", "/").replace("~0", "~")))
}

fn pointer_add(obj: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *obj = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match obj.pointer_mut(&parent) {
        Some(Value::Object(o)) => {
            o.insert(last, value);
        }
        Some(Value::Array(a)) if last == "-" => a.push(value),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => a.insert(i, value),
            _ => return Err(format!("{path}: index out of range")),
        },
        _ => return Err(format!("{path}: the parent does not exist")),
    }
    Ok(())
}

fn pointer_remove(obj: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let removed = match obj.pointer_mut(&parent) {
        Some(Value::Object(o)) => o.remove(&last),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Some(a.remove(i)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or_else(|| format!("{path}: no such path"))
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

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn reason_of(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

fn details(target: &Target, name: &str) -> Value {
    json!({"name": name, "group": target.group, "kind": target.plural})
}

/// A Kubernetes `Status` failure body.
fn failure(code: StatusCode, reason: &str, message: String, details: Option<Value>) -> Reply {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(d) = details {
        status["details"] = d;
    }
    (code, status)
}

fn not_found(target: &Target, name: &str) -> Reply {
    failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} \"{name}\" not found", target.resource()),
        Some(details(target, name)),
    )
}

fn invalid(target: &Target, name: &str, why: &str) -> Reply {
    failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{} \"{name}\" is invalid: {why}", target.resource()),
        Some(details(target, name)),
    )
}

fn bad_request(why: &str) -> Reply {
    failure(StatusCode::BAD_REQUEST, "BadRequest", why.to_owned(), None)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::{Resource, ResourceExt};
    use mpanel_crds::dnszone::DnsZone;
    use serde_json::json;

    use super::FakeApiServer;

    fn zone(name: &str, nameserver: &str) -> DnsZone {
        serde_json::from_value(json!({
            "apiVersion": "mpanel.migrahosting.com/v1alpha1",
            "kind": "DnsZone",
            "metadata": {"name": name, "namespace": "tenant-a", "labels": {"app": "web"}},
            "spec": {"zone": format!("{name}.example.com"), "nameservers": [nameserver]},
        }))
        .expect("a DnsZone")
    }

    fn api_error(e: kube::Error) -> (u16, String, String) {
        match e {
            kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
            other => panic!("not an API error: {other}"),
        }
    }

    #[tokio::test]
    async fn get_list_and_create_answer_as_a_real_server() {
        let server = FakeApiServer::new();
        let zones: Api<DnsZone> = Api::namespaced(server.client(), "tenant-a");
        assert!(zones.get_opt("shop").await.expect("a 404 is not an error").is_none());
        let created = zones.create(&PostParams::default(), &zone("shop", "ns1.example.net")).await.expect("created");
        assert_eq!(created.meta().generation, Some(1));
        assert!(created.meta().uid.is_some() && created.meta().creation_timestamp.is_some());
        let again = zones.create(&PostParams::default(), &zone("shop", "ns1.example.net")).await.expect_err("exists");
        assert_eq!(api_error(again).0, 409);
        server.put(&zone("blog", "ns1.example.net"));
        let mut other = zone("docs", "ns1.example.net");
        other.metadata.labels = Some([("app".to_owned(), "docs".to_owned())].into());
        server.put(&other);
        let web = zones.list(&ListParams::default().labels("app=web")).await.expect("listed");
        let mut names: Vec<String> = web.items.iter().map(ResourceExt::name_any).collect();
        names.sort();
        assert_eq!(names, ["blog", "shop"]);
        let one = zones.list(&ListParams::default().fields("metadata.name=docs")).await.expect("listed");
        assert_eq!(one.items.len(), 1);
        let elsewhere: Api<DnsZone> = Api::namespaced(server.client(), "tenant-b");
        assert!(elsewhere.list(&ListParams::default()).await.expect("listed").items.is_empty(), "another namespace");
        assert!(elsewhere.get_opt("shop").await.expect("answered").is_none());
        assert_eq!(server.get::<DnsZone>("tenant-a", "shop").map(|z| z.spec.zone), Some("shop.example.com".into()));
    }

    #[tokio::test]
    async fn apply_and_status_keep_generation_and_status_apart() {
        let server = FakeApiServer::new();
        let zones: Api<DnsZone> = Api::namespaced(server.client(), "tenant-a");
        let ssa = PatchParams::apply("test").force();
        let want = serde_json::to_value(zone("shop", "ns1.example.net")).expect("json");
        let first = zones.patch("shop", &ssa, &Patch::Apply(&want)).await.expect("apply creates");
        assert_eq!(first.meta().generation, Some(1));
        let writes = server.writes();
        let same = zones.patch("shop", &ssa, &Patch::Apply(&want)).await.expect("apply again");
        assert_eq!(same.resource_version(), first.resource_version(), "a no-op apply changes nothing");
        assert_eq!(server.writes(), writes + 1, "but it is a request that writes");

        let status = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
            "status": {"phase": "Ready", "observedGeneration": 1}});
        let with_status = zones.patch_status("shop", &ssa, &Patch::Apply(&status)).await.expect("status");
        assert_eq!(with_status.meta().generation, Some(1), "status writes never bump the generation");
        assert_ne!(with_status.resource_version(), first.resource_version());
        let stored = server.get::<DnsZone>("tenant-a", "shop").expect("stored");
        assert_eq!(stored.status.as_ref().and_then(|s| s.observed_generation), Some(1));

        let mut changed = zone("shop", "ns2.example.net");
        changed.status = None;
        let mut changed = serde_json::to_value(changed).expect("json");
        changed["status"] = json!({"phase": "Failed"});
        let after = zones.patch("shop", &ssa, &Patch::Apply(&changed)).await.expect("apply a new spec");
        assert_eq!(after.meta().generation, Some(2), "a spec change bumps the generation");
        assert_eq!(after.spec.nameservers, ["ns2.example.net"]);
        let status_after = serde_json::to_value(after.status).expect("json");
        assert_eq!(status_after["phase"], "Ready", "a write to the main resource ignores .status");

        let missing = zones.patch_status("gone", &ssa, &Patch::Apply(&status)).await.expect_err("no object");
        assert_eq!(api_error(missing).0, 404);
    }

    #[tokio::test]
    async fn apply_removes_the_fields_its_manager_no_longer_applies() {
        let server = FakeApiServer::new();
        let secrets: Api<Secret> = Api::namespaced(server.client(), "tenant-a");
        let ssa = PatchParams::apply("owner").force();
        let secret = |labels: serde_json::Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": labels}});
        secrets.patch("s", &ssa, &Patch::Apply(secret(json!({"a": "1", "b": "2"})))).await.expect("applied");
        let other = PatchParams::apply("other").force();
        secrets.patch("s", &other, &Patch::Apply(secret(json!({"b": "2"})))).await.expect("applied");
        let now = secrets.patch("s", &ssa, &Patch::Apply(secret(json!({"c": "3"})))).await.expect("applied");
        let mut keys: Vec<&String> = now.labels().keys().collect();
        keys.sort();
        assert_eq!(keys, ["b", "c"], "a is dropped, b stays because another manager applies it");
    }

    #[tokio::test]
    async fn merge_patch_with_a_stale_resource_version_conflicts() {
        let server = FakeApiServer::new();
        server.put(&zone("shop", "ns1.example.net"));
        let zones: Api<DnsZone> = Api::namespaced(server.client(), "tenant-a");
        let annotate = |rv: String| json!({"metadata": {"annotations": {"note": "x"}, "resourceVersion": rv}});
        let read = zones.get("shop").await.expect("read");
        server.put(&zone("shop", "ns9.example.net"));
        let stale = zones
            .patch("shop", &PatchParams::default(), &Patch::Merge(annotate(read.resource_version().expect("an rv"))))
            .await
            .expect_err("stale resourceVersion");
        let (code, reason, _) = api_error(stale);
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        let current = server.get::<DnsZone>("tenant-a", "shop").expect("stored");
        assert!(current.annotations().is_empty(), "a conflicting patch writes nothing");
        assert_eq!(current.meta().generation, Some(2), "the user's spec change bumped it");
        let fresh = annotate(current.resource_version().expect("a resourceVersion"));
        let patched = zones.patch("shop", &PatchParams::default(), &Patch::Merge(fresh)).await.expect("current");
        assert_eq!(patched.annotations().get("note").map(String::as_str), Some("x"));
        assert_eq!(patched.meta().generation, Some(2), "metadata changes never bump the generation");
    }

    #[tokio::test]
    async fn replace_checks_the_resource_version_and_keeps_the_server_metadata() {
        let server = FakeApiServer::new();
        let secrets: Api<Secret> = Api::namespaced(server.client(), "tenant-a");
        let secret = |value: &str| -> Secret {
            serde_json::from_value(
                json!({"metadata": {"name": "dkim"}, "data": {"k": value}, "stringData": {"plain": "p"}}),
            )
            .expect("a Secret")
        };
        let created = secrets.create(&PostParams::default(), &secret("YQ==")).await.expect("created");
        assert_eq!(created.meta().generation, None, "a Secret has no generation");
        let mut update = secret("Yg==");
        update.metadata.resource_version = Some("12345".into());
        let stale = secrets.replace("dkim", &PostParams::default(), &update).await.expect_err("stale");
        assert_eq!(api_error(stale).0, 409);
        update.metadata.resource_version = created.resource_version();
        let replaced = secrets.replace("dkim", &PostParams::default(), &update).await.expect("replaced");
        assert_eq!(replaced.meta().uid, created.meta().uid);
        assert_ne!(replaced.resource_version(), created.resource_version());
        let stored = server.get::<Secret>("tenant-a", "dkim").expect("stored");
        let data = stored.data.expect("data");
        assert_eq!((data["k"].0.as_slice(), data["plain"].0.as_slice()), (&b"b"[..], &b"p"[..]));
        assert!(stored.string_data.is_none(), "stringData is folded into data");
        let missing = secrets.replace("other", &PostParams::default(), &update).await.expect_err("no such Secret");
        assert_eq!(api_error(missing).0, 404);
    }

    #[tokio::test]
    async fn json_patch_tests_before_it_writes() {
        let server = FakeApiServer::new();
        server.put(&zone("shop", "ns1.example.net"));
        let zones: Api<DnsZone> = Api::namespaced(server.client(), "tenant-a");
        let ops = |test: serde_json::Value| -> Patch<()> {
            Patch::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": test},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["a/b"]},
                ]))
                .expect("a JSON patch"),
            )
        };
        let failed = zones.patch("shop", &PatchParams::default(), &ops(json!(["x"]))).await.expect_err("test fails");
        assert_eq!(api_error(failed).0, 422);
        assert!(server.get::<DnsZone>("tenant-a", "shop").expect("stored").meta().finalizers.is_none());
        let added = zones.patch("shop", &PatchParams::default(), &ops(json!(null))).await.expect("test passes");
        assert_eq!(added.finalizers(), ["a/b"]);
    }

    #[tokio::test]
    async fn delete_waits_for_the_finalizers() {
        let server = FakeApiServer::new();
        let mut held = zone("shop", "ns1.example.net");
        held.metadata.finalizers = Some(vec!["a/b".into()]);
        server.put(&held);
        let zones: Api<DnsZone> = Api::namespaced(server.client(), "tenant-a");
        zones.delete("shop", &DeleteParams::default()).await.expect("deleted");
        let marked = zones.get("shop").await.expect("still there");
        assert!(marked.meta().deletion_timestamp.is_some());
        let release = json!({"metadata": {"finalizers": [], "resourceVersion": marked.resource_version()}});
        zones.patch("shop", &PatchParams::default(), &Patch::Merge(release)).await.expect("released");
        assert!(zones.get_opt("shop").await.expect("answered").is_none(), "gone once the last finalizer went");
        server.put(&zone("blog", "ns1.example.net"));
        server.delete::<DnsZone>("tenant-a", "blog");
        assert!(server.get::<DnsZone>("tenant-a", "blog").is_none(), "no finalizer: gone at once");
        let missing = zones.delete("nothing", &DeleteParams::default()).await.expect_err("nothing to delete");
        assert_eq!(api_error(missing).0, 404);
    }

    #[tokio::test]
    async fn the_runtime_finalizer_adds_itself_and_cleans_up_on_delete() {
        use kube::runtime::controller::Action;
        use kube::runtime::finalizer::{Event, finalizer};
        let server = FakeApiServer::new();
        server.put(&zone("shop", "ns1.example.net"));
        let zones: Api<DnsZone> = Api::namespaced(server.client(), "tenant-a");
        let cleaned = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let run = |obj: DnsZone| {
            let cleaned = cleaned.clone();
            let zones = zones.clone();
            async move {
                finalizer(&zones, mpanel_crds::FINALIZER, std::sync::Arc::new(obj), |event| async move {
                    if let Event::Cleanup(z) = event {
                        cleaned.lock().expect("lock").push(z.name_any());
                    }
                    Ok::<_, std::io::Error>(Action::await_change())
                })
                .await
            }
        };
        run(zones.get("shop").await.expect("read")).await.expect("finalizer added");
        assert_eq!(zones.get("shop").await.expect("read").finalizers(), [mpanel_crds::FINALIZER]);
        run(zones.get("shop").await.expect("read")).await.expect("applied");
        assert!(cleaned.lock().expect("lock").is_empty(), "no cleanup before a delete");
        server.delete::<DnsZone>("tenant-a", "shop");
        run(zones.get("shop").await.expect("marked")).await.expect("cleaned up");
        assert_eq!(*cleaned.lock().expect("lock"), ["shop"]);
        assert!(server.get::<DnsZone>("tenant-a", "shop").is_none(), "the object is gone");
    }

    #[tokio::test]
    async fn a_failure_is_served_once_verbatim_and_events_are_kept() {
        use kube::runtime::events::{Event, EventType, Recorder, Reporter};
        let server = FakeApiServer::new();
        server.put(&zone("shop", "ns1.example.net"));
        let zones: Api<DnsZone> = Api::namespaced(server.client(), "tenant-a");
        server.fail_next("get", "/dnszones/shop", 503, "etcd is down");
        let (code, reason, message) = api_error(zones.get("shop").await.expect_err("fails once"));
        assert_eq!((code, reason.as_str(), message.as_str()), (503, "ServiceUnavailable", "etcd is down"));
        zones.get("shop").await.expect("then answers");

        let before = server.writes();
        let recorder = Recorder::new(server.client(), Reporter { controller: "test".into(), instance: None });
        let shop = server.get::<DnsZone>("tenant-a", "shop").expect("stored");
        let event = Event {
            type_: EventType::Warning,
            reason: "ProviderUnavailable".into(),
            note: Some("pdns said no".into()),
            action: "Sync".into(),
            secondary: None,
        };
        recorder.publish(&event, &shop.object_ref(&())).await.expect("recorded");
        let events = server.events();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.type_.as_str(), e.reason.as_str(), e.note.as_str(), e.regarding.as_str(), e.namespace.as_str()),
            ("Warning", "ProviderUnavailable", "pdns said no", "shop", "tenant-a")
        );
        assert_eq!(server.writes(), before, "Events are not writes");
        assert!(server.requests().iter().any(|(m, p)| m == "POST" && p.ends_with("/events")));
    }
}
