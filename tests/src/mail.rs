//! Talking to the testbed's mail-core as a mail client does: IMAP (LOGIN, GETQUOTAROOT, SELECT),
//! SMTP (a message to an address), and `doveadm auth test`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::Testbed;

const TIMEOUT: Duration = Duration::from_secs(10);

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An IMAP session.
pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

/// The answer to one IMAP command.
#[derive(Debug)]
pub struct ImapReply {
    /// Tagged `OK`.
    pub ok: bool,
    /// Every line, the tagged one last.
    pub lines: Vec<String>,
}

impl Imap {
    pub fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to IMAP at {addr}"))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut imap = Self { reader: BufReader::new(stream), writer, tag: 0 };
        let greeting = imap.line()?;
        if !greeting.starts_with("* OK") {
            bail!("IMAP greeting: {greeting}");
        }
        Ok(imap)
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("the IMAP server closed the connection");
        }
        Ok(line.trim_end().to_owned())
    }

    pub fn command(&mut self, command: &str) -> anyhow::Result<ImapReply> {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        write!(self.writer, "{tag} {command}\r\n")?;
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            let done = line.starts_with(&format!("{tag} "));
            let ok = line.starts_with(&format!("{tag} OK"));
            lines.push(line);
            if done {
                return Ok(ImapReply { ok, lines });
            }
        }
    }

    /// A logged-in session, or `None` when the server refuses the credentials.
    pub fn login(addr: &str, user: &str, password: &str) -> anyhow::Result<Option<Self>> {
        let mut imap = Self::connect(addr)?;
        let reply = imap.command(&format!("LOGIN {} {}", quoted(user), quoted(password)))?;
        Ok(reply.ok.then_some(imap))
    }

    /// The storage limit of INBOX's quota root in KiB, as GETQUOTAROOT reports it.
    pub fn quota_kib(&mut self) -> anyhow::Result<Option<u64>> {
        let reply = self.command("GETQUOTAROOT INBOX")?;
        Ok(reply.lines.iter().filter(|l| l.starts_with("* QUOTA ")).find_map(|l| {
            let inner = l.split('(').nth(1)?.trim_end_matches(')');
            let words: Vec<&str> = inner.split_whitespace().collect();
            let at = words.iter().position(|w| w.eq_ignore_ascii_case("STORAGE"))?;
            words.get(at + 2)?.parse().ok()
        }))
    }

    /// How many messages INBOX holds.
    pub fn inbox_count(&mut self) -> anyhow::Result<u64> {
        let reply = self.command("SELECT INBOX")?;
        if !reply.ok {
            bail!("SELECT INBOX: {:?}", reply.lines);
        }
        reply
            .lines
            .iter()
            .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
            .context("no EXISTS in the SELECT answer")
    }
}

impl Imap {
    /// The Subject of message `n` of the selected mailbox.
    pub fn subject(&mut self, n: u32) -> anyhow::Result<Option<String>> {
        let reply = self.command(&format!("FETCH {n} BODY.PEEK[HEADER.FIELDS (SUBJECT)]"))?;
        Ok(reply.lines.iter().find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned)))
    }
}

/// What an SMTP server said to one message.
#[derive(Debug)]
pub struct SmtpOutcome {
    /// Reply code to `RCPT TO`.
    pub rcpt: u16,
    /// Reply code after the message data (0 when the recipient was refused).
    pub data: u16,
}

fn smtp_reply(reader: &mut BufReader<TcpStream>) -> anyhow::Result<(u16, String)> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("the SMTP server closed the connection");
        }
        text.push_str(&line);
        // "250-..." continues, "250 ..." ends
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            let code = line.get(..3).and_then(|c| c.parse().ok()).context("no SMTP reply code")?;
            return Ok((code, text));
        }
    }
}

/// Sends one message from `from` to `to` over SMTP; the recipient's refusal is an outcome, not an error.
pub fn smtp_send(addr: &str, from: &str, to: &str, subject: &str) -> anyhow::Result<SmtpOutcome> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to SMTP at {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut step = |line: Option<&str>, want: u16| -> anyhow::Result<u16> {
        if let Some(line) = line {
            write!(writer, "{line}\r\n")?;
        }
        let (code, text) = smtp_reply(&mut reader)?;
        if want != 0 && code != want {
            bail!("SMTP {line:?}: {text}");
        }
        Ok(code)
    };
    step(None, 220)?;
    step(Some("EHLO tests.mpanel"), 250)?;
    step(Some(&format!("MAIL FROM:<{from}>")), 250)?;
    let rcpt = step(Some(&format!("RCPT TO:<{to}>")), 0)?;
    if rcpt / 100 != 2 {
        let _ = step(Some("QUIT"), 0);
        return Ok(SmtpOutcome { rcpt, data: 0 });
    }
    step(Some("DATA"), 354)?;
    let body = format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello from the mPanel tests.\r\n.");
    let data = step(Some(&body), 0)?;
    let _ = step(Some("QUIT"), 0);
    Ok(SmtpOutcome { rcpt, data })
}

/// Whether Dovecot's passdb accepts `user`/`password` (`doveadm auth test`).
pub fn doveadm_auth(tb: &Testbed, user: &str, password: &str) -> anyhow::Result<bool> {
    let out = Command::new("doveadm")
        .args(["-c", tb.get("DOVECOT_CONF")?, "auth", "test", user, password])
        .output()
        .context("running doveadm")?;
    Ok(out.status.success())
}

/// One answer of mail-core's database to `query` (psql's unaligned rows, `|`-separated, one per
/// line), or `None` when it returned no row.
pub fn mailcore_sql(tb: &Testbed, query: &str) -> anyhow::Result<Option<String>> {
    let out = Command::new("psql")
        .args([tb.get("MAILCORE_DATABASE_URL")?, "-Atc", query])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql {query}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok((!text.is_empty()).then_some(text))
}
