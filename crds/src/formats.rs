//! Regular expressions (RE2 syntax, as the API server evaluates them) for the string formats the
//! API accepts. One definition per format, shared by every kind.

/// An RFC 1123 DNS label: lowercase letters, digits and `-`, at most 63 characters.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

/// A Kubernetes object name (RFC 1123 subdomain).
pub const OBJECT_NAME: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A fully qualified lowercase domain name without a trailing dot, e.g. `example.com`.
pub const DOMAIN_NAME: &str = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$";

/// A fully qualified lowercase domain name; the trailing dot is optional, e.g. `example.com.`.
pub const FQDN: &str = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]\.?$";

/// A certificate subject name: a domain name, optionally with a leading `*.` wildcard label.
pub const CERTIFICATE_DNS_NAME: &str = r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$";

/// A record owner name relative to its zone: `@` for the apex, `*` or `*.label`, or dot-separated
/// labels that may contain `_` (`_dmarc`, `_sip._tcp`).
pub const RECORD_NAME: &str =
    r"^(@|\*|(\*\.)?[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?(\.[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?)*)$";

/// A lowercase mailbox address, e.g. `info@example.com`.
pub const MAIL_ADDRESS: &str = r"^[a-z0-9_+-]([a-z0-9._+-]{0,62}[a-z0-9_+-])?@([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$";

/// A contact email address (any case).
pub const CONTACT_EMAIL: &str = r"^[^@\s]+@[^@\s]+\.[^@\s]+$";

/// A calendar date, `YYYY-MM-DD`.
pub const DATE: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

/// A duration made of whole units `d`, `h`, `m`, `s`, e.g. `30d`, `720h`, `1h30m`.
pub const DURATION: &str = r"^([0-9]+(d|h|m|s))+$";

/// An invoice number, `INV-YYYY-NNNNNN`.
pub const INVOICE_NUMBER: &str = r"^INV-[0-9]{4}-[0-9]{6}$";

/// A Proxmox template to clone: a VMID (100–999999999) or a template name.
pub const PVE_TEMPLATE: &str = r"^([1-9][0-9]{2,8}|[A-Za-z][A-Za-z0-9._-]{0,62})$";

/// A Proxmox node or cluster name.
pub const PVE_NODE: &str = r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$";

/// A Linux bridge interface name, e.g. `vmbr0`.
pub const BRIDGE: &str = r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$";

/// An OpenSSH public key line: key type, base64 key, optional comment.
pub const SSH_PUBLIC_KEY: &str = r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$";

/// An ISO 3166-1 alpha-2 country code.
pub const COUNTRY_CODE: &str = r"^[A-Z]{2}$";

/// A telephone number: digits with an optional leading `+` and separators.
pub const PHONE: &str = r"^\+?[0-9][0-9 .-]{5,20}$";

/// CEL: the value is an IPv4 address with a prefix length, e.g. `203.0.113.10/24`.
pub const CEL_IPV4_CIDR: &str = "isCIDR(self) && cidr(self).ip().family() == 4";

/// CEL: the value is an IPv4 address.
pub const CEL_IPV4: &str = "isIP(self) && ip(self).family() == 4";

/// Parses a duration in the [`DURATION`] format (`30d`, `720h`, `1h30m`, `90s`).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn parses_each_unit_and_combinations() {
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    }

    #[test]
    fn refuses_what_the_format_refuses() {
        for bad in ["", "30", "d", "1.5h", "10x", "1h30"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
