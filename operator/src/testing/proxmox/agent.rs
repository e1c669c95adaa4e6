//! [`GuestAgent`] over the shared state: file writes and commands run in a VM.

use super::*;

impl GuestAgent for FakeProxmox {
    async fn file_write(&self, node: &str, vmid: u32, file: &str, content: &str) -> Result<(), AgentError> {
        let params = BTreeMap::from([("file".to_owned(), file.to_owned())]);
        Ok(self.call("agent_file_write", node, Some(vmid), params, |s| {
            agent_of(s, node, vmid)?.files.insert(file.to_owned(), content.to_owned());
            Ok(())
        })?)
    }

    async fn exec(&self, node: &str, vmid: u32, command: &[String]) -> Result<u64, AgentError> {
        let params = BTreeMap::from([("command".to_owned(), command.join(" "))]);
        Ok(self.call("agent_exec", node, Some(vmid), params, |s| {
            s.next_pid += 1;
            let pid = 1000 + s.next_pid;
            let agent = agent_of(s, node, vmid)?;
            agent.ran.push(command.to_vec());
            agent.pids.insert(pid, command.to_vec());
            Ok(pid)
        })?)
    }

    async fn exec_status(&self, node: &str, vmid: u32, pid: u64) -> Result<ExecStatus, AgentError> {
        let params = BTreeMap::from([("pid".to_owned(), pid.to_string())]);
        Ok(self.call("agent_exec_status", node, Some(vmid), params, |s| {
            let agent = agent_of(s, node, vmid)?;
            let argv = agent.pids.get(&pid).ok_or_else(|| pve("Agent error: Invalid parameter 'pid'"))?;
            Ok(agent.exec.get(&argv.join(" ")).cloned().unwrap_or(ExecStatus {
                exited: true,
                exitcode: Some(0),
                signal: None,
                err_data: None,
            }))
        })?)
    }
}
