//! From a DnsZone spec to the rrsets PowerDNS should hold, in the canonical form PowerDNS returns
//! them (so that an unchanged zone compares equal and a resync writes nothing), and the PATCH that
//! turns what PowerDNS holds into that.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use mpanel_crds::dnszone::{DnsZoneSpec, RecordPolicy, RecordType, Soa};

use super::txt;
use crate::providers::powerdns::{RrSet, canonical};

/// TTL of records that do not set one.
pub const DEFAULT_TTL: u32 = 3600;

/// Absolute owner name (trailing dot) and type.
pub type RrKey = (String, String);

/// One rrset as it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedRrSet {
    pub ttl: u32,
    pub contents: BTreeSet<String>,
}

/// A value the spec gives that cannot be put in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {name} {rtype}: {message}")]
pub struct InvalidRecord {
    pub name: String,
    pub rtype: String,
    pub message: String,
}

/// The rrsets the spec asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub rrsets: BTreeMap<RrKey, WantedRrSet>,
    /// CloudPods referenced by a record that have no address yet; their records are left out.
    pub waiting_for: Vec<String>,
}

/// `name` (relative, `@` for the apex) as an absolute name in `zone`.
pub fn absolute(name: &str, zone: &str) -> String {
    let zone = canonical(zone);
    match name {
        "@" | "" => zone,
        n => format!("{n}.{zone}"),
    }
}

fn host(value: &str) -> String {
    canonical(&value.trim().to_ascii_lowercase())
}

/// The canonical form of one value of `rtype`, or why it has none.
pub fn normalise(rtype: RecordType, value: &str) -> Result<String, String> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    match rtype {
        // an address that does not parse goes to PowerDNS verbatim: its refusal is the message
        RecordType::A | RecordType::AAAA => {
            Ok(value.trim().parse::<IpAddr>().map_or_else(|_| value.trim().to_owned(), |ip| ip.to_string()))
        }
        RecordType::CNAME | RecordType::NS => match fields.as_slice() {
            [target] => Ok(host(target)),
            _ => Err(format!("{value:?} must be one host name")),
        },
        RecordType::MX => match fields.as_slice() {
            [priority, target] if priority.parse::<u16>().is_ok() => Ok(format!("{priority} {}", host(target))),
            _ => Err(format!("{value:?} must be \"<priority> <host>\", e.g. \"10 mail.example.com.\"")),
        },
        RecordType::SRV => match fields.as_slice() {
            [priority, weight, port, target] if [priority, weight, port].iter().all(|n| n.parse::<u16>().is_ok()) => {
                Ok(format!("{priority} {weight} {port} {}", host(target)))
            }
            _ => Err(format!("{value:?} must be \"<priority> <weight> <port> <host>\"")),
        },
        RecordType::CAA => match fields.as_slice() {
            [flags, tag, rest @ ..] if flags.parse::<u8>().is_ok() && !rest.is_empty() => {
                let data = rest.join(" ");
                let data = if data.starts_with('"') { data } else { format!("\"{data}\"") };
                Ok(format!("{flags} {} {data}", tag.to_ascii_lowercase()))
            }
            _ => Err(format!("{value:?} must be \"<flags> <tag> <value>\", e.g. '0 issue \"letsencrypt.org\"'")),
        },
        RecordType::TXT => txt::canonical(value),
    }
}

fn add(wanted: &mut Wanted, key: RrKey, ttl: u32, content: String) {
    wanted.rrsets.entry(key).or_insert_with(|| WantedRrSet { ttl, contents: BTreeSet::new() }).contents.insert(content);
}

fn type_name(rtype: RecordType) -> &'static str {
    match rtype {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::CNAME => "CNAME",
        RecordType::MX => "MX",
        RecordType::TXT => "TXT",
        RecordType::SRV => "SRV",
        RecordType::CAA => "CAA",
        RecordType::NS => "NS",
    }
}

