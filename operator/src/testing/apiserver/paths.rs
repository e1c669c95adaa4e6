//! Request paths and query strings taken apart: the group, version, plural, namespace and name a
//! request is about, and its query parameters.

use std::collections::BTreeMap;

use kube::Resource;

use super::store::Key;

/// The API group whose kinds have a `status` subresource (every mpanel kind).
const STATUS_SUBRESOURCE_GROUP: &str = "mpanel.migrahosting.com";

/// A request path taken apart.
pub(super) struct Target {
    pub(super) group: String,
    pub(super) version: String,
    pub(super) plural: String,
    pub(super) namespace: String,
    pub(super) name: Option<String>,
    pub(super) status: bool,
}

impl Target {
    pub(super) fn key(&self, name: &str) -> Key {
        (self.group.clone(), self.plural.clone(), self.namespace.clone(), name.to_owned())
    }

    pub(super) fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural.group` as a real server names the resource in its messages.
    pub(super) fn resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub(super) fn has_status_subresource(&self) -> bool {
        self.group == STATUS_SUBRESOURCE_GROUP
    }

    /// Whether the server keeps `metadata.generation` for this kind (not Secrets, ConfigMaps, Events).
    pub(super) fn has_generation(&self) -> bool {
        !self.group.is_empty() && self.group != "events.k8s.io"
    }
}

/// The storage target of kind `K` in namespace `ns` ("" for cluster-scoped).
pub(super) fn target_of<K: Resource<DynamicType = ()>>(ns: &str) -> Target {
    let path = K::url_path(&(), (!ns.is_empty()).then_some(ns));
    parse_path(&path).expect("a kube resource path")
}

pub(super) fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (*ns, rest),
        _ => ("", rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(*name), false),
        [plural, name, "status"] => (*plural, Some(*name), true),
        _ => return None,
    };
    Some(Target {
        group: group.to_owned(),
        version: version.to_owned(),
        plural: plural.to_owned(),
        namespace: namespace.to_owned(),
        name: name.map(str::to_owned),
        status,
    })
}

pub(super) fn query_params(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
