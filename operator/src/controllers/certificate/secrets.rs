//! The Secrets this controller writes: the key an order is finalised with, kept in
//! `<name>-next-key` until the chain is stored, and the `kubernetes.io/tls` Secret itself.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use mpanel_crds::certificate::{Certificate, RotationPolicy};
use rcgen::KeyPair;

use super::keys::{self, KeyError};
use super::observe::Current;
use super::{CERTIFICATE_LABEL, Context, Error, FIELD_MANAGER, Providers};
use crate::controllers::{During, KubeCall};

pub(super) fn next_key_name(cert: &Certificate) -> String {
    format!("{}-next-key", cert.name_any())
}

fn owned_meta(cert: &Certificate, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: cert.namespace(),
        labels: Some(keys::managed_labels(BTreeMap::from([(CERTIFICATE_LABEL.to_owned(), cert.name_any())]))),
        owner_references: cert.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The private key the order is finalised with: the Secret's current key when the policy is
/// `Never` and it fits, else the one kept in `<name>-next-key`, made there when `create`.
pub(super) async fn order_key<P: Providers>(
    cert: &Certificate,
    current: Option<&Current>,
    next_key: &str,
    ctx: &Context<P>,
    create: bool,
) -> Result<Option<KeyPair>, Error> {
    let spec = &cert.spec.private_key;
    if spec.rotation_policy == RotationPolicy::Never
        && let Some(current) = current
        && keys::fits(&current.key, spec)
    {
        return Ok(Some(keys::load(&current.key.serialize_pem())?));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let stored = secrets.get_opt(next_key).await.during(format!("reading Secret {next_key}"))?;
    if let Some(stored) = &stored
        && let Some(pem) = stored.data.as_ref().and_then(|d| d.get("tls.key"))
        && let Ok(key) = keys::load(&String::from_utf8_lossy(&pem.0))
        && keys::fits(&key, spec)
    {
        return Ok(Some(key));
    }
    if !create {
        return Ok(None);
    }
    // a Secret of that name the operator did not make is never replaced
    keys::check_managed(stored.as_ref())?;
    let spec_owned = spec.clone();
    let key = crate::cpu_bound::run(move || keys::generate(&spec_owned)).await?;
    let secret = Secret {
        metadata: owned_meta(cert, next_key),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([("tls.key".to_owned(), ByteString(key.serialize_pem().into_bytes()))])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(Some(key)),
        // a stale key of another size or algorithm: replace it
        Err(kube::Error::Api(s)) if s.code == 409 => {
            secrets
                .replace(next_key, &PostParams::default(), &secret)
                .await
                .during(format!("replacing Secret {next_key}"))?;
            Ok(Some(key))
        }
        Err(e) => Err(KubeCall::new(format!("creating Secret {next_key}"), e).into()),
    }
}

pub(super) async fn delete_next_key<P: Providers>(
    cert: &Certificate,
    next_key: &str,
    ctx: &Context<P>,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    match secrets.delete(next_key, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(KubeCall::new(format!("deleting Secret {next_key}"), e).into()),
    }
}

pub(super) async fn write_tls_secret<P: Providers>(
    cert: &Certificate,
    chain: &str,
    key: &KeyPair,
    ctx: &Context<P>,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let secret = Secret {
        metadata: owned_meta(cert, &cert.spec.secret_name),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(chain.as_bytes().to_vec())),
            ("tls.key".to_owned(), ByteString(key.serialize_pem().into_bytes())),
        ])),
        ..Secret::default()
    };
    let mut patch = serde_json::to_value(&secret).map_err(|e| KeyError::BadChain(e.to_string()))?;
    patch["apiVersion"] = "v1".into();
    patch["kind"] = "Secret".into();
    secrets
        .patch(&cert.spec.secret_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch))
        .await
        .during(format!("writing Secret {}", cert.spec.secret_name))?;
    Ok(())
}
