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
