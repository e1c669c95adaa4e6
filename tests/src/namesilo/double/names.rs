//! Which strings are domain names and hostnames.

/// `name` lowercased, when it is a domain name of at least two labels whose TLD is letters only.
pub fn domain(name: &str) -> Option<String> {
    let name = name.trim().to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let tld = labels.last()?;
    let valid = name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| label(l))
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_alphabetic());
    valid.then_some(name)
}

/// `host` lowercased and without a trailing dot, when it is a hostname fit to be a nameserver.
pub fn hostname(host: &str) -> Option<String> {
    domain(host.trim().strip_suffix('.').unwrap_or(host.trim()))
}

fn label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_letters_digits_and_hyphens_in_labels() {
        assert_eq!(domain("Example.COM").as_deref(), Some("example.com"));
        assert_eq!(domain("xn--bcher-kva.example").as_deref(), Some("xn--bcher-kva.example"));
        assert_eq!(domain("a.co.uk").as_deref(), Some("a.co.uk"));
        for bad in ["example", "n#mesilo.com", "-a.com", "a-.com", "a..com", ".com", "a.c", "a.c0m", "a com.net", ""] {
            assert_eq!(domain(bad), None, "{bad:?}");
        }
        assert_eq!(domain(&format!("{}.com", "a".repeat(64))), None);
    }

    #[test]
    fn hostnames_may_end_in_a_dot() {
        assert_eq!(hostname("NS1.Example.net.").as_deref(), Some("ns1.example.net"));
        assert_eq!(hostname("ns1..example.net"), None);
        assert_eq!(hostname("not a host"), None);
    }
}
