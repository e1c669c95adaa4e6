//! The query parameters of one API call.

use std::collections::BTreeMap;

use super::code::Code;
use super::names;
use super::reply::Reply;

/// Nameservers are passed as `ns1` … `ns13`.
pub const MAX_NAMESERVERS: usize = 13;

#[derive(Clone, Debug, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// The first value of each name wins; `version`, `type` and `key` are the envelope's, not the
    /// operation's.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map = BTreeMap::new();
        for (name, value) in pairs {
            map.entry(name).or_insert(value);
        }
        Self(map)
    }

    pub fn all(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// A non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, Reply> {
        self.get(name).ok_or_else(|| Reply::new(Code::MissingParameters))
    }

    /// The `domain` parameter, lowercased: 108 when missing, 114 when not a domain name.
    pub fn domain(&self) -> Result<String, Reply> {
        names::domain(self.required("domain")?).ok_or_else(|| Reply::new(Code::InvalidDomainSyntax))
    }

    /// A 0/1 option.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("1")
    }

    /// `ns1` … `ns13` as given, in order, skipping empty ones.
    pub fn nameservers(&self) -> Vec<String> {
        (1..=MAX_NAMESERVERS).filter_map(|i| self.get(&format!("ns{i}")).map(str::to_owned)).collect()
    }

    /// `years`, when it is a whole number from 1 to 10.
    pub fn years(&self) -> Result<u32, Reply> {
        self.get("years")
            .and_then(|y| y.parse::<u32>().ok())
            .filter(|y| (1..=10).contains(y))
            .ok_or_else(|| Reply::new(Code::InvalidYears))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn domain_is_required_and_checked() {
        assert_eq!(params(&[]).domain().unwrap_err().code, Code::MissingParameters);
        assert_eq!(params(&[("domain", "n#mesilo.com")]).domain().unwrap_err().code, Code::InvalidDomainSyntax);
        assert_eq!(params(&[("domain", "A.COM")]).domain().unwrap(), "a.com");
    }

    #[test]
    fn years_are_one_to_ten() {
        for bad in ["", "0", "11", "two", "-1"] {
            assert_eq!(params(&[("years", bad)]).years().unwrap_err().code, Code::InvalidYears);
        }
        assert_eq!(params(&[("years", "10")]).years().unwrap(), 10);
    }

    #[test]
    fn nameservers_keep_their_numbering_order() {
        let p = params(&[("ns2", "b.example.net"), ("ns10", "j.example.net"), ("ns1", "a.example.net"), ("ns3", "")]);
        assert_eq!(p.nameservers(), ["a.example.net", "b.example.net", "j.example.net"]);
    }
}
