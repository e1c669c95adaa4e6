//! Reconcile-level unit tests of the dnszone controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use serde_json::{Value, json};

use crate::controllers::certificate::keys::managed_labels;
use crate::controllers::mailbox::dkim;
use crate::providers::powerdns::RrSet;
use crate::testing::harness::{Harness, assert_condition, derefs_to_harness, merged, object, with_mode};
use crate::testing::powerdns::FakePowerDns;
use crate::testing::{names_of, store_of};

const NS: &str = "acme";
const NAME: &str = "example";
const ZONE: &str = "example.com.";

/// A DnsZone `name` in `ns` with `spec` over the plain zone spec (one `www` A record).
fn zone_in(ns: &str, name: &str, spec: Value) -> DnsZone {
    let plain = json!({
        "zone": ZONE,
        "nameservers": ["ns1.migrahosting.com."],
        "records": [{"name": "www", "type": "A", "ttl": 300, "values": ["192.0.2.10"]}]
    });
    object("DnsZone", ns, name, merged(plain, spec))
}

fn zone(spec: Value) -> DnsZone {
    zone_in(NS, NAME, spec)
}

struct Setup {
    h: Harness<State<FakePowerDns>>,
    dns: FakePowerDns,
}

fn setup_with(names: crate::names::NameIndex, pods: &[CloudPod]) -> Setup {
    let dns = FakePowerDns::new();
    let h = Harness::new(State { names, dns: dns.clone(), cloudpods: store_of(pods) });
    Setup { h, dns }
}

fn setup() -> Setup {
    setup_with(names_of(&[], &[]), &[])
}

derefs_to_harness!(Setup, State<FakePowerDns>);

#[tokio::test]
async fn a_new_zone_is_created_with_its_records_marked_as_this_objects_and_ready() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();

    let served = s.dns.zone(ZONE).expect("the zone was created");
    assert_eq!(served.account, z.uid().unwrap(), "the zone carries this object's UID");
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"]);
    assert_eq!(s.dns.contents(ZONE, ZONE, "NS"), ["ns1.migrahosting.com."]);
    assert_condition(&s.expect_condition(&z, READY), "True", reasons::READY.name, "zone example.com. is served");
    assert_condition(&s.expect_condition(&z, PROGRAMMED), "True", reasons::SYNCED.name, "rrsets in sync");
    assert_condition(&s.expect_condition(&z, CONFLICT), "False", reasons::OWNED.name, "belongs to this object");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Ready));
    let status = s.stored(&z).status.unwrap();
    assert_eq!(status.serial, Some(served.serial));
    assert_eq!(status.records, Some(2), "www A and the apex NS");
    assert!(s.has_event("Normal", reasons::CREATED.name, "created zone example.com. in PowerDNS"));
    assert_eq!(s.stored(&z).metadata.finalizers, Some(vec![mpanel_crds::FINALIZER.to_owned()]));
}

#[tokio::test]
async fn an_unchanged_resync_writes_nothing_to_powerdns_or_the_api() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    s.dns.clear_calls();
    let (writes, events) = (s.api.writes(), s.api.events().len());
    s.reconcile(&z, 2).await.unwrap();
    assert_eq!(s.dns.writes(), [], "a resync wrote to PowerDNS");
    assert_eq!(s.api.writes(), writes, "a resync wrote to the API: {:?}", s.api.requests());
    assert_eq!(s.api.events().len(), events, "a resync recorded an Event");
    assert!(!s.dns.calls().is_empty(), "the resync did not even look");
}

