//! The testbed scripts themselves: `up` reuses what runs (Kubernetes, PostgreSQL, PowerDNS), and fails
//! loudly when a component does not come up.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use mpanel_tests::{Testbed, repo_root};

fn script(name: &str) -> Command {
    Command::new(repo_root().join("tests/testbed").join(name))
}

#[test]
fn up_again_reuses_the_running_control_plane() -> anyhow::Result<()> {
    let before = Testbed::from_env()?;
    let out = script("up").output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for component in ["control plane", "PostgreSQL", "PowerDNS"] {
        assert!(stderr.contains(&format!("{component} already running; reusing it")), "{stderr}");
    }
    let after = Testbed::from_env()?;
    for key in ["KUBECONFIG", "PG_URL", "PDNS_API_URL", "PDNS_API_KEY", "PDNS_DNS_ADDR"] {
        assert_eq!(before.get(key)?, after.get(key)?, "{key} changed");
    }
    let kubeconfig = std::fs::read_to_string(after.get("KUBECONFIG")?)?;
    after.kubectl_ok(&["get", "crd", "cloudpods.mpanel.migrahosting.com"], None)?;
    assert!(kubeconfig.contains("https://127.0.0.1:"), "{kubeconfig}");
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[test]
fn up_fails_at_once_with_the_log_tail_when_the_apiserver_dies() -> anyhow::Result<()> {
    let real = Testbed::from_env()?;
    let real_bin = Path::new(real.get("KUBECTL")?).canonicalize()?;
    let real_bin = real_bin.parent().unwrap_or(Path::new("/"));
    let real_helm = Path::new(real.get("HELM")?).canonicalize()?;

    // binaries where kube-apiserver refuses to start; everything else is the real thing
    let scratch = std::env::temp_dir().join(format!("mpanel-testbed-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin)?;
    for tool in ["etcd", "kubectl", "kube-controller-manager"] {
        std::os::unix::fs::symlink(real_bin.join(tool), bin.join(tool))?;
    }
    write_executable(
        &bin.join("kube-apiserver"),
        "#!/bin/sh\necho 'E1123 invalid flag: the testbed broke me' >&2\nexit 1\n",
    )?;
    let run = |name: &str| {
        script(name)
            .env("MPANEL_K8S_BIN", &bin)
            .env("MPANEL_HELM_DIR", real_helm.parent().unwrap_or(Path::new("/")))
            .env("TESTBED_DIR", scratch.join("testbed"))
            .output()
    };

    let started = std::time::Instant::now();
    let out = run("up")?;
    // stop the etcd it started, by pid, before asserting anything
    let down = run("down")?;
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert!(!out.status.success(), "up succeeded with a broken kube-apiserver:\n{stderr}");
    assert!(stderr.contains("kube-apiserver exited while waiting for kube-apiserver /readyz"), "{stderr}");
    assert!(stderr.contains("E1123 invalid flag: the testbed broke me"), "the log tail is missing:\n{stderr}");
    assert!(started.elapsed().as_secs() < 60, "up took {:?} to notice", started.elapsed());
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!scratch.join("testbed/etcd.pid").exists(), "down left etcd running");
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

#[test]
fn up_works_inside_a_directory_other_users_cannot_enter() -> anyhow::Result<()> {
    // a checkout in `mktemp -d` is mode 0700: PostgreSQL, which runs as its own user, must still start
    let outer = std::env::temp_dir().join(format!("mpanel-testbed-private-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&outer);
    std::fs::create_dir_all(&outer)?;
    std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o700))?;
    let testbed = outer.join("testbed");
    let run = |name: &str| script(name).env("TESTBED_DIR", &testbed).output();

    let up = run("up")?;
    let env = std::fs::read_to_string(testbed.join("env")).unwrap_or_default();
    let down = run("down")?;
    let leftover: Vec<_> = std::fs::read_dir(&testbed)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .collect();
    let _ = std::fs::remove_dir_all(&outer);

    assert!(up.status.success(), "up failed in a 0700 directory:\n{}", String::from_utf8_lossy(&up.stderr));
    assert!(env.contains("PG_URL=") && env.contains("PDNS_API_URL="), "{env}");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(leftover.is_empty(), "down left {leftover:?}");
    Ok(())
}
