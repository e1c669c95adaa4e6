-- The workers' claims stay quick however long their queues grow in a burst: each candidate's "is an
-- earlier entry of its subscription still pending" check, and the search for money kept on void
-- invoices, look up a few rows by index instead of scanning every pending entry or every payment.
CREATE INDEX outbox_pending_subscription ON outbox (subscription_id, id) WHERE done_at IS NULL;
CREATE INDEX invoices_void ON invoices (id) WHERE status = 'void';
