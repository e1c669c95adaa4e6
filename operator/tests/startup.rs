//! The operator binary against the testbed's real API server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mpanel_tests::Testbed;

/// Status code of `GET path` on `addr`, if the server answered.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[test]
fn operator_becomes_ready_against_the_api_server_and_stops_on_sigterm() -> anyhow::Result<()> {
    let tb = Testbed::from_env()?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut operator = Command::new(env!("CARGO_BIN_EXE_mpanel-operator"))
        .args(["run", "--health-addr", &addr])
        .env("KUBECONFIG", tb.get("KUBECONFIG")?)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mpanel-operator")?;

    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if http_status(&addr, "/readyz") == Some(200) {
            break true;
        }
        if Instant::now() > deadline || operator.try_wait()?.is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let healthz = http_status(&addr, "/healthz");

    // stop it by pid, whatever happened above
    let _ = Command::new("kill").args(["-TERM", &operator.id().to_string()]).status();
    let stopped_at = Instant::now();
    let out = operator.wait_with_output()?;
    let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !ready {
        bail!("the operator never answered /readyz with 200; its output:\n{logs}");
    }
    assert_eq!(healthz, Some(200), "{logs}");
    assert!(out.status.success(), "exit status {:?} after SIGTERM:\n{logs}", out.status);
    assert!(stopped_at.elapsed() < Duration::from_secs(10), "shutdown took {:?}", stopped_at.elapsed());
    assert!(logs.contains("\"operator ready\""), "the JSON log lacks the ready line:\n{logs}");
    Ok(())
}

#[test]
fn operator_describes_its_commands_in_help() -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_mpanel-operator")).arg("--help").output()?;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && help.contains("run") && help.contains("controllers"), "{help}");
    Ok(())
}
