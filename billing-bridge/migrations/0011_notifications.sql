-- Customer notifications by email. A notification is written in the transaction of the ledger
-- event that causes it (an invoice fulfilled, a payment failed, a subscription suspended, resumed,
-- cancelled or failed to provision), one row per event and recipient: the unique key makes a
-- repeated event (a redelivered webhook, a second worker pass) write nothing. The delivery worker
-- claims unsent rows (FOR UPDATE SKIP LOCKED, so replicas send each once), renders them with the
-- tenant's branding and sends them over SMTP; a failure is kept on the row and tried again later.
-- `facts` holds what the mail says (invoice number, amounts, reasons), never a credential.

-- The tenant's branding in its mails; unset parts fall back to the tenant's name, a no-reply
-- sender of its own and no logo (see ledger::notifications::Branding).
ALTER TABLE tenants
    ADD COLUMN mail_from     text CHECK (mail_from ~ '^[^@[:space:]<>]+@[^@[:space:]<>]+$'),
    ADD COLUMN support_email text CHECK (support_email ~ '^[^@[:space:]<>]+@[^@[:space:]<>]+$'),
    ADD COLUMN logo_url      text CHECK (logo_url ~ '^https://[^[:space:]"<>]+$');
UPDATE tenants SET mail_from = 'billing@migrahosting.com', support_email = 'support@migrahosting.com',
                   logo_url = 'https://migrahosting.com/logo.png'
 WHERE slug = 'migrahosting';

CREATE TABLE notifications (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants,
    customer_id     uuid NOT NULL REFERENCES customers,
    kind            text NOT NULL CHECK (kind IN ('receipt', 'payment_failed', 'suspended', 'resumed', 'cancelled',
                                                  'provisioning_failed')),
    -- the ledger event within its kind: the invoice, payment, dispute or subscription it is about
    event_key       text NOT NULL,
    -- as loose as a customer's email: a notification never stops the event that writes it (an
    -- address the mail server cannot take fails at sending, on this row alone)
    recipient       text NOT NULL CHECK (recipient ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    facts           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(facts) = 'object'),
    -- the mail's Message-ID, the same on every attempt and unlike any other ledger's
    message_id      uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    -- the server refused it for good (a 5xx answer): not tried again
    failed_at       timestamptz,
    UNIQUE (kind, event_key, recipient),
    CHECK (sent_at IS NULL OR failed_at IS NULL)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at, id) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX notifications_customer ON notifications (customer_id);

-- a written notification wakes the delivery worker
CREATE FUNCTION notifications_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mpanel_notification', '');
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_wake AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION notifications_wake();

-- A payment of an invoice that failed tells the customer, in the transaction that recorded it,
-- whoever records it (the Stripe webhook folds reports into the payment row): once per payment.
CREATE FUNCTION notify_payment_failed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (tenant_id, customer_id, kind, event_key, recipient, facts)
    SELECT i.tenant_id, c.id, 'payment_failed', 'payment:' || NEW.id, c.email,
           jsonb_build_object('invoice', i.number, 'amount', NEW.amount::text, 'currency', NEW.currency,
                              'message', NEW.failure_message)
      FROM invoices i JOIN customers c ON c.id = i.customer_id
     WHERE i.id = NEW.invoice_id AND i.status = 'issued'
    ON CONFLICT (kind, event_key, recipient) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER payments_notify_failed AFTER INSERT OR UPDATE OF status, invoice_id ON payments
    FOR EACH ROW WHEN (NEW.status = 'failed' AND NEW.invoice_id IS NOT NULL)
    EXECUTE FUNCTION notify_payment_failed();
