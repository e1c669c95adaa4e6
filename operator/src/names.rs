//! Which namespace holds a DNS name.
//!
//! Every DnsZone (`spec.zone`) and Domain (`spec.name`) in the cluster claims its name. Claims are
//! taken in order of creation time, then UID; a claim is granted unless an already granted claim of
//! another namespace is the same name, inside it or above it. The outcome depends only on the
//! objects in the API, so every replica, before and after a restart, decides the same way.
//!
//! Claims are ordered by [`Precedence`]: a claim the operator already acted on (a DnsZone whose
//! status says it owns its zone, a Domain that registered or adopted its name) comes before the
//! rest, so a claim that was refused cannot displace one that was granted and served when an older
//! claim blocking only the refused one is deleted.
//!
//! A namespace holds a name when one of its granted claims is that name or a parent of it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use mpanel_crds::dnszone::DnsZone;
use mpanel_crds::domain::Domain;
use mpanel_crds::reasons::condition_types;

use crate::fresh_read::FreshRead;
use crate::precedence::Precedence;

/// One object's claim on a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Lower case, without the trailing dot.
    pub name: String,
    pub namespace: String,
    pub precedence: Precedence,
}

impl Claim {
    pub fn new(name: &str, namespace: &str, precedence: Precedence) -> Self {
        Self { name: plain(name), namespace: namespace.to_owned(), precedence }
    }

    /// The claim of a DnsZone on its zone; acted on once its status says it owns the zone.
    pub fn of_zone(zone: &DnsZone) -> Self {
        let owned = zone
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition_types::CONFLICT.name))
            .is_some_and(|c| c.status == "False");
        Self::of(zone, &zone.spec.zone, owned)
    }

    /// The claim of a Domain on its name; acted on once it placed an order for the name or adopted
    /// its registration.
    pub fn of_domain(domain: &Domain) -> Self {
        let status = domain.status.as_ref();
        let acted_on = status.is_some_and(|s| s.adopted.is_some() || s.last_order.is_some());
        Self::of(domain, &domain.spec.name, acted_on)
    }

    /// The claim `obj` makes on `name`.
    pub fn of<K: ResourceExt>(obj: &K, name: &str, acted_on: bool) -> Self {
        Self::new(name, &obj.namespace().unwrap_or_default(), Precedence::of(obj, acted_on))
    }

    pub fn uid(&self) -> &str {
        self.precedence.uid()
    }
}

