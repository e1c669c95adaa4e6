//! What controllers watch: the API of a kind in the operator's scope, the one watch per kind the
//! controllers share ([`Hub`]: trigger streams and stores, Secrets as metadata only), and the
//! filter that drops a controller's own status writes.

use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// The API of `K` in the one namespace a controller watches, or in all namespaces.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch filter that lets through what a person or GitOps changed (spec, annotations such as the
/// reconcile mode, finalizers, deletion) and drops the controller's own status writes. For kinds
/// that spend money, a status write must not start the next attempt early: retries follow the
/// backoff.
pub fn intent<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.as_ref().map(|t| t.0.as_second()).hash(&mut hasher);
    Some(hasher.finish())
}

/// The objects of `changes` whose [`intent`] changed since the stream last let them through: the
/// trigger of a controller that must not start again on its own status writes (the store behind
/// it still sees every change).
pub fn on_intent<K: Watchable>(changes: Changes<K>) -> impl futures::Stream<Item = Arc<K>> + Send + 'static {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    changes
        .map(|obj| Ok::<_, watcher::Error>(K::clone(&obj)))
        .predicate_filter(intent, kube::runtime::utils::PredicateConfig::default())
        .filter_map(|obj| std::future::ready(obj.ok().map(Arc::new)))
}

/// A namespaced kind the hub can watch and hand out.
pub trait Watchable:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watchable for K where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// How much of the cluster a consumer of a kind's watch sees: the namespaces the operator
/// reconciles (its one namespace, its shard's, or all), or every namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Operator,
    Cluster,
}

/// The changes of one kind as a controller's trigger: every object the watch touched (applied,
/// listed again or deleted), in the order the watch delivered them.
pub type Changes<K> = futures::channel::mpsc::UnboundedReceiver<Arc<K>>;

/// The namespaces of a shard, as the watch of the Namespaces its selector picks last saw them;
/// `None` until that watch listed them once.
pub type ShardNamespaces = tokio::sync::watch::Receiver<Option<Arc<BTreeSet<String>>>>;

/// What keeps [`ShardNamespaces`] current.
type PublishShard = tokio::sync::watch::Sender<Option<Arc<BTreeSet<String>>>>;

/// Which objects a sink of a watch takes, by their namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Within {
    All,
    Namespace(String),
    /// The namespaces of the operator's shard at the time the watch last listed.
    Shard,
}

impl Within {
    fn holds(&self, namespace: Option<&str>, shard: Option<&BTreeSet<String>>) -> bool {
        match self {
            Self::All => true,
            Self::Namespace(ns) => namespace == Some(ns.as_str()),
            Self::Shard => namespace.zip(shard).is_some_and(|(ns, members)| members.contains(ns)),
        }
    }
}

/// Where one watch's events go.
enum Sink<K: Resource<DynamicType = ()> + Clone + 'static> {
    /// A store kept filled with the objects `within` takes, handed to every consumer that asks
    /// for a store of the same objects (one copy of each object per scope, not per consumer).
    Store { writer: kube::runtime::reflector::store::Writer<K>, within: Within, reader: Store<K> },
    /// A stream of the touched objects `within` takes.
    Stream { tx: futures::channel::mpsc::UnboundedSender<Arc<K>>, within: Within },
}

/// What the one watch of a kind serves, gathered before it starts.
struct Feed<K: Resource<DynamicType = ()> + Clone + 'static> {
    cluster_wide: bool,
    any_semantic: bool,
    sinks: Vec<Sink<K>>,
}

type Start = Box<dyn FnOnce(&Client, Option<&str>, Option<ShardNamespaces>) + Send>;

/// The feed of one kind (an `Arc<Mutex<Feed<K>>>`) and what starts its watch, until it started.
type Registered = (Box<dyn Any + Send>, Option<Start>);