#[tokio::test]
async fn a_zone_carrying_this_objects_uid_is_adopted_and_converged_without_creating_it() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    let uid = z.uid().unwrap();
    s.dns.insert_zone(
        ZONE,
        &uid,
        vec![
            RrSet::replace("www.example.com.", "A", 300, ["192.0.2.99".to_owned()]),
            RrSet::replace("old.example.com.", "A", 300, ["192.0.2.98".to_owned()]),
        ],
    );
    s.reconcile(&z, 3).await.unwrap();
    let ops: Vec<_> = s.dns.writes().iter().map(|c| c.op).collect();
    assert_eq!(ops, ["patch_rrsets"], "adopting is no create");
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"]);
    assert_eq!(s.dns.rrset(ZONE, "old.example.com.", "A"), None, "Sync removes what the spec does not name");
    assert_eq!(s.dns.zone(ZONE).unwrap().account, uid);
    assert_condition(&s.expect_condition(&z, CONFLICT), "False", reasons::OWNED.name, "belongs to this object");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Ready));
}

#[tokio::test]
async fn a_zone_of_another_account_is_a_conflict_and_never_written() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    let theirs = RrSet::replace("www.example.com.", "A", 300, ["198.51.100.1".to_owned()]);
    s.dns.insert_zone(ZONE, "uid-of-someone-else", vec![theirs]);
    let before = s.dns.zone(ZONE);
    s.reconcile(&z, 3).await.unwrap();

    assert_eq!(s.dns.writes(), [], "a zone owned elsewhere was written");
    assert_eq!(s.dns.zone(ZONE), before);
    let conflict = s.expect_condition(&z, CONFLICT);
    assert_condition(&conflict, "True", reasons::ZONE_OWNED_ELSEWHERE.name, "is not this object's");
    assert!(!conflict.message.contains("uid-of-someone-else"), "the other owner is shown: {}", conflict.message);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::CONFLICT.name, "left untouched");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Conflict));
    assert!(s.has_event("Warning", reasons::CONFLICT.name, "not this object's"));

    // deleting the object leaves the other account's zone where it is
    s.api.delete::<DnsZone>(NS, NAME);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.zone(ZONE), before, "deleting the object removed a zone that was not its own");
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
    assert!(s.has_event("Warning", reasons::NOT_OWNER.name, "left in PowerDNS"));
}

#[tokio::test]
async fn a_hand_edit_in_powerdns_is_put_back_and_reported_as_drift() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    let serial = s.dns.zone(ZONE).unwrap().serial;
    s.dns.edit_rrsets(ZONE, &[RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])]);
    s.dns.clear_calls();

    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"]);
    let ops: Vec<_> = s.dns.writes().iter().map(|c| c.op).collect();
    assert_eq!(ops, ["patch_rrsets"]);
    assert!(s.has_event("Warning", reasons::DRIFT_REPAIRED.name, "1 rrsets were changed outside the operator"));
    let status = s.stored(&z).status.unwrap();
    assert_eq!(status.serial, s.dns.zone(ZONE).map(|z| z.serial), "the status shows the serial served now");
    assert!(status.serial > Some(serial + 1), "the repair moved the serial");
    assert_condition(&s.expect_condition(&z, READY), "True", reasons::READY.name, "is served");
}

#[tokio::test]
async fn sync_removes_an_rrset_added_by_hand_while_upsert_only_keeps_it() {
    let stray = [RrSet::replace("hand.example.com.", "A", 300, ["192.0.2.77".to_owned()])];

    let s = setup();
    let z = s.put(&zone(json!({"policy": "Sync"})));
    s.reconcile(&z, 3).await.unwrap();
    s.dns.edit_rrsets(ZONE, &stray);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.rrset(ZONE, "hand.example.com.", "A"), None, "Sync kept an rrset the spec does not name");

    let s = setup();
    let z = s.put(&zone(json!({"policy": "UpsertOnly"})));
    s.reconcile(&z, 3).await.unwrap();
    s.dns.edit_rrsets(ZONE, &stray);
    s.dns.edit_rrsets(ZONE, &[RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])]);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.contents(ZONE, "hand.example.com.", "A"), ["192.0.2.77"], "UpsertOnly deleted an rrset");
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"], "UpsertOnly still puts back its own");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Ready));
}

