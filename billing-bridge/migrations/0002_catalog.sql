-- The starting catalog of the default tenant. Templates are a Subscription's spec.resources; the
-- placeholders ${subscription}, ${customer}, ${email}, ${domain}, ${domainLabel} and
-- ${credentialsSecret} are filled in at purchase (see materializer::render). Edit them through the
-- admin API (network bridge, template, IP pool, issuer) to match the real environment.

INSERT INTO tenants (slug, name) VALUES ('migrahosting', 'MigraHosting');

INSERT INTO products (tenant_id, slug, name, type, template)
SELECT t.id, p.slug, p.name, 'cloudpod', jsonb_build_object('cloudPods', jsonb_build_array(jsonb_build_object(
           'name', '${subscription}',
           'spec', jsonb_build_object(
               'plan', p.plan, 'type', 'lxc', 'template', '100', 'hostname', '${subscription}',
               'resources', jsonb_build_object('cores', p.cores, 'memoryMiB', p.memory, 'diskGiB', p.disk),
               'network', jsonb_build_object('bridge', 'vmbr0', 'ipv4', jsonb_build_object('pool', 'public-v4'))))))
  FROM tenants t,
       (VALUES ('cloudpod-mini', 'CloudPod Mini', 'mini', 1, 1024, 20),
               ('cloudpod-pro', 'CloudPod Pro', 'pro', 2, 2048, 40),
               ('cloudpod-business', 'CloudPod Business', 'business', 4, 4096, 80),
               ('cloudpod-enterprise', 'CloudPod Enterprise', 'enterprise', 8, 8192, 160))
         AS p(slug, name, plan, cores, memory, disk)
 WHERE t.slug = 'migrahosting';

INSERT INTO product_prices (product_id, cycle, amount_cents)
SELECT p.id, c.cycle, c.cents
  FROM products p
  JOIN (VALUES ('cloudpod-mini', 'monthly', 999), ('cloudpod-mini', 'annual', 9990),
               ('cloudpod-pro', 'monthly', 1999), ('cloudpod-pro', 'annual', 19990),
               ('cloudpod-business', 'monthly', 3999), ('cloudpod-business', 'annual', 39990),
               ('cloudpod-enterprise', 'monthly', 7999), ('cloudpod-enterprise', 'annual', 79990))
         AS c(slug, cycle, cents) ON c.slug = p.slug;

INSERT INTO products (tenant_id, slug, name, type, template)
SELECT t.id, p.slug, p.name, p.type, p.template::jsonb
  FROM tenants t,
       (VALUES
         ('domain', 'Domain registration', 'domain',
          '{"domains": [{"name": "${domainLabel}", "spec": {"name": "${domain}", "registration": {"mode": "Register", "years": 1}}}]}'),
         ('dns-hosting', 'DNS hosting', 'dns',
          '{"dnsZones": [{"name": "${domainLabel}", "spec": {"zone": "${domain}.", "nameservers": ["ns1.migrahosting.com.", "ns2.migrahosting.com."], "records": [{"name": "www", "type": "CNAME", "values": ["${domain}."]}], "mail": {"mx": [{"host": "mail.migrahosting.com.", "priority": 10}], "spf": "v=spf1 mx -all"}}}]}'),
         ('email-basic', 'Email Basic', 'email',
          '{"mailboxes": [{"name": "postmaster-${domainLabel}", "spec": {"address": "postmaster@${domain}", "quotaMiB": 2048, "passwordSecretRef": {"name": "${credentialsSecret}", "key": "mailbox-password"}}}]}'),
         ('ssl-dv', 'SSL certificate (DV)', 'ssl',
          '{"certificates": [{"name": "${domainLabel}-tls", "spec": {"dnsNames": ["${domain}", "*.${domain}"], "secretName": "${domainLabel}-tls", "issuer": "letsencrypt", "deletionPolicy": "Delete"}}]}'))
         AS p(slug, name, type, template)
 WHERE t.slug = 'migrahosting';

INSERT INTO product_prices (product_id, cycle, purpose, amount_cents)
SELECT p.id, c.cycle, c.purpose, c.cents
  FROM products p
  JOIN (VALUES ('domain', 'annual', 'new', 1295), ('domain', 'annual', 'renewal', 1495),
               ('domain', 'annual', 'transfer', 1095),
               ('dns-hosting', 'monthly', 'new', 199), ('dns-hosting', 'annual', 'new', 1990),
               ('email-basic', 'monthly', 'new', 299), ('email-basic', 'annual', 'new', 2990),
               ('ssl-dv', 'annual', 'new', 2900))
         AS c(slug, cycle, purpose, cents) ON c.slug = p.slug;