/// One watch per kind for the whole operator: every controller takes its trigger streams and its
/// stores of a kind from here, and the kind is watched once, at the widest scope any of them
/// needs; a kind no one asked for is not watched. Streams and stores are all asked for before
/// [`Hub::start`]; a stream never blocks the watch (it buffers until its controller polls it), so
/// a controller that waits for another kind's store before it runs holds up no one.
///
/// A sharded hub ([`Hub::sharded`]) watches the Namespaces its selector picks, and its
/// [`Scope::Operator`] consumers see the objects of those namespaces only: when a namespace joins
/// or leaves the shard, every kind's watch lists again, so the stores gain or lose its objects and
/// the controllers are handed the objects that joined. An object that left is no longer
/// reconciled; nothing is deleted for it.
pub struct Hub {
    client: Client,
    namespace: Option<String>,
    shard: Option<Shard>,
    feeds: Mutex<HashMap<TypeId, Registered>>,
}

/// A sharded hub's selector and the namespaces it picks.
struct Shard {
    selector: String,
    namespaces: ShardNamespaces,
    /// Taken by [`Hub::start`], which starts the watch of the Namespaces.
    publish: Mutex<Option<PublishShard>>,
}

impl Hub {
    /// Consumers with [`Scope::Operator`] see `namespace` only (everything when `None`).
    pub fn new(client: Client, namespace: Option<String>) -> Self {
        Self { client, namespace, shard: None, feeds: Mutex::default() }
    }

    /// Consumers with [`Scope::Operator`] see the namespaces whose labels match `selector` (a
    /// label selector, as the API server takes it), as they come and go.
    pub fn sharded(client: Client, selector: &str) -> Self {
        let (publish, namespaces) = tokio::sync::watch::channel(None);
        let shard = Shard { selector: selector.to_owned(), namespaces, publish: Mutex::new(Some(publish)) };
        Self { client, namespace: None, shard: Some(shard), feeds: Mutex::default() }
    }

    /// The namespaces of this hub's shard, as they come and go; `None` when it is not sharded.
    pub fn shard_namespaces(&self) -> Option<ShardNamespaces> {
        self.shard.as_ref().map(|s| s.namespaces.clone())
    }

    fn register<K, R>(&self, scope: Scope, any_semantic: bool, sink: impl FnOnce(Within, &mut Vec<Sink<K>>) -> R) -> R
    where
        K: Watchable,
    {
        let mut feeds = self.feeds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (feed, _) = feeds.entry(TypeId::of::<K>()).or_insert_with(|| {
            let feed: Arc<Mutex<Feed<K>>> =
                Arc::new(Mutex::new(Feed { cluster_wide: false, any_semantic: false, sinks: Vec::new() }));
            let started = feed.clone();
            let start: Start = Box::new(move |client, namespace, shard| {
                let feed = std::mem::replace(
                    &mut *started.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                    Feed { cluster_wide: false, any_semantic: false, sinks: Vec::new() },
                );
                tokio::spawn(run_feed(client.clone(), namespace.map(str::to_owned), shard, feed));
            });
            (Box::new(feed), Some(start))
        });
        #[allow(clippy::expect_used)]
        let feed = feed.downcast_ref::<Arc<Mutex<Feed<K>>>>().expect("feeds are keyed by their kind's TypeId");
        let mut feed = feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let within = match (scope, &self.namespace) {
            (Scope::Operator, _) if self.shard.is_some() => Within::Shard,
            (Scope::Operator, Some(ns)) => Within::Namespace(ns.clone()),
            (Scope::Operator, None) | (Scope::Cluster, _) => Within::All,
        };
        feed.cluster_wide |= !matches!(within, Within::Namespace(_));
        feed.any_semantic |= any_semantic;
        sink(within, &mut feed.sinks)
    }

    /// A store of the `K`s in `scope`, filled once the hub started.
    pub fn store<K>(&self, scope: Scope) -> Store<K>
    where
        K: Watchable,
    {
        self.register::<K, _>(scope, false, shared_store)
    }

    /// The changes of the `K`s in the operator's namespace, for a controller that follows `K`.
    pub fn changes<K>(&self) -> Changes<K>
    where
        K: Watchable,
    {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        self.register::<K, _>(Scope::Operator, false, |within, sinks| sinks.push(Sink::Stream { tx, within }));
        rx
    }