/// The rrsets `spec` asks for. `address_of` gives a CloudPod's `status.ipAddress`.
pub fn wanted(spec: &DnsZoneSpec, address_of: impl Fn(&str) -> Option<String>) -> Result<Wanted, InvalidRecord> {
    let zone = canonical(&spec.zone);
    let mut out = Wanted::default();
    for ns in &spec.nameservers {
        add(&mut out, (zone.clone(), "NS".to_owned()), DEFAULT_TTL, host(ns));
    }
    for record in &spec.records {
        let name = absolute(&record.name, &zone);
        let rtype = type_name(record.type_);
        let ttl = record.ttl.unwrap_or(DEFAULT_TTL);
        let invalid = |message: String| InvalidRecord { name: name.clone(), rtype: rtype.to_owned(), message };
        let values: Vec<String> = match (&record.values, &record.cloud_pod_ref) {
            (Some(values), _) => values.clone(),
            (None, Some(pod)) => match address_of(&pod.name) {
                Some(ip) => vec![ip],
                None => {
                    out.waiting_for.push(pod.name.clone());
                    continue;
                }
            },
            (None, None) => return Err(invalid("has neither values nor cloudPodRef".to_owned())),
        };
        for value in values {
            let content = normalise(record.type_, &value).map_err(invalid)?;
            add(&mut out, (name.clone(), rtype.to_owned()), ttl, content);
        }
    }
    if let Some(mail) = &spec.mail {
        for mx in &mail.mx {
            add(&mut out, (zone.clone(), "MX".to_owned()), DEFAULT_TTL, format!("{} {}", mx.priority, host(&mx.host)));
        }
        let txt = |name: &str, value: &str| {
            txt::canonical(value).map_err(|message| InvalidRecord {
                name: name.to_owned(),
                rtype: "TXT".to_owned(),
                message: format!("{value:?} {message}"),
            })
        };
        if let Some(spf) = &mail.spf {
            add(&mut out, (zone.clone(), "TXT".to_owned()), DEFAULT_TTL, txt(&zone, spf)?);
        }
        if let Some(dmarc) = &mail.dmarc {
            let name = absolute("_dmarc", &zone);
            add(&mut out, (name.clone(), "TXT".to_owned()), DEFAULT_TTL, txt(&name, dmarc)?);
        }
        // a key the operator makes is added by the caller, from its Secret
        if let Some((dkim, public_key)) = mail.dkim.as_ref().and_then(|d| Some((d, d.public_key.as_ref()?))) {
            add_dkim(&mut out, &zone, &dkim.selector, public_key)?;
        }
    }
    Ok(out)
}

/// Adds the DKIM record `<selector>._domainkey` of a public key (base64, the `p=` tag).
pub fn add_dkim(wanted: &mut Wanted, zone: &str, selector: &str, public_key: &str) -> Result<(), InvalidRecord> {
    let name = absolute(&format!("{selector}._domainkey"), zone);
    let value = txt::canonical(&format!("v=DKIM1; k=rsa; p={public_key}")).map_err(|message| InvalidRecord {
        name: name.clone(),
        rtype: "TXT".to_owned(),
        message,
    })?;
    add(wanted, (name, "TXT".to_owned()), DEFAULT_TTL, value);
    Ok(())
}

/// Rrsets the operator never removes: the SOA (PowerDNS owns its serial) and ACME challenge TXT
/// records, which the Certificate controller merges into the zone while it validates.
fn foreign_to_sync(rrset: &RrSet) -> bool {
    rrset.rtype == "SOA" || (rrset.rtype == "TXT" && rrset.name.starts_with("_acme-challenge."))
}

