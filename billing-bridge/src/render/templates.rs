//! Product templates: their `${...}` placeholders filled in at purchase, the templates of an order's
//! products merged into its resources (`boughtWith` sections added when the order holds a product
//! of that type), and a template checked against the resource schema before it is sold.

use mpanel_crds::domain::RegistrationMode;
use mpanel_crds::subscription::ResourceTemplates;
use serde_json::Value;

use super::{DEFAULT_PROVISIONING_TIMEOUT, TRANSFER_PROVISIONING_TIMEOUT, auth_code_secret, credentials_secret};

/// A template's resources that are added only when the order also holds a product of a given
/// type: `{"cloudPods": [...], "boughtWith": {"domain": {"dnsZones": [...]}}}`.
pub const BOUGHT_WITH: &str = "boughtWith";
/// The product types (`products.type`) a `boughtWith` section may name.
pub const PRODUCT_TYPES: [&str; 6] = ["cloudpod", "domain", "dns", "email", "ssl", "addon"];
/// The values a template's `${...}` placeholders stand for.
#[derive(Debug, Clone)]
pub struct Placeholders {
    /// The Subscription resource's name.
    pub subscription: String,
    pub customer: String,
    pub email: String,
    pub domain: Option<String>,
}

impl Placeholders {
    /// The Secret the bridge creates with generated credentials (a mailbox password).
    pub fn credentials_secret(&self) -> String {
        credentials_secret(&self.subscription)
    }

    fn value(&self, key: &str) -> Result<String, String> {
        let domain = || self.domain.clone().ok_or_else(|| "it needs a domain: give one at checkout".to_owned());
        Ok(match key {
            "subscription" => self.subscription.clone(),
            "customer" => self.customer.clone(),
            "email" => self.email.clone(),
            "domain" => domain()?,
            "domainLabel" => domain()?.replace('.', "-"),
            "credentialsSecret" => self.credentials_secret(),
            "authCodeSecret" => auth_code_secret(&self.subscription),
            other => return Err(format!("unknown placeholder ${{{other}}}")),
        })
    }
}

/// The template with every placeholder filled in.
pub fn fill(template: &Value, with: &Placeholders) -> Result<Value, String> {
    Ok(match template {
        Value::String(s) => Value::String(fill_str(s, with)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, with)).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| Ok((k.clone(), fill(v, with)?))).collect::<Result<_, String>>()?)
        }
        other => other.clone(),
    })
}

fn fill_str(s: &str, with: &Placeholders) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| format!("unclosed placeholder in {s:?}"))?;
        out.push_str(&with.value(&rest[start + 2..start + end])?);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One product of an order, as its resources are rendered.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub slug: &'a str,
    /// Its `products.type`.
    pub kind: &'a str,
    pub template: &'a Value,
}

/// A product whose template does not render for the order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("product {product:?}: {error}")]
pub struct NotRendered {
    pub product: String,
    pub error: String,
}