    /// Changes of the Secrets in the operator's namespace, as metadata only: a controller that
    /// follows the Secrets it refers to reads the one it needs when it reconciles, so tenants'
    /// large Secrets never sit in the operator's memory nor cross the wire to it. A change of a
    /// Secret's data changes its metadata (resourceVersion) too.
    pub fn secret_changes(&self) -> Changes<PartialObjectMeta<Secret>> {
        // an Api of PartialObjectMeta makes metadata-only requests
        self.changes()
    }

    /// What the controller of `K` itself runs on: the changes of the `K`s in the operator's
    /// namespace and the store of them. Its first list may come from the API server's watch cache
    /// (any semantic), like a controller's own watch.
    pub fn primary<K>(&self) -> (Changes<K>, Store<K>)
    where
        K: Watchable,
    {
        let store = self.register::<K, _>(Scope::Operator, true, shared_store);
        (self.primary_changes(), store)
    }

    /// The changes of the `K`s in the operator's namespace, with the first list from the watch
    /// cache (see [`Hub::primary`]).
    pub fn primary_changes<K>(&self) -> Changes<K>
    where
        K: Watchable,
    {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        self.register::<K, _>(Scope::Operator, true, |within, sinks| sinks.push(Sink::Stream { tx, within }));
        rx
    }

    /// Starts the one watch of each kind asked for so far. Streams and stores asked for later get
    /// nothing.
    pub fn start(&self) {
        if let Some(shard) = &self.shard
            && let Some(publish) = shard.publish.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        {
            tokio::spawn(follow_shard(self.client.clone(), shard.selector.clone(), publish));
        }
        let mut feeds = self.feeds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, start) in feeds.values_mut() {
            if let Some(start) = start.take() {
                start(&self.client, self.namespace.as_deref(), self.shard_namespaces());
            }
        }
    }
}

/// The store of the objects `within` takes among `sinks`, added when there is none yet.
fn shared_store<K: Watchable>(within: Within, sinks: &mut Vec<Sink<K>>) -> Store<K> {
    let existing = sinks.iter().find_map(|sink| match sink {
        Sink::Store { within: takes, reader, .. } if *takes == within => Some(reader.clone()),
        _ => None,
    });
    existing.unwrap_or_else(|| {
        let (reader, writer) = kube::runtime::reflector::store();
        sinks.push(Sink::Store { writer, within, reader: reader.clone() });
        reader
    })
}

/// The objects of `changes` that carry the label `key` (any value): what a label-selected watch
/// of the kind would have delivered.
pub fn labelled<K: Resource + Send + Sync + 'static>(
    changes: Changes<K>,
    key: &'static str,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static {
    use futures::StreamExt;
    changes.filter(move |obj| std::future::ready(obj.meta().labels.as_ref().is_some_and(|l| l.contains_key(key))))
}

/// Keeps `publish` at the names of the Namespaces `selector` picks, from a watch of their
/// metadata: a namespace that gains the labels arrives, one that loses them (or is deleted) goes.
async fn follow_shard(client: Client, selector: String, publish: PublishShard) {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    // an Api of PartialObjectMeta makes metadata-only requests
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let mut events =
        std::pin::pin!(kube::runtime::watcher(api, watcher::Config::default().labels(&selector)).default_backoff());
    let (mut members, mut listing) = (BTreeSet::new(), None::<BTreeSet<String>>);
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listing = Some(BTreeSet::new()),
            Ok(watcher::Event::InitApply(ns)) => {
                listing.get_or_insert_default().insert(ns.metadata.name.unwrap_or_default());
            }
            Ok(watcher::Event::InitDone) => members = listing.take().unwrap_or_default(),
            Ok(watcher::Event::Apply(ns)) => {
                members.insert(ns.metadata.name.unwrap_or_default());
            }
            Ok(watcher::Event::Delete(ns)) => {
                members.remove(&ns.metadata.name.unwrap_or_default());
            }
            Err(error) => {
                tracing::warn!(%selector, %error, "watching the shard's Namespaces; retrying after a backoff");
                continue;
            }
        }
        if listing.is_some() {
            continue;
        }
        publish.send_if_modified(|current| {
            let before = current.as_deref().cloned().unwrap_or_default();
            if current.is_some() && before == members {
                return false;
            }
            let joined: Vec<&String> = members.difference(&before).collect();
            let left: Vec<&String> = before.difference(&members).collect();
            tracing::info!(%selector, ?joined, ?left, namespaces = members.len(), "the shard's namespaces changed");
            *current = Some(Arc::new(members.clone()));
            true
        });
        if publish.is_closed() {
            return;
        }
    }
}

