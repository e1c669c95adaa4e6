-- Invoice numbers are counted per tenant and year (invoice_counters), so they are unique per
-- tenant: a second shop on one ledger starts its own INV-YYYY-000001.
ALTER TABLE invoices DROP CONSTRAINT invoices_number_key;
ALTER TABLE invoices ADD CONSTRAINT invoices_tenant_number_key UNIQUE (tenant_id, number);
