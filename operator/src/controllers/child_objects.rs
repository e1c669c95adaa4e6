//! Objects a controller makes from another (a Domain's DnsZone, a Subscription's children), applied
//! so that they hold exactly the fields the controller wants, and written only when that changed.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{During, KubeCall};

/// The annotation with a digest of the configuration a controller last applied to an object.
pub const APPLIED_ANNOTATION: &str = "mpanel.migrahosting.com/applied";

/// Server-side applies `want` to `name` as `field_manager`, so that among the fields this manager
/// owns the object has exactly what `want` says: a field `want` no longer carries (a record, an
/// alias, a name) is removed, unless another writer owns it too. A resync that finds the object
/// carrying this very configuration (its digest in [`APPLIED_ANNOTATION`]) and holding every field
/// of it writes nothing. Returns the object as it is now.
pub async fn apply_owned<K>(
    api: &Api<K>,
    existing: Option<K>,
    name: &str,
    field_manager: &str,
    want: &serde_json::Value,
) -> Result<K, KubeCall>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let digest = digest(want);
    let mut want = want.clone();
    want["metadata"]["annotations"][APPLIED_ANNOTATION] = serde_json::Value::String(digest.clone());
    match existing {
        Some(obj) if obj.annotations().get(APPLIED_ANNOTATION) == Some(&digest) && holds(&obj, &want) => Ok(obj),
        _ => api
            .patch(name, &PatchParams::apply(field_manager).force(), &Patch::Apply(&want))
            .await
            .during(format!("applying {}/{name}", api.resource_url())),
    }
}

/// A digest of a configuration (64-bit FNV-1a of its JSON text, in hex): the same on every
/// replica and release, unlike the standard library's hasher.
fn digest(want: &serde_json::Value) -> String {
    let hash = want
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{hash:016x}")
}

/// Whether `obj` holds every field of `want` (an object another writer may have added to):
/// objects key by key, lists element by element in any order.
fn holds(obj: &impl Serialize, want: &serde_json::Value) -> bool {
    serde_json::to_value(obj).is_ok_and(|have| contains(&have, want))
}

fn contains(have: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        (Value::Array(h), Value::Array(w)) => w.iter().all(|wv| h.iter().any(|hv| contains(hv, wv))),
        (h, w) => h == w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_has_one_digest_and_a_smaller_one_another() {
        let full = serde_json::json!({"spec": {"records": [{"name": "www"}, {"name": "old"}]}});
        let smaller = serde_json::json!({"spec": {"records": [{"name": "www"}]}});
        assert_eq!(digest(&full), digest(&full.clone()));
        assert_ne!(
            digest(&full),
            digest(&smaller),
            "a removal must be applied although the object still holds the rest"
        );
        assert!(holds(&full, &smaller));
    }

    #[test]
    fn holding_ignores_what_others_added() {
        let have = serde_json::json!({"spec": {"zone": "a.com", "records": [{"name": "www", "type": "A"}, {"name": "@", "type": "A", "values": ["192.0.2.1"], "ttl": 300}]}});
        assert!(holds(
            &have,
            &serde_json::json!({"spec": {"zone": "a.com", "records": [{"name": "@", "type": "A", "values": ["192.0.2.1"]}]}})
        ));
        assert!(!holds(
            &have,
            &serde_json::json!({"spec": {"records": [{"name": "@", "type": "A", "values": ["192.0.2.2"]}]}})
        ));
        assert!(!holds(&have, &serde_json::json!({"spec": {"nameservers": ["ns1.a.net"]}})));
    }
}
