//! A Stripe front before stripe-mock, for what stripe-mock cannot play: a bank that declines a card
//! or wants the customer (3-D Secure). It keeps every request the bridge sent and answers each as
//! the test's rule says: a card decline, or stripe-mock's own answer (a PaymentIntent's status
//! set as the rule asks).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mpanel_tests::Testbed;
use serde_json::{Value, json};

/// How the front answers a request.
pub enum Answer {
    /// A `card_error` with this decline code and message (HTTP 402).
    Decline { decline_code: &'static str, message: &'static str },
    /// stripe-mock's answer; a created PaymentIntent's status replaced when given.
    Mock { payment_intent_status: Option<&'static str> },
}

pub struct StripeFront {
    /// Where to point the bridge's (or a `StripeClient`'s) API base.
    pub base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl StripeFront {
    /// Starts a front answering the `n`th request (from 1) as `rule(n, request)` says.
    pub fn start(tb: &Testbed, rule: impl Fn(usize, &str) -> Answer + Send + 'static) -> anyhow::Result<Self> {
        let stripe_mock = tb.get("STRIPE_API_BASE")?.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let Ok(request) = read_request(&mut conn) else { continue };
                let n = kept.lock().map(|mut k| {
                    k.push(request.clone());
                    k.len()
                });
                let answered = match rule(n.unwrap_or(0), &request) {
                    Answer::Decline { decline_code, message } => {
                        let body = json!({"error": {"type": "card_error", "code": "card_declined",
                                                    "decline_code": decline_code, "message": message}});
                        respond(&mut conn, "402 Payment Required", &body.to_string())
                    }
                    Answer::Mock { payment_intent_status } => {
                        from_stripe_mock(&stripe_mock, &request).and_then(|(status, mut body)| {
                            if let (Some(set), true) =
                                (payment_intent_status, request.starts_with("POST /v1/payment_intents "))
                            {
                                body["status"] = json!(set);
                            }
                            respond(&mut conn, &status, &body.to_string())
                        })
                    }
                };
                if let Err(e) = answered {
                    eprintln!("the Stripe front: {e}");
                }
            }
        });
        Ok(Self { base, requests })
    }

    /// Every request so far, as it came.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The requests to `path` so far, form fields percent-decoded.
    pub fn requests_to(&self, path: &str) -> Vec<String> {
        let prefix = format!("POST {path} ");
        self.requests().into_iter().filter(|r| r.starts_with(&prefix)).map(|r| percent_decoded(&r)).collect()
    }
}

fn read_request(conn: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let length = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
        .transpose()?
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body)?;
    Ok(text + &String::from_utf8_lossy(&body))
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) -> anyhow::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

/// stripe-mock's answer to `request` (sent as it came): its status and its body as JSON.
fn from_stripe_mock(stripe_mock: &str, request: &str) -> anyhow::Result<(String, Value)> {
    let mut upstream = TcpStream::connect(stripe_mock)?;
    // HTTP/1.0: the answer comes whole, not in chunks
    let request =
        request.replacen(" HTTP/1.1\r\n", " HTTP/1.0\r\n", 1).replacen("\r\n\r\n", "\r\nconnection: close\r\n\r\n", 1);
    upstream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    upstream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
    let status = head.lines().next().and_then(|l| l.split_once(' ')).map(|(_, s)| s.to_owned()).unwrap_or_default();
    Ok((status, serde_json::from_str(body)?))
}

fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