/// Runs the one watch of a kind, at the widest scope its consumers need, until it has no consumer
/// left: each event reaches the stores first, then the streams. With a shard, it waits for the
/// shard's namespaces and lists again whenever they change.
async fn run_feed<K>(client: Client, namespace: Option<String>, mut shard: Option<ShardNamespaces>, feed: Feed<K>)
where
    K: Watchable,
{
    use kube::runtime::WatchStreamExt;
    let Feed { cluster_wide, any_semantic, mut sinks } = feed;
    let config = if any_semantic { watcher::Config::default().any_semantic() } else { watcher::Config::default() };
    let api = scoped::<K>(&client, if cluster_wide { None } else { namespace.as_deref() });
    loop {
        // the shard's namespaces as of this list; a change starts the next one
        let members = match &mut shard {
            None => None,
            Some(namespaces) => match namespaces.wait_for(Option::is_some).await {
                Ok(members) => members.clone(),
                Err(_) => return,
            },
        };
        let changed = async {
            match &mut shard {
                Some(namespaces) => namespaces.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        // no controller reads managedFields, and they are most of a small object's bytes in every
        // copy the stores keep
        let events = kube::runtime::watcher(api.clone(), config.clone())
            .default_backoff()
            .modify(|obj: &mut K| obj.meta_mut().managed_fields = None);
        match deliver(events, &mut sinks, members.as_deref(), changed).await {
            Delivered::ShardChanged => continue,
            Delivered::Done => return,
        }
    }
}

enum Delivered {
    /// The shard's namespaces changed: list again.
    ShardChanged,
    /// No consumer is left, the watch ended, or the shard's watch did.
    Done,
}

/// Hands each event of `events` to the sinks that take it, until `changed` resolves (true: the
/// shard's namespaces changed).
async fn deliver<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    sinks: &mut Vec<Sink<K>>,
    members: Option<&BTreeSet<String>>,
    changed: impl std::future::Future<Output = bool>,
) -> Delivered
where
    K: Watchable,
{
    use futures::StreamExt;
    let mut events = std::pin::pin!(events);
    let mut changed = std::pin::pin!(changed);
    let within = |obj: &K, within: &Within| within.holds(obj.meta().namespace.as_deref(), members);
    loop {
        let event = tokio::select! {
            event = events.next() => match event {
                Some(event) => event,
                None => return Delivered::Done,
            },
            still = &mut changed => return if still { Delivered::ShardChanged } else { Delivered::Done },
        };
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::debug!(kind = %K::kind(&()), %error, "watch error; retrying after a backoff");
                continue;
            }
        };
        for sink in sinks.iter_mut() {
            if let Sink::Store { writer, within: takes, .. } = sink {
                let applies = match &event {
                    watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) | watcher::Event::Delete(obj) => {
                        within(obj, takes)
                    }
                    watcher::Event::Init | watcher::Event::InitDone => true,
                };
                if applies {
                    writer.apply_watcher_event(&event);
                }
            }
        }
        let touched = match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) | watcher::Event::Delete(obj) => Arc::new(obj),
            watcher::Event::Init | watcher::Event::InitDone => continue,
        };
        sinks.retain(|sink| match sink {
            Sink::Stream { tx, within: takes } => {
                !within(&touched, takes) || tx.unbounded_send(touched.clone()).is_ok()
            }
            Sink::Store { .. } => true,
        });
        if sinks.is_empty() {
            return Delivered::Done;
        }
    }
}
