-- Daily backups, 30 kept: an add-on bought with a CloudPod (a product of type `cloudpod` in the
-- same order). Its template has only a `boughtWith.cloudpod` section, a BackupPolicy for the pod
-- (named `${subscription}`, as every CloudPod product names it) that the operator runs: a vzdump
-- every 24 hours, the first at once, into the Proxmox storage `backups`, the newest 30 archives
-- kept. Bought without a CloudPod it makes nothing. Staff point `storage` at the real cluster's
-- backup storage through the admin API.
INSERT INTO products (tenant_id, slug, name, type, template)
SELECT t.id, 'daily-backups-30d', 'Daily backups (30 kept)', 'addon',
       '{"boughtWith": {"cloudpod": {"backupPolicies": [{"name": "${subscription}-backups", "spec": {"cloudPods": ["${subscription}"], "schedule": {"every": "24h"}, "keep": 30, "storage": "backups", "mode": "snapshot"}}]}}}'::jsonb
  FROM tenants t
 WHERE t.slug = 'migrahosting'
ON CONFLICT (tenant_id, slug) DO NOTHING;

INSERT INTO product_prices (product_id, cycle, amount_cents)
SELECT p.id, c.cycle, c.cents
  FROM tenants t
  JOIN products p ON p.tenant_id = t.id AND p.slug = 'daily-backups-30d'
  CROSS JOIN (VALUES ('monthly', 499), ('annual', 4990)) AS c(cycle, cents)
 WHERE t.slug = 'migrahosting'
ON CONFLICT DO NOTHING;
