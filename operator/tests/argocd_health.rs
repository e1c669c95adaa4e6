//! The Argo CD health script (gitops/argocd/health.lua) run by a Lua 5.1 interpreter, as Argo CD
//! runs it (gopher-lua is a Lua 5.1), on objects as the operator writes them.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::Context;
use serde_json::{Value, json};

/// `value` as a Lua table constructor.
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let fields: Vec<String> = map.iter().map(|(k, v)| format!("[{k:?}] = {}", lua(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// The health Argo CD shows for `object`: (status, message).
fn health(object: &Value) -> anyhow::Result<(String, String)> {
    let script = std::fs::read_to_string(mpanel_tests::repo_root().join("gitops/argocd/health.lua"))?;
    let program = format!(
        "obj = {}\nlocal hs = (function()\n{script}\nend)()\nio.write(hs.status, \"\\t\", hs.message or \"\")\n",
        lua(object)
    );
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running lua5.1 (tests/testbed/install-deps installs it)")?;
    child.stdin.take().context("stdin")?.write_all(program.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "lua5.1 failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout)?;
    let (status, message) = text.split_once('\t').context("status and message")?;
    Ok((status.to_owned(), message.to_owned()))
}

fn object(kind: &str, generation: i64, conditions: Value) -> Value {
    json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": kind,
           "metadata": {"name": "x", "namespace": "customer-acme", "generation": generation},
           "spec": {}, "status": {"phase": "Whatever", "conditions": conditions}})
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": "2026-12-01T10:00:00Z"})
}

#[test]
fn ready_progressing_suspended_and_failed_objects_have_the_health_argo_cd_should_show() -> anyhow::Result<()> {
    let ready = object("DnsZone", 3, json!([condition("Ready", "True", "Programmed", "zone served", 3)]));
    assert_eq!(health(&ready)?.0, "Healthy");

    let older = object("DnsZone", 4, json!([condition("Ready", "True", "Programmed", "zone served", 3)]));
    assert_eq!(health(&older)?, ("Progressing".to_owned(), "the latest spec is not reconciled yet".to_owned()));

    let fresh = json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": "CloudPod",
                       "metadata": {"name": "x", "generation": 1}, "spec": {}});
    assert_eq!(health(&fresh)?.0, "Progressing", "no status yet");

    let issuing = object("Certificate", 1, json!([condition("Ready", "False", "Issuing", "order placed", 1)]));
    assert_eq!(health(&issuing)?, ("Progressing".to_owned(), "Issuing: order placed".to_owned()));

    let failed = object(
        "DnsZone",
        1,
        json!([
            condition("Ready", "False", "PublicSuffix", "zone co.uk is a public suffix", 1),
            condition("Stalled", "True", "PublicSuffix", "zone co.uk is a public suffix", 1),
        ]),
    );
    assert_eq!(health(&failed)?, ("Degraded".to_owned(), "PublicSuffix: zone co.uk is a public suffix".to_owned()));

    let suspended = object(
        "Subscription",
        2,
        json!([
            condition("Ready", "False", "Suspended", "the subscription is suspended", 2),
            condition("Suspended", "True", "Overdue", "suspended (Overdue): CloudPods stopped, Mailboxes disabled", 2),
        ]),
    );
    assert_eq!(health(&suspended)?.0, "Suspended");
    Ok(())
}