/// The PATCH entries that turn `existing` into `wanted`: REPLACE what differs, and under `Sync`
/// DELETE what the spec does not have. Empty when the zone is in sync.
pub fn changes(wanted: &Wanted, existing: &[RrSet], policy: RecordPolicy) -> Vec<RrSet> {
    let current: BTreeMap<RrKey, &RrSet> = existing.iter().map(|r| ((r.name.clone(), r.rtype.clone()), r)).collect();
    let mut out = Vec::new();
    for ((name, rtype), want) in &wanted.rrsets {
        let same = current.get(&(name.clone(), rtype.clone())).is_some_and(|have| {
            have.ttl == Some(want.ttl)
                && have.records.iter().all(|r| !r.disabled)
                && have.records.iter().map(|r| r.content.as_str()).collect::<BTreeSet<_>>()
                    == want.contents.iter().map(String::as_str).collect()
        });
        if !same {
            out.push(RrSet::replace(name.clone(), rtype.clone(), want.ttl, want.contents.iter().cloned()));
        }
    }
    if policy == RecordPolicy::Sync {
        for (key, have) in &current {
            if !wanted.rrsets.contains_key(key) && !foreign_to_sync(have) {
                out.push(RrSet::delete(key.0.clone(), key.1.clone()));
            }
        }
    }
    out
}

/// `hostmaster@example.com` as the SOA RNAME `hostmaster.example.com.` (dots in the local part
/// escaped).
fn rname(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}.{}", local.replace('.', "\\."), canonical(domain)),
        None => canonical(address),
    }
}

