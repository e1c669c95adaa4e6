-- Pay links: an open invoice can be paid by the customer on a Stripe Checkout Session for what is
-- left of it, wherever a saved card is missing or its bank wants the customer (3-D Secure).
--
-- Every issued invoice has a random pay token, made when it is issued: the stable address
-- `<public_url>/v1/pay/<token>` in its mails leads to its current Checkout Session (Stripe's expire
-- within a day; the address does not). The token lets whoever holds it pay that invoice, nothing
-- more.
ALTER TABLE tenants ADD COLUMN public_url text CHECK (public_url ~ '^https?://[^[:space:]"<>]*[^/[:space:]"<>]$');

CREATE TABLE pay_tokens (
    invoice_id uuid PRIMARY KEY REFERENCES invoices,
    token      text NOT NULL UNIQUE CHECK (token ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- 244 random bits from the server's strong random source (two version-4 UUIDs)
CREATE FUNCTION new_pay_token() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
$$;

CREATE FUNCTION pay_token_on_issue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pay_tokens (invoice_id, token) VALUES (NEW.id, new_pay_token()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER invoices_pay_token AFTER INSERT OR UPDATE OF status ON invoices
    FOR EACH ROW WHEN (NEW.status = 'issued') EXECUTE FUNCTION pay_token_on_issue();

INSERT INTO pay_tokens (invoice_id, token) SELECT id, new_pay_token() FROM invoices WHERE status = 'issued';

-- The invoice's pay address, once its tenant's public URL is known (the bridge writes it at start).
CREATE FUNCTION pay_url(invoice uuid) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT t.public_url || '/v1/pay/' || p.token
      FROM pay_tokens p JOIN invoices i ON i.id = p.invoice_id JOIN tenants t ON t.id = i.tenant_id
     WHERE p.invoice_id = invoice
$$;

-- The Checkout Sessions of pay links, one row per session, `seq` counting them per invoice. A row
-- is written before Stripe is asked (its idempotency key is the invoice and `seq`, its expiry
-- fixed here, so every request asking for it gets the same session) and completed after.
-- `expired_at` is set when Stripe says the session expired unpaid.
CREATE TABLE pay_sessions (
    invoice_id uuid NOT NULL REFERENCES invoices,
    seq        integer NOT NULL CHECK (seq >= 1),
    amount     numeric(12, 2) NOT NULL CHECK (amount > 0),
    currency   text NOT NULL,
    expires_at timestamptz NOT NULL,
    session_id text,
    url        text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expired_at timestamptz,
    PRIMARY KEY (invoice_id, seq)
);
CREATE INDEX pay_sessions_session ON pay_sessions (session_id);

-- A failed payment's mail carries the invoice's pay address.
CREATE OR REPLACE FUNCTION notify_payment_failed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (tenant_id, customer_id, kind, event_key, recipient, facts)
    SELECT i.tenant_id, c.id, 'payment_failed', 'payment:' || NEW.id, c.email,
           jsonb_strip_nulls(jsonb_build_object('invoice', i.number, 'amount', NEW.amount::text,
                                                'currency', NEW.currency, 'message', NEW.failure_message,
                                                'payUrl', pay_url(i.id)))
      FROM invoices i JOIN customers c ON c.id = i.customer_id
     WHERE i.id = NEW.invoice_id AND i.status = 'issued'
    ON CONFLICT (kind, event_key, recipient) DO NOTHING;
    RETURN NULL;
END $$;