fn cloud_pod(ip: Option<&str>) -> CloudPod {
    let mut pod = json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
        "metadata": {"name": "web-1", "namespace": NS},
        "spec": {
            "plan": "pro", "type": "lxc", "template": "100", "hostname": "web-1",
            "resources": {"cores": 2, "memoryMiB": 2048, "diskGiB": 50},
            "network": {"bridge": "vmbr0", "ipv4": {"address": "203.0.113.10/24", "gateway": "203.0.113.1"}},
            "powerState": "Running"
        }
    });
    if let Some(ip) = ip {
        pod["status"] = json!({"ipAddress": ip});
    }
    serde_json::from_value(pod).unwrap()
}

fn following_zone() -> DnsZone {
    zone(json!({"records": [
        {"name": "www", "type": "A", "ttl": 300, "values": ["192.0.2.10"]},
        {"name": "app", "type": "A", "ttl": 300, "cloudPodRef": {"name": "web-1"}}
    ]}))
}

#[tokio::test]
async fn a_record_following_a_cloud_pod_waits_for_its_address_then_serves_it() {
    let s = setup_with(names_of(&[], &[]), &[cloud_pod(None)]);
    let z = s.put(&following_zone());
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.rrset(ZONE, "app.example.com.", "A"), None);
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.10"], "the other records are served");
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::WAITING_FOR_CLOUD_POD.name, "CloudPod web-1");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Pending));

    // the CloudPod got its address: the same zone, reconciled by a controller whose store has it
    let placed = setup_with(names_of(&[], &[]), &[cloud_pod(Some("203.0.113.7"))]);
    let placed = Setup { h: Harness { api: s.api.clone(), ctx: placed.ctx_on(&s) }, dns: s.dns.clone() };
    placed.reconcile(&z, 1).await.unwrap();
    assert_eq!(placed.dns.contents(ZONE, "app.example.com.", "A"), ["203.0.113.7"]);
    assert_condition(&placed.expect_condition(&z, READY), "True", reasons::READY.name, "is served");
    assert_eq!(placed.phase(&z), Some(DnsZonePhase::Ready));
}

impl Setup {
    /// This setup on the same API and PowerDNS with `ctx` instead.
    fn with_ctx(self, ctx: Arc<Context<FakePowerDns>>) -> Setup {
        Setup { h: Harness { api: self.h.api.clone(), ctx }, dns: self.dns.clone() }
    }

    /// This setup's state (names, CloudPods) on `other`'s API and PowerDNS.
    fn ctx_on(self, other: &Setup) -> Arc<Context<FakePowerDns>> {
        let state = Arc::try_unwrap(self.h.ctx).ok().expect("the context is not shared").state;
        crate::testing::context(&other.api, State { dns: other.dns.clone(), ..state })
    }
}

#[tokio::test]
async fn the_mail_block_publishes_mx_spf_dmarc_and_the_dkim_key_of_the_zones_secret() {
    let s = setup();
    let z = s.put(&zone(json!({"mail": {
        "mx": [{"host": "mail.migrahosting.com.", "priority": 10}],
        "spf": "v=spf1 mx -all",
        "dmarc": "v=DMARC1; p=quarantine",
        "dkim": {"selector": "mail2026"}
    }})));
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.contents(ZONE, ZONE, "MX"), ["10 mail.migrahosting.com."]);
    assert_eq!(s.dns.contents(ZONE, ZONE, "TXT"), ["\"v=spf1 mx -all\""]);
    assert_eq!(s.dns.contents(ZONE, "_dmarc.example.com.", "TXT"), ["\"v=DMARC1; p=quarantine\""]);
    assert_eq!(s.dns.rrset(ZONE, "mail2026._domainkey.example.com.", "TXT"), None);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::WAITING_FOR_DKIM_KEY.name, "selector mail2026");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Pending));

    // the key the operator made for the mail domain (as the Mailbox controller does) is published
    let pair = dkim::generate(1024).unwrap();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(dkim_secret_name(ZONE)),
            namespace: Some(NS.to_owned()),
            labels: Some(managed_labels(BTreeMap::new())),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            dkim::private_key_field("mail2026"),
            ByteString(pair.private_pem.clone().into_bytes()),
        )])),
        ..Default::default()
    };
    s.api.put(&secret);
    s.reconcile(&z, 1).await.unwrap();
    let published = s.dns.contents(ZONE, "mail2026._domainkey.example.com.", "TXT").concat();
    assert!(published.starts_with("\"v=DKIM1; k=rsa; p="), "{published}");
    assert!(published.contains(&pair.public_key[..120]), "{published} lacks the public key");
    assert_condition(&s.expect_condition(&z, READY), "True", reasons::READY.name, "is served");
}

