//! The testbed's capture maildir (`MAIL_CAPTURE_DIR`), where its Postfix delivers every mail the
//! bridge sends: the mails of a recipient, as a reader sees them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mpanel_tests::Testbed;

use super::{Bridge, eventually};

/// One captured mail, as Postfix delivered it to the capture maildir.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: PathBuf,
    /// Header names in lower case, values unfolded.
    pub headers: BTreeMap<String, String>,
    /// The whole message with quoted-printable soft breaks and `=3D` undone: what a reader sees.
    pub text: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }

    /// The text with each base64 part (a receipt's invoice PDF) decoded in its place: a search of
    /// it misses nothing the mail carries.
    pub fn decoded(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut lines = self.text.lines();
        while let Some(line) = lines.next() {
            out.push_str(line);
            out.push('\n');
            if !line.eq_ignore_ascii_case("content-transfer-encoding: base64") {
                continue;
            }
            for header in lines.by_ref() {
                if header.is_empty() {
                    break;
                }
            }
            // up to the next boundary (base64 has no '-'; the undoing of quoted-printable took the
            // last line's break and a padding '=' with it)
            let mut encoded = String::new();
            for body in lines.by_ref() {
                match body.split_once("--") {
                    Some((last, _)) => {
                        encoded.push_str(last);
                        break;
                    }
                    None => encoded.push_str(body),
                }
            }
            while !encoded.len().is_multiple_of(4) {
                encoded.push('=');
            }
            out.push_str(&String::from_utf8_lossy(&base64_decode(&encoded)?));
            out.push('\n');
        }
        Ok(out)
    }
}

fn base64_decode(encoded: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut decoder = Command::new("base64").arg("-d").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    decoder.stdin.take().context("base64's stdin")?.write_all(encoded.as_bytes())?;
    let out = decoder.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "base64 -d refused {encoded:?}");
    Ok(out.stdout)
}

fn parse(file: &Path) -> anyhow::Result<Mail> {
    let raw = std::fs::read_to_string(file)?.replace("\r\n", "\n");
    let head = raw.split("\n\n").next().unwrap_or_default();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut last = String::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = headers.get_mut(&last) {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            last = name.trim().to_ascii_lowercase();
            // the first of a repeated header (Received) is enough here
            headers.entry(last.clone()).or_insert_with(|| value.trim().to_owned());
        }
    }
    let text = raw.replace("=\n", "").replace("=3D", "=");
    Ok(Mail { file: file.to_owned(), headers, text })
}

/// The capture maildir of the testbed's Postfix.
pub struct Capture {
    dir: PathBuf,
}

impl Capture {
    pub fn new(tb: &Testbed) -> anyhow::Result<Self> {
        Ok(Self { dir: PathBuf::from(tb.get("MAIL_CAPTURE_DIR")?) })
    }

    /// Every captured mail delivered to `recipient` (other tests' mail is in the same maildir).
    pub fn to(&self, recipient: &str) -> anyhow::Result<Vec<Mail>> {
        let mut mails = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) else { continue };
            for entry in entries {
                // another test may have removed its mail since the listing
                let Ok(mail) = parse(&entry?.path()) else { continue };
                if mail.header("delivered-to").eq_ignore_ascii_case(recipient) {
                    mails.push(mail);
                }
            }
        }
        Ok(mails)
    }

    /// The subjects of `recipient`'s mails, sorted.
    pub fn subjects(&self, recipient: &str) -> anyhow::Result<Vec<String>> {
        let mut subjects: Vec<String> = self.to(recipient)?.iter().map(|m| m.header("subject").to_owned()).collect();
        subjects.sort();
        Ok(subjects)
    }

    /// Waits until `recipient` has at least `n` mails; their sorted subjects then.
    pub fn wait_for(&self, recipient: &str, n: usize, bridge: &Bridge) -> anyhow::Result<Vec<String>> {
        let mut subjects = Vec::new();
        let arrived = eventually(Duration::from_secs(40), || {
            subjects = self.subjects(recipient)?;
            Ok(subjects.len() >= n)
        })?;
        assert!(arrived, "{recipient} got {subjects:?}, not {n} mails: {}", bridge.log_tail(30));
        Ok(subjects)
    }

    pub fn forget(&self, recipient: &str) -> anyhow::Result<()> {
        for mail in self.to(recipient)? {
            std::fs::remove_file(mail.file)?;
        }
        Ok(())
    }
}
