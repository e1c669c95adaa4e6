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
        verified: Default::default(),
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

mod creation;
mod deletion;
mod dkim_keys;
mod drift;
mod failures;
mod modes;
mod tenancy;
