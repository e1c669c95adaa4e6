//! Reading one key of a Secret a resource refers to, when it is reconciled.

use kube::{Api, Client, ResourceExt};

use super::{During, KubeCall};

/// The text under `key` of a Secret in `namespace`, with the Secret's resourceVersion (which says
/// when it changed without keeping its content anywhere); or, for a condition, why there is none.
pub async fn read_secret_key(
    client: &Client,
    namespace: &str,
    key: &mpanel_crds::common::SecretKeySelector,
) -> Result<Result<(String, String), String>, KubeCall> {
    use k8s_openapi::api::core::v1::Secret;
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let Some(secret) = secrets.get_opt(&key.name).await.during(format!("reading Secret {}", key.name))? else {
        return Ok(Err(format!("Secret {} does not exist", key.name)));
    };
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(&key.key)) else {
        return Ok(Err(format!("Secret {} has no key {:?}", key.name, key.key)));
    };
    let Ok(text) = String::from_utf8(bytes.0.clone()) else {
        return Ok(Err(format!("key {:?} of Secret {} is not UTF-8 text", key.key, key.name)));
    };
    Ok(Ok((text, secret.resource_version().unwrap_or_default())))
}
