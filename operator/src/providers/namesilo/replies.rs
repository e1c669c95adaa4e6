//! Reading Namesilo's answers: the reply code, scalars written as numbers or strings, and lists
//! that come as a bare value when they hold one member (its JSON is its XML converted).

use serde_json::Value;

use super::{DomainInfo, NamesiloError, code};

/// The `reply` of an answer, or the error its code stands for.
pub(super) fn reply(operation: &'static str, body: &[u8]) -> Result<Value, NamesiloError> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| NamesiloError::BadResponse(e.to_string()))?;
    let reply = answer
        .get("reply")
        .cloned()
        .ok_or_else(|| NamesiloError::BadResponse(format!("{operation}: no reply in the answer")))?;
    let code =
        reply_code(&reply).ok_or_else(|| NamesiloError::BadResponse(format!("{operation}: the reply has no code")))?;
    if code::is_success(code) {
        Ok(reply)
    } else {
        let detail = text(&reply, "detail").unwrap_or_default();
        Err(NamesiloError::Reply { operation, code, detail })
    }
}

pub(super) fn reply_code(reply: &Value) -> Option<u16> {
    match reply.get("code")? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A scalar field as text (Namesilo writes numbers and strings interchangeably).
pub(super) fn text(reply: &Value, key: &str) -> Option<String> {
    match reply.get(key)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn yes(reply: &Value, key: &str) -> bool {
    text(reply, key).is_some_and(|v| v.eq_ignore_ascii_case("yes") || v == "1")
}

/// The members of a list that may come as an array, a single value, or wrapped in an object
/// (`{"domain": [...]}`), as XML converted to JSON does.
pub(super) fn members<'a>(value: &'a Value, inner: &str) -> Vec<&'a Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) if map.contains_key(inner) && map.len() == 1 => members(&map[inner], inner),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A hostname the way the operator compares them: lowercase, no trailing dot.
pub fn normalise_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn nameservers(reply: &Value) -> Vec<String> {
    let Some(list) = reply.get("nameservers") else { return Vec::new() };
    let mut found: Vec<(u64, String)> = members(list, "nameserver")
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let (position, name) = match item {
                Value::String(s) => (i as u64 + 1, s.clone()),
                Value::Object(o) => {
                    let name = o.get("nameserver").or_else(|| o.get("#text")).and_then(Value::as_str)?.to_owned();
                    let position = o
                        .get("position")
                        .and_then(|p| p.as_u64().or_else(|| p.as_str().and_then(|s| s.parse().ok())))
                        .unwrap_or(i as u64 + 1);
                    (position, name)
                }
                _ => return None,
            };
            Some((position, normalise_host(&name)))
        })
        .filter(|(_, n)| !n.is_empty())
        .collect();
    found.sort_by_key(|(p, _)| *p);
    found.into_iter().map(|(_, n)| n).collect()
}

pub(super) fn domain_info(reply: &Value) -> Result<DomainInfo, NamesiloError> {
    Ok(DomainInfo {
        created: text(reply, "created"),
        expires: text(reply, "expires")
            .ok_or_else(|| NamesiloError::BadResponse("getDomainInfo: no expires".into()))?,
        status: text(reply, "status").unwrap_or_default(),
        locked: yes(reply, "locked"),
        private: yes(reply, "private"),
        auto_renew: yes(reply, "auto_renew"),
        nameservers: nameservers(reply),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(reply: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"request": {"operation": "x", "ip": "127.0.0.1"}, "reply": reply})).unwrap()
    }

    #[test]
    fn reply_codes_are_read_as_numbers_or_strings_and_errors_keep_the_detail() {
        assert!(reply("getDomainInfo", &body(json!({"code": 300, "detail": "success"}))).is_ok());
        assert!(reply("registerDomain", &body(json!({"code": "301", "detail": "success"}))).is_ok());
        let e = reply(
            "registerDomain",
            &body(json!({"code": 119, "detail": "Insufficient account funds for requested transaction"})),
        )
        .unwrap_err();
        assert_eq!(e.reason(), "NamesiloInsufficientFunds");
        assert_eq!(e.to_string(), "Namesilo registerDomain: 119 Insufficient account funds for requested transaction");
        assert_eq!(
            reply("x", &body(json!({"code": 110, "detail": "Invalid API Key"}))).unwrap_err().reason(),
            "NamesiloUnauthorized"
        );
        assert!(matches!(reply("x", b"<html>"), Err(NamesiloError::BadResponse(_))));
    }

    #[test]
    fn domain_info_reads_flags_and_nameservers_in_position_order() {
        let r = json!({"code": 300, "detail": "success", "created": "2025-01-02", "expires": "2027-01-02",
            "status": "Active", "locked": "Yes", "private": "No", "auto_renew": "No",
            "nameservers": [{"position": 2, "nameserver": "NS2.EXAMPLE.NET"}, {"position": "1", "nameserver": "ns1.example.net."}]});
        let info = domain_info(&r).unwrap();
        assert_eq!(info.expires, "2027-01-02");
        assert!(info.locked && !info.private && !info.auto_renew);
        assert_eq!(info.nameservers, ["ns1.example.net", "ns2.example.net"]);
    }

    #[test]
    fn lists_of_one_come_as_bare_values() {
        let one = json!({"nameservers": {"nameserver": "NS1.EXAMPLE.NET"}});
        assert_eq!(nameservers(&one), ["ns1.example.net"]);
        let wrapped = json!({"domains": {"domain": ["a.com", "b.com"]}});
        assert_eq!(members(&wrapped["domains"], "domain").len(), 2);
        let single = json!({"domains": {"domain": "a.com"}});
        assert_eq!(members(&single["domains"], "domain"), [&json!("a.com")]);
    }
}