#[tokio::test]
async fn a_dkim_secret_without_the_operators_mark_is_not_published() {
    let s = setup();
    let z = s.put(&zone(json!({"mail": {"mx": [], "dkim": {"selector": "mail2026"}}})));
    let pair = dkim::generate(1024).unwrap();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(dkim_secret_name(ZONE)),
            namespace: Some(NS.to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(dkim::private_key_field("mail2026"), ByteString(pair.private_pem.into_bytes()))])),
        ..Default::default()
    };
    s.api.put(&secret);
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.rrset(ZONE, "mail2026._domainkey.example.com.", "TXT"), None);
    assert_condition(
        &s.expect_condition(&z, READY),
        "False",
        reasons::WAITING_FOR_DKIM_KEY.name,
        "without the operator's mark",
    );
}

/// A zone of namespace `rival` that was served first, as the API and the name index hold it.
async fn holder(s: &Setup, zone_name: &str) -> DnsZone {
    let theirs = s.put(&zone_in("rival", "theirs", json!({"zone": zone_name})));
    s.reconcile(&theirs, 3).await.unwrap();
    let theirs = s.stored(&theirs);
    assert_eq!(theirs.status.as_ref().and_then(|st| st.phase), Some(DnsZonePhase::Ready));
    theirs
}

#[tokio::test]
async fn a_name_another_namespace_holds_is_refused_and_nothing_is_written() {
    for (ours, held) in [("example.com.", "example.com."), ("shop.example.com.", "example.com.")] {
        let s = setup();
        let theirs = holder(&s, held).await;
        let served = s.dns.zone(held);
        let seen = setup_with(names_of(std::slice::from_ref(&theirs), &[]), &[]);
        let ctx = seen.ctx_on(&s);
        let s = s.with_ctx(ctx);
        let z = s.put(&zone(json!({"zone": ours})));
        s.dns.clear_calls();
        s.reconcile(&z, 3).await.unwrap();

        assert_eq!(s.dns.calls(), [], "{ours}: PowerDNS was touched for a name held elsewhere");
        assert_eq!(s.dns.zone(held), served, "{ours}: the holder's zone changed");
        let conflict = s.expect_condition(&z, CONFLICT);
        assert_condition(&conflict, "True", reasons::NAME_HELD_ELSEWHERE.name, "another namespace holds");
        assert!(!conflict.message.contains("rival"), "the holder's namespace is shown: {}", conflict.message);
        assert_condition(
            &s.expect_condition(&z, READY),
            "False",
            reasons::NAME_HELD_ELSEWHERE.name,
            "nothing was written",
        );
        assert_eq!(s.phase(&z), Some(DnsZonePhase::Conflict));
        assert!(s.has_event("Warning", reasons::NAME_HELD_ELSEWHERE.name, "another namespace holds"));
    }
}

#[tokio::test]
async fn a_public_suffix_is_refused() {
    let s = setup();
    let z = s.put(&zone(json!({"zone": "co.uk.", "records": []})));
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.calls(), []);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::PUBLIC_SUFFIX.name, "co.uk is a public suffix");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Failed));
}

