//! What a CloudPod's guest should look like in Proxmox, and how an observed guest differs: its
//! config keys, disk size, ownership marks, the node it goes to and the VMID it gets.

use std::collections::{BTreeMap, BTreeSet};

use mpanel_crds::cloudpod::{CloudPodSpec, GuestType, Resources};
use serde_json::Value;

use crate::providers::proxmox::{Guest, Kind, Node};

pub fn kind(spec: &CloudPodSpec) -> Kind {
    match spec.type_ {
        GuestType::Lxc => Kind::Lxc,
        GuestType::Qemu => Kind::Qemu,
    }
}

/// The Proxmox tag that marks a guest as this CloudPod's (tags allow `[a-z0-9_+.-]`).
pub fn tag(uid: &str) -> String {
    format!("mpanel-{}", uid.to_ascii_lowercase())
}

/// The first line of the guest's description: who owns it.
pub fn marker(namespace: &str, name: &str, uid: &str) -> String {
    format!("mpanel CloudPod {namespace}/{name} uid={uid}")
}

/// Whether an observed config carries this CloudPod's tag or description marker.
pub fn is_owned(config: &BTreeMap<String, Value>, uid: &str) -> bool {
    let text = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let tags = text("tags");
    let tagged = tags.split([';', ',', ' ']).any(|t| t == tag(uid));
    tagged || text("description").contains(&format!("uid={uid}"))
}

/// The sizes that apply: `resources`, else the plan's from `plans`.
pub fn resources(spec: &CloudPodSpec, plans: &BTreeMap<String, Resources>) -> Option<Resources> {
    spec.resources.clone().or_else(|| plans.get(&spec.plan).cloned())
}

/// The static address and gateway of the guest: the spec's, or the one given out from its pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4 {
    /// With the prefix length, e.g. `203.0.113.10/24`.
    pub cidr: String,
    pub gateway: String,
}

/// The first address of `pool` that `taken` does not hold.
pub fn free_address(pool: &crate::config::IpPool, taken: &BTreeSet<String>) -> Option<Ipv4> {
    let (first, last) = (u32::from(pool.first), u32::from(pool.last));
    (first..=last)
        .map(std::net::Ipv4Addr::from)
        .find(|a| !taken.contains(&a.to_string()))
        .map(|a| Ipv4 { cidr: format!("{a}/{}", pool.prefix), gateway: pool.gateway.to_string() })
}

/// The config keys this CloudPod sets, with `size` from [`resources`], its address, and the
/// `cicustom` volume of its user data snippet, if it has one.
pub fn desired(
    spec: &CloudPodSpec,
    size: &Resources,
    ipv4: Option<&Ipv4>,
    cicustom: Option<&str>,
    (namespace, name, uid): (&str, &str, &str),
) -> BTreeMap<String, String> {
    let mut c = BTreeMap::new();
    c.insert("cores".into(), size.cores.to_string());
    c.insert("memory".into(), size.memory_mib.to_string());
    c.insert("description".into(), marker(namespace, name, uid));
    c.insert("tags".into(), tag(uid));
    let vlan = spec.network.vlan.map(|v| format!(",tag={v}")).unwrap_or_default();
    let ip = match ipv4 {
        Some(Ipv4 { cidr, gateway }) => format!("ip={cidr},gw={gateway}"),
        None => "ip=dhcp".to_owned(),
    };
    if let Some(dns) = &spec.network.dns {
        // both kinds take space-separated lists
        if !dns.nameservers.is_empty() {
            c.insert("nameserver".into(), dns.nameservers.join(" "));
        }
        if !dns.search_domains.is_empty() {
            c.insert("searchdomain".into(), dns.search_domains.join(" "));
        }
    }
    match spec.type_ {
        GuestType::Lxc => {
            c.insert("hostname".into(), spec.hostname.clone());
            c.insert("net0".into(), format!("name=eth0,bridge={}{vlan},{ip}", spec.network.bridge));
        }
        GuestType::Qemu => {
            c.insert("name".into(), spec.hostname.clone());
            c.insert("net0".into(), format!("virtio,bridge={}{vlan}", spec.network.bridge));
            c.insert("ipconfig0".into(), ip);
            if !spec.ssh_keys.is_empty() {
                // cloud-init wants the keys URL-encoded, one per line
                c.insert("sshkeys".into(), urlencode(&spec.ssh_keys.join("\n")));
            }
            if let Some(user) = &spec.default_user {
                c.insert("ciuser".into(), user.clone());
            }
            if let Some(volume) = cicustom {
                c.insert("cicustom".into(), format!("user={volume}"));
            }
        }
    }
    c
}

