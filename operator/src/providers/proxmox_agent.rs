//! The QEMU guest agent through the Proxmox VE API: write a file in a guest, run a command there
//! and read how it exited (`/nodes/{node}/qemu/{vmid}/agent/…`).
//!
//! Only QEMU guests have an agent. Proxmox answers 500 when the agent is not configured, not
//! running or not answering; [`AgentError::NotRunning`] tells that apart from its other errors.

use std::future::Future;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::proxmox::{Proxmox, ProxmoxError};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Proxmox could not reach the guest's agent; its own words.
    #[error("{0}")]
    NotRunning(String),
    /// The command exited non-zero (or was killed by a signal).
    #[error("{command:?} exited {exit}: {stderr}")]
    CommandFailed { command: Vec<String>, exit: String, stderr: String },
    /// The command was still running when we stopped asking.
    #[error("{command:?} still runs after {waited:?}")]
    CommandTimedOut { command: Vec<String>, waited: Duration },
    #[error(transparent)]
    Proxmox(ProxmoxError),
}

impl From<ProxmoxError> for AgentError {
    fn from(e: ProxmoxError) -> Self {
        match e {
            ProxmoxError::Rejected { status: 500, message } if agent_unreachable(&message) => Self::NotRunning(message),
            other => Self::Proxmox(other),
        }
    }
}

/// Proxmox's words for an agent it cannot talk to: "QEMU guest agent is not running", "No QEMU
/// guest agent configured", "VM 101 qmp command 'guest-ping' failed - got timeout".
fn agent_unreachable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("guest agent") || m.contains("got timeout")
}

/// How a command run by the agent is doing, as `agent/exec-status` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ExecStatus {
    pub exited: bool,
    #[serde(default)]
    pub exitcode: Option<i64>,
    #[serde(default)]
    pub signal: Option<i64>,
    #[serde(default, rename = "err-data")]
    pub err_data: Option<String>,
}

/// The guest agent calls delivery needs.
pub trait GuestAgent: Send + Sync {
    /// Writes `content` (text) to `file` in the guest, replacing what is there.
    fn file_write(
        &self,
        node: &str,
        vmid: u32,
        file: &str,
        content: &str,
    ) -> impl Future<Output = Result<(), AgentError>> + Send;
    /// Starts `command` (argv, no shell) in the guest; returns its pid.
    fn exec(&self, node: &str, vmid: u32, command: &[String]) -> impl Future<Output = Result<u64, AgentError>> + Send;
    fn exec_status(
        &self,
        node: &str,
        vmid: u32,
        pid: u64,
    ) -> impl Future<Output = Result<ExecStatus, AgentError>> + Send;
}

impl GuestAgent for Proxmox {
    async fn file_write(&self, node: &str, vmid: u32, file: &str, content: &str) -> Result<(), AgentError> {
        let path = format!("/nodes/{node}/qemu/{vmid}/agent/file-write");
        let body = json!({"file": file, "content": content});
        self.send("agent_file_write", Method::POST, &path, Some(body)).await?;
        Ok(())
    }

    async fn exec(&self, node: &str, vmid: u32, command: &[String]) -> Result<u64, AgentError> {
        #[derive(Deserialize)]
        struct Started {
            pid: u64,
        }
        let path = format!("/nodes/{node}/qemu/{vmid}/agent/exec");
        let started = self.send("agent_exec", Method::POST, &path, Some(json!({"command": command}))).await?;
        Ok(Proxmox::decode::<Started>(started)?.pid)
    }

    async fn exec_status(&self, node: &str, vmid: u32, pid: u64) -> Result<ExecStatus, AgentError> {
        let path = format!("/nodes/{node}/qemu/{vmid}/agent/exec-status?pid={pid}");
        Ok(Proxmox::decode(self.send("agent_exec_status", Method::GET, &path, None).await?)?)
    }
}

/// Runs `command` in the guest and waits (polling `exec-status`, at most `limit`) for it to exit 0.
pub async fn run<A: GuestAgent>(
    agent: &A,
    node: &str,
    vmid: u32,
    command: &[String],
    limit: Duration,
) -> Result<(), AgentError> {
    let pid = agent.exec(node, vmid, command).await?;
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let status = agent.exec_status(node, vmid, pid).await?;
        if status.exited {
            return match (status.exitcode, status.signal) {
                (Some(0), None) => Ok(()),
                (code, signal) => Err(AgentError::CommandFailed {
                    command: command.to_vec(),
                    exit: match (code, signal) {
                        (_, Some(s)) => format!("on signal {s}"),
                        (Some(c), None) => c.to_string(),
                        (None, None) => "without an exit code".to_owned(),
                    },
                    // enough to say why, short enough for a condition
                    stderr: status.err_data.unwrap_or_default().trim().chars().take(1000).collect(),
                }),
            };
        }
        if started.elapsed() >= limit {
            return Err(AgentError::CommandTimedOut { command: command.to_vec(), waited: limit });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_proxmox_cannot_reach_is_told_apart_from_other_errors() {
        let rejected = |status, m: &str| AgentError::from(ProxmoxError::Rejected { status, message: m.into() });
        assert!(matches!(rejected(500, "QEMU guest agent is not running"), AgentError::NotRunning(_)));
        assert!(matches!(rejected(500, "No QEMU guest agent configured"), AgentError::NotRunning(_)));
        assert!(matches!(
            rejected(500, "VM 101 qmp command 'guest-ping' failed - got timeout"),
            AgentError::NotRunning(_)
        ));
        assert!(matches!(rejected(500, "open: No such file or directory"), AgentError::Proxmox(_)));
        assert!(matches!(rejected(403, "Permission check failed"), AgentError::Proxmox(_)));
    }
}
