-- Customers take turns at the workers: each customer's oldest pending outbox entry and paid invoice
-- is found by index, so one customer's burst of orders does not hold back another customer's
-- single one. The outbox names the customer whose work an entry is (its subscription's).
ALTER TABLE outbox ADD COLUMN customer_id uuid;
UPDATE outbox o SET customer_id = s.customer_id FROM subscriptions s WHERE s.id = o.subscription_id;
ALTER TABLE outbox ALTER COLUMN customer_id SET NOT NULL;
CREATE INDEX outbox_pending_customer ON outbox (customer_id, id) WHERE done_at IS NULL;
CREATE INDEX invoices_unfulfilled_customer ON invoices (customer_id, paid_at, id)
    WHERE status = 'paid' AND fulfilled_at IS NULL;
