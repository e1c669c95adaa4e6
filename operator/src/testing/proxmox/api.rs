//! [`ProxmoxApi`] over the shared state: nodes, guests, clones, tasks, config, resize, power, destroy.

use super::*;

impl ProxmoxApi for FakeProxmox {
    async fn nodes(&self) -> Result<Vec<Node>, ProxmoxError> {
        self.call("list_nodes", "", None, BTreeMap::new(), |s| Ok(s.nodes.clone()))
    }

    async fn guests(&self) -> Result<Vec<Guest>, ProxmoxError> {
        self.call("list_guests", "", None, BTreeMap::new(), |s| Ok(s.guests.values().map(FakeGuest::listed).collect()))
    }

    async fn clone_guest(
        &self,
        node: &str,
        kind: Kind,
        source: u32,
        newid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<String, ProxmoxError> {
        self.call("clone", node, Some(newid), clone_params(params, newid), |s| {
            let target = params.get("target").cloned().unwrap_or_else(|| node.to_owned());
            if !s.nodes.iter().any(|n| n.node == target) {
                return Err(pve(format!("no such cluster node '{target}'")));
            }
            let template = s.find(node, kind, source)?.clone();
            State::unlocked(&template)?;
            if let Some(taken) = s.guests.get(&newid) {
                return Err(match kind {
                    Kind::Qemu => pve(format!("unable to create VM {newid}: config file already exists")),
                    Kind::Lxc => pve(format!("{} {newid} already exists on node '{}'", what(taken.kind), taken.node)),
                });
            }
            let mut config = template.config.clone();
            config.remove("template");
            config.remove("description");
            config.remove("tags");
            let disk = root_disk(kind);
            if let Some(entry) = template.get(disk) {
                let (storage, rest) = entry.split_once(':').unwrap_or(("local-lvm", entry.as_str()));
                let storage = params.get("storage").map_or(storage, String::as_str);
                let size = rest.split(',').find(|i| i.starts_with("size=")).unwrap_or("size=8G");
                config.insert(disk.into(), Value::from(format!("{storage}:vm-{newid}-disk-0,{size}")));
            }
            for (k, v) in params.iter().filter(|(k, _)| !matches!(k.as_str(), "target" | "storage")) {
                config.insert(k.clone(), config_value(k, v));
            }
            config.insert("lock".into(), Value::from("create"));
            let guest = FakeGuest {
                vmid: newid,
                node: target,
                kind,
                status: "stopped".into(),
                template: false,
                config,
                restored_from: None,
            };
            s.guests.insert(newid, guest);
            s.set_lock(source, Some("clone"));
            let task = match kind {
                Kind::Lxc => "vzclone",
                Kind::Qemu => "qmclone",
            };
            Ok(s.start(node, "clone", task, source, Effect::Clone { source, newid }))
        })
    }

    async fn task(&self, node: &str, upid: &str) -> Result<Task, ProxmoxError> {
        let params = BTreeMap::from([("upid".to_owned(), upid.to_owned())]);
        self.call("task_status", node, None, params, |s| match s.tasks.get(upid) {
            Some((t, _)) => Ok(Task {
                status: if t.exitstatus.is_some() { "stopped" } else { "running" }.into(),
                exitstatus: t.exitstatus.clone(),
            }),
            None => Err(pve(format!("no such task '{upid}'"))),
        })
    }

    async fn config(&self, node: &str, kind: Kind, vmid: u32) -> Result<BTreeMap<String, Value>, ProxmoxError> {
        self.call("get_config", node, Some(vmid), BTreeMap::new(), |s| Ok(s.find(node, kind, vmid)?.config.clone()))
    }

    async fn set_config(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<(), ProxmoxError> {
        self.call("set_config", node, Some(vmid), params.clone(), |s| {
            let guest = s.find_mut(node, kind, vmid)?;
            State::unlocked(guest)?;
            for (k, v) in params.iter().filter(|(k, _)| k.as_str() != "delete") {
                guest.set(k, v);
            }
            for k in params.get("delete").into_iter().flat_map(|d| d.split(',')).filter(|k| !k.is_empty()) {
                guest.config.remove(k.trim());
            }
            Ok(())
        })
    }

    async fn resize(
        &self,
        node: &str,
        kind: Kind,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<Option<String>, ProxmoxError> {
        let params = BTreeMap::from([("disk".to_owned(), disk.to_owned()), ("size".to_owned(), size.to_owned())]);
        self.call("resize", node, Some(vmid), params, |s| {
            let guest = s.find(node, kind, vmid)?;
            State::unlocked(guest)?;
            let Some(entry) = guest.get(disk) else { return Err(pve(format!("disk '{disk}' does not exist"))) };
            let current = entry_gib(&entry).unwrap_or(0);
            let asked = size_gib(size).ok_or_else(|| pve(format!("unable to parse size '{size}'")))?;
            let new = if size.starts_with('+') { current + asked } else { asked };
            if new < current {
                return Err(pve("shrinking disks is not supported"));
            }
            match kind {
                // a VM's disk grows within the request
                Kind::Qemu => {
                    let guest = s.find_mut(node, kind, vmid)?;
                    guest.set(disk, &with_size(&entry, new));
                    Ok(None)
                }
                Kind::Lxc => {
                    let effect = Effect::Resize { vmid, disk: disk.to_owned(), gib: new };
                    Ok(Some(s.start(node, "resize", "resize", vmid, effect)))
                }
            }
        })
    }

    async fn power(&self, node: &str, kind: Kind, vmid: u32, action: &str) -> Result<String, ProxmoxError> {
        let params = BTreeMap::from([("action".to_owned(), action.to_owned())]);
        self.call("power", node, Some(vmid), params, |s| {
            let guest = s.find(node, kind, vmid)?;
            let running = guest.status == "running";
            let who = format!("{} {vmid}", what(kind));
            match action {
                "start" if running => return Err(pve(format!("{who} already running"))),
                "start" if guest.template => {
                    return Err(pve(format!("you can't start a {} if it's a template", what(kind))));
                }
                "start" => State::unlocked(guest)?,
                "stop" | "shutdown" | "reboot" if !running => return Err(pve(format!("{who} not running"))),
                "stop" | "shutdown" | "reboot" => {}
                other => {
                    return Err(ProxmoxError::Rejected {
                        status: 501,
                        message: format!(
                            "Method 'POST /nodes/{node}/{}/{vmid}/status/{other}' not implemented",
                            kind.path()
                        ),
                    });
                }
            }
            let task = match (kind, action) {
                (Kind::Lxc, a) => format!("vz{a}"),
                (Kind::Qemu, a) => format!("qm{a}"),
            };
            Ok(s.start(node, "power", &task, vmid, Effect::Power { vmid, action: action.to_owned() }))
        })
    }

    async fn power_state(&self, node: &str, kind: Kind, vmid: u32) -> Result<String, ProxmoxError> {
        self.call("get_status", node, Some(vmid), BTreeMap::new(), |s| Ok(s.find(node, kind, vmid)?.status.clone()))
    }

    async fn destroy(&self, node: &str, kind: Kind, vmid: u32) -> Result<String, ProxmoxError> {
        self.call("destroy", node, Some(vmid), BTreeMap::new(), |s| {
            let guest = s.find(node, kind, vmid)?;
            if guest.status == "running" {
                return Err(pve(format!("{} {vmid} is running - destroy failed", what(kind))));
            }
            State::unlocked(guest)?;
            s.set_lock(vmid, Some("destroyed"));
            let task = match kind {
                Kind::Lxc => "vzdestroy",
                Kind::Qemu => "qmdestroy",
            };
            Ok(s.start(node, "destroy", task, vmid, Effect::Destroy { vmid }))
        })
    }

    async fn agent_read(&self, node: &str, vmid: u32, command: &str) -> Result<Value, ProxmoxError> {
        let params = BTreeMap::from([("command".to_owned(), command.to_owned())]);
        self.call("agent", node, Some(vmid), params, |s| {
            agent_of(s, node, vmid)?
                .reads
                .get(command)
                .cloned()
                .ok_or_else(|| pve(format!("Agent error: The command {command} has been disabled")))
        })
    }
}
