//! What deleting a Certificate does: its challenge records come out of PowerDNS and its Secret is
//! deleted or orphaned as `deletionPolicy` says.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use mpanel_crds::certificate::Certificate;
use mpanel_crds::common::DeletionPolicy;

use super::challenges::remove_challenges;
use super::issuers::AcmeAccounts;
use super::issuers::IssuerError;
use super::{Context, Error, Providers, publish};
use crate::controllers::During;
use crate::providers::acme::AcmeApi;

pub(super) async fn cleanup<P: Providers>(cert: &Certificate, ctx: &Context<P>) -> Result<Action, Error> {
    if let Some(url) = cert.status.as_ref().and_then(|s| s.order_url.as_ref()) {
        // the challenge values can only be worked out from the order; an issuer that is no longer
        // configured must not keep the Certificate (and its namespace) from going away
        let acme = match ctx.issuers.account(&cert.spec.issuer).await {
            Ok(acme) => acme,
            Err(e @ IssuerError::Unknown { .. }) => {
                let note = format!("challenge records of order {url} may remain in PowerDNS: {e}");
                publish(&ctx.recorder, cert, true, e.reason(), "Cleanup", note).await;
                return orphan_or_delete_secret(cert, ctx).await;
            }
            Err(e) => return Err(e.into()),
        };
        match acme.order(url).await {
            Ok(view) => remove_challenges(cert, &view, ctx).await?,
            Err(e) if e.is_order_gone() => {}
            Err(e) => return Err(e.into()),
        }
    }
    orphan_or_delete_secret(cert, ctx).await
}

/// On deletion: `Delete` removes the Secret; `Orphan` drops the owner reference so it stays.
async fn orphan_or_delete_secret<P: Providers>(cert: &Certificate, ctx: &Context<P>) -> Result<Action, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let Some(secret) =
        secrets.get_opt(&cert.spec.secret_name).await.during(format!("reading Secret {}", cert.spec.secret_name))?
    else {
        return Ok(Action::await_change());
    };
    let uid = cert.uid().unwrap_or_default();
    if !secret.owner_references().iter().any(|o| o.uid == uid) {
        return Ok(Action::await_change());
    }
    match cert.spec.deletion_policy {
        DeletionPolicy::Delete => {
            secrets
                .delete(&cert.spec.secret_name, &DeleteParams::default())
                .await
                .during(format!("deleting Secret {}", cert.spec.secret_name))?;
        }
        DeletionPolicy::Orphan => {
            // without the owner reference the garbage collector keeps the Secret
            let kept: Vec<_> = secret.owner_references().iter().filter(|o| o.uid != uid).cloned().collect();
            let patch = serde_json::json!({"metadata": {"ownerReferences": kept}});
            secrets
                .patch(&cert.spec.secret_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .during(format!("releasing Secret {}", cert.spec.secret_name))?;
        }
    }
    Ok(Action::await_change())
}
