-- The default tenant's catalog as it is sold. Only the parts named here change; a template staff
-- edited elsewhere (network, image, issuer) keeps those edits.

-- Plan sizes: Mini, Pro, Business and Enterprise have 1, 2, 4 and 8 cores, 1, 2, 4 and 8 GiB of
-- memory and 20, 50, 100 and 200 GiB of disk (the operator's default plans), at 9.99, 19.99, 39.99
-- and 79.99 USD a month (0002 already had these prices and memory; the disks were smaller).
UPDATE products p
   SET template = jsonb_set(p.template, '{cloudPods,0,spec,resources}',
                            jsonb_build_object('cores', s.cores, 'memoryMiB', s.memory, 'diskGiB', s.disk)),
       updated_at = now()
  FROM tenants t,
       (VALUES ('cloudpod-mini', 1, 1024, 20), ('cloudpod-pro', 2, 2048, 50),
               ('cloudpod-business', 4, 4096, 100), ('cloudpod-enterprise', 8, 8192, 200))
         AS s(slug, cores, memory, disk)
 WHERE t.slug = 'migrahosting' AND p.tenant_id = t.id AND p.slug = s.slug
   AND p.template #> '{cloudPods,0,spec}' IS NOT NULL;

-- A CloudPod bought with a domain (a product of type `domain`: registration or transfer) gets the
-- domain's zone, whose apex follows the pod's address and whose `www` is the apex, and a
-- certificate for both names; bought with DNS hosting (type `dns`) it gets the same zone without
-- a certificate. `boughtWith.<type>` holds resources added only when the order also has a product
-- of that type; resources of one kind with the same name are one (render::order_resources), so
-- the zone of DNS hosting and the certificate of ssl-dv bought too are merged with these.
WITH site AS (
    SELECT p.id,
           jsonb_build_array(jsonb_build_object('name', '${domainLabel}', 'spec', jsonb_build_object(
               'zone', '${domain}.',
               'nameservers', jsonb_build_array('ns1.migrahosting.com.', 'ns2.migrahosting.com.'),
               'records', jsonb_build_array(
                   jsonb_build_object('name', '@', 'type', 'A',
                                      'cloudPodRef', jsonb_build_object('name', p.template #>> '{cloudPods,0,name}')),
                   jsonb_build_object('name', 'www', 'type', 'CNAME', 'values', jsonb_build_array('${domain}.')))))) AS zone,
           jsonb_build_array(jsonb_build_object('name', '${domainLabel}-tls', 'spec', jsonb_build_object(
               'dnsNames', jsonb_build_array('${domain}', 'www.${domain}'),
               'secretName', '${domainLabel}-tls', 'issuer', 'letsencrypt', 'deletionPolicy', 'Delete'))) AS certificate
      FROM products p
      JOIN tenants t ON t.id = p.tenant_id
     WHERE t.slug = 'migrahosting' AND p.type = 'cloudpod' AND p.template #>> '{cloudPods,0,name}' IS NOT NULL
)
UPDATE products p
   SET template = p.template || jsonb_build_object('boughtWith', jsonb_build_object(
           'domain', jsonb_build_object('dnsZones', site.zone, 'certificates', site.certificate),
           'dns', jsonb_build_object('dnsZones', site.zone))),
       updated_at = now()
  FROM site
 WHERE p.id = site.id;

-- DNS hosting alone has no address for the apex: its `www` CNAME pointed at a name with no A
-- record. The apex and `www` come from a CloudPod bought with it (above); DNS hosting keeps the
-- nameservers and the mail records.
UPDATE products p
   SET template = jsonb_set(p.template, '{dnsZones,0,spec,records}', COALESCE(
           (SELECT jsonb_agg(r) FROM jsonb_array_elements(p.template #> '{dnsZones,0,spec,records}') r
             WHERE NOT (r ->> 'name' = 'www' AND r ->> 'type' = 'CNAME')), '[]'::jsonb)),
       updated_at = now()
  FROM tenants t
 WHERE t.slug = 'migrahosting' AND p.tenant_id = t.id AND p.slug = 'dns-hosting'
   AND jsonb_typeof(p.template #> '{dnsZones,0,spec,records}') = 'array';

-- Domain transfer: the name moves in from another registrar with the EPP auth code the customer
-- gives at checkout. The bridge writes the code into the Secret ${authCodeSecret} in the customer's
-- namespace before any payment; the ledger and the Subscription hold only this reference. It is
-- priced as the domain product's transfer (and renews at its renewal price); it has no `new` price,
-- as the checkout prices a product that transfers a domain at its `transfer` price.
INSERT INTO products (tenant_id, slug, name, type, template)
SELECT t.id, 'domain-transfer', 'Domain transfer', 'domain',
       '{"domains": [{"name": "${domainLabel}", "spec": {"name": "${domain}", "registration": {"mode": "Transfer", "years": 1, "authCodeSecretRef": {"name": "${authCodeSecret}", "key": "auth-code"}}}}]}'::jsonb
  FROM tenants t
 WHERE t.slug = 'migrahosting'
ON CONFLICT (tenant_id, slug) DO NOTHING;

INSERT INTO product_prices (product_id, cycle, purpose, amount_cents, currency)
SELECT x.id, pp.cycle, pp.purpose, pp.amount_cents, pp.currency
  FROM tenants t
  JOIN products x ON x.tenant_id = t.id AND x.slug = 'domain-transfer'
  JOIN products d ON d.tenant_id = t.id AND d.slug = 'domain'
  JOIN product_prices pp ON pp.product_id = d.id AND pp.purpose IN ('transfer', 'renewal')
 WHERE t.slug = 'migrahosting'
ON CONFLICT DO NOTHING;