/// A name as compared here: lower case, no trailing dot, no wildcard label.
pub fn plain(name: &str) -> String {
    name.trim().trim_start_matches("*.").trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` is a public suffix (`com`, `co.uk`), which no customer may hold: a claim on it
/// would take every name under it that nobody claimed yet.
pub fn is_public_suffix(name: &str) -> bool {
    let name = plain(name);
    psl::domain_str(&name).is_none()
}

/// Whether `name` is `zone` or inside it.
pub fn within(name: &str, zone: &str) -> bool {
    name == zone || name.strip_suffix(zone).is_some_and(|head| head.ends_with('.'))
}

/// What the index says of a name for one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holding {
    /// One of the namespace's granted claims covers the name; this is the closest such claim.
    Held(String),
    /// The closest granted claim covering the name, or one inside it, is another namespace's.
    Elsewhere,
    /// No granted claim is the name, above it or inside it.
    Unclaimed,
}

/// The granted claims, decided from a set of claims.
#[derive(Clone, Debug, Default)]
pub struct Names {
    /// Granted claims by name with its labels reversed (`com.example.www`), so that the names inside
    /// one are a range of keys; one name has claims of one namespace only.
    granted: BTreeMap<String, Vec<Claim>>,
}

/// The last two labels of `name` as [`plain`] compares it: the family of names that can decide a
/// claim on it. A claim conflicts only with granted claims at, above or inside its name; a public
/// suffix is never granted and every name that is not one has two labels or more, so any two
/// names that conflict share their last two labels, and deciding one family's claims alone
/// decides them as deciding every claim would.
fn family(name: &str) -> &str {
    let name = name.trim().trim_start_matches("*.").trim_end_matches('.');
    match name.rmatch_indices('.').nth(1) {
        Some((dot, _)) => &name[dot + 1..],
        None => name,
    }
}

/// Whether `name` (as written in an object) is of `family`, without allocating: the index scans
/// every claim's name at each first write.
fn family_of(name: &str, family_of_claim: &str) -> bool {
    family(name).eq_ignore_ascii_case(family_of_claim)
}

/// `www.example.com` as `com.example.www`.
fn reversed(name: &str) -> String {
    name.rsplit('.').collect::<Vec<_>>().join(".")
}

impl Names {
    pub fn decide(claims: impl IntoIterator<Item = Claim>) -> Self {
        let mut claims: Vec<Claim> = claims.into_iter().filter(|c| !is_public_suffix(&c.name)).collect();
        claims.sort_by(|a, b| a.precedence.cmp(&b.precedence));
        let mut names = Self::default();
        for claim in claims {
            if names.conflicting(&claim.namespace, &claim.name).is_none() {
                names.granted.entry(reversed(&claim.name)).or_default().push(claim);
            }
        }
        names
    }

    /// A granted claim of another namespace than `namespace` that is `name`, above it or inside it.
    fn conflicting(&self, namespace: &str, name: &str) -> Option<&Claim> {
        fn other<'c>(claims: &'c [Claim], namespace: &str) -> Option<&'c Claim> {
            claims.iter().find(|c| c.namespace != namespace)
        }
        // the name and each name above it
        if let Some(found) = self.above(name).find_map(|(_, claims)| other(claims, namespace)) {
            return Some(found);
        }
        // the names inside it: keys that start with "<reversed name>."
        let inside = format!("{}.", reversed(name));
        self.granted
            .range(inside.clone()..)
            .take_while(|(key, _)| key.starts_with(&inside))
            .find_map(|(_, claims)| other(claims, namespace))
    }

    /// The granted entries at `name` and above it, closest first.
    fn above<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a str, &'a Vec<Claim>)> {
        let mut rest = Some(name.to_owned());
        std::iter::from_fn(move || {
            let here = rest.take()?;
            rest = here.split_once('.').map(|(_, parent)| parent.to_owned());
            Some(here)
        })
        .filter_map(|n| self.granted.get_key_value(&reversed(&n)).map(|(_, claims)| (claims[0].name.as_str(), claims)))
    }

    /// Whether the claim of the object `uid` on `name` was granted.
    pub fn granted(&self, name: &str, uid: &str) -> bool {
        self.granted.get(&reversed(&plain(name))).is_some_and(|cs| cs.iter().any(|c| c.uid() == uid))
    }

    /// How many namespaces hold `name` or names inside it.
    pub fn holders_within(&self, name: &str) -> usize {
        let name = plain(name);
        let inside = format!("{}.", reversed(&name));
        let at = self.granted.get(&reversed(&name)).into_iter().flatten();
        let below = self.granted.range(inside.clone()..).take_while(|(key, _)| key.starts_with(&inside));
        let namespaces: HashSet<&str> =
            at.chain(below.flat_map(|(_, claims)| claims)).map(|c| c.namespace.as_str()).collect();
        namespaces.len()
    }

    /// How `name` stands for `namespace`: held by it (through the closest granted claim at or above
    /// the name), held by another namespace, or by nobody.
    pub fn holding(&self, namespace: &str, name: &str) -> Holding {
        let name = plain(name);
        if let Some((zone, claims)) = self.above(&name).next() {
            return match claims.iter().any(|c| c.namespace == namespace) {
                true => Holding::Held(zone.to_owned()),
                false => Holding::Elsewhere,
            };
        }
        match self.conflicting(namespace, &name) {
            Some(_) => Holding::Elsewhere,
            None => Holding::Unclaimed,
        }
    }
}

/// The claims of every DnsZone and Domain in the cluster, from watches of both kinds. Each question
/// is decided over the claims of the names' families only (see [`family`]): a reconcile reads the
/// few claims that can bear on its names, not every claim in the cluster.
#[derive(Clone)]
pub struct NameIndex {
    zones: Store<DnsZone>,
    domains: Option<Store<Domain>>,
    /// The claims of a consistent list, shared by the reconciles that ask at once.
    fresh: Arc<FreshRead<Arc<Vec<Claim>>>>,
    /// Claims this operator granted a first write to whose status may not say so yet, by UID:
    /// every decision of this operator counts them as acted on.
    acting: Arc<Mutex<HashMap<String, Claim>>>,
    /// Whether other operators (shards) grant first writes too: then a first write is decided over
    /// a consistent list of the API, since their grants are not in this operator's memory.
    other_operators: bool,
}

impl NameIndex {
    /// `domains` is `None` where Domains are not watched.
    pub fn new(zones: Store<DnsZone>, domains: Option<Store<Domain>>) -> Self {
        Self { zones, domains, fresh: Arc::default(), acting: Arc::default(), other_operators: false }
    }

    /// This index in an operator that shares the cluster's names with other operators (shards).
    pub fn with_other_operators(self) -> Self {
        Self { other_operators: true, ..self }
    }

    /// Whether the object of `claim` may act on its name now.
    ///
    /// A claim already acted on is decided over the watches. A first write is decided together
    /// with every other first write of this operator, one at a time; a granted one counts as acted
    /// on from then on, before its status says so, so no two reconciles ever both act on
    /// conflicting names. Any claim older than this object of its own kind is in the watch that
    /// delivered the object. With other operators deciding too, or when the watches do not hold
    /// the object yet, the claims are read from the API server (a consistent list) instead.
    pub async fn may_act(&self, client: &kube::Client, claim: Claim) -> Result<bool, kube::Error> {
        let (name, uid) = (claim.name.clone(), claim.uid().to_owned());
        // only the claims of the name's family can decide this one: the rest are not read
        let family = family(&name).to_owned();
        let watched = self.watched_claims(&[&family]);
        if !self.decided(watched.clone(), [claim.clone()]).granted(&name, &uid) {
            return Ok(false);
        }
        if claim.precedence.acted_on() {
            // grants the watches now show as acted on need no remembering
            let acted: HashSet<&str> = watched.iter().filter(|c| c.precedence.acted_on()).map(Claim::uid).collect();
            let mut acting = self.acting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            acting.retain(|uid, _| !acted.contains(uid.as_str()));
            return Ok(true);
        }
        // the watch that delivered the object holds every older claim of its kind; without the
        // object in it, or with other operators granting too, the API server is asked
        let mut claims = match self.other_operators || !watched.iter().any(|c| c.uid() == uid) {
            true => self.fresh_claims(client, &family).await?,
            false => watched,
        };
        let mut acting = self.acting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let seen: HashMap<String, bool> =
            claims.iter().map(|c| (c.uid().to_owned(), c.precedence.acted_on())).collect();
        acting.retain(|uid, c| !family_of(&c.name, &family) || seen.get(uid) == Some(&false));
        count_as_acted(&mut claims, &acting);
        if !seen.contains_key(&uid) {
            claims.push(claim.clone());
        }
        let granted = Names::decide(claims).granted(&name, &uid);
        if granted {
            // decisions made from the watches count it from now on
            let acted = Claim { precedence: claim.precedence.acting(), ..claim };
            acting.insert(uid, acted);
        }
        Ok(granted)
    }

    /// The claims of `family` as the API server holds them now: a consistent list, not the
    /// watches, so that a claim another operator granted a moment earlier counts. Reconciles that
    /// ask while a list is under way share the next one.
    async fn fresh_claims(&self, client: &kube::Client, family: &str) -> Result<Vec<Claim>, kube::Error> {
        let claims = self
            .fresh
            .get(|| async {
                let zones = list_all(&kube::Api::<DnsZone>::all(client.clone())).await?;
                let domains = match self.domains {
                    Some(_) => list_all(&kube::Api::<Domain>::all(client.clone())).await?,
                    None => Vec::new(),
                };
                let claims = zones.iter().map(Claim::of_zone).chain(domains.iter().map(Claim::of_domain));
                Ok::<_, kube::Error>(Arc::new(claims.collect::<Vec<_>>()))
            })
            .await?;
        Ok(claims.iter().filter(|c| family_of(&c.name, family)).cloned().collect())
    }

    /// The decision over the claims of the families of `names` as the watches hold them now, and
    /// `known`: claims of objects a controller already sees but the index's own watches may not
    /// yet (a claim whose UID the watches hold is taken from them). Without them a new object
    /// could be judged without its own claim. It answers for names of those families only.
    pub fn decision_for<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        known: impl IntoIterator<Item = Claim>,
    ) -> Names {
        let mut families: Vec<String> = names.into_iter().map(|n| family(n).to_ascii_lowercase()).collect();
        families.sort();
        families.dedup();
        let families: Vec<&str> = families.iter().map(String::as_str).collect();
        let known = known.into_iter().filter(|c| families.iter().any(|f| family_of(&c.name, f)));
        self.decided(self.watched_claims(&families), known)
    }

    /// The decision over `watched`, with this operator's first writes counted as acted on and the
    /// claims of `known` the watches do not hold.
    fn decided(&self, mut claims: Vec<Claim>, known: impl IntoIterator<Item = Claim>) -> Names {
        count_as_acted(&mut claims, &self.acting.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let seen: HashSet<String> = claims.iter().map(|c| c.uid().to_owned()).collect();
        claims.extend(known.into_iter().filter(|c| !c.uid().is_empty() && !seen.contains(c.uid())));
        Names::decide(claims)
    }

    /// The claims of `families` as the watches hold them.
    fn watched_claims(&self, families: &[&str]) -> Vec<Claim> {
        let zones = self.zones.state();
        let domains = self.domains.as_ref().map(Store::state).unwrap_or_default();
        let takes = |name: &str| families.iter().any(|f| family_of(name, f));
        zones
            .iter()
            .filter(|z| takes(&z.spec.zone))
            .map(|z: &Arc<DnsZone>| Claim::of_zone(z))
            .chain(domains.iter().filter(|d| takes(&d.spec.name)).map(|d: &Arc<Domain>| Claim::of_domain(d)))
            .collect()
    }
}

/// Replaces each of `claims` that `acting` holds with its granted, acted-on self.
fn count_as_acted(claims: &mut [Claim], acting: &HashMap<String, Claim>) {
    if acting.is_empty() {
        return;
    }
    for c in claims.iter_mut() {
        if let Some(granted) = acting.get(c.uid()) {
            *c = granted.clone();
        }
    }
}

/// Every object of a kind, in pages of one snapshot.
async fn list_all<K>(api: &kube::Api<K>) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut all = Vec::new();
    let mut params = kube::api::ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        all.extend(page.items);
        match page.metadata.continue_ {
            Some(next) if !next.is_empty() => params = params.continue_token(&next),
            _ => return Ok(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Option<Timestamp> {
        Timestamp::from_second(1_800_000_000 + second).ok()
    }

    fn claim(name: &str, ns: &str, second: i64, uid: &str) -> Claim {
        Claim::new(name, ns, Precedence::new(false, at(second), uid))
    }

    #[test]
    fn the_first_namespace_holds_a_name_and_everything_inside_it() {
        let names = Names::decide([
            claim("shop.victim.com", "attacker", 2, "u2"),
            claim("victim.com", "victim", 1, "u1"),
            claim("victim.com.", "attacker", 3, "u3"),
        ]);
        assert!(names.granted("victim.com", "u1"));
        assert!(!names.granted("shop.victim.com", "u2"), "inside another namespace's zone");
        assert!(!names.granted("victim.com", "u3"), "the same name, later");
        assert_eq!(names.holding("victim", "www.shop.victim.com"), Holding::Held("victim.com".into()));
        assert_eq!(names.holding("attacker", "shop.victim.com"), Holding::Elsewhere);
        assert_eq!(names.holding("attacker", "other.com"), Holding::Unclaimed);
    }

    #[test]
    fn a_zone_above_another_namespaces_zone_is_refused() {
        let names =
            Names::decide([claim("shop.victim.com", "victim", 1, "u1"), claim("victim.com", "attacker", 2, "u2")]);
        assert!(names.granted("shop.victim.com", "u1"));
        assert!(!names.granted("victim.com", "u2"));
        assert_eq!(names.holding("attacker", "victim.com"), Holding::Elsewhere, "a zone inside is held elsewhere");
        assert_eq!(names.holding("attacker", "www.shop.victim.com"), Holding::Elsewhere);
        assert_eq!(names.holding("attacker", "www.victim.com"), Holding::Unclaimed, "a sibling of the held zone");
    }

    #[test]
    fn one_namespace_may_hold_a_zone_and_zones_inside_it() {
        let names = Names::decide([
            claim("example.com", "a", 1, "u1"),
            claim("example.com", "a", 2, "u2"),
            claim("sub.example.com", "a", 3, "u3"),
        ]);
        assert!(names.granted("example.com", "u1") && names.granted("example.com", "u2"));
        assert_eq!(names.holding("a", "x.sub.example.com"), Holding::Held("sub.example.com".into()));
    }

    #[test]
    fn a_refused_claim_blocks_nothing_and_ties_fall_to_the_uid() {
        let names = Names::decide([
            claim("a.example.com", "first", 1, "u1"),
            claim("example.com", "second", 2, "u2"),
            claim("b.example.com", "third", 3, "u3"),
            claim("tie.net", "x", 5, "b"),
            claim("tie.net", "y", 5, "a"),
        ]);
        assert!(!names.granted("example.com", "u2"));
        assert!(names.granted("b.example.com", "u3"), "only granted claims block later ones");
        assert!(names.granted("tie.net", "a") && !names.granted("tie.net", "b"));
    }

    fn dns_zone(ns: &str, zone: &str, second: i64, uid: &str) -> DnsZone {
        let spec = serde_json::from_value(serde_json::json!({"zone": zone, "nameservers": ["ns1.example.net"]}))
            .expect("a DnsZone spec");
        let mut z = DnsZone::new(uid, spec);
        z.metadata.namespace = Some(ns.to_owned());
        z.metadata.uid = Some(uid.to_owned());
        z.metadata.creation_timestamp = at(second).map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
        z
    }

    #[test]
    fn claims_the_index_has_not_seen_yet_are_decided_with_the_rest() {
        let (store, mut writer) = kube::runtime::reflector::store::<DnsZone>();
        let victim = dns_zone("victim", "victim.test", 1, "u1");
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(victim.clone()));
        let index = NameIndex::new(store, None);
        // a new zone the controller sees before the index does
        let fresh = dns_zone("ours", "ours.test", 2, "u2");
        assert!(!index.decision_for(["ours.test"], []).granted("ours.test", "u2"), "the index alone has not seen it");
        assert!(index.decision_for(["ours.test"], [Claim::of_zone(&fresh)]).granted("ours.test", "u2"));
        // an extra claim cannot jump the queue: an attacker's claim inside the victim's zone stays refused
        let inside = dns_zone("ours", "shop.victim.test", 3, "u3");
        let names = index.decision_for(["shop.victim.test"], [Claim::of_zone(&inside)]);
        assert!(!names.granted("shop.victim.test", "u3"));
        // a claim the index holds is taken from the index, not counted twice
        let names = index.decision_for(["victim.test"], [Claim::of_zone(&victim)]);
        assert_eq!(names.granted.get("test.victim").map(Vec::len), Some(1));
    }

    #[test]
    fn each_decision_reads_the_watches_as_they_are() {
        let (store, mut writer) = kube::runtime::reflector::store::<DnsZone>();
        let index = NameIndex::new(store, None);
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(dns_zone("a", "a.test", 1, "u1")));
        assert!(index.decision_for(["a.test"], []).granted("a.test", "u1"));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Delete(dns_zone("a", "a.test", 1, "u1")));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(dns_zone("b", "a.test", 2, "u2")));
        let names = index.decision_for(["www.a.test"], []);
        assert!(names.granted("a.test", "u2") && !names.granted("a.test", "u1"));
    }

    #[test]
    fn a_claim_refused_while_its_holder_exists_is_granted_once_the_holder_is_gone() {
        let holder = claim("example.com", "victim", 1, "u1");
        let waiting = claim("shop.example.com", "attacker", 2, "u2");
        assert!(!Names::decide([holder, waiting.clone()]).granted("shop.example.com", "u2"));
        assert!(Names::decide([waiting]).granted("shop.example.com", "u2"));
    }

    #[test]
    fn wildcards_and_trailing_dots_are_the_plain_name() {
        let names = Names::decide([claim("Example.COM.", "a", 1, "u1")]);
        assert_eq!(names.holding("a", "*.example.com"), Holding::Held("example.com".into()));
        assert_eq!(names.holding("b", "*.www.example.com."), Holding::Elsewhere);
        assert!(names.granted("example.com.", "u1"));
    }

    #[test]
    fn within_one_second_an_established_claim_comes_before_a_smaller_uid() {
        let mut victim = dns_zone("victim", "victim.test", 1, "b-victim");
        let attacker = dns_zone("attacker", "shop.victim.test", 1, "a-attacker");
        let (v, a) = (Claim::of_zone(&victim), Claim::of_zone(&attacker));
        assert!(Names::decide([v, a.clone()]).granted("shop.victim.test", "a-attacker"), "no status yet: the UID");
        let owned: mpanel_crds::dnszone::DnsZoneStatus = serde_json::from_value(serde_json::json!({"conditions": [
            {"type": "Conflict", "status": "False", "reason": "Owned", "message": "",
             "lastTransitionTime": "2027-01-15T08:00:00Z"}]}))
        .expect("a DnsZone status");
        victim.status = Some(owned);
        let names = Names::decide([Claim::of_zone(&victim), a]);
        assert!(names.granted("victim.test", "b-victim"));
        assert!(!names.granted("shop.victim.test", "a-attacker"));
    }

    #[test]
    fn a_refused_claim_does_not_displace_a_served_one_when_its_own_blocker_goes() {
        // x.example.com (first) blocks example.com; y.example.com is granted and its zone served
        let blocker = claim("x.example.com", "first", 1, "u1");
        let refused = claim("example.com", "second", 2, "u2");
        let served = Claim::new("y.example.com", "third", Precedence::new(true, at(3), "u3"));
        let names = Names::decide([blocker, refused.clone(), served.clone()]);
        assert!(names.granted("y.example.com", "u3") && !names.granted("example.com", "u2"));
        // the blocker is deleted: the served claim stays, the refused one still conflicts with it
        let names = Names::decide([refused, served]);
        assert!(names.granted("y.example.com", "u3"));
        assert!(!names.granted("example.com", "u2"));
    }

    #[test]
    fn a_public_suffix_is_never_held() {
        let names = Names::decide([
            claim("co.uk", "a", 1, "u1"),
            claim("com", "a", 1, "u2"),
            claim("shop.co.uk", "b", 2, "u3"),
        ]);
        assert!(!names.granted("co.uk", "u1") && !names.granted("com", "u2"));
        assert!(names.granted("shop.co.uk", "u3"), "a registered domain under a suffix someone claimed");
        assert_eq!(names.holding("a", "example.com"), Holding::Unclaimed);
        assert!(is_public_suffix("CO.UK.") && is_public_suffix("test") && !is_public_suffix("victim.test"));
    }

    #[test]
    fn holders_are_counted_at_and_under_a_name() {
        let names = Names::decide([
            claim("a.example.com", "a", 1, "u1"),
            claim("b.example.com", "b", 2, "u2"),
            claim("c.b.example.com", "b", 3, "u3"),
            claim("other.com", "c", 4, "u4"),
        ]);
        assert_eq!(names.holders_within("example.com"), 2);
        assert_eq!(names.holders_within("b.example.com"), 1);
        assert_eq!(names.holders_within("nothing.com"), 0);
    }

    #[test]
    fn names_that_only_share_a_suffix_are_unrelated() {
        let names = Names::decide([claim("myexample.com", "a", 1, "u1"), claim("example.com", "b", 2, "u2")]);
        assert!(names.granted("example.com", "u2"));
        assert!(within("www.example.com", "example.com") && !within("myexample.com", "example.com"));
    }

    #[test]
    fn a_family_is_the_last_two_labels_of_the_plain_name() {
        assert_eq!(family("*.www.Example.COM."), "Example.COM");
        assert_eq!(family("shop.example.co.uk"), "co.uk");
        assert_eq!(family("example.com"), "example.com");
        assert!(family_of("WWW.example.com.", "example.com") && !family_of("myexample.com", "example.com"));
    }

    #[test]
    fn deciding_each_family_alone_grants_what_deciding_every_claim_grants() {
        // nested names across namespaces, a deeper public suffix (s3.amazonaws.com) under a
        // registered domain, a public suffix claimed, names sharing only a suffix
        let all = vec![
            claim("example.com", "a", 3, "u1"),
            claim("shop.example.com", "b", 1, "u2"),
            claim("www.shop.example.com", "b", 2, "u3"),
            claim("other.example.com", "c", 4, "u4"),
            claim("amazonaws.com", "a", 5, "u5"),
            claim("bucket.s3.amazonaws.com", "b", 1, "u6"),
            claim("s3.amazonaws.com", "c", 0, "u7"),
            claim("co.uk", "a", 0, "u8"),
            claim("shop.co.uk", "b", 2, "u9"),
            claim("myexample.com", "d", 0, "u10"),
            claim("Example.COM.", "e", 2, "u11"),
        ];
        let whole = Names::decide(all.clone());
        for c in &all {
            let alone = Names::decide(all.iter().filter(|o| family_of(&o.name, family(&c.name))).cloned());
            assert_eq!(alone.granted(&c.name, c.uid()), whole.granted(&c.name, c.uid()), "{c:?}");
        }
    }

    mod first_writes {
        use super::*;
        use kube::runtime::reflector::store::Writer;
        use kube::runtime::watcher::Event;

        fn zone(ns: &str, name: &str, second: i64) -> DnsZone {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
                "metadata": {"name": "z", "namespace": ns, "uid": format!("uid-{ns}"),
                             "creationTimestamp": at(second).map(|t| t.to_string())},
                "spec": {"zone": name, "nameservers": ["ns1.example.net."]}
            }))
            .expect("a DnsZone")
        }

        fn listed(objects: &[DnsZone]) -> (Store<DnsZone>, Writer<DnsZone>) {
            let (reader, mut writer) = kube::runtime::reflector::store();
            writer.apply_watcher_event(&Event::Init);
            for obj in objects {
                writer.apply_watcher_event(&Event::InitApply(obj.clone()));
            }
            writer.apply_watcher_event(&Event::InitDone);
            (reader, writer)
        }

        /// Never called: no consistent list is read without other operators.
        fn client() -> kube::Client {
            crate::testing::apiserver::FakeApiServer::new().client()
        }

        #[tokio::test]
        async fn of_two_first_writes_at_once_on_conflicting_names_only_the_first_is_granted() {
            // both are in the watch, neither says it acted: b is older, but a was granted first
            // while b's object had not arrived (another kind's watch can lag)
            let a = zone("a", "example.com", 2);
            let (store, mut writer) = listed(std::slice::from_ref(&a));
            let names = NameIndex::new(store, None);
            let client = client();
            assert!(names.may_act(&client, Claim::of_zone(&a)).await.unwrap());

            let b = zone("b", "shop.example.com", 1);
            writer.apply_watcher_event(&Event::Apply(b.clone()));
            assert!(!names.may_act(&client, Claim::of_zone(&b)).await.unwrap(), "both act on nested names");
            let decision = names.decision_for(["shop.example.com"], []);
            assert_eq!(decision.holding("b", "shop.example.com"), Holding::Elsewhere);
            assert!(decision.granted("example.com", "uid-a"));
        }

        #[tokio::test]
        async fn a_grant_is_remembered_while_other_families_are_decided() {
            let a = zone("a", "example.com", 2);
            let c = zone("c", "other.net", 3);
            let (store, mut writer) = listed(&[a.clone(), c.clone()]);
            let names = NameIndex::new(store, None);
            let client = client();
            assert!(names.may_act(&client, Claim::of_zone(&a)).await.unwrap());
            assert!(names.may_act(&client, Claim::of_zone(&c)).await.unwrap(), "an unrelated name");

            // older than a's, but a acted first: still refused after the other family's grant
            let b = zone("b", "shop.example.com", 1);
            writer.apply_watcher_event(&Event::Apply(b.clone()));
            assert!(!names.may_act(&client, Claim::of_zone(&b)).await.unwrap());
        }

        #[tokio::test]
        async fn a_grant_is_let_go_when_its_object_is_gone() {
            let a = zone("a", "example.com", 2);
            let b = zone("b", "example.com", 3);
            let (store, mut writer) = listed(&[a.clone(), b.clone()]);
            let names = NameIndex::new(store, None);
            let client = client();
            assert!(names.may_act(&client, Claim::of_zone(&a)).await.unwrap());
            assert!(!names.may_act(&client, Claim::of_zone(&b)).await.unwrap());

            writer.apply_watcher_event(&Event::Delete(a));
            assert!(names.may_act(&client, Claim::of_zone(&b)).await.unwrap(), "a deleted object still holds the name");
        }
    }
}