/// The config keys a spec may ask for and later stop asking for (DNS and cloud-init).
const OPTIONAL_KEYS: [&str; 5] = ["nameserver", "searchdomain", "sshkeys", "ciuser", "cicustom"];

/// The optional keys `want` sets: the ones the operator answers for on the guest.
pub fn optional_keys(want: &BTreeMap<String, String>) -> Vec<String> {
    OPTIONAL_KEYS.iter().filter(|k| want.contains_key(**k)).map(|k| (*k).to_owned()).collect()
}

/// Keys the operator wrote before (`written`) that the spec no longer asks for and the guest still
/// has: to delete. A key the operator never wrote (the template's own) is never among them.
pub fn removals(written: &[String], want: &BTreeMap<String, String>, have: &BTreeMap<String, Value>) -> Vec<String> {
    written
        .iter()
        .filter(|k| OPTIONAL_KEYS.contains(&k.as_str()) && !want.contains_key(*k) && have.contains_key(*k))
        .cloned()
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `k=v` items of a Proxmox property string; an item without `=` (a NIC model) keeps its key only.
fn items(s: &str) -> BTreeMap<String, Option<String>> {
    s.split(',')
        .filter(|i| !i.is_empty())
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (i.to_owned(), None),
        })
        .collect()
}

/// Whether the observed value has what the desired one asks for. Property strings compare item by
/// item (Proxmox adds `hwaddr`, `type`, a MAC after the model); tags compare as a set.
fn satisfies(key: &str, want: &str, have: &str) -> bool {
    match key {
        "net0" | "ipconfig0" => {
            let have = items(have);
            items(want).iter().all(|(k, v)| match (v, have.get(k)) {
                (None, Some(_)) => true,
                (Some(v), Some(Some(h))) => v.eq_ignore_ascii_case(h),
                _ => false,
            })
        }
        "tags" => {
            let have: BTreeSet<&str> = have.split([';', ',', ' ']).filter(|t| !t.is_empty()).collect();
            want.split(';').all(|t| have.contains(t))
        }
        "description" => have.lines().next().unwrap_or_default().trim() == want,
        "sshkeys" => have.replace("%0A", "\n").replace("%0a", "\n") == want.replace("%0A", "\n"),
        _ => want == have,
    }
}

/// The desired keys whose observed value differs, with the value to write.
pub fn differences(want: &BTreeMap<String, String>, have: &BTreeMap<String, Value>) -> BTreeMap<String, String> {
    want.iter()
        .filter(|(k, v)| !have.get(*k).map(text).is_some_and(|h| satisfies(k, v, &h)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The root disk's config key.
pub fn root_disk(kind: Kind) -> &'static str {
    match kind {
        Kind::Lxc => "rootfs",
        Kind::Qemu => "scsi0",
    }
}

/// The size in GiB of the disk in `config[key]` (`…,size=8G`), rounded up.
pub fn disk_gib(config: &BTreeMap<String, Value>, key: &str) -> Option<u64> {
    size_gib(&items(&text(config.get(key)?)).get("size")?.clone()?)
}

/// A Proxmox size (`8G`, `512M`, `1T`, `+10G`; no unit is GiB) in GiB, rounded up; `None` when
/// unreadable.
pub fn size_gib(size: &str) -> Option<u64> {
    let size = size.trim_start_matches('+');
    let (number, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(size.len()));
    let n: f64 = number.parse().ok()?;
    let gib = match unit {
        "T" => n * 1024.0,
        "G" | "" => n,
        "M" => n / 1024.0,
        "K" => n / (1024.0 * 1024.0),
        _ => return None,
    };
    Some(gib.ceil() as u64)
}

/// The template: a VMID, or the name of a template guest.
pub fn template<'a>(guests: &'a [Guest], template: &str, kind: Kind) -> Option<&'a Guest> {
    guests.iter().filter(|g| g.template && g.kind == kind).find(|g| match template.parse::<u32>() {
        Ok(id) => g.vmid == id,
        Err(_) => g.name == template,
    })
}

