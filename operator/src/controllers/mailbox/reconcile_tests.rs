//! Reconcile-level unit tests of the mailbox controller: the real reconcile against the in-memory
//! Kubernetes API and provider fakes of `crate::testing`, no testbed.

use super::*;

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use serde_json::{Value, json};

use crate::providers::mailcore::{AliasRow, DomainRow, MailboxRow};
use crate::testing::harness::{Harness, assert_condition, derefs_to_harness, merged, object, with_mode};
use crate::testing::mailcore::FakeMailCore;
use crate::testing::{names_of, store_of};

const NS: &str = "acme";
const NAME: &str = "info";
const ADDRESS: &str = "info@example.com";
const ALIAS: &str = "hello@example.com";
const DOMAIN: &str = "example.com";
const SECRET: &str = "info-password";
const PASSWORD: &str = "correct-horse-2026";

/// The Mailbox `info@example.com` (alias `hello@`, 2 GiB) with `spec` over it.
fn mailbox_in(ns: &str, name: &str, spec: Value) -> Mailbox {
    let plain = json!({
        "address": ADDRESS,
        "displayName": "Acme Info",
        "quotaMiB": 2048,
        "passwordSecretRef": {"name": SECRET, "key": "password"},
        "aliases": [ALIAS]
    });
    object("Mailbox", ns, name, merged(plain, spec))
}

fn mailbox(spec: Value) -> Mailbox {
    mailbox_in(NS, NAME, spec)
}

fn password_secret(ns: &str, password: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET.to_owned()),
            namespace: Some(ns.to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("password".to_owned(), ByteString(password.as_bytes().to_vec()))])),
        ..Default::default()
    }
}