/// The `spec.resources` of an order: each product's template without its `boughtWith`, then each
/// `boughtWith.<type>` section (by type name) whose type one of the order's products has, filled
/// in and merged (`merge`) in the order's order. A section is filled only when it is added, so a
/// CloudPod's zone for its domain asks for no domain when none is bought.
pub fn order_resources(parts: &[Part<'_>], with: &Placeholders) -> Result<Value, NotRendered> {
    let mut filled = Vec::new();
    for part in parts {
        let not_rendered = |error: String| NotRendered { product: part.slug.to_owned(), error };
        filled.push(fill(&base(part.template), with).map_err(not_rendered)?);
        if let Some(Value::Object(sections)) = part.template.get(BOUGHT_WITH) {
            for (kind, section) in sections {
                if parts.iter().any(|p| p.kind == kind) {
                    filled.push(fill(section, with).map_err(not_rendered)?);
                }
            }
        }
    }
    Ok(merge(&filled))
}

/// A template without its `boughtWith` sections: the resources it always makes.
pub fn base(template: &Value) -> Value {
    let mut base = template.clone();
    if let Value::Object(map) = &mut base {
        map.remove(BOUGHT_WITH);
    }
    base
}

/// Several filled templates as one `spec.resources`: the lists of each kind are joined, and
/// entries of one kind with the same name are one resource (a CloudPod's zone for its domain and
/// DNS hosting's zone are one zone). Of such entries the first one's values stand and the later
/// ones add what it lacks; their lists are joined, without an entry the first has already: an
/// equal one, or one with the same `name` (and `type`), as a record is one rrset and has one answer.
pub fn merge(templates: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for template in templates {
        let Value::Object(map) = template else { continue };
        for (kind, list) in map {
            let entry = out.entry(kind.clone()).or_insert_with(|| Value::Array(Vec::new()));
            if let (Value::Array(acc), Value::Array(items)) = (entry, list) {
                for item in items {
                    match acc.iter_mut().find(|have| have.get("name").is_some() && have.get("name") == item.get("name"))
                    {
                        Some(have) => combine(have, item),
                        None => acc.push(item.clone()),
                    }
                }
            }
        }
    }
    Value::Object(out)
}

/// `later` into `first` (see `merge`).
fn combine(first: &mut Value, later: &Value) {
    match (first, later) {
        (Value::Object(first), Value::Object(later)) => {
            for (key, value) in later {
                match first.get_mut(key) {
                    Some(have) => combine(have, value),
                    None => {
                        first.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(first), Value::Array(later)) => {
            for item in later {
                if !first.iter().any(|have| same_entry(have, item)) {
                    first.push(item.clone());
                }
            }
        }
        _ => {}
    }
}

fn same_entry(a: &Value, b: &Value) -> bool {
    match (a.get("name"), b.get("name")) {
        (Some(x), Some(y)) => x == y && a.get("type") == b.get("type"),
        _ => a == b,
    }
}

/// Whether a product template makes valid resources: filled with sample values, it must read as a
/// Subscription's `spec.resources`, and so must each of its `boughtWith` sections, named by a
/// product type.
pub fn check_template(template: &Value) -> Result<(), String> {
    let sample = Placeholders {
        subscription: "sub-0123456789".into(),
        customer: "c0123456789".into(),
        email: "someone@example.com".into(),
        domain: Some("example.com".into()),
    };
    let resources = |template: &Value| {
        let filled = fill(template, &sample)?;
        serde_json::from_value::<ResourceTemplates>(filled).map(drop).map_err(|e| format!("template: {e}"))
    };
    resources(&base(template))?;
    match template.get(BOUGHT_WITH) {
        None => Ok(()),
        Some(Value::Object(sections)) => sections.iter().try_for_each(|(kind, section)| {
            if !PRODUCT_TYPES.contains(&kind.as_str()) {
                return Err(format!(
                    "template: {BOUGHT_WITH}.{kind}: not a product type ({})",
                    PRODUCT_TYPES.join(", ")
                ));
            }
            resources(section).map_err(|e| format!("{BOUGHT_WITH}.{kind}: {e}"))
        }),
        Some(_) => Err(format!("template: {BOUGHT_WITH} must map product types to resources")),
    }
}

/// Whether the resources transfer a domain in.
pub fn transfers_domain(resources: &ResourceTemplates) -> bool {
    resources.domains.iter().any(|d| d.spec.registration.mode == RegistrationMode::Transfer)
}

pub(super) fn provisioning_timeout(resources: &ResourceTemplates) -> &'static str {
    if transfers_domain(resources) { TRANSFER_PROVISIONING_TIMEOUT } else { DEFAULT_PROVISIONING_TIMEOUT }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_domain(domain: Option<&str>) -> Placeholders {
        Placeholders {
            subscription: "sub-1".into(),
            customer: "c1".into(),
            email: "a@b.example".into(),
            domain: domain.map(str::to_owned),
        }
    }

    #[test]
    fn placeholders_are_filled_everywhere() {
        let template = json!({"certificates": [{"name": "${domainLabel}-tls", "spec": {"dnsNames": ["${domain}", "*.${domain}"]}}]});
        let filled = fill(&template, &with_domain(Some("example.net"))).unwrap_or_default();
        assert_eq!(
            filled,
            json!({"certificates": [{"name": "example-net-tls", "spec": {"dnsNames": ["example.net", "*.example.net"]}}]})
        );
    }

    #[test]
    fn a_template_that_needs_a_domain_says_so() {
        let err = fill(&json!({"a": "${domain}"}), &with_domain(None)).err().unwrap_or_default();
        assert!(err.contains("needs a domain"), "{err}");
        let err = fill(&json!({"a": "${nope}"}), &with_domain(None)).err().unwrap_or_default();
        assert_eq!(err, "unknown placeholder ${nope}");
    }

    #[test]
    fn merged_templates_join_their_lists() {
        let merged =
            merge(&[json!({"domains": [{"name": "a"}]}), json!({"domains": [{"name": "b"}], "mailboxes": []})]);
        assert_eq!(merged, json!({"domains": [{"name": "a"}, {"name": "b"}], "mailboxes": []}));
    }

    #[test]
    fn a_template_is_checked_against_the_resource_schema() {
        assert!(check_template(&json!({"cloudPods": [{"name": "x", "spec": {"bogus": 1}}]})).is_err());
        assert!(check_template(&json!({})).is_ok());
    }

    fn pod() -> Value {
        let zone = json!([{"name": "${domainLabel}", "spec": {"zone": "${domain}.", "nameservers": ["ns1.example."],
            "records": [{"name": "@", "type": "A", "cloudPodRef": {"name": "${subscription}"}},
                        {"name": "www", "type": "CNAME", "values": ["${domain}."]}]}}]);
        json!({
            "cloudPods": [{"name": "${subscription}", "spec": {"plan": "pro", "type": "lxc", "template": "100",
                "hostname": "${subscription}", "resources": {"cores": 2, "memoryMiB": 2048, "diskGiB": 50},
                "network": {"bridge": "vmbr0", "ipv4": {"pool": "public-v4"}}}}],
            "boughtWith": {
                "domain": {"dnsZones": zone, "certificates": [{"name": "${domainLabel}-tls", "spec": {
                    "dnsNames": ["${domain}", "www.${domain}"], "secretName": "${domainLabel}-tls", "issuer": "le"}}]},
                "dns": {"dnsZones": zone},
            },
        })
    }

    fn domain() -> Value {
        json!({"domains": [{"name": "${domainLabel}", "spec": {"name": "${domain}", "registration": {"mode": "Register"}}}]})
    }

    fn dns_hosting() -> Value {
        json!({"dnsZones": [{"name": "${domainLabel}", "spec": {"zone": "${domain}.", "nameservers": ["ns1.example."],
            "mail": {"mx": [{"host": "mail.example.", "priority": 10}]}}}]})
    }

    fn ssl() -> Value {
        json!({"certificates": [{"name": "${domainLabel}-tls", "spec": {"dnsNames": ["${domain}", "*.${domain}"],
            "secretName": "${domainLabel}-tls", "issuer": "le"}}]})
    }

    fn order(products: &[(&'static str, &'static str, Value)], domain: Option<&str>) -> Result<Value, NotRendered> {
        let parts: Vec<Part<'_>> =
            products.iter().map(|(slug, kind, template)| Part { slug, kind, template }).collect();
        order_resources(&parts, &with_domain(domain))
    }

    #[test]
    fn a_pod_bought_with_a_domain_gets_one_zone_following_it_and_one_certificate() {
        let products = [
            ("pod", "cloudpod", pod()),
            ("domain", "domain", domain()),
            ("dns", "dns", dns_hosting()),
            ("ssl", "ssl", ssl()),
        ];
        let merged = order(&products, Some("shop.example")).unwrap_or_default();
        assert_eq!(
            merged["dnsZones"],
            json!([{"name": "shop-example", "spec": {"zone": "shop.example.", "nameservers": ["ns1.example."],
                "records": [{"name": "@", "type": "A", "cloudPodRef": {"name": "sub-1"}},
                            {"name": "www", "type": "CNAME", "values": ["shop.example."]}],
                "mail": {"mx": [{"host": "mail.example.", "priority": 10}]}}}]),
            "the pod's zone and DNS hosting's are one"
        );
        assert_eq!(
            merged["certificates"],
            json!([{"name": "shop-example-tls", "spec": {"dnsNames": ["shop.example", "www.shop.example", "*.shop.example"],
                "secretName": "shop-example-tls", "issuer": "le"}}])
        );
        assert_eq!(merged["cloudPods"][0]["name"], "sub-1");
        assert!(merged.get(BOUGHT_WITH).is_none());
        let parsed = serde_json::from_value::<ResourceTemplates>(merged).map(drop).map_err(|e| e.to_string());
        assert_eq!(parsed, Ok(()));
    }

    #[test]
    fn a_pod_gets_the_zone_with_dns_hosting_and_nothing_of_it_alone() {
        let alone = order(&[("pod", "cloudpod", pod())], None).unwrap_or_default();
        assert_eq!(alone.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()), Some(vec!["cloudPods".into()]));

        let with_dns =
            order(&[("pod", "cloudpod", pod()), ("dns", "dns", dns_hosting())], Some("a.example")).unwrap_or_default();
        let records = &with_dns["dnsZones"][0]["spec"]["records"];
        assert_eq!(records[0], json!({"name": "@", "type": "A", "cloudPodRef": {"name": "sub-1"}}));
        assert!(
            with_dns.get("certificates").is_none(),
            "a certificate comes with a domain bought, not with DNS hosting"
        );
        assert_eq!(with_dns["dnsZones"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn of_two_records_for_one_rrset_the_first_stands() {
        let first = json!({"dnsZones": [{"name": "z", "spec": {"nameservers": ["a."],
            "records": [{"name": "@", "type": "A", "cloudPodRef": {"name": "pod"}}]}}]});
        let later = json!({"dnsZones": [{"name": "z", "spec": {"nameservers": ["a.", "b."], "records": [
            {"name": "@", "type": "A", "values": ["192.0.2.1"]}, {"name": "@", "type": "MX", "values": ["10 mx."]}]}}]});
        let merged = merge(&[first, later]);
        assert_eq!(
            merged,
            json!({"dnsZones": [{"name": "z", "spec": {"nameservers": ["a.", "b."], "records": [
                {"name": "@", "type": "A", "cloudPodRef": {"name": "pod"}}, {"name": "@", "type": "MX", "values": ["10 mx."]}]}}]})
        );
    }

    #[test]
    fn a_section_that_needs_a_domain_is_filled_only_when_added() {
        let err = order(&[("pod", "cloudpod", pod()), ("domain", "domain", domain())], None).err();
        assert_eq!(err.map(|e| e.product), Some("pod".to_owned()), "the pod's section for a domain needs one");
        let broken = json!({"cloudPods": [], "boughtWith": {"dns": {"dnsZones": "${nope}"}}});
        assert!(order(&[("pod", "cloudpod", broken.clone())], None).is_ok());
        let err = order(&[("pod", "cloudpod", broken), ("dns", "dns", json!({}))], None).err();
        assert_eq!(err, Some(NotRendered { product: "pod".into(), error: "unknown placeholder ${nope}".into() }));
    }

    #[test]
    fn bought_with_sections_are_checked_and_name_product_types() {
        assert_eq!(check_template(&pod()), Ok(()));
        let unknown = json!({"boughtWith": {"domains": {}}});
        assert!(check_template(&unknown).is_err_and(|e| e.contains("not a product type")));
        let invalid = json!({"boughtWith": {"dns": {"dnsZones": [{"name": "z", "spec": {"bogus": 1}}]}}});
        assert!(check_template(&invalid).is_err_and(|e| e.starts_with("boughtWith.dns")));
        assert!(check_template(&json!({"boughtWith": []})).is_err());
    }

    #[test]
    fn a_transfer_is_given_days_to_provision() {
        let transfer = json!({"domains": [{"name": "d", "spec": {"name": "d.example", "registration":
            {"mode": "Transfer", "authCodeSecretRef": {"name": "${authCodeSecret}", "key": "auth-code"}}}}]});
        let filled = fill(&transfer, &with_domain(None)).unwrap_or_default();
        assert_eq!(filled["domains"][0]["spec"]["registration"]["authCodeSecretRef"]["name"], "sub-1-auth-code");
        let resources: ResourceTemplates = serde_json::from_value(filled).unwrap_or_default();
        assert_eq!(provisioning_timeout(&resources), "8d");
        let register: ResourceTemplates =
            serde_json::from_value(fill(&domain(), &with_domain(Some("a.example"))).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(provisioning_timeout(&register), "30m");
    }
}