/// Of the online nodes (limited to `allowed` when not empty), the one with the most free memory.
pub fn place<'a>(nodes: &'a [Node], allowed: &[String]) -> Option<&'a Node> {
    nodes
        .iter()
        .filter(|n| n.status.is_empty() || n.status == "online")
        .filter(|n| allowed.is_empty() || allowed.contains(&n.node))
        .max_by_key(|n| (n.maxmem.saturating_sub(n.mem), std::cmp::Reverse(n.node.clone())))
}

/// The first VMID of `first..=last` that no guest has and `taken` does not hold.
pub fn free_vmid(first: u32, last: u32, guests: &[Guest], taken: &BTreeSet<u32>) -> Option<u32> {
    let used: BTreeSet<u32> = guests.iter().map(|g| g.vmid).collect();
    (first..=last).find(|id| !used.contains(id) && !taken.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(type_: &str) -> CloudPodSpec {
        serde_json::from_value(serde_json::json!({
            "plan": "pro", "type": type_, "template": "100", "hostname": "web-1",
            "resources": {"cores": 2, "memoryMiB": 2048, "diskGiB": 50},
            "network": {"bridge": "vmbr0", "vlan": 5, "ipv4": {"address": "203.0.113.10/24", "gateway": "203.0.113.1"}}
        }))
        .unwrap()
    }

    fn ip() -> Ipv4 {
        Ipv4 { cidr: "203.0.113.10/24".into(), gateway: "203.0.113.1".into() }
    }

    #[test]
    fn a_pool_gives_out_its_first_free_address() {
        let pool = crate::config::IpPool {
            first: "198.51.100.10".parse().unwrap(),
            last: "198.51.100.11".parse().unwrap(),
            prefix: 24,
            gateway: "198.51.100.1".parse().unwrap(),
        };
        let taken = BTreeSet::from(["198.51.100.10".to_owned()]);
        assert_eq!(free_address(&pool, &taken).unwrap().cidr, "198.51.100.11/24");
        let full = BTreeSet::from(["198.51.100.10".to_owned(), "198.51.100.11".to_owned()]);
        assert_eq!(free_address(&pool, &full), None);
    }

    fn observed(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn an_lxc_guest_gets_its_size_name_network_and_marks() {
        let s = spec("lxc");
        let want = desired(&s, s.resources.as_ref().unwrap(), Some(&ip()), None, ("ns", "web", "UID-1"));
        assert_eq!(want["cores"], "2");
        assert_eq!(want["memory"], "2048");
        assert_eq!(want["hostname"], "web-1");
        assert_eq!(want["net0"], "name=eth0,bridge=vmbr0,tag=5,ip=203.0.113.10/24,gw=203.0.113.1");
        assert_eq!(want["tags"], "mpanel-uid-1");
        let q = spec("qemu");
        let q = desired(&q, q.resources.as_ref().unwrap(), Some(&ip()), None, ("ns", "web", "u"));
        assert_eq!((q["name"].as_str(), q["ipconfig0"].as_str()), ("web-1", "ip=203.0.113.10/24,gw=203.0.113.1"));
    }

    #[test]
    fn a_vm_gets_its_cloud_init_user_keys_dns_and_user_data_and_a_container_its_dns() {
        let mut q = spec("qemu");
        q.default_user = Some("deploy".into());
        q.ssh_keys = vec!["ssh-ed25519 AAAA a@b c".into(), "ssh-rsa BBBB+/=".into()];
        q.network.dns = Some(mpanel_crds::cloudpod::Dns {
            nameservers: vec!["1.1.1.1".into(), "9.9.9.9".into()],
            search_domains: vec!["example.net".into()],
        });
        let want =
            desired(&q, q.resources.as_ref().unwrap(), Some(&ip()), Some("snip:snippets/u.yaml"), ("n", "w", "u"));
        assert_eq!(want["ciuser"], "deploy");
        assert_eq!(want["sshkeys"], "ssh-ed25519%20AAAA%20a%40b%20c%0Assh-rsa%20BBBB%2B%2F%3D");
        assert_eq!(want["nameserver"], "1.1.1.1 9.9.9.9");
        assert_eq!(want["searchdomain"], "example.net");
        assert_eq!(want["cicustom"], "user=snip:snippets/u.yaml");
        let mut c = q.clone();
        c.type_ = GuestType::Lxc;
        let want = desired(&c, c.resources.as_ref().unwrap(), Some(&ip()), None, ("n", "w", "u"));
        assert_eq!((want["nameserver"].as_str(), want["searchdomain"].as_str()), ("1.1.1.1 9.9.9.9", "example.net"));
        assert!(!want.contains_key("ciuser") && !want.contains_key("sshkeys") && !want.contains_key("cicustom"));
    }

    #[test]
    fn what_proxmox_adds_is_not_a_difference_but_a_changed_value_is() {
        let s = spec("lxc");
        let want = desired(&s, s.resources.as_ref().unwrap(), Some(&ip()), None, ("ns", "web", "u1"));
        let have = observed(&[
            ("cores", Value::from(2)),
            ("memory", Value::from(2048)),
            ("hostname", Value::from("web-1")),
            (
                "net0",
                Value::from(
                    "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=203.0.113.10/24,gw=203.0.113.1,tag=5,type=veth",
                ),
            ),
            ("tags", Value::from("mpanel-u1;other")),
            ("description", Value::from("mpanel CloudPod ns/web uid=u1\nnotes")),
        ]);
        assert!(differences(&want, &have).is_empty(), "{:?}", differences(&want, &have));
        assert!(is_owned(&have, "u1"));
        assert!(!is_owned(&have, "u2"));
        let mut drifted = have.clone();
        drifted.insert("cores".into(), Value::from(1));
        assert_eq!(differences(&want, &drifted).keys().collect::<Vec<_>>(), ["cores"]);
    }

    #[test]
    fn explicit_resources_override_the_plan() {
        let plans = BTreeMap::from([("pro".to_owned(), Resources { cores: 2, memory_mib: 2048, disk_gib: 50 })]);
        let mut s = spec("lxc");
        assert_eq!(resources(&s, &plans).unwrap().disk_gib, 50, "explicit");
        s.resources = None;
        assert_eq!(resources(&s, &plans), plans.get("pro").cloned(), "the plan's");
        s.plan = "custom".into();
        assert_eq!(resources(&s, &plans), None);
    }

    #[test]
    fn disk_sizes_are_read_in_gib() {
        let c = observed(&[
            ("rootfs", Value::from("local-lvm:vm-101-disk-0,size=8G")),
            ("scsi0", Value::from("local-lvm:vm-1-disk-0,size=512M")),
        ]);
        assert_eq!(disk_gib(&c, "rootfs"), Some(8));
        assert_eq!(disk_gib(&c, "scsi0"), Some(1));
        assert_eq!(disk_gib(&c, "mp0"), None);
    }

    #[test]
    fn placement_takes_the_node_with_most_free_memory_and_vmids_skip_what_is_taken() {
        let node = |n: &str, maxmem, mem| Node { node: n.into(), status: "online".into(), maxmem, mem };
        let nodes = [node("pve1", 100, 90), node("pve2", 100, 20)];
        assert_eq!(place(&nodes, &[]).unwrap().node, "pve2");
        assert_eq!(place(&nodes, &["pve1".into()]).unwrap().node, "pve1");
        let guest = |vmid| Guest {
            vmid,
            node: "pve1".into(),
            kind: Kind::Lxc,
            name: String::new(),
            status: String::new(),
            template: false,
            tags: String::new(),
        };
        assert_eq!(free_vmid(1000, 1003, &[guest(1000)], &BTreeSet::from([1001])), Some(1002));
        assert_eq!(free_vmid(1000, 1000, &[guest(1000)], &BTreeSet::new()), None);
    }
}
