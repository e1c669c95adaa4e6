//! Customers as they sign in: each one a user bound to the chart's `<release>-tenant-edit` role in
//! a namespace of its own, so that every call it makes is judged by RBAC and the chart's admission
//! policies, as a real customer's would be.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use mpanel_tests::{Output, TestNamespace, Testbed, eventually, repo_root};
use serde_json::{Value, json};

const TENANT_ROLES: &str = "templates/tenant-roles.yaml";
const BILLING_POLICIES: &str = "templates/billing-fields.yaml";
/// Every cluster-scoped kind the templates above make; deleted by the release label on drop.
const CLUSTER_KINDS: &str = "clusterroles,validatingadmissionpolicies,validatingadmissionpolicybindings";

/// The chart's tenant roles (and, if asked for, its billing-fields admission policies) rendered
/// with `helm template` under a release name of their own and applied; deleted on drop.
pub struct TenantRoles<'a> {
    tb: &'a Testbed,
    release: String,
}

impl<'a> TenantRoles<'a> {
    /// The `tenant-edit` and `tenant-view` ClusterRoles.
    pub fn apply(tb: &'a Testbed) -> anyhow::Result<Self> {
        Self::render_and_apply(tb, &[TENANT_ROLES])
    }

    /// The roles, and the ValidatingAdmissionPolicies that keep billing's fields billing's. The
    /// API server takes a moment to enforce new policies: probe with a request only they refuse.
    pub fn apply_with_billing_policies(tb: &'a Testbed) -> anyhow::Result<Self> {
        Self::render_and_apply(tb, &[TENANT_ROLES, BILLING_POLICIES])
    }

    fn render_and_apply(tb: &'a Testbed, templates: &[&str]) -> anyhow::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let release = format!("tenancy-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let out = Command::new(tb.get("HELM")?)
            .args(["template", &release, &repo_root().join("charts/mpanel").to_string_lossy()])
            .args(templates.iter().flat_map(|t| ["--show-only", t]))
            .output()
            .context("running helm")?;
        if !out.status.success() {
            bail!("helm template failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let roles = Self { tb, release };
        tb.kubectl_ok(&["apply", "-f", "-"], Some(&String::from_utf8(out.stdout)?))?;
        Ok(roles)
    }

    /// The ClusterRole a customer holds in its own namespace.
    pub fn tenant_edit(&self) -> String {
        format!("{}-tenant-edit", self.release)
    }
}

impl Drop for TenantRoles<'_> {
    fn drop(&mut self) {
        let selector = format!("app.kubernetes.io/instance={}", self.release);
        let _ = self.tb.kubectl(&["delete", CLUSTER_KINDS, "-l", &selector, "--wait=false"], None);
    }
}

/// A customer: a namespace of its own and the user `tenant-<namespace>`, bound to `tenant-edit`
/// there. Every call through it is made as that user.
pub struct Customer<'a> {
    pub tb: &'a Testbed,
    pub ns: TestNamespace<'a>,
    pub user: String,
}

impl<'a> Customer<'a> {
    pub fn new(roles: &TenantRoles<'a>, prefix: &str) -> anyhow::Result<Self> {
        let tb = roles.tb;
        let ns = tb.namespace(prefix)?;
        let user = format!("tenant-{}", ns.name);
        let role = format!("--clusterrole={}", roles.tenant_edit());
        tb.kubectl_ok(
            &["create", "rolebinding", "tenant-edit", "-n", &ns.name, &role, &format!("--user={user}")],
            None,
        )?;
        let customer = Self { tb, ns, user };
        customer.wait_bound()?;
        Ok(customer)
    }

    /// Waits until the API server's authorizer has seen the role and its binding.
    fn wait_bound(&self) -> anyhow::Result<()> {
        let may_edit = || {
            Ok(self.kubectl(&["auth", "can-i", "create", "mailboxes.mpanel.migrahosting.com"])?.stdout.trim() == "yes")
        };
        if !eventually(Duration::from_secs(30), may_edit)? {
            bail!("{} never got tenant-edit in {}", self.user, self.ns.name);
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.ns.name
    }

    /// An object of the mPanel API in this customer's namespace.
    pub fn object(&self, kind: &str, name: &str, spec: Value) -> Value {
        json!({"apiVersion": "mpanel.migrahosting.com/v1alpha1", "kind": kind,
               "metadata": {"name": name, "namespace": self.ns.name}, "spec": spec})
    }

    /// kubectl as this customer's user, in its namespace (a later `-n` in `args` overrides it).
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Output> {
        let args: Vec<&str> = ["-n", self.ns.name.as_str()].iter().chain(args).copied().collect();
        self.tb.kubectl_as(&self.user, &args, None)
    }

    /// kubectl as this customer's user, in its namespace; fails with its stderr unless it succeeds.
    pub fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl(args)?;
        if !out.success {
            bail!("kubectl {} as {} failed: {}", args.join(" "), self.user, out.stderr.trim());
        }
        Ok(out.stdout)
    }

    /// `kubectl apply` of the object as this customer's user, allowed or not.
    pub fn try_apply(&self, kind: &str, name: &str, spec: Value) -> anyhow::Result<Output> {
        self.try_apply_object(&self.object(kind, name, spec))
    }

    /// `kubectl apply` of a whole object (metadata and all) as this customer's user, allowed or not.
    pub fn try_apply_object(&self, object: &Value) -> anyhow::Result<Output> {
        self.tb.kubectl_as(&self.user, &["apply", "-f", "-"], Some(&object.to_string()))
    }

    /// Applies the object as this customer's user; fails with the API server's refusal.
    pub fn apply(&self, kind: &str, name: &str, spec: Value) -> anyhow::Result<()> {
        let out = self.try_apply(kind, name, spec)?;
        if !out.success {
            bail!("{} could not apply {kind} {name}: {}", self.user, out.stderr.trim());
        }
        Ok(())
    }

    /// A merge patch of `target` (`kind/name`) as this customer's user, allowed or not.
    pub fn try_patch(&self, target: &str, patch: Value) -> anyhow::Result<Output> {
        self.kubectl(&["patch", target, "--type=merge", "-p", &patch.to_string()])
    }

    /// An object as this customer's user reads it.
    pub fn get(&self, kind: &str, name: &str) -> anyhow::Result<Value> {
        let out = self.kubectl(&["get", kind, name, "-o", "json"])?;
        if !out.success {
            bail!("{} could not read {kind} {name}: {}", self.user, out.stderr.trim());
        }
        Ok(serde_json::from_str(&out.stdout)?)
    }

    pub fn uid(&self, kind: &str, name: &str) -> anyhow::Result<String> {
        Ok(self.get(kind, name)?["metadata"]["uid"].as_str().context("no uid")?.to_owned())
    }
}

/// Fails unless the API server refused the request with a message containing `says`.
#[track_caller]
pub fn assert_refused(out: &Output, says: &str) {
    assert!(!out.success, "expected a refusal saying {says:?}, it was allowed: {out:?}");
    assert!(out.stderr.contains(says), "expected a refusal saying {says:?}, got: {}", out.stderr);
}
