//! Asks one DNS server directly (no resolver, no cache), as a CA's validator will: used to see
//! that a DNS-01 TXT record is served by our authoritative PowerDNS before the CA is told to look.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use mpanel_crds::reasons;
use tokio::net::UdpSocket;

#[derive(Debug, thiserror::Error)]
pub enum DnsQueryError {
    #[error("{0} is not a DNS name")]
    BadName(String),
    #[error("DNS server {server} could not be asked: {message}")]
    Unreachable { server: SocketAddr, message: String },
    #[error("DNS server {server} did not answer within {timeout:?}")]
    Timeout { server: SocketAddr, timeout: Duration },
    #[error("DNS server {server} answered {rcode} for {name}")]
    Failed { server: SocketAddr, name: String, rcode: String },
}

impl DnsQueryError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadName(_) => reasons::INVALID_DNS_NAME.name,
            Self::Unreachable { .. } | Self::Timeout { .. } => reasons::DNS_SERVER_UNREACHABLE.name,
            Self::Failed { .. } => reasons::DNS_QUERY_FAILED.name,
        }
    }
}

/// The TXT strings `server` serves for `name` (each record's strings joined); empty for NXDOMAIN
/// or no TXT data.
pub async fn txt(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<String>, DnsQueryError> {
    let qname = Name::from_ascii(name).map_err(|_| DnsQueryError::BadName(name.to_owned()))?;
    let mut query = Message::query();
    query.metadata.recursion_desired = false;
    query.add_query(Query::query(qname, RecordType::TXT));
    let id = query.metadata.id;
    let wire = query.to_vec().map_err(|e| DnsQueryError::BadName(format!("{name}: {e}")))?;
    let unreachable = |e: std::io::Error| DnsQueryError::Unreachable { server, message: e.to_string() };

    let exchange = async {
        let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(bind).await.map_err(unreachable)?;
        socket.connect(server).await.map_err(unreachable)?;
        socket.send(&wire).await.map_err(unreachable)?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).await.map_err(unreachable)?;
            // a stray datagram (an earlier, timed-out answer) is not ours
            if let Ok(answer) = Message::from_vec(&buf[..n])
                && answer.metadata.id == id
                && answer.metadata.message_type == MessageType::Response
                && answer.metadata.op_code == OpCode::Query
            {
                return Ok(answer);
            }
        }
    };
    let answer =
        tokio::time::timeout(timeout, exchange).await.map_err(|_| DnsQueryError::Timeout { server, timeout })??;
    match answer.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        other => return Err(DnsQueryError::Failed { server, name: name.to_owned(), rcode: other.to_string() }),
    }
    Ok(answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => {
                Some(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<String>())
            }
            _ => None,
        })
        .collect())
}