#[tokio::test]
async fn deleting_with_policy_delete_removes_the_zone_and_the_finalizer() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    assert!(s.dns.zone(ZONE).is_some());
    s.api.delete::<DnsZone>(NS, NAME);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.zone(ZONE), None, "the zone stayed in PowerDNS");
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn deleting_with_policy_orphan_leaves_the_zone_and_removes_the_finalizer() {
    let s = setup();
    let z = s.put(&zone(json!({"deletionPolicy": "Orphan"})));
    s.reconcile(&z, 3).await.unwrap();
    let served = s.dns.zone(ZONE);
    s.api.delete::<DnsZone>(NS, NAME);
    s.dns.clear_calls();
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.writes(), []);
    assert_eq!(s.dns.zone(ZONE), served, "an orphaned zone changed");
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn observe_only_reports_a_missing_zone_and_drift_without_writing() {
    let s = setup();
    let z = s.put(&with_mode(zone(json!({})), "ObserveOnly"));
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.writes(), [], "ObserveOnly created the zone");
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::ZONE_MISSING.name, "ObserveOnly: not created");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Pending));

    // the zone exists (this object's) but differs: reported, not written
    s.dns.insert_zone(
        ZONE,
        &z.uid().unwrap(),
        vec![RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])],
    );
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.writes(), []);
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.66"]);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::OUT_OF_SYNC.name, "ObserveOnly: not written");

    // and deleting it in ObserveOnly leaves the zone
    s.api.delete::<DnsZone>(NS, NAME);
    s.reconcile(&z, 1).await.unwrap();
    assert!(s.dns.zone(ZONE).is_some(), "ObserveOnly deleted the zone");
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn paused_does_nothing_at_all() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    s.dns.edit_rrsets(ZONE, &[RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])]);
    let paused = s.put(&with_mode(s.stored(&z), "Paused"));
    s.dns.clear_calls();
    let writes = s.api.writes();
    s.reconcile(&paused, 2).await.unwrap();
    assert_eq!(s.dns.calls(), [], "Paused looked at PowerDNS");
    assert_eq!(s.dns.contents(ZONE, "www.example.com.", "A"), ["192.0.2.66"], "Paused repaired drift");
    assert_eq!(s.api.writes(), writes, "Paused wrote to the API");

    let fresh = setup();
    let z = fresh.put(&with_mode(zone(json!({})), "Paused"));
    fresh.reconcile(&z, 2).await.unwrap();
    assert_eq!(fresh.dns.zone(ZONE), None);
    assert_eq!(fresh.stored(&z).status, None, "Paused wrote a status");
    assert_eq!(fresh.stored(&z).metadata.finalizers, None, "Paused added the finalizer");
}

#[tokio::test]
async fn an_invalid_reconcile_mode_is_reported_and_nothing_is_done() {
    let s = setup();
    let z = s.put(&with_mode(zone(json!({})), "Sometimes"));
    s.reconcile(&z, 2).await.unwrap();
    assert_eq!(s.dns.calls(), []);
    assert_condition(
        &s.expect_condition(&z, READY),
        "False",
        reasons::INVALID_RECONCILE_MODE.name,
        "\"Sometimes\"; expected Reconcile, ObserveOnly or Paused",
    );
}