/// A fresh directory for one test's maildirs.
fn maildir_root(test: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("mpanel-mailbox-unit-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

struct Setup {
    h: Harness<State<FakeMailCore>>,
    mail: FakeMailCore,
    root: PathBuf,
}

#[derive(Default)]
struct Options {
    zones: Vec<DnsZone>,
    grants: BTreeMap<String, String>,
    names: Vec<DnsZone>,
}

fn setup_with(test: &str, o: Options) -> Setup {
    let mail = FakeMailCore::new();
    let root = maildir_root(test);
    let state = State {
        names: names_of(&o.names, &[]),
        mail: mail.clone(),
        maildir_root: Some(root.clone()),
        dnszones: store_of(&o.zones),
        domain_grants: o.grants,
    };
    let h = Harness::new(state);
    h.api.put(&password_secret(NS, PASSWORD));
    Setup { h, mail, root }
}

fn setup(test: &str) -> Setup {
    setup_with(test, Options::default())
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

derefs_to_harness!(Setup, State<FakeMailCore>);

impl Setup {
    fn write_ops(&self) -> Vec<&'static str> {
        self.mail.writes().iter().map(|c| c.op).collect()
    }
}

/// The owner marker of the stored `m`'s rows.
fn marker(m: &Mailbox) -> String {
    format!("{NS}/{}/{}", m.name_any(), m.uid().unwrap())
}

fn domain_row(owner: Option<&str>) -> DomainRow {
    DomainRow { domain: DOMAIN.to_owned(), active: true, owner: owner.map(str::to_owned) }
}

fn mailbox_row(owner: Option<&str>, password: &str) -> MailboxRow {
    MailboxRow {
        username: ADDRESS.to_owned(),
        password: password::hash(password).unwrap(),
        name: "Acme Info".to_owned(),
        maildir: "example.com/info/".to_owned(),
        quota_bytes: 2048 * MIB,
        local_part: "info".to_owned(),
        domain: DOMAIN.to_owned(),
        active: true,
        owner: owner.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_new_mailbox_gets_its_domain_row_mailbox_and_alias_and_is_active() {
    let s = setup("create");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();

    assert_eq!(s.mail.domain_row(DOMAIN), Some(domain_row(Some("namespace/acme"))));
    let row = s.mail.mailbox_row(ADDRESS).expect("the mailbox row was made");
    assert_eq!(row.owner, Some(marker(&m)));
    assert_eq!((row.quota_bytes, row.active, row.maildir.as_str()), (2048 * MIB, true, "example.com/info/"));
    assert!(password::matches(PASSWORD, &row.password), "the stored hash is not the Secret's password");
    let alias = s.mail.alias_row(ALIAS).expect("the alias row was made");
    assert_eq!((alias.goto.as_str(), alias.owner), (ADDRESS, Some(marker(&m))));

    assert_condition(&s.expect_condition(&m, READY), "True", reasons::ACTIVE.name, "info@example.com is active");
    assert_condition(&s.expect_condition(&m, PASSWORD_SYNCED), "True", reasons::SYNCED.name, "matches the Secret");
    assert_condition(
        &s.expect_condition(&m, DOMAIN_READY),
        "True",
        reasons::DOMAIN_ON_MAIL_CORE.name,
        "no DnsZone for example.com in this namespace",
    );
    assert_condition(&s.expect_condition(&m, CONFLICT), "False", reasons::OWNED.name, "this object's");
    assert_condition(&s.expect_condition(&m, DKIM_SIGNING), "False", reasons::DKIM_NOT_REQUESTED.name, "not signed");
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
    let status = s.stored(&m).status.unwrap();
    assert_eq!(status.quota_mib, Some(2048));
    assert!(status.last_password_sync.is_some() && status.password_secret_version.is_some());
    assert!(s.has_event("Normal", reasons::CREATED.name, "mailbox info@example.com created on mail-core"));
}

#[tokio::test]
async fn an_unchanged_resync_writes_nothing_to_mail_core_or_the_api() {
    let s = setup("resync");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    s.mail.clear_calls();
    let (writes, events) = (s.api.writes(), s.api.events().len());
    s.reconcile(&m, 2).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new(), "a resync wrote to mail-core");
    assert_eq!(s.api.writes(), writes, "a resync wrote to the API: {:?}", s.api.requests());
    assert_eq!(s.api.events().len(), events);
    assert!(!s.mail.calls().is_empty(), "the resync did not even look");
}

#[tokio::test]
async fn rows_carrying_this_objects_marker_are_adopted_and_converged() {
    let s = setup("adopt");
    let m = s.put(&mailbox(json!({})));
    s.mail.insert_domain(domain_row(Some("namespace/acme")));
    let mut row = mailbox_row(Some(&marker(&m)), PASSWORD);
    row.quota_bytes = MIB;
    s.mail.insert_mailbox(row);
    s.reconcile(&m, 3).await.unwrap();
    assert!(!s.write_ops().contains(&"add_mailbox"), "an adopted row was added again: {:?}", s.write_ops());
    assert!(s.write_ops().contains(&"change_mailbox"));
    assert_eq!(s.mail.mailbox_row(ADDRESS).unwrap().quota_bytes, 2048 * MIB);
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
    assert_condition(&s.expect_condition(&m, CONFLICT), "False", reasons::OWNED.name, "this object's");
}

#[tokio::test]
async fn a_mailbox_row_without_this_objects_marker_is_a_conflict_and_untouched() {
    for (test, owner) in [("conflict-none", None), ("conflict-other", Some("rival/info/uid-of-another"))] {
        let s = setup(test);
        let m = s.put(&mailbox(json!({})));
        s.mail.insert_domain(domain_row(Some("namespace/acme")));
        s.mail.insert_mailbox(mailbox_row(owner, "their-password"));
        let before = s.mail.mailbox_row(ADDRESS);
        s.reconcile(&m, 3).await.unwrap();

        assert_eq!(s.write_ops(), Vec::<&str>::new(), "{test}: a row not this object's was written");
        assert_eq!(s.mail.mailbox_row(ADDRESS), before);
        assert_eq!(s.mail.alias_row(ALIAS), None, "{test}: an alias was made for a row not this object's");
        let conflict = s.expect_condition(&m, CONFLICT);
        assert_condition(&conflict, "True", reasons::ROW_OWNED_ELSEWHERE.name, "is not this object's");
        assert!(!conflict.message.contains("uid-of-another"), "the other owner is shown: {}", conflict.message);
        assert_condition(&s.expect_condition(&m, READY), "False", reasons::CONFLICT.name, "nothing was changed");
        assert_eq!(s.phase(&m), Some(MailboxPhase::Failed));
        assert!(s.has_event("Warning", reasons::CONFLICT.name, "mailbox info@example.com exists on mail-core"));

        // deleting the object leaves the row that was not its own
        s.api.delete::<Mailbox>(NS, NAME);
        s.reconcile(&m, 1).await.unwrap();
        assert_eq!(s.mail.mailbox_row(ADDRESS), before, "{test}: deleting removed a row not this object's");
        assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
    }
}

#[tokio::test]
async fn an_out_of_band_change_of_quota_state_or_password_is_put_back() {
    let s = setup("drift");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    let mut row = s.mail.mailbox_row(ADDRESS).unwrap();
    row.quota_bytes = 5 * MIB;
    row.active = false;
    row.password = password::hash("set-by-hand").unwrap();
    s.mail.insert_mailbox(row);
    s.mail.clear_calls();

    s.reconcile(&m, 1).await.unwrap();
    let row = s.mail.mailbox_row(ADDRESS).unwrap();
    assert_eq!((row.quota_bytes, row.active), (2048 * MIB, true));
    assert!(password::matches(PASSWORD, &row.password), "the hand-set password stayed");
    assert_eq!(s.write_ops(), ["change_mailbox"]);
    assert!(s.has_event("Warning", reasons::DRIFT_REPAIRED.name, "changed outside the operator and restored"));
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
}

#[tokio::test]
async fn rotating_the_secret_rehashes_and_suspending_disables_login() {
    let s = setup("rotate");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    s.api.put(&password_secret(NS, "a-new-password-2027"));
    s.reconcile(&m, 1).await.unwrap();
    assert!(password::matches("a-new-password-2027", &s.mail.mailbox_row(ADDRESS).unwrap().password));
    assert!(!s.has_event("Warning", reasons::DRIFT_REPAIRED.name, ""), "a rotation is no drift");

    let mut suspended = s.stored(&m);
    suspended.spec.suspended = true;
    s.api.put(&suspended);
    s.reconcile(&m, 1).await.unwrap();
    assert!(!s.mail.mailbox_row(ADDRESS).unwrap().active);
    assert_eq!(s.phase(&m), Some(MailboxPhase::Suspended));
    assert_condition(&s.expect_condition(&m, READY), "True", reasons::SUSPENDED.name, "suspended (login disabled)");
}

#[tokio::test]
async fn a_missing_password_secret_creates_nothing_until_it_exists() {
    let s = setup("no-secret");
    let m = s.put(&mailbox(json!({"passwordSecretRef": {"name": "absent", "key": "password"}})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert_condition(
        &s.expect_condition(&m, READY),
        "False",
        reasons::PASSWORD_SECRET_MISSING.name,
        "Secret absent does not exist",
    );
    assert_eq!(s.phase(&m), Some(MailboxPhase::Pending));

    let mut secret = password_secret(NS, PASSWORD);
    secret.metadata.name = Some("absent".to_owned());
    s.api.put(&secret);
    s.reconcile(&m, 1).await.unwrap();
    assert!(s.mail.mailbox_row(ADDRESS).is_some());
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
}

#[tokio::test]
async fn a_mail_domain_of_another_namespace_is_refused_before_anything_is_written() {
    // the domain row marked for another namespace
    let s = setup("domain-row");
    s.mail.insert_domain(domain_row(Some("namespace/rival")));
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    let conflict = s.expect_condition(&m, CONFLICT);
    assert_condition(&conflict, "True", reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, "used by another namespace");
    assert!(!conflict.message.contains("rival"), "the other namespace is shown: {}", conflict.message);
    assert_condition(
        &s.expect_condition(&m, DOMAIN_READY),
        "False",
        reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name,
        "nothing was written",
    );
    assert_eq!(s.phase(&m), Some(MailboxPhase::Failed));
    assert!(s.has_event("Warning", reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name, "example.com"));

    // the name held by another namespace's DnsZone, the row not there yet
    let theirs: DnsZone = serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "theirs", "namespace": "rival", "uid": "uid-theirs", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"zone": "example.com.", "nameservers": ["ns1.migrahosting.com."]},
        "status": {"conditions": [{"type": "Conflict", "status": "False", "reason": "Owned", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    }))
    .unwrap();
    let s = setup_with("domain-name", Options { names: vec![theirs], ..Options::default() });
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.mail.domain_row(DOMAIN), None);
    assert_condition(
        &s.expect_condition(&m, CONFLICT),
        "True",
        reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name,
        "used by another namespace",
    );
}

#[tokio::test]
async fn an_alias_in_another_namespaces_domain_is_refused() {
    let s = setup("alias-domain");
    s.mail.insert_domain(DomainRow {
        domain: "other.net".to_owned(),
        active: true,
        owner: Some("namespace/rival".to_owned()),
    });
    let m = s.put(&mailbox(json!({"aliases": ["sales@other.net"]})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.mail.alias_row("sales@other.net"), None);
    assert_condition(
        &s.expect_condition(&m, CONFLICT),
        "True",
        reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name,
        "mail domain other.net",
    );
}

#[tokio::test]
async fn a_domain_row_made_outside_the_operator_is_used_only_where_it_is_granted() {
    let s = setup("ungranted");
    s.mail.insert_domain(domain_row(None));
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_condition(
        &s.expect_condition(&m, CONFLICT),
        "True",
        reasons::MAIL_DOMAIN_HELD_ELSEWHERE.name,
        "not granted to this namespace",
    );

    let grants = BTreeMap::from([(DOMAIN.to_owned(), NS.to_owned())]);
    let s = setup_with("granted", Options { grants, ..Options::default() });
    s.mail.insert_domain(domain_row(None));
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS).and_then(|r| r.owner), Some(marker(&m)));
    assert_eq!(s.mail.domain_row(DOMAIN), Some(domain_row(None)), "the granted row was changed");
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));

    // the granted row was there before: deleting the last mailbox leaves it
    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert_eq!(s.mail.domain_row(DOMAIN), Some(domain_row(None)), "a row the operator did not make was removed");
}