/// The REPLACE that makes the zone's SOA match `spec.soa`, if it differs. Fields the spec leaves out
/// keep their current value; the serial is never compared or changed (PowerDNS moves it).
pub fn soa_change(spec: &DnsZoneSpec, existing: &[RrSet]) -> Option<RrSet> {
    let soa: &Soa = spec.soa.as_ref()?;
    let zone = canonical(&spec.zone);
    let current = existing.iter().find(|r| r.rtype == "SOA" && r.name == zone)?;
    let content = current.records.first()?.content.clone();
    let fields: Vec<&str> = content.split_whitespace().collect();
    let [mname, rname_now, serial, refresh, retry, expire, minimum] = fields.as_slice() else { return None };
    let primary = soa.primary.as_deref().or(spec.nameservers.first().map(String::as_str)).map(host);
    let wanted = [
        primary.unwrap_or_else(|| (*mname).to_owned()),
        soa.hostmaster.as_deref().map(rname).unwrap_or_else(|| (*rname_now).to_owned()),
        (*serial).to_owned(),
        soa.refresh.map_or_else(|| (*refresh).to_owned(), |v| v.to_string()),
        soa.retry.map_or_else(|| (*retry).to_owned(), |v| v.to_string()),
        soa.expire.map_or_else(|| (*expire).to_owned(), |v| v.to_string()),
        soa.minimum.map_or_else(|| (*minimum).to_owned(), |v| v.to_string()),
    ]
    .join(" ");
    let ttl = soa.ttl.or(current.ttl).unwrap_or(DEFAULT_TTL);
    (wanted != content || Some(ttl) != current.ttl).then(|| RrSet::replace(zone, "SOA", ttl, [wanted]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::powerdns::RecordData;
    use mpanel_crds::common::LocalObjectReference;
    use mpanel_crds::dnszone::{MailExchanger, MailRecords, Record};

    fn spec(records: Vec<Record>) -> DnsZoneSpec {
        serde_json::from_value::<DnsZoneSpec>(
            serde_json::json!({"zone": "example.com", "nameservers": ["ns1.example.net"]}),
        )
        .map(|mut s| {
            s.records = records;
            s
        })
        .unwrap()
    }

    fn record(name: &str, rtype: RecordType, values: &[&str]) -> Record {
        Record {
            name: name.into(),
            type_: rtype,
            ttl: None,
            values: Some(values.iter().map(|v| v.to_string()).collect()),
            cloud_pod_ref: None,
        }
    }

    #[test]
    fn values_take_the_canonical_form_powerdns_returns() {
        assert_eq!(normalise(RecordType::CNAME, "Example.COM").unwrap(), "example.com.");
        assert_eq!(normalise(RecordType::MX, "10 mail.example.com").unwrap(), "10 mail.example.com.");
        assert_eq!(normalise(RecordType::SRV, "0 5 5060 sip.example.com").unwrap(), "0 5 5060 sip.example.com.");
        assert_eq!(normalise(RecordType::TXT, "v=spf1 -all").unwrap(), "\"v=spf1 -all\"");
        assert_eq!(normalise(RecordType::TXT, "\"already quoted\"").unwrap(), "\"already quoted\"");
        assert_eq!(normalise(RecordType::TXT, "say \"hi\"").unwrap(), "\"say \\\"hi\\\"\"");
        assert_eq!(normalise(RecordType::CAA, "0 issue letsencrypt.org").unwrap(), "0 issue \"letsencrypt.org\"");
        assert_eq!(normalise(RecordType::AAAA, "2001:DB8:0:0:0:0:0:1").unwrap(), "2001:db8::1");
        // PowerDNS judges what is not an address, so its own message reaches the user
        assert_eq!(normalise(RecordType::A, "not-an-address").unwrap(), "not-an-address");
    }

    #[test]
    fn three_hundred_backslashes_normalise() {
        let spf = "\\".repeat(300);
        let mut s = spec(vec![]);
        s.mail = Some(MailRecords { mx: vec![], spf: Some(spf.clone()), dmarc: Some(spf), dkim: None });
        let w = wanted(&s, |_| None).unwrap();
        let spf = &w.rrsets[&("example.com.".to_owned(), "TXT".to_owned())];
        assert_eq!(spf.contents.iter().next().map(String::len), Some(2 * 300 + 2 * 2 + 1));
    }

    #[test]
    fn long_txt_values_are_split_into_255_byte_strings() {
        let long = "a".repeat(300);
        assert_eq!(
            normalise(RecordType::TXT, &long).unwrap(),
            format!("\"{}\" \"{}\"", "a".repeat(255), "a".repeat(45))
        );
    }

    #[test]
    fn malformed_values_are_refused_with_the_expected_shape() {
        assert!(normalise(RecordType::MX, "mail.example.com").unwrap_err().contains("<priority> <host>"));
        assert!(normalise(RecordType::SRV, "1 2 sip").unwrap_err().contains("<weight>"));
        assert!(normalise(RecordType::CNAME, "a b").unwrap_err().contains("one host name"));
    }

    #[test]
    fn wanted_merges_records_mail_shorthands_and_nameservers() {
        let mut s = spec(vec![
            record("@", RecordType::A, &["192.0.2.1"]),
            record("@", RecordType::TXT, &["google-site-verification=x"]),
        ]);
        s.mail = Some(MailRecords {
            mx: vec![MailExchanger { host: "mail.example.net".into(), priority: 10 }],
            spf: Some("v=spf1 mx -all".into()),
            dmarc: Some("v=DMARC1; p=none".into()),
            dkim: None,
        });
        let w = wanted(&s, |_| None).unwrap();
        let keys: Vec<_> = w.rrsets.keys().map(|(n, t)| format!("{n} {t}")).collect();
        assert_eq!(
            keys,
            ["_dmarc.example.com. TXT", "example.com. A", "example.com. MX", "example.com. NS", "example.com. TXT"]
        );
        let apex_txt = &w.rrsets[&("example.com.".to_owned(), "TXT".to_owned())];
        assert_eq!(apex_txt.contents.len(), 2, "SPF joins the TXT rrset of the apex");
    }

    #[test]
    fn cloud_pod_records_follow_the_address_or_wait_for_it() {
        let mut r = record("app", RecordType::A, &[]);
        r.values = None;
        r.cloud_pod_ref = Some(LocalObjectReference { name: "web-1".into() });
        let s = spec(vec![r]);
        let waiting = wanted(&s, |_| None).unwrap();
        assert_eq!(waiting.waiting_for, ["web-1"]);
        assert!(!waiting.rrsets.keys().any(|(n, _)| n == "app.example.com."));
        let placed = wanted(&s, |pod| (pod == "web-1").then(|| "203.0.113.7".to_owned())).unwrap();
        assert_eq!(
            placed.rrsets[&("app.example.com.".to_owned(), "A".to_owned())].contents.first().map(String::as_str),
            Some("203.0.113.7")
        );
    }

    fn existing(name: &str, rtype: &str, ttl: u32, contents: &[&str]) -> RrSet {
        RrSet {
            name: name.into(),
            rtype: rtype.into(),
            ttl: Some(ttl),
            records: contents.iter().map(|c| RecordData { content: c.to_string(), disabled: false }).collect(),
            changetype: None,
        }
    }

    #[test]
    fn soa_follows_the_spec_except_for_the_serial() {
        let mut s = spec(vec![]);
        let current = [existing(
            "example.com.",
            "SOA",
            3600,
            &["a.misconfigured.dns.server.invalid. hostmaster.example.com. 2026112301 10800 3600 604800 3600"],
        )];
        assert_eq!(soa_change(&s, &current), None, "no soa in the spec: PowerDNS's defaults stay");
        s.soa = Some(Soa {
            primary: None,
            hostmaster: Some("dns.admin@example.com".into()),
            refresh: None,
            retry: None,
            expire: None,
            minimum: Some(300),
            ttl: None,
        });
        let change = soa_change(&s, &current).unwrap();
        assert_eq!(
            change.records[0].content,
            "ns1.example.net. dns\\.admin.example.com. 2026112301 10800 3600 604800 300"
        );
        let applied = [existing(
            "example.com.",
            "SOA",
            3600,
            &["ns1.example.net. dns\\.admin.example.com. 2026112302 10800 3600 604800 300"],
        )];
        assert_eq!(soa_change(&s, &applied), None, "a moved serial alone is no difference");
    }

    #[test]
    fn an_equal_zone_needs_no_change_and_differences_become_replace_or_delete() {
        let w = wanted(&spec(vec![record("www", RecordType::A, &["192.0.2.1"])]), |_| None).unwrap();
        let soa = existing("example.com.", "SOA", 3600, &["a. b. 1 2 3 4 5"]);
        let ns = existing("example.com.", "NS", 3600, &["ns1.example.net."]);
        let www = existing("www.example.com.", "A", 3600, &["192.0.2.1"]);
        let stray = existing("old.example.com.", "A", 3600, &["192.0.2.9"]);
        let acme = existing("_acme-challenge.example.com.", "TXT", 60, &["\"token\""]);
        assert!(changes(&w, &[soa.clone(), ns.clone(), www.clone(), acme.clone()], RecordPolicy::Sync).is_empty());

        let edited = existing("www.example.com.", "A", 3600, &["192.0.2.66"]);
        let patch = changes(&w, &[soa.clone(), ns.clone(), edited, stray.clone()], RecordPolicy::Sync);
        assert_eq!(
            patch,
            [
                RrSet::replace("www.example.com.", "A", 3600, ["192.0.2.1".to_owned()]),
                RrSet::delete("old.example.com.", "A")
            ]
        );

        let upsert = changes(&w, &[soa, ns, www, stray], RecordPolicy::UpsertOnly);
        assert!(upsert.is_empty(), "UpsertOnly never deletes: {upsert:?}");
    }

    const EVERY_TYPE: [RecordType; 8] = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::CNAME,
        RecordType::MX,
        RecordType::TXT,
        RecordType::SRV,
        RecordType::CAA,
        RecordType::NS,
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Whatever a manifest holds (the schema allows 4096 characters), each record type normalises it
        /// or refuses it, and its canonical form normalises to itself (so a resync finds nothing to write).
        #[test]
        fn every_record_type_normalises_or_refuses_any_value(
            value in proptest::prelude::any::<String>(),
            adversarial in "[ \t\\\"0-9.a-zA-Z@;=:_-]{0,4096}",
        ) {
            for rtype in EVERY_TYPE {
                for v in [&value, &adversarial] {
                    if let Ok(out) = normalise(rtype, v) {
                        proptest::prop_assert_eq!(normalise(rtype, &out), Ok(out.clone()), "{:?} {:?}", rtype, v);
                    }
                }
            }
        }
    }
}
