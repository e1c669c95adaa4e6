//! A loopback UDP DNS listener for the reconcilers' unit tests, answering TXT questions from a
//! [`FakePowerDns`]'s rrsets as PowerDNS's own listener answers from its database: the zone the
//! fake holds that is the question's name or its closest parent is authoritative; a TXT rrset at
//! the name is answered (each record's quoted strings as one TXT record), a name the zone has
//! nothing at is NXDOMAIN, and a name outside every zone is REFUSED. Its answers follow the fake at
//! once; [`DnsListener::set_serving`] turns that off, for a listener that lags behind the API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

use super::powerdns::FakePowerDns;
use crate::providers::powerdns::canonical;

/// The listener; it stops when dropped.
pub struct DnsListener {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    serving: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsListener {
    /// Listens on a free loopback port and answers from `dns`. Call inside a Tokio runtime.
    pub async fn start(dns: FakePowerDns) -> Self {
        let socket = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap_or_else(|e| panic!("binding a UDP port: {e}"));
        let addr = socket.local_addr().unwrap_or_else(|e| panic!("the UDP port's address: {e}"));
        let serving = Arc::new(AtomicBool::new(true));
        let on = serving.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
                let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
                let answer = answer(&dns, &query, on.load(Ordering::SeqCst));
                if let Ok(wire) = answer.to_vec() {
                    let _ = socket.send_to(&wire, from).await;
                }
            }
        });
        Self { addr, serving, task }
    }

    /// Whether answers show the fake's records (default); while off, every TXT question is answered
    /// with no records, as by a listener that has not picked up the change yet.
    pub fn set_serving(&self, on: bool) {
        self.serving.store(on, Ordering::SeqCst);
    }
}

impl Drop for DnsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The strings of a PowerDNS TXT content (`"a" "b"`), unquoted.
fn strings(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = content.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

fn answer(dns: &FakePowerDns, query: &Message, serving: bool) -> Message {
    let mut response = Message::response(query.metadata.id, OpCode::Query);
    response.metadata.message_type = MessageType::Response;
    response.metadata.authoritative = true;
    let Some(question) = query.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(question.clone());
    let name = canonical(&question.name().to_ascii().to_ascii_lowercase());
    // the zone PowerDNS answers from: the name itself or its closest parent
    let mut labels = name.as_str();
    let zone = loop {
        if let Some(zone) = dns.zone(labels) {
            break Some(zone);
        }
        match labels.split_once('.') {
            Some((_, rest)) if !rest.is_empty() => labels = rest,
            _ => break None,
        }
    };
    let Some(zone) = zone else {
        response.metadata.response_code = ResponseCode::Refused;
        return response;
    };
    let at_name: Vec<_> = zone.rrsets.iter().filter(|r| r.name == name).collect();
    if at_name.is_empty() {
        response.metadata.response_code = ResponseCode::NXDomain;
        return response;
    }
    if serving && question.query_type() == RecordType::TXT {
        for rrset in at_name.iter().filter(|r| r.rtype == "TXT") {
            for record in &rrset.records {
                let txt = RData::TXT(TXT::new(strings(&record.content)));
                response.add_answer(Record::from_rdata(question.name().clone(), rrset.ttl.unwrap_or(60), txt));
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::providers::dns::txt;
    use crate::providers::powerdns::RrSet;

    #[tokio::test]
    async fn txt_records_of_the_fake_are_served_as_they_change() {
        let dns = FakePowerDns::new();
        dns.insert_zone("example.test.", "u1", vec![]);
        let listener = DnsListener::start(dns.clone()).await;
        let t = Duration::from_secs(2);
        let record = "_acme-challenge.example.test.";
        assert_eq!(txt(listener.addr, record, t).await.unwrap(), Vec::<String>::new(), "NXDOMAIN reads as none");
        dns.edit_rrsets("example.test.", &[RrSet::replace(record, "TXT", 60, ["\"v1\"".into(), "\"a\" \"b\"".into()])]);
        let mut served = txt(listener.addr, record, t).await.unwrap();
        served.sort();
        assert_eq!(served, ["ab", "v1"]);
        listener.set_serving(false);
        assert!(txt(listener.addr, record, t).await.unwrap().is_empty(), "not serving yet");
        listener.set_serving(true);
        dns.edit_rrsets("example.test.", &[RrSet::delete(record, "TXT")]);
        assert!(txt(listener.addr, record, t).await.unwrap().is_empty(), "removed");
        let refused = txt(listener.addr, "_acme-challenge.other.test.", t).await.unwrap_err();
        assert_eq!(refused.reason(), "DnsQueryFailed", "{refused}");
    }
}