#[tokio::test]
async fn a_powerdns_failure_is_shown_verbatim_with_a_warning_then_retried() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 1).await.unwrap(); // the finalizer
    s.dns.fail_next("create_zone", "Creation of zone example.com. failed: backend unavailable");
    let err = s.reconcile(&z, 1).await.unwrap_err();
    let reason = err.reason();
    assert_eq!(s.dns.zone(ZONE), None);
    let ready = s.expect_condition(&z, READY);
    assert_condition(
        &ready,
        "False",
        reason,
        "PowerDNS answered 422: Creation of zone example.com. failed: backend unavailable",
    );
    assert_condition(&s.expect_condition(&z, PROGRAMMED), "False", reason, "backend unavailable");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Failed));
    assert!(s.has_event("Warning", reason, "backend unavailable"));

    s.reconcile(&z, 1).await.unwrap();
    assert!(s.dns.zone(ZONE).is_some());
    assert_condition(&s.expect_condition(&z, READY), "True", reasons::READY.name, "is served");

    // a refused PATCH of a later repair is shown the same way
    s.dns.edit_rrsets(ZONE, &[RrSet::replace("www.example.com.", "A", 300, ["192.0.2.66".to_owned()])]);
    s.dns.fail_next("patch_rrsets", "RRset www.example.com. IN A: refused by the backend");
    s.reconcile(&z, 1).await.unwrap_err();
    assert_condition(
        &s.expect_condition(&z, READY),
        "False",
        reason,
        "RRset www.example.com. IN A: refused by the backend",
    );
    // the Event recorder counts a repeated reason as a series of the first Event
    let warnings: Vec<_> = s.api.events().into_iter().filter(|e| e.type_ == "Warning" && e.reason == reason).collect();
    assert_eq!(warnings.iter().map(|e| e.count).max(), Some(2), "{warnings:?}");
}

#[tokio::test]
async fn an_invalid_record_is_reported_and_nothing_is_written() {
    let s = setup();
    let z = s.put(&zone(json!({"records": [{"name": "mx", "type": "MX", "values": ["mail.example.com"]}]})));
    s.reconcile(&z, 3).await.unwrap();
    assert_eq!(s.dns.calls(), []);
    assert_condition(&s.expect_condition(&z, READY), "False", reasons::INVALID_RECORD.name, "<priority> <host>");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Failed));
}

#[tokio::test]
async fn a_failed_delete_in_powerdns_keeps_the_finalizer_until_a_retry_removes_the_zone() {
    let s = setup();
    let z = s.put(&zone(json!({})));
    s.reconcile(&z, 3).await.unwrap();
    s.api.delete::<DnsZone>(NS, NAME);
    s.dns.fail_next("delete_zone", "Deleting domain 'example.com.' failed: backend busy");
    let err = s.reconcile(&z, 1).await.unwrap_err();
    assert!(err.to_string().contains("backend busy"), "{err}");
    assert!(s.dns.zone(ZONE).is_some());
    let held = s.api.get::<DnsZone>(NS, NAME).expect("the object went while its zone stayed");
    assert_eq!(held.metadata.finalizers, Some(vec![mpanel_crds::FINALIZER.to_owned()]));

    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.zone(ZONE), None);
    assert!(s.api.get::<DnsZone>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn a_refused_zone_is_served_once_the_other_namespace_lets_the_name_go() {
    let s = setup();
    let theirs = holder(&s, ZONE).await;
    let seen = setup_with(names_of(std::slice::from_ref(&theirs), &[]), &[]);
    let ctx = seen.ctx_on(&s);
    let held = s.with_ctx(ctx);
    let z = held.put(&zone(json!({})));
    held.reconcile(&z, 3).await.unwrap();
    assert_eq!(held.phase(&z), Some(DnsZonePhase::Conflict));

    // the holder is deleted (its zone with it); the index no longer holds its claim
    held.api.delete::<DnsZone>("rival", "theirs");
    held.reconcile(&theirs, 1).await.unwrap();
    assert_eq!(held.dns.zone(ZONE), None);
    let freed = setup_with(names_of(&[], &[]), &[]);
    let ctx = freed.ctx_on(&held);
    let s = held.with_ctx(ctx);
    s.reconcile(&z, 1).await.unwrap();
    assert_eq!(s.dns.zone(ZONE).map(|served| served.account), z.uid(), "the zone is now this object's");
    assert_condition(&s.expect_condition(&z, CONFLICT), "False", reasons::OWNED.name, "belongs to this object");
    assert_eq!(s.phase(&z), Some(DnsZonePhase::Ready));
}
