//! What the scale benches share: their settings from the environment, the operator's `/metrics`
//! read over plain HTTP, and the operator process's peak memory.
// each bench binary uses a part of this module
#![allow(dead_code)]

use std::io::{Read, Write};

use anyhow::Context;

/// The number in the environment variable `key`, or `default`.
pub fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The whole `/metrics` response (headers and body) of the operator listening on `addr`.
pub fn metrics(addr: &str) -> anyhow::Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

/// The sum of the samples of `name` whose line contains every one of `must_contain`.
pub fn metric(text: &str, name: &str, must_contain: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && must_contain.iter().all(|m| l.contains(m)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Peak resident set size of `pid` in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmHWM")?;
    Ok(kib / 1024.0)
}