fn dkim_zone() -> DnsZone {
    serde_json::from_value(json!({
        "apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "DnsZone",
        "metadata": {"name": "example-com", "namespace": NS},
        "spec": {"zone": "example.com.", "nameservers": ["ns1.migrahosting.com."],
            "mail": {"mx": [{"host": "mail.migrahosting.com.", "priority": 10}], "dkim": {"selector": "mail2026"}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_dkim_key_the_zone_asks_for_is_made_kept_in_its_secret_and_signs() {
    let s = setup_with("dkim", Options { zones: vec![dkim_zone()], ..Options::default() });
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();

    let secret: Secret = s.api.get(NS, &dnszone::dkim_secret_name(DOMAIN)).expect("the key Secret was made");
    assert!(dkim::is_managed(&secret), "the key Secret lacks the operator's mark");
    let pem = dkim::private_key_in(&secret, "mail2026").expect("the selector's key is in the Secret");
    let row = s.mail.signing_key(DOMAIN).expect("mail-core signs example.com");
    assert_eq!((row.selector.as_str(), row.owner.as_str()), ("mail2026", "namespace/acme"));
    assert_eq!(row.private_key, pem, "mail-core signs with another key than the Secret's");
    assert_condition(&s.expect_condition(&m, DKIM_SIGNING), "True", reasons::SIGNING.name, "selector mail2026");
    assert_condition(
        &s.expect_condition(&m, DOMAIN_READY),
        "True",
        reasons::DOMAIN_ON_MAIL_CORE.name,
        "publishes MX 10 mail.migrahosting.com.",
    );

    // a resync keeps the key
    s.mail.clear_calls();
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    let again: Secret = s.api.get(NS, &dnszone::dkim_secret_name(DOMAIN)).unwrap();
    assert_eq!(dkim::private_key_in(&again, "mail2026"), Some(pem));
}

#[tokio::test]
async fn a_dkim_key_row_of_another_owner_is_left_and_reported() {
    let s = setup_with("dkim-other", Options { zones: vec![dkim_zone()], ..Options::default() });
    s.mail.insert_domain(domain_row(Some("namespace/acme")));
    let theirs = crate::providers::mailcore::DkimKeyRow {
        domain: DOMAIN.to_owned(),
        selector: "old".to_owned(),
        private_key: "not ours".to_owned(),
        owner: "namespace/rival".to_owned(),
    };
    s.mail.insert_dkim_key(theirs.clone());
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.mail.dkim_key_row(DOMAIN), Some(theirs));
    assert_condition(
        &s.expect_condition(&m, DKIM_SIGNING),
        "False",
        reasons::ROW_OWNED_ELSEWHERE.name,
        "left untouched",
    );
}

#[tokio::test]
async fn deleting_with_policy_delete_removes_rows_maildir_and_the_domain_row_it_made() {
    let s = setup("delete");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    let maildir = s.root.join("example.com/info");
    std::fs::create_dir_all(maildir.join("cur")).unwrap();
    std::fs::write(maildir.join("cur/1.mail"), "Subject: hi\n\nhello\n").unwrap();

    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert_eq!(s.mail.alias_row(ALIAS), None);
    assert_eq!(s.mail.domain_row(DOMAIN), None, "the domain row the namespace made stayed");
    assert!(!Path::new(&maildir).exists(), "the maildir stayed");
    assert!(s.root.exists(), "the maildir root itself was removed");
    assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn the_domain_row_stays_while_another_mailbox_of_the_namespace_uses_it() {
    let s = setup("delete-shared");
    let first = s.put(&mailbox(json!({"aliases": []})));
    let second = s.put(&mailbox_in(NS, "sales", json!({"address": "sales@example.com", "aliases": []})));
    s.reconcile(&first, 3).await.unwrap();
    s.reconcile(&second, 3).await.unwrap();
    assert!(s.mail.mailbox_row("sales@example.com").is_some());
    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&first, 1).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert!(s.mail.domain_row(DOMAIN).is_some(), "the domain row went while sales@ uses it");
}

#[tokio::test]
async fn deleting_with_policy_orphan_leaves_rows_and_maildir() {
    let s = setup("orphan");
    let m = s.put(&mailbox(json!({"deletionPolicy": "Orphan"})));
    s.reconcile(&m, 3).await.unwrap();
    let maildir = s.root.join("example.com/info");
    std::fs::create_dir_all(&maildir).unwrap();
    s.mail.clear_calls();
    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert!(s.mail.mailbox_row(ADDRESS).is_some() && s.mail.alias_row(ALIAS).is_some());
    assert!(maildir.exists(), "an orphaned maildir was removed");
    assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn observe_only_reports_what_differs_without_writing() {
    let s = setup("observe");
    let m = s.put(&with_mode(mailbox(json!({})), "ObserveOnly"));
    s.reconcile(&m, 3).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new(), "ObserveOnly wrote");
    assert_condition(&s.expect_condition(&m, READY), "False", reasons::OUT_OF_SYNC.name, "ObserveOnly: not written");

    // rows that are this object's and in sync: reported Active, still nothing written
    s.mail.insert_domain(domain_row(Some("namespace/acme")));
    s.mail.insert_mailbox(mailbox_row(Some(&marker(&m)), PASSWORD));
    s.mail.insert_alias(AliasRow {
        address: ALIAS.to_owned(),
        goto: ADDRESS.to_owned(),
        domain: DOMAIN.to_owned(),
        active: true,
        owner: Some(marker(&m)),
    });
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));

    s.api.delete::<Mailbox>(NS, NAME);
    s.reconcile(&m, 1).await.unwrap();
    assert!(s.mail.mailbox_row(ADDRESS).is_some(), "ObserveOnly deleted the mailbox");
    assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
}

#[tokio::test]
async fn paused_does_nothing_and_an_invalid_mode_is_reported() {
    let s = setup("paused");
    let m = s.put(&with_mode(mailbox(json!({})), "Paused"));
    s.reconcile(&m, 2).await.unwrap();
    assert_eq!(s.mail.calls(), []);
    assert_eq!(s.stored(&m).status, None);
    assert_eq!(s.stored(&m).metadata.finalizers, None);

    let s = setup("invalid-mode");
    let m = s.put(&with_mode(mailbox(json!({})), "Sometimes"));
    s.reconcile(&m, 2).await.unwrap();
    assert_eq!(s.mail.calls(), []);
    assert_condition(
        &s.expect_condition(&m, READY),
        "False",
        mpanel_crds::reasons::INVALID_RECONCILE_MODE.name,
        "expected Reconcile, ObserveOnly or Paused",
    );
}

#[tokio::test]
async fn a_mail_core_failure_is_shown_verbatim_with_a_warning_then_retried() {
    let s = setup("failure");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 1).await.unwrap(); // the finalizer
    let refusal = "new row for relation \"mailbox\" violates check constraint \"mailbox_quota_check\"";
    s.mail.fail_next("add_mailbox", refusal);
    let err = s.reconcile(&m, 1).await.unwrap_err();
    let reason = err.reason();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert_condition(&s.expect_condition(&m, READY), "False", reason, refusal);
    assert!(s.has_event("Warning", reason, refusal), "{:?}", s.api.events());

    s.reconcile(&m, 1).await.unwrap();
    assert!(s.mail.mailbox_row(ADDRESS).is_some());
    assert_eq!(s.phase(&m), Some(MailboxPhase::Active));
    assert_condition(&s.expect_condition(&m, READY), "True", reasons::ACTIVE.name, "is active");

    // unreachable while reading: shown the same way, nothing changes
    let down = MailCoreError::Unreachable("connection refused (os error 111)".to_owned());
    s.mail.fail_next_with("get_domain", down);
    let err = s.reconcile(&m, 1).await.unwrap_err();
    let ready = s.expect_condition(&m, READY);
    assert_condition(&ready, "False", err.reason(), "could not be reached: connection refused (os error 111)");
    assert!(s.has_event("Warning", err.reason(), "connection refused"));
    assert!(s.mail.mailbox_row(ADDRESS).is_some());
}

#[tokio::test]
async fn an_alias_dropped_from_the_spec_is_deleted_and_another_objects_alias_is_a_conflict() {
    let s = setup("aliases");
    let m = s.put(&mailbox(json!({"aliases": [ALIAS, "sales@example.com"]})));
    s.reconcile(&m, 3).await.unwrap();
    assert!(s.mail.alias_row("sales@example.com").is_some());
    let mut fewer = s.stored(&m);
    fewer.spec.aliases = vec![ALIAS.to_owned()];
    s.api.put(&fewer);
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.mail.alias_row("sales@example.com"), None, "the dropped alias still delivers");
    assert!(s.mail.alias_row(ALIAS).is_some());

    // an alias row of another object is never taken over
    let theirs = AliasRow {
        address: "support@example.com".to_owned(),
        goto: "someone@example.com".to_owned(),
        domain: DOMAIN.to_owned(),
        active: true,
        owner: Some("acme/someone/uid-of-someone".to_owned()),
    };
    s.mail.insert_alias(theirs.clone());
    let mut more = s.stored(&m);
    more.spec.aliases = vec![ALIAS.to_owned(), "support@example.com".to_owned()];
    s.api.put(&more);
    s.mail.clear_calls();
    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.write_ops(), Vec::<&str>::new());
    assert_eq!(s.mail.alias_row("support@example.com"), Some(theirs));
    let conflict = s.expect_condition(&m, CONFLICT);
    assert_condition(&conflict, "True", reasons::ROW_OWNED_ELSEWHERE.name, "alias support@example.com exists");
    assert!(!conflict.message.contains("uid-of-someone"), "the other owner is shown: {}", conflict.message);
}

#[tokio::test]
async fn a_failed_delete_on_mail_core_keeps_the_finalizer_until_a_retry_removes_the_rows() {
    let s = setup("delete-failure");
    let m = s.put(&mailbox(json!({})));
    s.reconcile(&m, 3).await.unwrap();
    s.api.delete::<Mailbox>(NS, NAME);
    s.mail.fail_next("delete_mailbox", "canceling statement due to lock timeout");
    let err = s.reconcile(&m, 1).await.unwrap_err();
    assert!(err.to_string().contains("lock timeout"), "{err}");
    assert!(s.mail.mailbox_row(ADDRESS).is_some());
    let held = s.api.get::<Mailbox>(NS, NAME).expect("the object went while its mailbox stayed");
    assert_eq!(held.metadata.finalizers, Some(vec![mpanel_crds::FINALIZER.to_owned()]));

    s.reconcile(&m, 1).await.unwrap();
    assert_eq!(s.mail.mailbox_row(ADDRESS), None);
    assert!(s.api.get::<Mailbox>(NS, NAME).is_none(), "the finalizer stayed");
}
